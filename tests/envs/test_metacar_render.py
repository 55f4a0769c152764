"""envs/metacar/render.py: the HUD line says what is true for each motion model, and drawing leaves the env's
observation as it was."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np  # noqa: E402

from envs.metacar.env import MetaCarEnv  # noqa: E402

UP = 0


class _SpyFont:
    """Wraps the renderer's font and keeps every string it is asked to draw."""

    def __init__(self, font):
        self.font, self.texts = font, []

    def render(self, text, *args):
        self.texts.append(text)
        return self.font.render(text, *args)


def _hud_after_steps(motion, action, steps=3):
    env = MetaCarEnv("level1", motion=motion, render_mode="rgb_array")
    env.reset(seed=0)
    env.render()  # makes the renderer
    spy = env.unwrapped._renderer.font = _SpyFont(env.unwrapped._renderer.font)
    for _ in range(steps):
        obs, *_ = env.step(action)
    env.render()
    env.close()
    return spy.texts, obs


def test_basic_motion_hud_has_no_always_zero_speed():
    # BasicMotion zeroes the speed after each step (as the original), so the HUD read "speed 0.00 px/step" while
    # the car drove forward: a watcher took the car for stopped.
    texts, obs = _hud_after_steps("basic", UP)
    assert texts == ["step 3   reward +1.00"]
    assert obs[-1] == 0.0  # the observation's speed is unchanged: still the original's zero


def test_control_motion_hud_shows_the_speed():
    texts, obs = _hud_after_steps("control", np.array([1.0, 0.0], dtype=np.float32))
    (text,) = texts
    assert text.startswith("step 3   reward ") and text.endswith(f"speed {obs[-1]:.2f} px/step")
    assert obs[-1] > 0
