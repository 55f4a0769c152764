"""Native vector MetaCar: N worlds in one :class:`~envs.metacar.core.MetaCarCore`, stepped by array ops.

``gym.make_vec("envs/MetaCar-v0", num_envs=256, vectorization_mode="vector_entry_point", level="level1")``
builds it. It takes the same keyword arguments as :class:`~envs.metacar.env.MetaCarEnv` and behaves like N
of them: world i reset with ``seed + i`` and given the same actions produces the same observations, rewards
and episode ends as a single env reset with ``seed + i`` (its randomness is a per-world hash, independent
of batching).

Autoreset follows Gymnasium 1.x ``NEXT_STEP`` semantics: the step after a world terminates or truncates
resets that world (its action is ignored) and returns its first observation with reward 0 and
``terminated = truncated = False``.

``device="backend"`` runs the core on the active backend (``rl.backend``: CuPy on a GPU) and then returns
observations, rewards and flags as that backend's arrays; the default ``"cpu"`` returns NumPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs._common import SnapshotMixin, core_array_module

from .core import MetaCarCore, key_from_seed
from .env import check_max_steps, make_spaces, normalise_shuffle, reset_shuffle
from .level import Level, load_level

__all__ = ["MetaCarVectorEnv"]


class MetaCarVectorEnv(SnapshotMixin, VectorEnv):
    """N MetaCar worlds of one level with autoreset; keyword arguments as :class:`MetaCarEnv`.

    Observations (N, pts*pts + 1) float32 (``"linear"``) or (N, pts, pts) (``"grid"``); actions (N,) ints
    (basic) or (N, 2) floats (control); rewards (N,) float64; terminations/truncations (N,) bool.
    ``infos`` holds ``collided``, ``on_road`` and ``speed`` arrays (N,).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60, "autoreset_mode": AutoresetMode.NEXT_STEP}
    _SNAPSHOT_ATTRS = ("steps", "_needs_reset", "_keyed", "_reset_called")  # bookkeeping saved beside the core

    def __init__(self, num_envs: int = 1, level: str | Level = "level1", motion: str = "basic",
                 lidar: dict | None = None, observation: str = "linear", terminate_on_crash: bool = True,
                 max_steps: int | None = 800, shuffle_on_reset: Any = False, cars_moving: bool = True,
                 reward_fn=None, rotation_step: float = 0.5, fix_bot_quirks: bool = False,
                 render_mode: str | None = None, device: str = "cpu"):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.xp = xp = core_array_module(device)
        self.num_envs = int(num_envs)
        self.level = load_level(level)
        self.core = MetaCarCore(self.level, self.num_envs, motion=motion, lidar=lidar, rotation_step=rotation_step,
                                cars_moving=cars_moving, fix_bot_quirks=fix_bot_quirks, reward_fn=reward_fn,
                                xp=xp)
        self.observation_kind = observation
        self.single_observation_space, self.single_action_space = make_spaces(self.core, observation)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.terminate_on_crash = bool(terminate_on_crash)
        self.max_steps = check_max_steps(max_steps)
        self.shuffle_on_reset = normalise_shuffle(shuffle_on_reset)
        self.render_mode = render_mode
        self.steps = xp.zeros(self.num_envs, dtype=xp.int64)
        self._needs_reset = xp.zeros(self.num_envs, dtype=bool)
        self._keyed = False
        self._reset_called = False
        self._renderer = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset every world; ``seed`` int gives world i the seed ``seed + i`` (a list gives one per world).

        ``options`` as :meth:`MetaCarEnv.reset` (``{"shuffle": ...}`` for this reset only; unknown keys raise).
        """
        shuffle = reset_shuffle(options, self.shuffle_on_reset)
        super().reset(seed=seed if isinstance(seed, int) else None)
        n = self.num_envs
        if seed is not None:
            seeds = [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for {n} worlds")
            self.core.set_keys(self.xp.arange(n), np.array([key_from_seed(s) for s in seeds], dtype=np.uint64))
            self._keyed = True
        elif not self._keyed:
            seeds = self.np_random.integers(2**63, size=n)
            self.core.set_keys(self.xp.arange(n), np.array([key_from_seed(int(s)) for s in seeds], dtype=np.uint64))
            self._keyed = True
        self.core.reset(None, shuffle=shuffle)
        self.steps[:] = 0
        self._needs_reset[:] = False
        self._reset_called = True
        return self.core.observation(self.observation_kind), self._infos()

    def step(self, actions: Any):
        """Advance every world one step: ``(obs, reward, terminated, truncated, infos)``, autoresetting
        the worlds that ended on the previous step."""
        if not self._reset_called:  # the worlds have no keys or starts yet: every car would "crash" at once
            raise RuntimeError("call reset() before step()")
        xp = self.xp
        core = self.core
        actions = self._check_actions(actions)
        reward = core.step(actions)
        self.steps += 1
        crashed = core.collided | ~core.on_road
        terminated = crashed & self.terminate_on_crash
        truncated = self.steps >= self.max_steps if self.max_steps else xp.zeros(self.num_envs, dtype=bool)
        if self._needs_reset.any():
            # NEXT_STEP autoreset: worlds that ended on the previous step start over now, ignoring the
            # action. Stepping them first is harmless: reset rewrites their whole state, random stream
            # included (a function of the world's key and episode count only).
            idx = xp.nonzero(self._needs_reset)[0]
            core.reset(idx, shuffle=self.shuffle_on_reset)
            reward = reward.copy()
            reward[idx] = 0.0
            terminated = terminated.copy()
            terminated[idx] = False
            truncated = truncated.copy()
            truncated[idx] = False
            self.steps[idx] = 0
        self._needs_reset = terminated | truncated
        return core.observation(self.observation_kind), reward, terminated, truncated, self._infos()

    def render(self):
        """An RGB frame (H, W, 3) of world 0 when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from .render import MetaCarRenderer

            self._renderer = MetaCarRenderer(self.core, mode="rgb_array")
        return self._renderer.render(world=0, step=int(self.steps[0]), reward=float(self.core.reward[0]))

    def close_extras(self, **kwargs):
        """Close the renderer, if any (``close()`` calls this)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _check_actions(self, actions: Any) -> Any:
        xp = self.xp
        n = self.num_envs
        if self.core.discrete:
            arr = xp.asarray(actions)
            if arr.shape != (n,) or arr.dtype.kind not in "iu" or bool(((arr < 0) | (arr >= 5)).any()):
                raise ValueError(f"actions must be {n} integers in 0..4, one per world (action space "
                                 f"{self.action_space}); got shape {arr.shape}, dtype {arr.dtype}")
            return arr.astype(xp.int64, copy=False)
        arr = xp.asarray(actions, dtype=xp.float64)
        if arr.shape != (n, 2) or not bool(xp.isfinite(arr).all()):
            raise ValueError(f"actions must be finite [throttle, steering] pairs of shape ({n}, 2) (action space "
                             f"{self.action_space}); got shape {arr.shape}")
        return arr

    def _infos(self) -> dict:
        core = self.core
        return {"collided": core.collided, "on_road": core.on_road, "speed": core.speed}
