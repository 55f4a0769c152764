"""Snake as a native vector env: ``gym.make_vec("envs/Snake-v0", num_envs=N,
vectorization_mode="vector_entry_point", height=9, width=9, num_fruits=1, init_len=2)``.

All N boards live in one :class:`~envs.snake.core.SnakeCore` and step together with array ops:
NumPy by default, the active ``rl.backend`` module (CuPy on a GPU) with ``device="backend"``;
results come back as NumPy arrays either way.
Autoreset is Gymnasium 1.x's ``NEXT_STEP``: a board that ended is reset on the following ``step``
call (its action ignored; reward 0, not terminated, not truncated). Board ``i`` under
``reset(seed=s)`` plays exactly like ``gym.make("envs/Snake-v0")`` under ``reset(seed=s + i)``.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs._common import BatchedVectorEnv, core_array_module
from envs.snake.core import NUM_ACTIONS, SnakeCore
from envs.snake.env import check_max_steps, observation_space


class SnakeVectorEnv(BatchedVectorEnv):
    """``num_envs`` boards; obs float32 (N, H, W, 2), reward float32 (N,), terminated/truncated bool (N,)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, height: int = 9, width: int = 9, num_fruits: int = 1, init_len: int = 2,
                 max_steps: int | None = None, render_mode: str | None = None, device: str = "cpu",
                 xp: Any = None):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"the snake vector env renders only 'rgb_array' (or None), got {render_mode!r}")
        core = SnakeCore(num_envs, height, width, num_fruits, init_len, core_array_module(device, xp))
        self._setup(core, spaces.Discrete(NUM_ACTIONS), observation_space(height, width),
                    check_max_steps(max_steps, height, width))
        self.render_mode = render_mode
        self._renderer = None

    @staticmethod
    def memory(num_envs: int = 1, height: Any = 9, width: Any = 9, **_: Any) -> tuple[str, int]:
        """(the settings that size it, bytes) of ``num_envs`` boards: checked before a config builds them."""
        cells = height * width if isinstance(height, int) and isinstance(width, int) else 0  # else refused later
        # per cell and board: int32 enter time, bool fruit, float32 (H, W, 2) observation, and step temporaries
        return "env.height x env.width x agent.num_envs", num_envs * cells * 32

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options:
            raise ValueError(f"snake reset takes no options, got {sorted(options)}")
        return super().reset(seed=seed)

    def render(self):
        """One uint8 (H_px, W_px, 3) frame per board (a tuple), in ``"rgb_array"`` mode."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from envs.snake.render import SnakeRenderer  # noqa: PLC0415

            self._renderer = SnakeRenderer(self.core.height, self.core.width, "rgb_array")
        return tuple(self._renderer.render(self.core, i, None, fps=0) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
