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


def test_metacar_resume_after_the_bots_moved_continues_identically():
    # The bots' sensors see cars that have not moved yet at their boxes from the previous step, a cache the
    # snapshot does not hold; set_state must rebuild it from the restored poses. Before it did, a resumed
    # level1 run with 16 never-ending episodes first differed at step 442 (its boxes were the start poses').
    n, t0, t1 = 16, 400, 460
    actions = np.random.default_rng(0).integers(0, 5, size=(t1, n))
    kwargs = {"num_envs": n, "vectorization_mode": "vector_entry_point", "level": "level1",
              "terminate_on_crash": False, "max_steps": 0}
    a = gym.make_vec("envs/MetaCar-v0", **kwargs)
    a.reset(seed=3)
    for t in range(t0):
        a.step(actions[t])
    snapshot = a.get_state()
    b = gym.make_vec("envs/MetaCar-v0", **kwargs)
    b.reset(seed=99)
    b.set_state(snapshot)
    for t in range(t0, t1):
        want, got = a.step(actions[t]), b.step(actions[t])
        for x, y in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}")


@pytest.mark.parametrize(("env_id", "kwargs", "action"), [
    ("envs/CartPole-v1", {}, lambda n: np.zeros(n, dtype=np.int64)),
    ("envs/Snake-v0", {"height": 6, "width": 6}, lambda n: np.zeros(n, dtype=np.int64)),
    ("envs/MetaCar-v0", {"level": "level1"}, lambda n: np.zeros(n, dtype=np.int64)),
    ("envs/MetaCar-v0", {"level": "level2", "motion": "control"}, lambda n: np.full((n, 2), 0.5)),
])
def test_vector_envs_return_numpy_arrays_whatever_the_device(env_id, kwargs, action):
    # All three share envs._common.BatchedVectorEnv: a core on the backend (CuPy under a GPU, the simulated
    # one under `make test-simgpu`) still hands NumPy to the agent; MetaCar used to return backend arrays.
    env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", device="backend", **kwargs)
    obs, infos = env.reset(seed=0)
    out = env.step(action(3))
    for value in (obs, *out[:4], *infos.values(), *out[4].values()):
        assert type(value) is np.ndarray, (env_id, type(value))
    env.close()
