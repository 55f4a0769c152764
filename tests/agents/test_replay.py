"""Replay memory: circular writes with wraparound, uniform sampling, exact save/restore."""

import numpy as np
import pytest

from agents.replay import ReplayBuffer
from rl import backend
from rl.random import Generator


def _transitions(start: int, n: int):
    """n transitions numbered start..start+n-1; every field encodes the number so slots can be checked."""
    k = np.arange(start, start + n)
    obs = np.stack([k, -k], axis=1).astype(np.float32)
    return obs, k % 3, k.astype(np.float32) * 0.5, obs + 1000, k % 2 == 0


def _ids(buf: ReplayBuffer) -> np.ndarray:
    return backend.to_numpy(buf.obs[: buf.size, 0]).astype(int)


def test_wraparound_overwrites_oldest_in_place():
    buf = ReplayBuffer(5, (2,), rng=Generator(0))
    buf.add(*_transitions(0, 3))
    assert len(buf) == 3 and buf.pos == 3
    buf.add(*_transitions(3, 4))  # 3, 4 fill the end; 5, 6 wrap to slots 0, 1
    assert len(buf) == 5 and buf.pos == 2
    assert _ids(buf).tolist() == [5, 6, 2, 3, 4]
    # every field of a slot belongs to the same transition
    ids = _ids(buf)
    assert backend.to_numpy(buf.action).tolist() == (ids % 3).tolist()
    assert backend.to_numpy(buf.reward).tolist() == (ids * 0.5).tolist()
    assert backend.to_numpy(buf.next_obs[:, 0]).tolist() == (ids + 1000).tolist()
    assert backend.to_numpy(buf.terminated).tolist() == (ids % 2 == 0).astype(float).tolist()


def test_batch_larger_than_capacity_keeps_newest():
    buf = ReplayBuffer(4, (2,))
    buf.add(*_transitions(0, 1))
    buf.add(*_transitions(1, 10))  # 1..10: only 7..10 survive
    assert sorted(_ids(buf).tolist()) == [7, 8, 9, 10]


def test_sampling_is_uniform_over_filled_slots_and_consistent():
    buf = ReplayBuffer(100, (2,), rng=Generator(1))
    buf.add(*_transitions(0, 10))  # only 10 of 100 slots filled
    counts = np.zeros(10)
    for _ in range(400):
        batch = buf.sample(25)
        ids = backend.to_numpy(batch.obs[:, 0]).astype(int)
        assert ids.max() < 10  # never an empty slot
        assert backend.to_numpy(batch.action).tolist() == (ids % 3).tolist()
        assert backend.to_numpy(batch.next_obs[:, 0]).tolist() == (ids + 1000).tolist()
        np.add.at(counts, ids, 1)
    freq = counts / counts.sum()
    assert np.all(np.abs(freq - 0.1) < 0.02)


def test_sampling_without_replacement_draws_distinct_slots():
    buf = ReplayBuffer(50, (2,), rng=Generator(2))
    buf.add(*_transitions(0, 50))
    for _ in range(20):
        ids = backend.to_numpy(buf.sample(50, replace=False).obs[:, 0]).astype(int)
        assert sorted(ids.tolist()) == list(range(50))
    with pytest.raises(ValueError, match="distinct"):
        buf.sample(51, replace=False)


def test_same_seed_same_batches_and_state_round_trip():
    a = ReplayBuffer(8, (2,), rng=Generator(3))
    a.add(*_transitions(0, 11))
    a.sample(4)
    state = a.state_dict()
    b = ReplayBuffer(8, (2,), rng=Generator(99))
    b.load_state_dict(state)
    assert (b.pos, b.size) == (a.pos, a.size)
    for _ in range(3):
        np.testing.assert_array_equal(backend.to_numpy(a.sample(6).obs), backend.to_numpy(b.sample(6).obs))
    # writes continue at the same place too
    a.add(*_transitions(20, 3))
    b.add(*_transitions(20, 3))
    np.testing.assert_array_equal(backend.to_numpy(a.obs), backend.to_numpy(b.obs))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    buf = ReplayBuffer(4, (2,))
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    obs, act, rew, nxt, term = _transitions(0, 2)
    with pytest.raises(ValueError, match="shape"):
        buf.add(obs[:, :1], act, rew, nxt[:, :1], term)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(5, (2,)).load_state_dict(buf.state_dict())
