"""Native vector MetaCar: N worlds in one :class:`~envs.metacar.core.MetaCarCore`, stepped by array ops.

``gym.make_vec("envs/MetaCar-v0", num_envs=256, vectorization_mode="vector_entry_point", level="level1")``
builds it. It takes the same keyword arguments as :class:`~envs.metacar.env.MetaCarEnv` and behaves like N
of them: world i reset with ``seed + i`` and given the same actions produces the same observations, rewards
and episode ends as a single env reset with ``seed + i`` (each world draws from its own random stream).

It is a :class:`envs._common.BatchedVectorEnv`, like CartPole's and Snake's: Gymnasium 1.x ``NEXT_STEP``
autoreset (the step after a world terminates or truncates resets that world, ignores its action and returns
its first observation with reward 0 and ``terminated = truncated = False``), and NumPy results whatever the
``device``: ``device="backend"`` runs the core on the active backend (``rl.backend``: CuPy on a GPU).
"""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode

from envs._common import BatchedVectorEnv, core_array_module
from rl import backend

from .core import MetaCarCore
from .env import check_max_steps, make_spaces, normalise_shuffle, reset_shuffle
from .level import Level, load_level

__all__ = ["MetaCarVectorEnv"]


class MetaCarVectorEnv(BatchedVectorEnv):
    """N MetaCar worlds of one level with autoreset; keyword arguments as :class:`MetaCarEnv`.

    Observations (N, pts*pts + 1) float32 (``"linear"``), (N, 2*pts*pts + 1) (``"linear_and_previous"``) or
    (N, pts, pts) (``"grid"``); actions (N,) ints
    (basic) or (N, 2) floats (control); rewards (N,) float64; terminations/truncations (N,) bool.
    ``infos`` holds ``collided``, ``on_road`` and ``speed`` arrays (N,).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, level: str | Level = "level1", motion: str = "basic",
                 lidar: dict | None = None, observation: str = "linear", terminate_on_crash: bool = True,
                 max_steps: int | None = 800, shuffle_on_reset: Any = False, cars_moving: bool = True,
                 reward_fn=None, rotation_step: float = 0.5, fix_bot_quirks: bool = False,
                 render_mode: str | None = None, device: str = "cpu", crash_reward: float | dict = -1.0):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.level = load_level(level)
        core = MetaCarCore(self.level, num_envs, motion=motion, lidar=lidar, rotation_step=rotation_step,
                           cars_moving=cars_moving, fix_bot_quirks=fix_bot_quirks, reward_fn=reward_fn,
                           crash_reward=crash_reward, xp=core_array_module(device))
        self.observation_kind = observation
        observation_space, action_space = make_spaces(core, observation)
        self.max_steps = check_max_steps(max_steps)  # 0: no limit
        self._setup(core, action_space, observation_space, self.max_steps or None)
        self.terminate_on_crash = bool(terminate_on_crash)
        self.shuffle_on_reset = normalise_shuffle(shuffle_on_reset)
        self.render_mode = render_mode
        self._renderer = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every world; ``seed`` int gives world i the seed ``seed + i``.

        ``options`` as :meth:`MetaCarEnv.reset` (``{"shuffle": ...}`` for this reset only; unknown keys raise).
        """
        reset_shuffle(options, self.shuffle_on_reset)  # check the options before anything changes
        return super().reset(seed=seed, options=options)

    def _reset_worlds(self, worlds: Any, options: dict | None) -> None:
        self.core.reset(worlds, shuffle=reset_shuffle(options, self.shuffle_on_reset))

    def _step_worlds(self, actions: Any, active: Any) -> tuple[Any, Any]:
        core = self.core
        reward = core.step(actions, active).copy()  # the base env writes 0 into autoreset worlds
        terminated = (core.collided | ~core.on_road) & self.terminate_on_crash
        return reward, terminated

    def _observe(self) -> Any:
        return self.core.observation(self.observation_kind)

    def _infos(self) -> dict:
        core, to_np = self.core, backend.to_numpy
        return {"collided": to_np(core.collided), "on_road": to_np(core.on_road), "speed": to_np(core.speed)}

    def render(self):
        """An RGB frame (H, W, 3) of world 0 when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from .render import MetaCarRenderer  # noqa: PLC0415 - pygame only when drawing

            self._renderer = MetaCarRenderer(self.core, mode="rgb_array")
        return self._renderer.render(world=0, step=int(self._steps[0]), reward=float(self.core.reward[0]))

    def close_extras(self, **kwargs):
        """Close the renderer, if any (``close()`` calls this)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
