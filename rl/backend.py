"""The one seam between playgrad and its array libraries: NumPy everywhere, CuPy on a CUDA GPU.

Only this module imports CuPy. Everything else asks for ``xp`` (the active array module) or for
the module that owns a given array (``get_array_module``), and writes ``xp.*`` calls only, so the
same code runs on both (Chainer's pattern).

Choosing the device:

* ``RL_DEVICE=cpu`` forces NumPy; ``RL_DEVICE=gpu`` demands CuPy and fails loudly when it is not
  usable; unset (or ``auto``) picks CuPy when ``import cupy`` works *and* ``cupy.is_available()``
  *and* a tiny kernel runs, else NumPy.
* ``rl.backend.use_device("cpu" | "gpu" | "auto")`` does the same from code.

Transfers between host and device are explicit: ``to_device`` on the way in (env observations,
checkpoints), ``to_numpy`` on the way out (actions, logging, saving).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from rl.errors import BackendError

__all__ = [
    "Backend",
    "BackendError",
    "current",
    "gpu_status",
    "get_array_module",
    "to_device",
    "to_numpy",
    "use_device",
]


@dataclass(frozen=True)
class Backend:
    """The active array library: ``xp`` is ``numpy`` or ``cupy``; ``device`` is ``"cpu"`` or ``"gpu"``."""

    xp: ModuleType
    device: str
    description: str

    @property
    def name(self) -> str:
        return self.xp.__name__


_cupy: ModuleType | None = None
_cupy_reason: str | None = None  # why the GPU is not usable, once probed
_probed = False


def _probe_cupy() -> tuple[ModuleType | None, str | None]:
    """Import CuPy and prove it can run a kernel; return (module or None, reason it failed)."""
    global _cupy, _cupy_reason, _probed
    if _probed:
        return _cupy, _cupy_reason
    _probed = True
    try:
        import cupy  # noqa: PLC0415 - the only CuPy import in the project
    except Exception as exc:  # ImportError, or a CUDA error raised while importing
        _cupy_reason = f"CuPy is not installed or failed to import ({type(exc).__name__}: {exc})"
        return None, _cupy_reason
    try:
        if not cupy.is_available():
            _cupy_reason = "CuPy is installed but sees no usable CUDA device (cupy.is_available() is False)"
            return None, _cupy_reason
        # A smoke op also exercises NVRTC, which compiles elementwise kernels on first use.
        probe = cupy.arange(4, dtype=cupy.float32) * 2
        float(probe.sum())
    except Exception as exc:
        _cupy_reason = f"CuPy found a device but a test kernel failed ({type(exc).__name__}: {exc})"
        return None, _cupy_reason
    _cupy = cupy
    return cupy, None


def gpu_status() -> tuple[bool, str]:
    """Return ``(usable, explanation)`` for the CUDA GPU path without changing the active backend."""
    cupy, reason = _probe_cupy()
    if cupy is None:
        return False, reason or "unknown"
    dev = cupy.cuda.Device()
    try:
        name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"].decode()
    except Exception:
        name = f"device {dev.id}"
    return True, f"CuPy {cupy.__version__} on {name}"


def _make(device: str) -> Backend:
    if device == "cpu":
        return Backend(np, "cpu", f"NumPy {np.__version__} on the CPU")
    if device == "gpu":
        usable, why = gpu_status()
        if not usable:
            raise BackendError(f"the GPU was requested but cannot be used: {why}")
        return Backend(_cupy, "gpu", why)  # type: ignore[arg-type]
    if device == "auto":
        usable, _ = gpu_status()
        return _make("gpu" if usable else "cpu")
    raise BackendError(f"unknown device {device!r}; expected 'cpu', 'gpu' or 'auto'")


def _from_environment() -> Backend:
    requested = os.environ.get("RL_DEVICE", "auto").strip().lower() or "auto"
    return _make(requested)


_active: Backend | None = None


def current() -> Backend:
    """Return the active :class:`Backend`, choosing it from ``RL_DEVICE`` on first use."""
    global _active
    if _active is None:
        _active = _from_environment()
    return _active


def use_device(device: str) -> Backend:
    """Switch the active backend to ``"cpu"``, ``"gpu"`` or ``"auto"`` and return it.

    Arrays already made stay where they are; move them with :func:`to_device`.
    Raises :class:`BackendError` naming the reason when ``"gpu"`` is not usable.
    """
    global _active
    _active = _make(device.strip().lower())
    return _active


def __getattr__(name: str) -> Any:
    # ``from rl.backend import xp`` would freeze the module at import time; attribute access
    # (``backend.xp``) always answers with the active one.
    if name == "xp":
        return current().xp
    raise AttributeError(name)


def get_array_module(*arrays: Any) -> ModuleType:
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy`` (never touches the GPU)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_device_array(a: Any) -> bool:
    """True when ``a`` is a CuPy array."""
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def to_device(a: Any, dtype: Any = None) -> Any:
    """Move ``a`` (array-like of any shape) onto the active backend's device as an ``xp`` array."""
    xp_ = current().xp
    if xp_ is np:
        if is_device_array(a):
            a = a.get()
        return np.asarray(a, dtype=dtype)
    return xp_.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """Return a NumPy copy/view of ``a`` (an ``xp`` array, scalar or array-like) on the host."""
    if is_device_array(a):
        return a.get()
    return np.asarray(a)
