"""Core benchmark: our tensor core beside PyTorch (CPU build) on the same models, batches and threads.

    python benchmarks/bench_core.py [--repeats 15] [--no-write]

Needs a Python where both playgrad and torch import (torch is not a project dependency), e.g.::

    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install -e . torch
    /tmp/benchvenv/bin/python benchmarks/bench_core.py

Without torch it times ours only and says so. Rows (median seconds; ours and torch are timed in
alternation, so other load on the machine falls on both alike):

1. RL-size MLP 4-64-64-2, batch 64, one Adam step (forward + MSE + backward + step). Target <= 1.0x torch.
2. The mnist-transfer CNN (conv32 3x3 relu, conv32 3x3 relu, maxpool 2, flatten, dense128 relu,
   dense5; 28x28x1; softmax cross-entropy, Adam), batch 128: one training step (target <= 1.5x) and
   inference (<= 1.5x). Ours is NHWC, torch NCHW (each library's native layout).
3. Peak RSS of that CNN benchmark, each library in its own child process (``VmHWM``; see
   ``_peak_rss_kib`` for why not ``ru_maxrss``). Target <= 1.5x.
4. With a usable CuPy GPU: our CNN training step at batch 256 on the GPU vs the NumPy path (>= 10x).

torch gets ``torch.set_num_threads(n)`` with ``n`` the number of threads NumPy's BLAS uses, so both
use the same cores. Writes section ``bench_core`` of ``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _benchlib import command_line, machine_description, median_time, write_section
from _benchlib import verdict as _benchlib_verdict

# A peak-RSS child imports only the library it measures: importing torch alone takes ~190 MiB, which the
# "ours" child would otherwise carry (and playgrad's few MiB the torch child).
_RSS_CHILD = os.environ.get("BENCH_RSS_CHILD")
if _RSS_CHILD != "torch":
    from rl import backend, layers, losses, models
    from rl import random as rl_random
    from rl.optimizers import Adam
    from rl.tensor import Tensor, no_grad, using_config
torch = None
if _RSS_CHILD != "ours":
    try:
        import torch
    except ImportError:  # torch is optional: the table then shows ours only
        torch = None

MLP_BATCH = 64
CNN_BATCH = 128
GPU_BATCH = 256
RSS_STEPS = 5


# ============================================================================ thread count
def blas_threads() -> tuple[int, str]:
    """How many threads NumPy's BLAS runs, and how we know (OpenBLAS asked directly when loaded)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and line.rstrip().endswith(".so")}
    except OSError:
        libs = set()
    for path in sorted(libs):
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn()), f"OpenBLAS ({Path(path).name}) reports it"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), f"from ${var}"
    return os.cpu_count() or 1, "assumed: one per logical core (BLAS default)"


# ============================================================================ models
def our_mlp() -> tuple[Callable[[], None], Callable[[], None]]:
    """(train step, unused) closures for the 4-64-64-2 MLP with Adam and MSE."""
    rl_random.seed(0)
    model = models.Sequential(
        [layers.Input((4,)), layers.Dense(64, activation="relu"), layers.Dense(64, activation="relu"), layers.Dense(2)]
    )
    opt = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(MLP_BATCH, 4)).astype(np.float32))
    y = Tensor(rng.normal(size=(MLP_BATCH, 2)).astype(np.float32))

    def step() -> None:
        loss = losses.mse(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, step


def torch_mlp() -> tuple[Callable[[], None], Callable[[], None]]:
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(MLP_BATCH, 4), torch.randn(MLP_BATCH, 2)

    def step() -> None:
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, step


def our_cnn(batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(train step, inference) closures for the mnist-transfer CNN, NHWC, on the active backend."""
    rl_random.seed(0)
    model = models.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(5),
        ]
    )
    opt = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = Tensor(backend.to_device(rng.random((batch, 28, 28, 1), dtype=np.float32)))
    y = backend.to_device(rng.integers(0, 5, size=batch))
    xp = backend.current().xp

    def step() -> None:
        loss = losses.softmax_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if xp is not np:
            xp.cuda.Device().synchronize()

    def infer() -> None:
        with no_grad(), using_config("train", False):
            out = model(x)
        if xp is not np:
            out.data.sum().item()

    return step, infer


def torch_cnn(batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 12 * 12, 128), nn.ReLU(), nn.Linear(128, 5),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 5, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.inference_mode():
            model(x)

    return step, infer


# ============================================================================ timing
def paired_medians(fns: list[Callable[[], None]], repeats: int, inner: int) -> list[float]:
    """Median seconds per call of each function; rounds alternate between them."""
    samples: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        median_time(fn, repeats=1, inner=1, warmup=3)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            samples[i].append(median_time(fn, repeats=1, inner=inner, warmup=0))
    return [statistics.median(s) for s in samples]


def rss_child(which: str) -> None:
    """In a fresh process: import, build the CNN, run train steps and inference; print peak RSS (KiB)."""
    if which == "torch":
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        step, infer = torch_cnn(CNN_BATCH)
    else:
        backend.use_device("cpu")
        step, infer = our_cnn(CNN_BATCH)
    for _ in range(RSS_STEPS):
        step()
        infer()
    print(json.dumps({"peak_rss_kib": _peak_rss_kib()}))


def _peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` from /proc is the high-water mark of the current address space, which ``execve``
    starts afresh. ``getrusage(RUSAGE_SELF).ru_maxrss`` is used only where /proc is missing: on
    Linux it also counts the parent's memory copied at ``fork`` (the kernel carries the old
    address space's high-water mark across exec), which would make every child look as big as
    this benchmark's parent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_kib(which: str, threads: int) -> int:
    env = dict(os.environ, BENCH_THREADS=str(threads), RL_DEVICE="cpu", BENCH_RSS_CHILD=which)
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", which], capture_output=True, text=True, env=env, check=True
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_kib"])


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def verdict(ratio: float, target: float, lower_is_better: bool = True) -> str:
    """The row's target judged from the measured ratio: "met (<= 1.5x)" or "missed (>= 10x)"."""
    return _benchlib_verdict(ratio, target, higher_is_better=not lower_is_better, unit="x")


# ============================================================================ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per row (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--rss-child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return

    backend.use_device("cpu")
    threads, how = blas_threads()
    have_torch = torch is not None
    if have_torch:
        torch.set_num_threads(threads)
    peer = f"PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads)" if have_torch else "PyTorch"
    print(f"NumPy {np.__version__}, BLAS threads: {threads} ({how}); peer: {peer if have_torch else 'missing'}")

    rows: list[tuple[str, float, float | None, str]] = []

    def add(name: str, ours_fn, torch_fn, inner: int, target: float) -> None:
        fns = [ours_fn] + ([torch_fn] if have_torch else [])
        times = paired_medians(fns, args.repeats, inner)
        t_torch = times[1] if have_torch else None
        note = verdict(times[0] / t_torch, target) if t_torch else "torch missing"
        rows.append((name, times[0], t_torch, note))
        ratio = f"{times[0] / t_torch:.2f}x" if t_torch else "-"
        print(f"{name:<46} ours {fmt_ms(times[0]):>10}  torch {fmt_ms(t_torch) if t_torch else '-':>10}  {ratio}")

    ours_step, _ = our_mlp()
    torch_step = torch_mlp()[0] if have_torch else None
    add(f"MLP 4-64-64-2, batch {MLP_BATCH}, Adam train step", ours_step, torch_step, inner=200, target=1.0)
    if have_torch and threads > 1:
        # Tiny ops gain nothing from threads, and torch's OpenMP workers spin when cores are shared, so
        # the same row with torch on one thread is shown too (ours is single-threaded at this size).
        torch.set_num_threads(1)
        add(f"MLP 4-64-64-2, batch {MLP_BATCH}, Adam train step (torch 1 thread)", ours_step, torch_step,
            inner=200, target=1.0)  # fmt: skip
        torch.set_num_threads(threads)

    ours_train, ours_infer = our_cnn(CNN_BATCH)
    torch_train, torch_infer = torch_cnn(CNN_BATCH) if have_torch else (None, None)
    cnn_repeats = max(5, args.repeats // 2)
    saved, args.repeats = args.repeats, cnn_repeats
    add(f"mnist-transfer CNN, batch {CNN_BATCH}, Adam train step", ours_train, torch_train, inner=2, target=1.5)
    add(f"mnist-transfer CNN, batch {CNN_BATCH}, inference", ours_infer, torch_infer, inner=3, target=1.5)
    args.repeats = saved

    rss_ours = peak_rss_kib("ours", threads)
    rss_torch = peak_rss_kib("torch", threads) if have_torch else None
    rss_note = verdict(rss_ours / rss_torch, 1.5) if rss_torch else "torch missing"
    rss_ratio = f"{rss_ours / rss_torch:.2f}x" if rss_torch else "-"
    print(f"{'CNN peak RSS (child process)':<46} ours {rss_ours / 1024:>7.0f} MiB  torch "
          f"{(rss_torch or 0) / 1024:>7.0f} MiB  {rss_ratio}")  # fmt: skip

    gpu_ok, gpu_why = backend.gpu_status()
    gpu_line: str
    if gpu_ok:
        cpu_train, _ = our_cnn(GPU_BATCH)
        backend.use_device("gpu")
        gpu_train, _ = our_cnn(GPU_BATCH)  # its step synchronises the device before returning
        # Rounds alternate NumPy and GPU like the torch rows (the active device is switched between the
        # timed calls, never inside them), so load on the host falls on both.
        gpu_rounds = max(3, args.repeats // 4)
        cpu_s, gpu_s = [], []
        for device, fn in (("cpu", cpu_train), ("gpu", gpu_train)):
            backend.use_device(device)
            median_time(fn, repeats=1, inner=1, warmup=2)
        for _ in range(gpu_rounds):
            backend.use_device("cpu")
            cpu_s.append(median_time(cpu_train, repeats=1, inner=1, warmup=0))
            backend.use_device("gpu")
            gpu_s.append(median_time(gpu_train, repeats=1, inner=5, warmup=0))
        backend.use_device("cpu")
        t_cpu, t_gpu = statistics.median(cpu_s), statistics.median(gpu_s)
        speedup = t_cpu / t_gpu
        gpu_line = (
            f"GPU ({gpu_why}), ours on both sides, medians of {gpu_rounds} alternating rounds:\n\n"
            "| benchmark | ours, GPU | ours, NumPy | speed-up (NumPy time / GPU time) | target |\n"
            "| --- | ---: | ---: | ---: | --- |\n"
            f"| mnist-transfer CNN, batch {GPU_BATCH}, Adam train step | {fmt_ms(t_gpu)} | {fmt_ms(t_cpu)} | "
            f"{speedup:.1f}x | {verdict(speedup, 10, lower_is_better=False)} |"
        )
        print(f"GPU: {gpu_why}: CNN batch {GPU_BATCH} train step {fmt_ms(t_gpu)} vs NumPy {fmt_ms(t_cpu)}")
    else:
        gpu_line = ""
        print(f"GPU row skipped: {gpu_why}")

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        f"Machine: {machine_description()}. NumPy {np.__version__}, BLAS threads {threads} ({how}). "
        f"Load average when the run ended: {load} (other jobs share the cores; ratios are from alternating "
        "rounds, so the load falls on both).",
        f"Peer: {peer if have_torch else 'PyTorch not importable: ours only'}. "
        f"Medians of {saved} alternating rounds (CNN rows {cnn_repeats}); command: `{command_line()}`. "
        "Ratios are ours / torch time (below 1: ours faster); peak RSS is each library alone in a fresh process.",
        "",
        "| benchmark | ours | torch | ours / torch | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, t_ours, t_torch, note in rows:
        ratio = f"{t_ours / t_torch:.2f}x" if t_torch else "-"
        lines.append(f"| {name} | {fmt_ms(t_ours)} | {fmt_ms(t_torch) if t_torch else '-'} | {ratio} | {note} |")
    lines.append(
        f"| CNN benchmark peak RSS, own process (batch {CNN_BATCH}, {RSS_STEPS} train + inference steps) | "
        f"{rss_ours / 1024:.0f} MiB | {f'{rss_torch / 1024:.0f} MiB' if rss_torch else '-'} | {rss_ratio} | "
        f"{rss_note} |"
    )
    if gpu_line:
        lines += ["", gpu_line]
    else:
        lines += ["", f"GPU row (CNN batch {GPU_BATCH}, GPU vs NumPy, target >= 10x) skipped: {gpu_why}."]
    markdown = "\n".join(lines)
    if not args.no_write:
        write_section(
            "bench_core", "## Core: tensor ops, optimizers, training steps (`benchmarks/bench_core.py`)\n\n" + markdown
        )
        print("wrote section bench_core of docs/benchmarks.md")
    else:
        print(markdown)


if __name__ == "__main__":
    main()
