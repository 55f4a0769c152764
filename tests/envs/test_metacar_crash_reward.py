"""MetaCar's training-only ``crash_reward`` option: it changes the crash row of the default reward and nothing
else, is refused when it cannot apply, and the MetaCar evaluation always scores with the original's -1."""

import os
from types import SimpleNamespace

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import envs  # noqa: E402, F401
from envs.metacar.core import MetaCarCore, RewardInputs, default_reward  # noqa: E402
from envs.metacar.env import MetaCarEnv  # noqa: E402
from envs.metacar.level import load_level  # noqa: E402
from envs.metacar.vector import MetaCarVectorEnv  # noqa: E402
from playgrad.metacar_eval import evaluate_metacar  # noqa: E402

# Full throttle at full right lock: off the road within about a hundred steps from level3's start.
OFF_ROAD = np.array([1.0, 1.0], dtype=np.float32)


def _drive_off(env, steps=400):
    """Rewards of one episode of OFF_ROAD from a seeded reset, until it ends."""
    env.reset(seed=0)
    rewards = []
    for _ in range(steps):
        _, r, terminated, truncated, _ = env.step(OFF_ROAD)
        rewards.append(r)
        if terminated or truncated:
            break
    return rewards, terminated


def test_default_is_the_originals_reward_function_itself():
    # The parity tests hold for the default because the core keeps the very same function.
    core = MetaCarCore(load_level("level3"), 1, motion="control")
    assert core.crash_reward == (-1.0, -1.0) and core.reward_fn is default_reward


@pytest.mark.parametrize("make", [lambda **kw: MetaCarEnv("level3", motion="control", **kw),
                                  lambda **kw: MetaCarVectorEnv(1, level="level3", motion="control", **kw)])
def test_crash_reward_changes_only_the_crash_step(make):
    original, crashed = _drive_off(_single(make()))
    penalised, crashed_too = _drive_off(_single(make(crash_reward=-50.0)))
    assert crashed and crashed_too and 20 < len(original) == len(penalised) < 400
    assert original[-1] == -1.0 and penalised[-1] == -50.0
    assert original[:-1] == penalised[:-1] and all(r >= 0 for r in original[:-1])


def _single(env):
    """A vector env of one world behind the single env's step signature (scalars), for _drive_off."""
    if isinstance(env, MetaCarEnv):
        return env

    class One:
        def reset(self, seed):
            return env.reset(seed=seed)

        def step(self, action):
            obs, r, te, tr, info = env.step(action[None, :])
            return obs, float(r[0]), bool(te[0]), bool(tr[0]), info

    return One()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "-50", True, None,
                                 {"off_road": float("nan")}, {"collision": "-1"}])
def test_bad_crash_reward_raises(bad):
    with pytest.raises(ValueError, match="crash_reward.* must be a finite number"):
        MetaCarEnv("level3", motion="control", crash_reward=bad)


def test_an_unknown_crash_kind_raises_naming_the_kinds():
    with pytest.raises(ValueError, match=r"unknown kind\(s\) \['offroad'\]; the kinds are \['off_road', 'collision'\]"):
        MetaCarVectorEnv(2, level="level3", motion="control", crash_reward={"offroad": -50.0})


@pytest.mark.parametrize("seed", range(5))
def test_crash_kinds_against_a_per_world_reference(seed):
    """Randomized: each world's reward is the table's, element by element, for any mix of on/off road, touching
    a car or not, and speeds; a number is the same as a table of that number twice."""
    rng = np.random.default_rng(seed)
    n = 64
    off_road, collision = (float(v) for v in rng.choice([-1.0, -5.0, -50.0, -0.5], size=2))
    inputs = RewardInputs(action=rng.uniform(-1, 1, (n, 2)), collided=rng.random(n) < 0.3,
                          on_road=rng.random(n) < 0.7, speed=rng.uniform(-2, 2, n), max_speed=2.0,
                          lidar=None, x=None, y=None, theta=None, discrete=False, xp=np)
    core = MetaCarCore(load_level("level3"), n, motion="control",
                       crash_reward={"off_road": off_road, "collision": collision})
    got = core.reward_fn(inputs)
    for i in range(n):
        if inputs.collided[i] and not inputs.on_road[i]:
            want = min(off_road, collision)
        elif inputs.collided[i]:
            want = collision
        elif not inputs.on_road[i]:
            want = off_road
        else:
            want = max(inputs.speed[i], 0.0) / 2.0
        assert got[i] == want, (seed, i, off_road, collision)
    one_number = MetaCarCore(load_level("level3"), n, motion="control", crash_reward=off_road)
    as_table = MetaCarCore(load_level("level3"), n, motion="control",
                           crash_reward={"off_road": off_road, "collision": off_road})
    np.testing.assert_array_equal(one_number.reward_fn(inputs), as_table.reward_fn(inputs))
    assert MetaCarCore(load_level("level3"), 1, motion="control", crash_reward={}).reward_fn is default_reward


def test_crash_reward_with_a_custom_reward_fn_raises():
    def reward_fn(inp):
        return inp.xp.zeros(inp.speed.shape)

    with pytest.raises(ValueError, match="applies to the default reward only"):
        MetaCarVectorEnv(2, level="level3", motion="control", reward_fn=reward_fn, crash_reward=-10.0)
    MetaCarEnv("level3", motion="control", reward_fn=reward_fn, crash_reward=-1)  # the default value is fine


def test_evaluation_scores_with_the_original_reward():
    # A config trained with a stronger penalty is judged by the original's reward, comparable with any agent.
    def agent(env_table):
        experiment = SimpleNamespace(env_id="envs/MetaCar-v0", env={"level": "level3", "motion": "control",
                                                                    "shuffle_on_reset": "agent", **env_table})
        return SimpleNamespace(experiment=experiment, act=lambda obs, deterministic: np.tile(OFF_ROAD, (len(obs), 1)))

    plain = evaluate_metacar(agent({}), 4, seed=7)
    penalised = evaluate_metacar(agent({"crash_reward": -100.0}), 4, seed=7)
    assert plain == penalised and plain["crash_free"] < 1.0
    assert plain["reward_per_step"] > -0.01  # a -100 would show as <= -0.125 per step over 800
