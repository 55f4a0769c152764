"""CartPole: Gymnasium's contract, bit-exact agreement with gymnasium's CartPole-v1, the book variant,
seeding, and the vector env against single envs."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.cartpole.core import CartPoleCore

ID = "envs/CartPole-v1"


@pytest.mark.parametrize("render_mode", [None, "rgb_array", "human"])
def test_check_env(render_mode):
    env = gym.make(ID, render_mode=render_mode)
    check_env(env.unwrapped)
    env.close()


def _run_against_gym(variant, seed, steps=500):
    ours, ref = gym.make(ID, variant=variant), gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    ours.reset(seed=seed)
    ref.reset(seed=seed)
    start = rng.uniform(-0.05, 0.05, size=4)
    ours.unwrapped.state = start
    ref.unwrapped.state = start.copy()
    for t in range(steps):
        a = int(rng.integers(2))
        o1, r1, te1, tr1, _ = ours.step(a)
        o2, r2, te2, tr2, _ = ref.step(a)
        assert o1.dtype == np.float32 and np.array_equal(o1, o2), f"step {t}"
        assert np.array_equal(ours.unwrapped.state, ref.unwrapped.state), f"step {t}"
        assert (te1, tr1) == (te2, tr2), f"step {t}"
        if variant == "gym":
            assert r1 == r2
        if te1 or tr1:
            return t + 1, te1, r1
    return steps, False, None


@pytest.mark.parametrize("seed", range(20))
def test_same_trajectory_as_gymnasium(seed):
    length, terminated, _ = _run_against_gym("gym", seed)
    assert terminated and length < 500  # random pushes drop the pole


def test_truncates_at_500_like_gymnasium():
    ours, ref = gym.make(ID), gym.make("CartPole-v1")
    ours.reset(seed=0)
    ref.reset(seed=0)
    ours.unwrapped.state = ref.unwrapped.state = np.zeros(4)
    obs = np.zeros(4)
    for _ in range(500):
        x, x_dot, theta, theta_dot = obs
        a = int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)  # a balancing controller
        obs, r1, te1, tr1, _ = ours.step(a)
        _, r2, te2, tr2, _ = ref.step(a)
        assert (r1, te1, tr1) == (r2, te2, tr2)
        assert np.array_equal(ours.unwrapped.state, ref.unwrapped.state)
    assert tr1 and not te1


def test_batched_core_matches_gymnasium_vector_env():
    n = 64
    ref = GymCartPoleVectorEnv(num_envs=n, max_episode_steps=10**6)
    ref.reset(seed=1)
    core = CartPoleCore(n)
    core.state[:] = ref.state
    rng = np.random.default_rng(1)
    for _ in range(60):
        a = rng.integers(0, 2, n)
        ref.prev_done[:] = False  # keep gymnasium from resetting: compare the physics of every world
        _, ref_rew, ref_term, _, _ = ref.step(a)
        rew, term = core.step(a)
        assert np.array_equal(core.state, ref.state)
        assert np.array_equal(term, ref_term) and np.array_equal(rew, ref_rew)
    assert term.any() and not term.all()


def test_book_variant_start_ranges_and_reward():
    env = gym.make(ID, variant="book")
    starts = np.array([env.reset(seed=s)[0] for s in range(400)])
    half = np.array([0.5, 0.5, 6 * math.pi / 180, 0.25])
    assert np.all(np.abs(starts) <= half + 1e-6)
    assert np.all(np.abs(starts).max(axis=0) > 0.8 * half)  # much wider than gym's +-0.05
    length, terminated, last_reward = _run_against_gym("book", 3)
    assert terminated and last_reward == 0.0  # the failing step earns nothing in the book


def test_gym_variant_start_range():
    env = gym.make(ID)
    starts = np.array([env.reset(seed=s)[0] for s in range(200)])
    assert np.all(np.abs(starts) <= 0.05) and np.abs(starts).max() > 0.04


def test_seeded_determinism():
    def run(seed):
        env = gym.make(ID)
        obs = [env.reset(seed=seed)[0]]
        for t in range(300):
            o, _, te, tr, _ = env.step(t * 7 % 3 % 2)
            obs.append(o)
            if te or tr:
                obs.append(env.reset()[0])
        return np.array(obs)

    assert np.array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_vector_env_equals_single_envs():
    n, seed = 8, 100
    vec = gym.make_vec(ID, num_envs=n, vectorization_mode="vector_entry_point", variant="book")
    singles = [gym.make(ID, variant="book") for _ in range(n)]
    obs_v, _ = vec.reset(seed=seed)
    obs_s = np.array([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)])
    assert np.array_equal(obs_v, obs_s)
    done = np.zeros(n, bool)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(300):
        a = rng.integers(0, 2, n)
        obs_v, rew_v, te_v, tr_v, _ = vec.step(a)
        for i, e in enumerate(singles):
            if done[i]:  # next-step autoreset: this step is the reset
                o, r, te, tr = e.reset()[0], 0.0, False, False
                episodes += 1
            else:
                o, r, te, tr, _ = e.step(int(a[i]))
            assert np.array_equal(obs_v[i], o) and rew_v[i] == r and te_v[i] == te and tr_v[i] == tr
            done[i] = te or tr
    assert episodes > n  # autoreset was exercised
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


def test_invalid_actions_raise_value_error():
    env = gym.make(ID)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, "left", None):
        with pytest.raises(ValueError, match="Discrete"):
            env.step(bad)
    assert env.step(np.int64(1))[0].shape == (4,)
    vec = gym.make_vec(ID, num_envs=3, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        vec.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.array([0, 1]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variant"):
        gym.make(ID, variant="tfjs")
    with pytest.raises(ValueError, match="max_steps"):
        gym.make(ID, max_steps=0)
    with pytest.raises(ValueError, match="max_steps"):
        gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point", max_steps=0)


def test_rgb_render_shows_the_cart_where_it_is():
    env = gym.make(ID, render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped.state = [-1.5, 0, 0, 0]
    left = env.render()
    env.unwrapped.state = [1.5, 0, 0, 0]
    right = env.render()
    assert left.dtype == np.uint8 and left.shape[2] == 3

    def cart_column(img):  # mean column of the cart's blue pixels
        blue = (img[..., 2] > 140) & (img[..., 0] < 80)
        return np.nonzero(blue)[1].mean()

    assert cart_column(left) < left.shape[1] / 2 < cart_column(right)


@pytest.mark.parametrize("variant", ["gym", "book"])
def test_compiled_step_equals_the_numpy_core_bit_for_bit(variant):
    """The compiled batched step (numba, where installed) against the NumPy core: two vector envs on the same
    seed and actions, many steps with autoresets and truncations, every state array, observation, reward and
    flag compared bit for bit; a mid-run get_state/set_state (as agents.ppo_seeds merges seeds) keeps it."""
    from rl import _fused

    n = 37
    kw = {"num_envs": n, "vectorization_mode": "vector_entry_point", "variant": variant, "max_steps": 90}
    fast, plain = gym.make_vec(ID, **kw), gym.make_vec(ID, **kw)
    fast.reset(seed=11)
    with _fused.disabled():
        plain.reset(seed=11)
    rng = np.random.default_rng(5)
    ends = 0
    for t in range(700):
        a = rng.integers(0, 2, n)
        if t == 350:
            fast.set_state(fast.get_state())
        out_fast = fast.step(a)
        with _fused.disabled():
            out_plain = plain.step(a)
        for x, y in zip(out_fast[:4], out_plain[:4], strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
        assert fast.unwrapped.core.state.tobytes() == plain.unwrapped.core.state.tobytes()
        assert fast.unwrapped.core.rng.state.tobytes() == plain.unwrapped.core.rng.state.tobytes()
        ends += int(out_fast[2].sum() + out_fast[3].sum())
    assert ends > 100  # many terminations and truncations went through the autoreset
    assert (_fused.kernels() is None) == ("cartpole_step" not in _fused._outside)  # the compiled path ran
