"""The one episode tracker: differential against a per-world reference on random next-step-autoreset
streams, its env_steps definition, exact resume of its state, and first_episodes."""

import numpy as np
import pytest

from agents.episodes import EpisodeTracker, first_episodes


class RandomAutoresetEnv:
    """A vector env of ``num_envs`` worlds with random rewards and episode ends and Gymnasium's NEXT_STEP
    autoreset: the call after an end restarts the world (reward 0, no flags)."""

    def __init__(self, num_envs, seed, p_end=0.2):
        self.num_envs, self.rng, self.p_end = num_envs, np.random.default_rng(seed), p_end
        self.prev_done = np.zeros(num_envs, dtype=bool)

    def reset(self, seed=None):
        self.prev_done[:] = False
        return np.zeros((self.num_envs, 1)), {}

    def step(self, actions):
        n = self.num_envs
        reward = np.round(self.rng.normal(size=n), 3)
        terminated = self.rng.random(n) < self.p_end / 2
        truncated = ~terminated & (self.rng.random(n) < self.p_end / 2)
        restarted = self.prev_done
        reward[restarted] = 0.0
        terminated &= ~restarted
        truncated &= ~restarted
        self.prev_done = terminated | truncated
        return np.zeros((n, 1)), reward, terminated, truncated, {}


def reference_episodes(rewards, terminated, truncated):
    """Per world, the (return, length, terminated) of each finished episode, read one step at a time."""
    steps, n = rewards.shape
    out = {i: [] for i in range(n)}
    for i in range(n):
        ret, length, restart = 0.0, 0, False
        for t in range(steps):
            if restart:  # the autoreset step: not part of any episode
                restart = False
                continue
            ret, length = ret + rewards[t, i], length + 1
            if terminated[t, i] or truncated[t, i]:
                out[i].append((ret, length, bool(terminated[t, i])))
                ret, length, restart = 0.0, 0, True
    return out


@pytest.mark.parametrize("seed", range(8))
def test_tracker_matches_a_per_world_reference_and_counts_every_step_call(seed):
    rng = np.random.default_rng(seed)
    n, steps = int(rng.integers(1, 6)), int(rng.integers(1, 80))
    env = RandomAutoresetEnv(n, seed)
    env.reset()
    tracker = EpisodeTracker(n, sums=("speed",))
    tracker.reset()
    rewards, terms, truncs = np.zeros((steps, n)), np.zeros((steps, n), bool), np.zeros((steps, n), bool)
    got = {i: [] for i in range(n)}
    transitions = 0
    for t in range(steps):
        _, rewards[t], terms[t], truncs[t], _ = env.step(None)
        result = tracker.step(rewards[t], terms[t], truncs[t], speed=np.ones(n))
        transitions += int(result.transitions.sum())
        for ep in result.finished:
            world = int(ep.worlds[0])
            got[world].append((float(ep.returns[0]), int(ep.lengths[0]), bool(ep.terminated[0])))
            assert ep.sums["speed"][0] == ep.lengths[0], f"seed {seed}"
    expected = reference_episodes(rewards, terms, truncs)
    for i in range(n):
        assert [(pytest.approx(r), n_, term) for r, n_, term in expected[i]] == got[i], f"seed {seed}, world {i}"
    # Gymnasium's env_steps: every step call of every world, the autoreset calls included.
    assert tracker.env_steps == n * steps, f"seed {seed}"
    assert tracker.episodes == sum(len(v) for v in expected.values())
    finished_lengths = sum(length for v in expected.values() for _, length, _ in v)
    assert transitions == finished_lengths + int(tracker.lengths.sum()), f"seed {seed}"


def test_tracker_state_round_trip_continues_exactly():
    env = RandomAutoresetEnv(3, seed=11)
    env.reset()
    a = EpisodeTracker(3)
    for _ in range(17):
        a.step(*env.step(None)[1:4])
    b = EpisodeTracker(3)
    b.load_state_dict(a.state_dict())
    for _ in range(40):
        step = env.step(None)[1:4]
        ra, rb = a.step(*step), b.step(*step)
        np.testing.assert_array_equal(ra.transitions, rb.transitions)
        assert ra.finished.records(a.env_steps) == rb.finished.records(b.env_steps)
    assert a.state_dict()["env_steps"] == b.env_steps == 3 * 57
    with pytest.raises(ValueError, match="this agent steps 4 worlds"):
        EpisodeTracker(4).load_state_dict(a.state_dict())


def test_first_episodes_keeps_each_worlds_first_episode_and_the_running_ones():
    env = RandomAutoresetEnv(6, seed=3, p_end=0.1)
    played = first_episodes(env, lambda obs: np.zeros(len(obs)), seed=0, max_steps=5)
    # Replay the same random stream by hand: each world's first episode, or its first 5 steps.
    ref_env = RandomAutoresetEnv(6, seed=3, p_end=0.1)
    steps = [ref_env.step(None)[1:4] for _ in range(5)]
    rewards, terms, truncs = (np.array([s[k] for s in steps]) for k in range(3))
    expected = reference_episodes(rewards, terms, truncs)
    for i in range(6):
        if expected[i]:
            ret, length, term = expected[i][0]
            assert played.finished[i] and played.lengths[i] == length and played.terminated[i] == term
            assert played.returns[i] == pytest.approx(ret)
        else:
            assert not played.finished[i] and played.lengths[i] == 5
            assert played.returns[i] == pytest.approx(rewards[:, i].sum())


def test_compiled_tracker_step_equals_the_numpy_path():
    """The compiled bookkeeping (numba, where installed) against the NumPy path: the same random rewards and
    ends for 400 steps, every counter, running array, transition mask and finished episode equal, bit for bit."""
    from rl import _fused

    n = 23
    fast, plain = EpisodeTracker(n), EpisodeTracker(n)
    fast.reset()
    plain.reset()
    data = np.random.default_rng(4)
    for _ in range(400):
        reward = data.standard_normal(n).astype(np.float32)
        terminated, truncated = data.random(n) < 0.05, data.random(n) < 0.03
        a = fast.step(reward, terminated, truncated)
        with _fused.disabled():
            b = plain.step(reward, terminated, truncated)
        assert a.transitions.tobytes() == b.transitions.tobytes()
        for x, y in [(a.finished.worlds, b.finished.worlds), (a.finished.returns, b.finished.returns),
                     (a.finished.lengths, b.finished.lengths), (a.finished.terminated, b.finished.terminated)]:
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
        for key in ("returns", "lengths", "resetting"):
            assert getattr(fast, key).tobytes() == getattr(plain, key).tobytes()
        assert (fast.env_steps, fast.transitions, fast.episodes) == (plain.env_steps, plain.transitions, plain.episodes)
    assert plain.episodes > 300
    assert (_fused.kernels() is None) == ("episode_tracker_step" not in _fused._outside)  # the kernel ran
