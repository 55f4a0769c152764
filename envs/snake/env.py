"""Snake as a single Gymnasium environment: ``gym.make("envs/Snake-v0")``.

The TensorFlow.js book's snake game (tfjs-examples ``snake-dqn/snake_game.js``): a snake on a
9 x 9 board eats fruit to grow and dies on the walls or its own body. The rules live in
:mod:`envs.snake.core`; this class is one board of that batched core.

## Action space

``Discrete(3)``, relative to the direction the snake is heading

| action | meaning        |
|--------|----------------|
| 0      | go straight    |
| 1      | turn left      |
| 2      | turn right     |

## Observation space

``Box(0, 2, shape (height, width, 2), float32)``, the book's state tensor

| channel | value                                   |
|---------|-----------------------------------------|
| 0       | 2 on the head, 1 on the body, 0 elsewhere |
| 1       | 1 on a fruit, 0 elsewhere               |

The direction is not encoded; it follows from head and neck. The observation returned with
``terminated=True`` is all zeros (the book encodes the missing terminal state that way).

## Rewards

| event                       | reward |
|-----------------------------|--------|
| the step eats a fruit       | +10    |
| the step kills the snake    | -10    |
| any other step              | -0.2   |

## Starting state

A straight horizontal snake of ``init_len`` cells heading right: head at row ``U{0..H-1}``,
column ``U{init_len-1..W-1}``, body extending left; ``num_fruits`` fruits on uniformly random
empty cells. The head may start next to the right wall (as in the book); ``safe_start=True`` (for people
playing, ``scripts/play.py``) draws the start again until the head has a free cell ahead of it.

## Episode end

| kind        | condition                                                                        |
|-------------|----------------------------------------------------------------------------------|
| terminated  | the head leaves the board, or moves onto the snake's body, the cell its tail is |
|             | about to leave included (the book checks before the tail moves)                 |
| truncated   | ``max_steps`` steps taken; default ``(height * width) ** 2`` (6561 on 9 x 9):    |
|             | enough to fill the board by touring every cell per fruit, finite for a snake     |
|             | that loops forever                                                               |

## Arguments

``gym.make("envs/Snake-v0", height=9, width=9, num_fruits=1, init_len=2, max_steps=None,
safe_start=False, render_mode=None | "human" | "rgb_array")``. ``reset(seed=s)`` seeds this board's own stream;
the vector env's board ``i`` under ``reset(seed=s)`` equals this env under ``reset(seed=s + i)``.
``info`` carries ``fruits_eaten`` (this episode) and ``length`` (snake cells).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._common import discrete_action
from envs.snake.core import DEATH_REWARD, FRUIT_REWARD, NO_FRUIT_REWARD, NUM_ACTIONS, SnakeCore

_WORLD0 = np.zeros(1, dtype=np.int64)


def default_max_steps(height: int, width: int) -> int:
    """The default truncation: ``(height * width) ** 2`` steps."""
    return (height * width) ** 2


def check_max_steps(max_steps: Any, height: int, width: int) -> int:
    """Return the episode step limit (``None`` means the default) or raise ``ValueError``."""
    if max_steps is None:
        return default_max_steps(height, width)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"snake max_steps must be a positive int or None, got {max_steps!r}")
    return int(max_steps)


def observation_space(height: int, width: int) -> spaces.Box:
    """The observation space of one board: float32 (height, width, 2) in [0, 2]."""
    return spaces.Box(0.0, 2.0, shape=(height, width, 2), dtype=np.float32)


class SnakeEnv(gym.Env):
    """One snake board; see the module docstring for the spaces, rewards and episode end."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(self, height: int = 9, width: int = 9, num_fruits: int = 1, init_len: int = 2,
                 max_steps: int | None = None, safe_start: bool = False, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.core = SnakeCore(1, height, width, num_fruits, init_len)
        self.max_steps = check_max_steps(max_steps, height, width)
        self.safe_start = bool(safe_start)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = observation_space(height, width)
        self._seeded = False
        self._started = False
        self.steps = 0
        self.episode_return = 0.0
        self._renderer = None

    def _obs(self) -> np.ndarray:
        return self.core.observe()[0]

    def _info(self) -> dict[str, int]:
        return {"fruits_eaten": int(self.core.fruits_eaten[0]), "length": int(self.core.length[0])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(f"snake reset takes no options, got {sorted(options)}")
        if seed is not None or not self._seeded:
            self.core.rng.seed(seed, self.np_random)
            self._seeded = True
        self.core.reset_worlds(_WORLD0)
        # Every start heads right; one next to the right wall would die on the first step unless the player
        # turns at once. A board with no other column (width == init_len) keeps what it drew.
        redraws = 0
        while self.safe_start and int(self.core.head_x[0]) == self.core.width - 1 and redraws < 100 \
                and self.core.width > self.core.init_len:
            self.core.reset_worlds(_WORLD0)
            redraws += 1
        self._started = True
        self.steps = 0
        self.episode_return = 0.0
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info()

    def step(self, action: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        action = discrete_action(action, NUM_ACTIONS)
        if self.core.dead[0]:
            # Stepping a finished game changes nothing (Gymnasium leaves this undefined).
            return self._obs(), 0.0, True, False, self._info()
        reward, died = self.core.step(np.array([action]))
        terminated = bool(died[0])
        # The exact constants, not their float32 roundings (-0.2 is not a float32).
        reward = DEATH_REWARD if terminated else FRUIT_REWARD if reward[0] > 0 else NO_FRUIT_REWARD
        self.steps += 1
        self.episode_return += reward
        truncated = self.steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, truncated, self._info()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn('render() was called without a render_mode; pass render_mode="rgb_array" or "human"')
            return None
        if self._renderer is None:
            from envs.snake.render import SnakeRenderer  # noqa: PLC0415 - pygame only when drawing

            self._renderer = SnakeRenderer(self.core.height, self.core.width, self.render_mode)
        return self._renderer.render(self.core, 0, self.episode_return, fps=self.metadata["render_fps"])

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
