"""The MetaCar experiment configs: each builds its agent and env as the spec's demos describe, the level1
PPO config trains through scripts/train.py's machinery, and (slow) it learns to drive in traffic."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_reinforce import FakeHooks  # same directory (pytest prepends it to sys.path)
from threadpoolctl import threadpool_limits  # via scikit-learn, a dev dependency

from agents.runner import evaluate, make_agent
from playgrad.training import train
from rl import backend
from rl.experiment import apply_overrides, load_toml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def config_agent(name, *overrides):
    backend.use_device("cpu")
    config = apply_overrides(load_toml(CONFIGS / f"{name}.toml"), ["experiment.device=\"cpu\"", *overrides])
    return make_agent(config, where=name)


def test_level1_ppo_config_trains_a_few_iterations_through_train_py(tmp_path):
    run = train(str(CONFIGS / "metacar_level1_ppo.toml"),
                ["experiment.total_steps=2048", "experiment.eval_episodes=2", "agent.num_envs=4",
                 "agent.num_steps=128"], runs_dir=str(tmp_path), progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "iteration" in r] == [1, 2, 3, 4]
    assert (run / "checkpoints" / "latest.safetensors").exists()
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and all(0 < n <= 800 for n in result["lengths"])
    saved = (run / "config.toml").read_text()
    assert 'level = "level1"' in saved and 'motion = "basic"' in saved


@pytest.mark.parametrize(("name", "obs_dim", "bots", "hidden"), [
    ("metacar_level2_ddpg", 26, 0, [64, 32]),  # spec §6.3: 25 lidar cells + speed, no bots
    ("metacar_level3_ddpg", 50, 16, [128, 64]),  # spec §6.4: 49 + speed, the level's 16 bots
])
def test_ddpg_configs_build_the_demos_agents_and_learn_a_little(name, obs_dim, bots, hidden):
    agent = config_agent(name, "agent.num_envs=2", "agent.learning_starts=200", "agent.train_every_steps=100",
                         "agent.gradient_steps=2", "agent.log_every_steps=100", "agent.buffer_size=1000")
    assert agent.obs_dim == obs_dim and agent.act_dim == 2
    assert agent.envs.core.num_bots == bots
    assert [layer.units for layer in agent.actor.layers] == [*hidden, 2]
    hooks = FakeHooks()
    agent.learn(400, hooks)
    losses = [r for r in hooks.records if "critic_loss" in r]
    assert losses and np.isfinite(losses[-1]["critic_loss"])
    # 400 env steps hold one transition fewer per autoreset step taken (an episode that ended on the last
    # step has its autoreset still to come); rounds of 2 steps every 100 transitions from 200 on. Whether an
    # episode ends within 200 steps depends on the worlds' random starts, so both are counted, not assumed.
    tracker = agent.tracker
    assert tracker.transitions == 400 - tracker.episodes + int(tracker.resetting.sum())
    assert agent.updates == 2 * len(range(200, tracker.transitions + 1, 100))


@pytest.mark.slow
def test_level1_ppo_drives_in_traffic_seed_0():
    # The config's own settings on a fixed 200k-step budget (the learning rate anneals to zero over the
    # budget given to learn): deterministic episodes from random start tiles must average >= 0.5 reward
    # per step over the 800-step budget (the experiment's target).
    agent = config_agent("metacar_level1_ppo")
    # One BLAS thread, as scripts/train.py sets: tiny matrices, and threads on busy cores cost ~10x here.
    with threadpool_limits(1):
        agent.learn(200_000, FakeHooks())
    result = evaluate(agent, episodes=10)
    assert result["mean_return"] / 800 >= 0.5, result


def test_full_city_config_drives_the_bundled_city_with_an_agent_added():
    # full_city ships without an agent; the config's level file is that city plus one, with its 8 bots.
    from envs.metacar.level import load_level

    city, ours = load_level("full_city", require_agent=False), load_level("configs/metacar_full_city_level.json")
    assert ours.cars == city.cars and ours.grid == city.grid and ours.agent is not None
    agent = config_agent("metacar_full_city_ppo", "agent.num_envs=2", "agent.num_steps=64", "agent.batch_size=64")
    assert agent.envs.core.num_bots == 8 and agent.envs.single_observation_space.shape == (26,)
    hooks = FakeHooks()
    agent.learn(256, hooks)
    assert [r["iteration"] for r in hooks.records if "iteration" in r] == [1, 2]


@pytest.mark.parametrize(("name", "obs_dim", "bots"), [
    ("metacar_level2_ppo", 26, 0),  # the demo's level2 setting: 25 lidar cells + speed, no bots
    ("metacar_level3_ppo", 99, 16),  # the demo's level3 lidar (49 + speed) and the previous step's 49; 16 bots
])
def test_control_ppo_configs_drive_the_demos_settings_with_a_gaussian_policy(name, obs_dim, bots):
    agent = config_agent(name, "agent.num_envs=2", "agent.num_steps=64", "agent.batch_size=64")
    assert agent.envs.single_observation_space.shape == (obs_dim,) and agent.envs.core.num_bots == bots
    # the Gaussian's log std per action, or with gSDE (agent.use_sde) per last-hidden feature and action
    log_std_shape = (agent.config.hidden[-1], 2) if agent.config.use_sde else (2,)
    assert not agent.discrete and agent.log_std is not None and agent.log_std.data.shape == log_std_shape
    hooks = FakeHooks()
    agent.learn(256, hooks)
    assert [r["iteration"] for r in hooks.records if "iteration" in r] == [1, 2]
    actions = agent.act(agent.envs.reset(seed=3)[0])
    assert actions.shape == (2, 2) and np.all(np.abs(actions) <= 1.0)  # clipped to the Box


@pytest.mark.slow
def test_level2_ppo_drives_at_speed_seed_0():
    # The config's own settings on a fixed 1M-step budget (half its own; the learning rate anneals to zero over
    # the budget given to learn): deterministic episodes from random starts must average >= 0.5 reward per step,
    # which needs most of them to run the 800 steps near full speed (the most is 0.75).
    agent = config_agent("metacar_level2_ppo")
    with threadpool_limits(1):
        agent.learn(1_000_000, FakeHooks())
    result = evaluate(agent, episodes=10)
    assert result["mean_return"] / 800 >= 0.5, result
