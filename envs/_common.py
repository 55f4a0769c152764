"""Pieces every playgrad environment shares: per-world random streams, action checks, the
next-step autoreset vector env, and a pygame surface/window holder for renderers.

Random streams. Each world owns a counter-based stream (SplitMix64): draw ``k`` of world ``i`` is
``mix64(key[i] + k * GAMMA)``. A stream depends only on its own key and counter, so
world ``i`` of a batch of 1024 produces exactly the numbers a single env seeded with the same key
would, whatever the other worlds do, and a whole batch draws with a few array ops (NumPy or CuPy)
instead of a Python loop over per-world generators. Seeds map to keys the way Gymnasium's vector
envs map seeds to sub-envs: ``reset(seed=s)`` on a vector env gives world ``i`` the key of seed
``s + i``, so it equals a single env reset with ``seed=s + i``.

Snapshots. :func:`capture_state`/:func:`restore_state` (and :class:`SnapshotMixin`, which a vector env
mixes in for ``get_state``/``set_state``) save every world's state for an exact ``train.py --resume``.

Stable API (other envs may import it): :class:`WorldRNG`, :func:`seed_to_key`, :func:`discrete_action`,
:func:`discrete_actions`, :func:`continuous_actions`, :func:`core_array_module`, :class:`SnapshotMixin`,
:class:`BatchedVectorEnv`, :class:`PygameCanvas`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rl import backend

__all__ = [
    "BatchedVectorEnv",
    "PygameCanvas",
    "SnapshotMixin",
    "WorldRNG",
    "capture_state",
    "continuous_actions",
    "core_array_module",
    "discrete_action",
    "discrete_actions",
    "restore_state",
    "seed_to_key",
]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's odd increment (2**64 / golden ratio)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M53 = 1.0 / (1 << 53)
# NumPy scalars built once: making them per call costs more than the shifts themselves.
_S11, _S27, _S30, _S31 = (np.uint64(n) for n in (11, 27, 30, 31))


def _mix64(z: Any, xp: Any) -> Any:
    """SplitMix64 finalizer on a uint64 array (any shape); wraps modulo 2**64 like the C original."""
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return z ^ (z >> _S31)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed) % (1 << 64)


def seed_to_key(seeds: Any, xp: Any = np) -> Any:
    """Keys (uint64, shape of ``seeds``) for non-negative integer seeds; world ``i`` of seed ``s`` uses ``s + i``."""
    s = xp.asarray(seeds, dtype=xp.uint64)
    # Two rounds so that neighbouring seeds give unrelated keys (they seed neighbouring worlds).
    return _mix64(_mix64(s * _GAMMA + _GAMMA, xp) + _GAMMA, xp)


class WorldRNG:
    """Independent random streams for ``num_worlds`` worlds, drawn with array ops.

    ``state`` is uint64 (num_worlds,) on the array module ``xp``: SplitMix64's state per world,
    ``key + counter * GAMMA``; a draw is ``mix64(state + GAMMA)`` and advances the state by GAMMA.
    """

    def __init__(self, num_worlds: int, xp: Any = np):
        self.xp = xp
        self.num_worlds = num_worlds
        self.state = xp.zeros(num_worlds, dtype=xp.uint64)
        self._offsets: dict[int, Any] = {}

    def seed(self, seed: int | None, np_random: np.random.Generator | None) -> None:
        """Give world ``i`` the key of ``seed + i``; with ``seed=None`` draw fresh keys from ``np_random``."""
        xp = self.xp
        if seed is None:
            if np_random is None:
                np_random = np.random.default_rng()
            keys = np_random.integers(0, 2**64 - 1, size=self.num_worlds, dtype=np.uint64, endpoint=True)
            self.state = xp.asarray(keys)
        else:
            base = _check_seed(seed)
            idx = np.arange(self.num_worlds, dtype=np.uint64)
            self.state = seed_to_key(xp.asarray(np.uint64(base) + idx), xp)

    def uniform(self, worlds: Any, k: int) -> Any:
        """Floats in [0, 1), shape (k, len(worlds)): row ``j`` holds draw ``j`` of each listed world.

        ``worlds`` is an int array of distinct world indices; their streams advance by ``k`` draws.
        Draw-major, so that callers writing one state component per row get contiguous rows.
        """
        xp = self.xp
        offsets = self._offsets.get(k)
        if offsets is None:  # multiples of GAMMA: draw j of a world is mix64(state + j * GAMMA)
            advance = np.uint64(k * int(_GAMMA) % (1 << 64))
            offsets = self._offsets[k] = (xp.arange(1, k + 1, dtype=xp.uint64)[:, None] * _GAMMA, advance)
        step_offsets, advance = offsets
        s = self.state[worlds]
        self.state[worlds] = s + advance
        z = step_offsets + s
        z ^= z >> _S30
        z *= _MUL1
        z ^= z >> _S27
        z *= _MUL2
        z ^= z >> _S31
        z >>= _S11  # 53 random bits make a double in [0, 1)
        return z.astype(xp.float64) * _TWO_POW_M53


def discrete_action(action: Any, n: int) -> int:
    """Return ``action`` as an int in ``[0, n)`` or raise ``ValueError`` naming the space ``Discrete(n)``."""
    # Fast path: plain ints (the usual case) skip the generic checks.
    if type(action) is int and 0 <= action < n:
        return action
    try:
        arr = np.asarray(action)
    except Exception:  # objects NumPy cannot hold
        arr = None
    if arr is not None and arr.shape == () and np.issubdtype(arr.dtype, np.integer) and 0 <= int(arr) < n:
        return int(arr)
    raise ValueError(f"action {action!r} is not in the action space Discrete({n}): expected an int in [0, {n})")


def discrete_actions(actions: Any, num_envs: int, n: int, xp: Any = np) -> Any:
    """Return ``actions`` (shape (num_envs,)) as an int array on ``xp``, or raise ``ValueError`` naming the space."""
    a = actions if backend.is_device_array(actions) else np.asarray(actions)
    if a.shape != (num_envs,) or a.dtype.kind not in "iu":
        raise ValueError(
            f"actions must be an int array of shape ({num_envs},) in MultiDiscrete([{n}] * {num_envs}); "
            f"got shape {a.shape}, dtype {a.dtype}"
        )
    if num_envs and (int(a.min()) < 0 or int(a.max()) >= n):
        raise ValueError(f"actions must lie in [0, {n}) (space MultiDiscrete([{n}] * {num_envs})); got {a!r}")
    return xp.asarray(a)


def continuous_actions(actions: Any, num_envs: int, space: spaces.Box, xp: Any = np) -> Any:
    """Return ``actions`` (shape (num_envs, *space.shape)) as a float64 array on ``xp``, or raise ``ValueError``
    naming the space: a wrong shape or a non-finite value (NaN would poison the world's state for good)."""
    a = actions if backend.is_device_array(actions) else np.asarray(actions)
    shape = (num_envs, *space.shape)
    if a.shape != shape or a.dtype.kind not in "iuf":
        raise ValueError(f"actions must be a float array of shape {shape} (space {space} per world); "
                         f"got shape {a.shape}, dtype {a.dtype}")
    a = xp.asarray(a, dtype=xp.float64)
    if not bool(xp.isfinite(a).all()):
        raise ValueError(f"actions must be finite (space {space} per world); got {backend.to_numpy(a)!r}")
    return a


def core_array_module(device: str, xp: Any = None) -> Any:
    """The array module a vector env's core runs on: NumPy for ``device="cpu"`` (the default: a few
    worlds step faster on the host than as GPU kernels, and the agent needs them there anyway), the
    active ``rl.backend`` module for ``"backend"`` (CuPy on a GPU, worth it for thousands of worlds).
    An explicit ``xp`` wins."""
    if xp is not None:
        return xp
    if device == "cpu":
        return np
    if device == "backend":
        return backend.current().xp
    raise ValueError(f"device must be 'cpu' or 'backend', got {device!r}")


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or backend.is_device_array(value)


def _state_arrays(holder: Any) -> dict[str, Any]:
    """A core's public arrays by name; a part it lists in ``STATE_PARTS`` gives a nested dict of its own."""
    arrays: dict[str, Any] = {k: v for k, v in vars(holder).items() if not k.startswith("_") and _is_array(v)}
    for part in getattr(holder, "STATE_PARTS", ()):
        arrays[part] = _state_arrays(getattr(holder, part))
    return arrays


def _to_host(arrays: dict[str, Any]) -> dict[str, Any]:
    return {k: _to_host(v) if isinstance(v, dict) else backend.to_numpy(v).copy() for k, v in arrays.items()}


def _put_back(holder: Any, saved: dict[str, Any], xp: Any, where: str = "") -> None:
    """Write ``saved`` (as :func:`_state_arrays` gave it) back into ``holder``, checking every field fits."""
    current = _state_arrays(holder)
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            _put_back(getattr(holder, key), value, xp, f"{where}{key}.")
            continue
        now = current.get(key)
        if now is None or isinstance(now, dict) or tuple(now.shape) != tuple(np.shape(value)):
            raise ValueError(f"saved env state field {where}{key!r} does not fit this env (shape {np.shape(value)})")
        setattr(holder, key, xp.asarray(value, dtype=now.dtype))


def capture_state(core: Any, extra: dict[str, Any], np_random: np.random.Generator | None) -> dict[str, Any]:
    """Everything that decides a batched world's future, as host arrays and JSON-able scalars.

    By convention a core's public array attributes (names without a leading underscore) are its
    state and its private ones are constants derived from the level or config, or caches derived
    from the state that the core's ``refresh_derived()`` recomputes (see :func:`restore_state`). A core
    made of parts that hold state of their own names them in ``STATE_PARTS`` (MetaCar's ``("bots",)``);
    their public arrays are saved too, as a nested dict. ``core.rng.state`` holds the per-world random
    streams. ``extra`` adds the vector env's own bookkeeping.
    """
    state: dict[str, Any] = {
        "core": _to_host(_state_arrays(core)),
        "env": {k: backend.to_numpy(v).copy() if _is_array(v) else v for k, v in extra.items()},
    }
    rng = getattr(core, "rng", None)
    if rng is not None and _is_array(getattr(rng, "state", None)):
        state["rng"] = backend.to_numpy(rng.state).copy()
    if np_random is not None:
        state["np_random"] = json.dumps(np_random.bit_generator.state)
    return state


def restore_state(core: Any, owner: Any, state: dict[str, Any]) -> np.random.Generator | None:
    """Put back what :func:`capture_state` returned; returns the restored ``np_random`` (or None).

    Raises ``ValueError`` naming the field when a saved array does not fit this env (another level
    or number of worlds). A core with private caches of its state (MetaCar's car boxes) defines
    ``refresh_derived()``, called once the state is back.
    """
    xp = core.xp
    _put_back(core, state["core"], xp)
    for key, value in state["env"].items():
        current = getattr(owner, key)
        setattr(owner, key, xp.asarray(value, dtype=current.dtype) if _is_array(current) else value)
    if "rng" in state:
        core.rng.state = xp.asarray(state["rng"], dtype=xp.uint64)
    refresh = getattr(core, "refresh_derived", None)
    if refresh is not None:
        refresh()
    if "np_random" in state:
        generator = np.random.default_rng()
        generator.bit_generator.state = json.loads(state["np_random"])
        return generator
    return None


class SnapshotMixin:
    """``get_state``/``set_state`` for a vector env whose worlds live in ``self.core``.

    A class names its own autoreset bookkeeping in ``_SNAPSHOT_ATTRS``; the core's state and random
    streams are found by :func:`capture_state`'s convention.
    """

    _SNAPSHOT_ATTRS: tuple[str, ...] = ()

    def get_state(self) -> dict[str, Any]:
        """A snapshot of every world (arrays and JSON-able scalars) for exact resume (``train.py --resume``)."""
        extra = {name: getattr(self, name) for name in self._SNAPSHOT_ATTRS}
        return capture_state(self.core, extra, self._np_random)

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` snapshot: the next ``step`` is the one that would have followed."""
        generator = restore_state(self.core, self, state)
        if generator is not None:
            self._np_random = generator


class BatchedVectorEnv(SnapshotMixin, VectorEnv):
    """A native ``VectorEnv`` over a batched core, with Gymnasium 1.x next-step autoreset.

    The core provides ``num_worlds``, ``xp``, ``rng`` (:class:`WorldRNG`), ``reset_worlds(idx)``,
    ``step(actions, active) -> (reward (N,), terminated bool (N,))`` (worlds where ``active`` is False
    must not draw random numbers; their state is overwritten by a reset right after) and
    ``observe() -> obs (N, *obs_shape)``. Truncation at ``max_episode_steps`` is kept here.

    Actions are checked against the single action space: ``Discrete(n)`` takes an int array (N,),
    ``Box`` a float array (N, *shape) of finite values (the core clips to the box if it wants to).
    A subclass adapts a core with another interface by overriding :meth:`_reset_worlds`,
    :meth:`_step_worlds`, :meth:`_observe` and :meth:`_infos` (``infos`` are a dict of (N,) arrays).

    A world that ended on the previous step is reset on the next ``step`` call instead of being
    stepped: its action is ignored, and it returns the first observation of the new episode with
    reward 0, terminated False and truncated False (``AutoresetMode.NEXT_STEP``). Everything is
    returned as NumPy arrays, whichever array module the core runs on.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}
    _SNAPSHOT_ATTRS = ("_steps", "_prev_done", "_reset_called")

    def _setup(
        self, core: Any, single_action_space: spaces.Space, single_observation_space: spaces.Space,
        max_episode_steps: int | None,
    ) -> None:
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_episode_steps!r}")
        if not isinstance(single_action_space, spaces.Discrete | spaces.Box):
            raise TypeError(f"BatchedVectorEnv supports Discrete and Box actions, got {single_action_space}")
        self.core = core
        self.num_envs = core.num_worlds
        self.max_episode_steps = max_episode_steps
        self.single_action_space = single_action_space
        self.action_space = batch_space(single_action_space, self.num_envs)
        self.single_observation_space = single_observation_space
        self.observation_space = batch_space(single_observation_space, self.num_envs)
        xp = core.xp
        self._steps = xp.zeros(self.num_envs, dtype=xp.int64)
        self._prev_done = xp.zeros(self.num_envs, dtype=bool)
        self._reset_called = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every world; with ``seed=s`` world ``i`` starts as a single env reset with ``seed=s + i``."""
        super().reset(seed=seed)
        core, xp = self.core, self.core.xp
        if seed is not None or not self._reset_called:
            core.rng.seed(seed, self.np_random)
        self._reset_called = True
        self._reset_worlds(xp.arange(self.num_envs), options)
        self._steps[:] = 0
        self._prev_done[:] = False
        return backend.to_numpy(self._observe()), self._infos()

    def step(self, actions: Any):
        """Advance all worlds one step; returns NumPy ``(obs, reward, terminated, truncated, infos)``."""
        if not self._reset_called:
            raise RuntimeError("call reset() before step()")
        xp = self.core.xp
        a = self._check_actions(actions)
        prev_done = self._prev_done
        active = ~prev_done
        reward, terminated = self._step_worlds(a, active)
        self._steps += 1
        if self.max_episode_steps is None:
            truncated = xp.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self._steps >= self.max_episode_steps
        restarted = xp.flatnonzero(prev_done)
        if restarted.size:
            self._reset_worlds(restarted, None)
            self._steps[restarted] = 0
            reward[restarted] = 0.0
            terminated &= active  # whole-array masks: cheaper than more scatters
            truncated &= active
        self._prev_done = terminated | truncated
        to_np = backend.to_numpy
        return to_np(self._observe()), to_np(reward), to_np(terminated), to_np(truncated), self._infos()

    # Overridable adapters between the vector env and its core -------------------------------------
    def _reset_worlds(self, worlds: Any, options: dict[str, Any] | None) -> None:
        """Reset the worlds with indices ``worlds`` (int array); ``options`` are ``reset``'s (None on autoreset)."""
        self.core.reset_worlds(worlds)

    def _step_worlds(self, actions: Any, active: Any) -> tuple[Any, Any]:
        """``(reward (N,), terminated bool (N,))``, arrays this env may write into."""
        return self.core.step(actions, active)

    def _observe(self) -> Any:
        """Observations of every world, (N, *obs_shape), on the core's array module."""
        return self.core.observe()

    def _infos(self) -> dict[str, Any]:
        """``infos`` for ``reset``/``step``: a dict of NumPy (N,) arrays (empty by default)."""
        return {}

    def _check_actions(self, actions: Any) -> Any:
        """``actions`` on the core's array module, or ``ValueError`` naming the action space."""
        space, n, xp = self.single_action_space, self.num_envs, self.core.xp
        if isinstance(space, spaces.Discrete):
            return discrete_actions(actions, n, int(space.n), xp)
        return continuous_actions(actions, n, space, xp)


class PygameCanvas:
    """Owns the pygame surface a renderer draws on: a window in ``"human"`` mode, off-screen otherwise.

    ``surface()`` returns the (width_px, height_px) surface to draw on; ``present(fps)`` shows it
    (human: flip the window and wait for the frame time, returns None; rgb_array: returns the
    pixels as uint8 (height_px, width_px, 3)). Works with ``SDL_VIDEODRIVER=dummy``.
    """

    def __init__(self, width_px: int, height_px: int, render_mode: str, caption: str):
        import pygame  # noqa: PLC0415 - pygame is only needed once something is drawn

        self._pygame = pygame
        self.width_px, self.height_px = width_px, height_px
        self.render_mode = render_mode
        # Only the parts we use: pygame.init() would also open the audio device.
        if render_mode == "human":
            pygame.display.init()
            self._surface = pygame.display.set_mode((width_px, height_px))
            pygame.display.set_caption(caption)
        else:
            self._surface = pygame.Surface((width_px, height_px))
        self._clock = pygame.time.Clock()
        self._fonts: dict[int, Any] = {}

    def surface(self) -> Any:
        """The pygame surface to draw the next frame on."""
        return self._surface

    def font(self, size_px: int) -> Any:
        """pygame's bundled default font at ``size_px`` (no files of ours to ship)."""
        if size_px not in self._fonts:
            self._pygame.font.init()
            self._fonts[size_px] = self._pygame.font.Font(None, size_px)
        return self._fonts[size_px]

    def present(self, fps: float) -> np.ndarray | None:
        """Show the frame (human, at most ``fps`` frames per second) or return it as uint8 (H_px, W_px, 3)."""
        pygame = self._pygame
        if self.render_mode == "human":
            pygame.event.pump()  # keeps the window responsive; events stay queued for the play loop
            pygame.display.flip()
            self._clock.tick(fps)
            return None
        return np.transpose(pygame.surfarray.array3d(self._surface), (1, 0, 2)).copy()

    def close(self) -> None:
        """Close the window (human mode); an off-screen surface needs nothing."""
        if self.render_mode == "human":
            self._pygame.display.quit()
