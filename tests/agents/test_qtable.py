"""Tabular Q-learning on MetaCar level0 (the original's q_table demo): state keys, the update rule,
the epsilon schedule, exact state round trips, and learning to drive without crashing."""

from pathlib import Path

import numpy as np
import pytest

from agents import qtable
from agents.base import ExperimentConfig, make_vec_env
from agents.episodes import first_episodes
from agents.runner import load_checkpoint, save_checkpoint, strip_wall_clock
from rl.experiment import dataclass_from_dict, load_toml

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "metacar_level0_qtable.toml"


class FakeHooks:
    def __init__(self):
        self.records = []

    def log(self, record):
        assert "env_steps" in record
        self.records.append(dict(record))

    def checkpoint_due(self, env_steps):
        return False

    def save(self, agent, tag="latest"):
        raise AssertionError("checkpoint_due is always False")

    stop_requested = False


def level0_agent(seed=0, **agent_overrides):
    """The shipped config's env and agent (with overrides), built as the runner would."""
    config = load_toml(CONFIG)
    experiment = dataclass_from_dict(ExperimentConfig, {**config["experiment"], "seed": seed, "env": config["env"]})
    agent_table = {**config["agent"], **agent_overrides}
    return qtable.Agent(dataclass_from_dict(qtable.Config, agent_table), experiment)


def test_state_index_is_base3_over_the_lidar_cells():
    obs = np.array([[-1, -1, -1, -1, 0.0], [0, -1, -1, -1, 0.0], [1, 1, 1, 1, 0.0], [-1, 0, 1, -1, 0.0]])
    np.testing.assert_array_equal(qtable.state_index(obs, 4), [0, 1, 80, 0 + 1 * 3 + 2 * 9 + 0])
    with pytest.raises(ValueError, match="-1, 0, 1"):
        qtable.state_index(np.array([[2.0, 0, 0, 0, 0]]), 4)


def test_q_update_by_hand():
    table = np.array([[1.0, 2.0, 0.0], [4.0, 3.0, 5.0]])
    # (s=0, a=1, r=1, s'=1): target 1 + 0.5 * 5 = 3.5; Q += 0.1 * (3.5 - 2.0)
    # (s=1, a=0, r=-1, s'=0, terminated): target -1; Q += 0.1 * (-1 - 4)
    qtable.q_update(table, np.array([0, 1]), np.array([1, 0]), np.array([1.0, -1.0]), np.array([1, 0]),
                    np.array([0.0, 1.0]), alpha=0.1, gamma=0.5)
    np.testing.assert_allclose(table, [[1.0, 2.15, 0.0], [3.5, 3.0, 5.0]])


def test_epsilon_schedule_is_the_demos():
    agent = level0_agent(epsilon_decay_every=10)  # the demo's; the shipped config decays twice as often
    assert agent.epsilon == pytest.approx(0.99)  # decayed once at episode 0
    agent.tracker.episodes = 10
    assert agent.epsilon == pytest.approx(0.99**2)
    agent.tracker.episodes = 1999
    assert agent.epsilon == pytest.approx(0.99**200)  # ~0.134 after the demo's 2000 episodes
    agent.tracker.episodes = 10**6
    assert agent.epsilon == 0.05


def test_shipped_schedule_drives_nearly_greedily_for_the_last_60_percent():
    agent = level0_agent()
    episodes = load_toml(CONFIG)["experiment"]["total_steps"] // 800
    agent.tracker.episodes = int(0.4 * episodes)
    assert agent.epsilon == 0.05  # the floor, from episode ~1490 of 4000
    agent.tracker.episodes = int(0.35 * episodes)
    assert agent.epsilon > 0.05


def test_table_shape_and_explain():
    agent = level0_agent()
    assert agent.q_table.shape == (81, 3)
    agent.q_table[0] = [1.0, 3.0, 3.0]
    assert agent.explain(np.array([-1, -1, -1, -1, 0.0]))["q_values"].tolist() == [1.0, 3.0, 3.0]
    assert agent.act(np.array([[-1, -1, -1, -1, 0.0]])).tolist() == [1]  # ties go to the first maximum


def test_state_round_trip_reproduces_the_run(tmp_path):
    a = level0_agent(num_envs=4, log_every_steps=1_000)
    a.learn(4_000, FakeHooks())
    save_checkpoint(tmp_path / "q.safetensors", {"agent": a.state_dict()})
    b = level0_agent(seed=5, num_envs=4, log_every_steps=1_000)
    b.load_state_dict(load_checkpoint(tmp_path / "q.safetensors")["agent"])
    ha, hb = FakeHooks(), FakeHooks()
    a.learn(6_000, ha)
    b.learn(6_000, hb)
    np.testing.assert_array_equal(a.q_table, b.q_table)
    assert strip_wall_clock(ha.records) == strip_wall_clock(hb.records)
    state = a.state_dict()
    state["q_table"] = np.zeros((9, 3))
    with pytest.raises(ValueError, match=r"'q_table' has shape \(9, 3\) in the checkpoint, \(81, 3\) here"):
        b.load_state_dict(state)


def test_untrained_table_crashes():
    """All-zero Q picks UP everywhere: driving straight on leaves the road, so every episode crashes."""
    result = qtable.crash_free_rate(level0_agent(), episodes=50)
    assert result["crash_free"] == 0 and result["rate"] == 0.0
    # each episode: +1 per step on the road, then -1 for the crash step that ends it
    assert 1 < result["mean_length"] < 800
    assert result["mean_return"] == pytest.approx(result["mean_length"] - 2)


@pytest.mark.slow
def test_learns_level0_without_crashing():
    # At this budget the greedy table ends in one of two policies, both crash-free: driving round the ring
    # (mean return ~786) or stopping to turn in places (~374-430). Which one depends on the seed's start
    # tiles: 8 of seeds 0-14 drove with MetaCar's former random streams, 9 of 15 with the shared WorldRNG
    # streams it uses now (seed 0 no longer does); seed 2 drives with both.
    agent = level0_agent(seed=2)
    agent.learn(200_000, FakeHooks())  # 250 episodes of 800 steps, 20 cars side by side
    result = qtable.crash_free_rate(agent, episodes=100)
    assert result["rate"] >= 0.9, result
    assert result["mean_return"] >= 600, result  # it drives (UP pays 1), not just turns in place


@pytest.mark.slow
def test_shipped_config_drives_from_the_level_start_where_the_demos_schedule_dithered():
    # Seed 3 with the demo's schedule (epsilon 0.99 every 10 episodes, 2000 episodes) ended turning RIGHT,
    # LEFT, RIGHT... at the first corner from the level start (53 steps of driving in 800: 0.066 reward/step).
    # The shipped schedule (the floor from episode ~1490 of 4000) drives the ring from there.
    config = load_toml(CONFIG)
    agent = level0_agent(seed=3)
    agent.learn(config["experiment"]["total_steps"], FakeHooks())
    env = make_vec_env(agent.experiment, 1, shuffle_on_reset=False)
    played = first_episodes(env, agent.act, seed=1_000_003, max_steps=800)
    env.close()
    assert played.lengths[0] == 800 and played.returns[0] >= 0.95 * 800, played.returns


def test_a_two_picture_observation_is_refused_by_name():
    # Its cells are lidar, speed, previous lidar: a table over "the first cells" would mix them up.
    config = load_toml(CONFIG)
    env = {**config["env"], "observation": "linear_and_previous"}
    experiment = dataclass_from_dict(ExperimentConfig, {**config["experiment"], "env": env})
    with pytest.raises(ValueError, match="indexes one lidar picture.*not \"linear_and_previous\""):
        qtable.Agent(dataclass_from_dict(qtable.Config, config["agent"]), experiment)
