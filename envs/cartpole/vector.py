"""CartPole as a native vector env: ``gym.make_vec("envs/CartPole-v1", num_envs=N,
vectorization_mode="vector_entry_point")``.

All N worlds live in one :class:`~envs.cartpole.core.CartPoleCore` and step together with array
ops: NumPy by default, the active ``rl.backend`` module (CuPy on a GPU) with ``device="backend"``;
results come back as NumPy arrays either way.
Autoreset is Gymnasium 1.x's ``NEXT_STEP``: a world that ended is reset on the following
``step`` call (its action ignored; reward 0, not terminated, not truncated). World ``i`` under
``reset(seed=s)`` behaves exactly like ``gym.make("envs/CartPole-v1")`` under ``reset(seed=s + i)``.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs._common import BatchedVectorEnv, core_array_module
from envs.cartpole.core import CartPoleCore, check_variant, start_bounds
from envs.cartpole.env import observation_space
from rl import backend


class CartPoleVectorEnv(BatchedVectorEnv):
    """``num_envs`` cart-poles; obs float32 (N, 4), reward float32 (N,), terminated/truncated bool (N,)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self, num_envs: int = 1, variant: str = "gym", max_steps: int | None = 500,
        render_mode: str | None = None, device: str = "cpu", xp: Any = None,
    ):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"the cart-pole vector env renders only 'rgb_array' (or None), got {render_mode!r}")
        core = CartPoleCore(num_envs, check_variant(variant), core_array_module(device, xp))
        self._setup(core, spaces.Discrete(2), observation_space(), max_steps)
        self.render_mode = render_mode
        self._renderer = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.core.low, self.core.high = start_bounds(self.core.variant, options)
        return super().reset(seed=seed)

    def render(self):
        """One uint8 (H, W, 3) frame per world (a tuple), in ``"rgb_array"`` mode."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from envs.cartpole.render import CartPoleRenderer  # noqa: PLC0415

            self._renderer = CartPoleRenderer("rgb_array")
        state = backend.to_numpy(self.core.state)
        steps = backend.to_numpy(self._steps)
        return tuple(
            self._renderer.render(x_m=float(state[0, i]), theta_rad=float(state[2, i]), steps=int(steps[i]),
                                  episode_return=None, fps=0)
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
