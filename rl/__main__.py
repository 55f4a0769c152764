"""Command line for the engine: ``python -m rl info`` reports the backend, device and versions.

``info`` says which array library is active (NumPy or CuPy), on which device, and *why* the GPU
is or is not used (from :func:`rl.backend.gpu_status`), then the versions of the libraries
playgrad depends on and the thread settings that decide CPU speed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence

_LIBRARIES = ("numpy", "cupy", "gymnasium", "pygame", "safetensors")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RL_DEVICE")


def _version(name: str) -> str:
    if name == "cupy":
        # Importing CuPy is the backend's job (the only module allowed to); ask it, not cupy.
        from rl import backend  # noqa: PLC0415

        usable, why = backend.gpu_status()
        return why.split(" on ")[0].removeprefix("CuPy ") if usable else "not usable"
    try:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        module = importlib.import_module(name)
    except Exception as exc:  # missing, or broken on import
        return f"not installed ({type(exc).__name__})"
    return str(getattr(module, "__version__", "unknown"))


def info_lines() -> list[str]:
    """The lines ``python -m rl info`` prints."""
    from rl import backend  # noqa: PLC0415

    lines = []
    try:
        active = backend.current()
        lines.append(f"backend: {active.name} ({active.device}) - {active.description}")
    except backend.BackendError as exc:
        lines.append(f"backend: unavailable - {exc}")
    usable, why = backend.gpu_status()
    lines.append(f"gpu: {'usable' if usable else 'not usable'} - {why}")
    lines.append(f"python: {platform.python_version()} ({sys.executable})")
    for name in _LIBRARIES:
        lines.append(f"{name}: {_version(name)}")
    lines.append(f"cpu cores: {os.cpu_count()}")
    for var in _THREAD_VARIABLES:
        lines.append(f"{var}: {os.environ.get(var, '(unset)')}")
    lines.extend(_blas_lines())
    return lines


def _blas_lines() -> list[str]:
    """The BLAS NumPy uses and its thread count, when threadpoolctl can tell (it is optional)."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return ["blas threads: unknown (threadpoolctl not installed)"]
    return [f"blas: {p.get('internal_api')} {p.get('version')} threads={p.get('num_threads')}"
            for p in threadpool_info() if p.get("user_api") == "blas"] or ["blas: none found"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m rl info``."""
    parser = argparse.ArgumentParser(prog="python -m rl", description="playgrad engine utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="backend, device, library versions and thread settings")
    args = parser.parse_args(argv)
    if args.command == "info":
        for line in info_lines():
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
