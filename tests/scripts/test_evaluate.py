"""scripts/evaluate.py: the --render window is play.py's (key strip, agent panel), its loop stops at its step cap
even when an episode never ends, and Esc stops it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from playgrad.cli import evaluate as evaluate_script

ROOT = Path(__file__).resolve().parents[2]


def _endless_cartpole_agent():
    """A trained-looking agent on a cart-pole that never ends an episode (max_steps=None, the pole kept upright)."""
    from envs.cartpole.env import CartPoleEnv

    real_step = CartPoleEnv.step

    def step(self, action):
        obs, reward, _, _, info = real_step(self, action)
        self.state = np.zeros_like(self.state)  # upright and centred: never terminates
        return obs, reward, False, False, info

    return step, SimpleNamespace(experiment=SimpleNamespace(env_id="envs/CartPole-v1", env={"max_steps": None}),
                                 act=lambda obs, deterministic=True: np.zeros(len(obs), dtype=np.int64),
                                 explain=lambda obs: {"probs": np.array([[0.5, 0.5]])})


def test_render_cuts_an_endless_episode_at_max_steps_in_plays_window_with_its_key_strip(monkeypatch, capsys):
    # The window is play.py's: picture, agent panel and the key strip under them (it had no key strip).
    import pygame

    from envs.cartpole.env import CartPoleEnv
    from playgrad import window

    step, agent = _endless_cartpole_agent()
    monkeypatch.setattr(CartPoleEnv, "step", step)
    monkeypatch.setattr(CartPoleEnv, "metadata", {**CartPoleEnv.metadata, "render_fps": 1e6})
    shown = []
    real_flip = pygame.display.flip

    def recording_flip():
        shown.append(pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2).copy())
        real_flip()

    monkeypatch.setattr(pygame.display, "flip", recording_flip)
    returns = evaluate_script.render_episodes(agent, episodes=2, seed=0, max_steps=50)
    assert returns == [50.0, 50.0] and len(shown) == 100
    assert "cut at 50 steps" in capsys.readouterr().out
    strip = np.all(shown[-1] == np.array(window.HELP_BACKGROUND), axis=-1)
    rows = np.flatnonzero(strip.mean(axis=1) > 0.5)  # rows mostly of the strip's colour: the strip's band
    height = shown[-1].shape[0]
    assert len(rows) >= 10 and rows.max() == height - 1 and rows.min() > height // 2, rows  # under the picture
    text = ~strip[rows.min():rows.max() + 1] & (shown[-1][rows.min():rows.max() + 1].max(axis=-1) < 120)
    assert text.sum() > 200  # the keys written in dark ink on it
    panel = np.all(shown[-1] == np.array(window.PANEL_BACKGROUND), axis=-1)[:rows.min()]
    assert panel.sum() > 150 * 40  # and the agent's panel beside the picture


def test_render_stops_on_escape_with_the_episodes_finished_so_far(monkeypatch):
    import pygame

    from envs.cartpole.env import CartPoleEnv
    from playgrad import window

    step, agent = _endless_cartpole_agent()
    monkeypatch.setattr(CartPoleEnv, "step", step)
    monkeypatch.setattr(CartPoleEnv, "metadata", {**CartPoleEnv.metadata, "render_fps": 1e6})
    frames = iter(range(10_000))
    monkeypatch.setattr(window.PlayWindow, "events",
                        lambda self: (False, [pygame.K_ESCAPE] if next(frames) == 30 else []))
    assert evaluate_script.render_episodes(agent, episodes=5, seed=0, max_steps=20) == [20.0]


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
