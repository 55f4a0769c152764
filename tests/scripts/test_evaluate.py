"""scripts/evaluate.py: the --render loop stops at its step cap even when an episode never ends."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np

from playgrad.cli import evaluate as evaluate_script

ROOT = Path(__file__).resolve().parents[2]


class EndlessEnv:
    """An episode that never terminates or truncates (a cart-pole with max_steps=None and a perfect agent)."""

    def __init__(self):
        self.steps = 0
        self.closed = False

    def reset(self, seed=None):
        return np.zeros(4, dtype=np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps > 10_000:  # fail instead of hanging the suite when the cap is missing
            raise RuntimeError("render_episodes kept stepping an endless episode")
        return np.zeros(4, dtype=np.float32), 1.0, False, False, {}

    def close(self):
        self.closed = True


def test_render_cuts_an_endless_episode_at_max_steps(monkeypatch, capsys):
    env = EndlessEnv()
    monkeypatch.setattr(gym, "make", lambda *args, **kwargs: env)
    agent = SimpleNamespace(experiment=SimpleNamespace(env_id="envs/CartPole-v1", env={"max_steps": None}),
                            act=lambda obs, deterministic=True: np.zeros(len(obs), dtype=np.int64))
    returns = evaluate_script.render_episodes(agent, episodes=2, seed=0, max_steps=50)
    assert returns == [50.0, 50.0] and env.steps == 100 and env.closed
    assert "cut at 50 steps" in capsys.readouterr().out


def _agent(env_id, **env):
    return SimpleNamespace(experiment=SimpleNamespace(env_id=env_id, env=env))


def test_a_greedy_snake_that_loops_to_the_step_limit_is_reported_as_looping():
    # A snake circling without eating plays until the limit; "mean return -95" alone read as a bad score.
    agent = _agent("envs/Snake-v0", max_steps=500)
    note = evaluate_script.step_limit_note(agent, [500, 37, 500], [-100.0, 12.4, -90.0], "runs/snake")
    assert note.startswith("2 of 3 episodes ran to the 500-step limit without the game ending: the greedy snake "
                           "loops") and "their mean return is -95.0" in note
    assert "play.py snake --agent runs/snake" in note
    assert evaluate_script.step_limit_note(agent, [37, 12], [12.4, 3.0], "runs/snake") == ""


def test_on_cartpole_the_step_limit_is_the_goal_and_is_said_plainly():
    note = evaluate_script.step_limit_note(_agent("envs/CartPole-v1"), [500, 500, 80], [500.0, 500.0, 80.0], "r")
    assert note == "2 of 3 episodes lasted the env's whole 500-step limit (truncated, not ended)"
