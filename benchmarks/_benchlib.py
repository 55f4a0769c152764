"""Shared bits of the benchmark scripts: the checkout on ``sys.path``, one compute thread, timing with medians,
the machine description, and writing one script's section of ``docs/benchmarks.md`` without touching the others.

A benchmark imports it first (``python benchmarks/bench_NAME.py`` puts this folder on ``sys.path``; the tests
put it there themselves), then, where it wants one thread, calls :func:`one_compute_thread` before NumPy loads.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The checkout's packages (rl, agents, ...) also for a Python without playgrad installed: scripts/gpu_checks.sh
# runs the benchmarks with a device machine's python3.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# PLAYGRAD_BENCHMARKS_MD points the sections elsewhere: scripts/gpu_checks.sh writes a copy into $OUT on a
# device machine, so its measured sections come back as a file instead of being retyped from a log.
BENCHMARKS_MD = Path(os.environ.get("PLAYGRAD_BENCHMARKS_MD") or ROOT / "docs" / "benchmarks.md")

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what BLAS libraries read


def one_compute_thread() -> None:
    """One BLAS/OpenMP thread for this process and the ones it starts, unless the environment already sets a count.

    Call it before NumPy is imported: the BLAS library reads these variables once, when it loads. The benchmarks'
    networks are tiny, so more threads only add synchronisation, and the peers are pinned to one thread alike.
    """
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, "1")


def machine_description() -> str:
    """One line naming the CPU (model, logical cores), memory and Python, for the results table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores{mem}, Python {platform.python_version()}"


def command_line(argv: list[str] | None = None) -> str:
    """The command that produced a section, as typed: ``python scripts/NAME.py`` plus the arguments it got.

    Written into each section so that a reader re-measures with the same options (repeats, seeds) instead of
    a default that differs from what was run. ``argv`` defaults to ``sys.argv``.
    """
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    name = f"benchmarks/{script.name}" if script.suffix == ".py" else script.name
    return shlex.join(["python", name, *argv[1:]])


def verdict(value: float, target: float, higher_is_better: bool = False, unit: str = "") -> str:
    """"met (<= 1.5x)" or "missed (>= 10x)": the target judged from the measured ``value``, never asserted."""
    ok = value >= target if higher_is_better else value <= target
    return f"{'met' if ok else 'missed'} ({'>=' if higher_is_better else '<='} {target:g}{unit})"


def median_time(fn: Callable[[], object], repeats: int = 7, inner: int = 1, warmup: int = 2) -> float:
    """Median over ``repeats`` of the seconds one call of ``fn`` takes (each sample averages ``inner`` calls)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the block between ``<!-- name:start -->`` and ``<!-- name:end -->``, atomically."""
    # Imported here: rl loads NumPy, and a benchmark imports this module before one_compute_thread().
    from rl.files import atomic_write_text  # noqa: PLC0415

    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section is written by the script it names.\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
