"""scripts/evaluate.py: the --render loop stops at its step cap even when an episode never ends."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_script_evaluate", ROOT / "scripts" / "evaluate.py")
evaluate_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate_script)


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
