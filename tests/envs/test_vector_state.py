"""Vector envs can be snapshotted and resumed exactly (what ``train.py --resume`` relies on)."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("envs/CartPole-v1", {}),
        ("envs/Snake-v0", {}),
        ("envs/MetaCar-v0", {"level": "level1", "max_steps": 40}),
        ("envs/MetaCar-v0", {"level": "level1", "shuffle_on_reset": True}),
    ],
)
def test_get_set_state_continues_identically(env_id, kwargs):
    n = 8
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=(120, n))
    a = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    a.reset(seed=3)
    for t in range(60):
        a.step(actions[t])
    snapshot = a.get_state()
    expected = [a.step(actions[t]) for t in range(60, 120)]

    b = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    b.reset(seed=99)  # a different history, overwritten by the snapshot
    b.set_state(snapshot)
    for t, want in zip(range(60, 120), expected):
        got = b.step(actions[t])
        for x, y in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(x, y)


def test_state_from_another_board_size_is_refused():
    small = gym.make_vec("envs/Snake-v0", num_envs=2, vectorization_mode="vector_entry_point", height=5, width=5)
    small.reset(seed=0)
    big = gym.make_vec("envs/Snake-v0", num_envs=2, vectorization_mode="vector_entry_point")
    big.reset(seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        big.set_state(small.get_state())
