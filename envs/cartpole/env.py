"""CartPole as a single Gymnasium environment: ``gym.make("envs/CartPole-v1")``.

A pole stands on a cart that moves along a frictionless track; push the cart left or right to
keep the pole upright. The physics is Gymnasium's ``CartPole-v1`` exactly (same start state and
actions give the same trajectory, bit for bit); ``variant="book"`` gives the TensorFlow.js book's
version (wider start state, no reward for the failing step).

## Action space

``Discrete(2)``

| action | meaning                        |
|--------|--------------------------------|
| 0      | push the cart left (-10 N)     |
| 1      | push the cart right (+10 N)    |

## Observation space

``Box(float32, shape (4,))``

| index | observation           | min                 | max               |
|-------|-----------------------|---------------------|-------------------|
| 0     | cart position [m]     | -4.8                | 4.8               |
| 1     | cart velocity [m/s]   | -inf                | inf               |
| 2     | pole angle [rad]      | -0.418 (-24 deg)    | 0.418 (24 deg)    |
| 3     | pole angular velocity | -inf                | inf               |

## Rewards

| variant | reward                                                          |
|---------|-----------------------------------------------------------------|
| gym     | +1 for every step, the failing step included                    |
| book    | +1 for every step that does not end the game, 0 for the failing |

Steps taken after termination (without ``reset``) give 0.

## Starting state

| variant | distribution (uniform, each component independently)                         |
|---------|--------------------------------------------------------------------------------|
| gym     | all four in [-0.05, 0.05)                                                      |
| book    | x, x_dot in [-0.5, 0.5); theta in [-6 deg, 6 deg); theta_dot in [-0.25, 0.25) |

``reset(options={"low": l, "high": h})`` overrides the bounds for all four, as Gymnasium allows.

## Episode end

| kind        | condition                                                   |
|-------------|-------------------------------------------------------------|
| terminated  | pole angle beyond +-12 deg, or cart position beyond +-2.4 m |
| truncated   | ``max_steps`` steps taken (default 500)                     |

## Arguments

``gym.make("envs/CartPole-v1", variant="gym" | "book", max_steps=500, render_mode=None |
"human" | "rgb_array")``. Random streams: ``reset(seed=s)`` seeds this env's own counter-based
stream (see ``envs/_common.py``); the vector env's world ``i`` under ``reset(seed=s)`` equals this
env under ``reset(seed=s + i)``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._common import WorldRNG, discrete_action
from envs.cartpole.core import (
    FORCE_N,
    THETA_THRESHOLD_RAD,
    X_THRESHOLD_M,
    cartpole_dynamics,
    check_variant,
    sample_start_states,
    start_bounds,
)

_OBS_HIGH = np.array([X_THRESHOLD_M * 2, np.inf, THETA_THRESHOLD_RAD * 2, np.inf], dtype=np.float32)
_WORLD0 = np.zeros(1, dtype=np.int64)


def observation_space() -> spaces.Box:
    """The observation space of one cart-pole (float32 (4,))."""
    return spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)


class CartPoleEnv(gym.Env):
    """One cart-pole world; see the module docstring for the spaces, rewards and episode end."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 50}

    def __init__(self, variant: str = "gym", max_steps: int | None = 500, render_mode: str | None = None):
        self.variant = check_variant(variant)
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(2)
        self.observation_space = observation_space()
        self._rng = WorldRNG(1)
        self._seeded = False
        self._terminal_reward = 1.0 if variant == "gym" else 0.0
        # Python floats: one world steps faster with ``math`` than with NumPy scalars.
        self._state: tuple[float, float, float, float] | None = None
        self._terminated = False
        self.steps = 0
        self.episode_return = 0.0
        self._renderer = None

    @property
    def state(self) -> np.ndarray | None:
        """The exact state, float64 (4,): x, x_dot, theta, theta_dot (None before ``reset``)."""
        return None if self._state is None else np.array(self._state, dtype=np.float64)

    @state.setter
    def state(self, value: Any) -> None:
        s = np.asarray(value, dtype=np.float64).reshape(-1)
        if s.shape != (4,):
            raise ValueError(f"cart-pole state must have 4 values (x, x_dot, theta, theta_dot), got {s.shape}")
        self._state = tuple(float(v) for v in s)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self._rng.seed(seed, self.np_random)
            self._seeded = True
        low, high = start_bounds(self.variant, options)
        self._state = tuple(float(v) for v in sample_start_states(self._rng, _WORLD0, low, high)[:, 0])
        self._terminated = False
        self.steps = 0
        self.episode_return = 0.0
        if self.render_mode == "human":
            self.render()
        return np.array(self._state, dtype=np.float32), {}

    def step(self, action: Any):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = discrete_action(action, 2)
        x, x_dot, theta, theta_dot = cartpole_dynamics(
            *self._state, FORCE_N if action == 1 else -FORCE_N, math.cos, math.sin
        )
        self._state = (x, x_dot, theta, theta_dot)
        terminated = (
            x < -X_THRESHOLD_M or x > X_THRESHOLD_M or theta < -THETA_THRESHOLD_RAD or theta > THETA_THRESHOLD_RAD
        )
        if self._terminated:
            reward = 0.0  # stepping a finished episode: Gymnasium's convention
        elif terminated:
            reward = self._terminal_reward
            self._terminated = True
        else:
            reward = 1.0
        self.steps += 1
        self.episode_return += reward
        truncated = self.max_steps is not None and self.steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return np.array(self._state, dtype=np.float32), reward, terminated, truncated, {}

    def render(self):
        if self.render_mode is None:
            gym.logger.warn('render() was called without a render_mode; pass render_mode="rgb_array" or "human"')
            return None
        if self._renderer is None:
            from envs.cartpole.render import CartPoleRenderer  # noqa: PLC0415 - pygame only when drawing

            self._renderer = CartPoleRenderer(self.render_mode)
        state = self._state if self._state is not None else (0.0, 0.0, 0.0, 0.0)
        return self._renderer.render(
            x_m=state[0], theta_rad=state[2], steps=self.steps, episode_return=self.episode_return,
            fps=self.metadata["render_fps"],
        )

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
