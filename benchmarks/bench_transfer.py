"""Benchmark: MobileNetV2 inference beside PyTorch on the CPU, and what embedding caching saves.

    python benchmarks/bench_transfer.py [--torch-python /tmp/benchvenv_tr/bin/python] [--repeats 5] [--no-write]

1. **Inference**, images/s at batch 1 and 16 (224x224): our folded NumPy path
   (:class:`transfer.mobilenet_v2.FoldedMobileNetV2`), the plain ``rl`` layer graph at batch 1, and
   PyTorch's CPU eager model rebuilt from the same state dict (``tests/data/mobilenet_torch_reference.py``)
   in a subprocess of a torch-enabled Python (never the project venv; make one with
   ``python3 -m venv /tmp/benchvenv_tr && /tmp/benchvenv_tr/bin/pip install torch==2.13.0 numpy``).
   The two are measured in alternating rounds, so a busy machine slows both alike.
2. **Embedding cache**: 50 epochs of head training on ``--cache-images`` images, timed as one backbone
   pass plus 50 epochs on the cached embeddings, beside one epoch that re-runs the backbone (what
   every epoch would cost without the cache).
3. **ONNX Runtime** (the CPU inference frontier), when the ``onnx`` extra is installed: the same model
   exported by :func:`rl.onnx.export_onnx` and run by ONNX Runtime's CPU provider with 1 and 2 intra-op
   threads, beside the folded path with as many threads (``FoldedMobileNetV2(threads=...)``), batch 1
   and 16, alternating in ``--rounds`` rounds; the issue's target is >= 0.5x ONNX Runtime's images/s.
   Written to its own section, ``bench_transfer_ort`` (``--ort-only`` measures just this).
4. **GPU**: the same folded path on CuPy when a GPU is usable, else a note.

Writes sections ``bench_transfer`` and ``bench_transfer_ort`` of ``docs/benchmarks.md`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import command_line, machine_description, median_time, verdict, write_section  # noqa: E402

import rl  # noqa: E402
from rl.layers import Dense  # noqa: E402
from transfer.api import TransferModel  # noqa: E402
from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2  # noqa: E402
from transfer.weights import mobilenet_v2_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TORCH_REFERENCE = ROOT / "tests" / "data" / "mobilenet_torch_reference.py"
BATCHES = (1, 16)


def torch_images_per_s(python: str, weights: Path, repeats: int, threads: int) -> dict | None:
    """Run the torch reference benchmark in ``python`` on ``threads`` threads (ours' count, so both use the same
    cores); ``{"images_per_s": {"1": .., "16": ..}, ...}`` or None."""
    if not Path(python).exists():
        return None
    cmd = [python, str(TORCH_REFERENCE), "bench", str(weights), "--batches", *map(str, BATCHES),
           "--repeats", str(repeats), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"torch benchmark failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours_images_per_s(net: FoldedMobileNetV2, repeats: int) -> dict[int, float]:
    rng = np.random.default_rng(0)
    out = {}
    for b in BATCHES:
        x = rng.standard_normal((b, 224, 224, 3)).astype(np.float32)
        out[b] = b / median_time(lambda x=x: net(x), repeats=repeats, warmup=1)
    return out


def ort_runner(onnx_path: Path, threads: int, spin: bool = True):
    """ONNX Runtime's CPU session on ``threads`` intra-op threads (sequential graph, one inter-op thread) as
    ``run(x) -> logits``; ``spin=False`` makes its idle threads sleep instead of spinning (ORT's default);
    None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def wall_and_cpu(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process-CPU seconds of one call of ``fn`` (after one warm-up call).

    On a shared machine the wall time of a one-thread runner mostly measures the queue for the cores;
    its CPU seconds measure the work (all of the process's threads: use it for one-thread runners).
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


# Why the compiled path is numba around BLAS: measured while building it (2026-12-07, this machine at load 11-14,
# process-CPU time, one thread; static text, not re-measured by this script).
KERNEL_CHOICE = (
    "Kernel choice (measured while building the compiled path on this machine, load 11-14, process-CPU time, one "
    "thread; not re-measured by this script): the 1x1 convolutions' GEMMs stay in BLAS (OpenBLAS reached 52-101 "
    "GFLOP/s on MobileNetV2's shapes, e.g. 12544x16x96 and 49x960x320, where hand-written numba GEMM loops, plain "
    "or 4-row register-tiled, reached 6-32); what numba replaces is everything around them. Applying bias + ReLU6 "
    "to each in-cache GEMM band in one compiled pass cost 0.02 ms over the GEMM for 12544x16x96 where NumPy's "
    "`+=` and `clip` cost 1.0 ms; the compiled depthwise taps cut that layer kind 7-8x "
    "(table above). Threads: numba's OpenMP pool with GOMP's default spinning ran 2-thread batch-1 inference at "
    "1317 ms/image (spinning threads starve the busy ones on a loaded machine) against 48-69 ms with idle "
    "threads sleeping (`OMP_WAIT_POLICY=PASSIVE`, what `_numba_kernels.set_threads` sets unless the user did) "
    "and 71-95 ms with numba's workqueue pool. Two more ways to share a layer's bands between 2 threads, each "
    "against OpenMP with sleeping threads in the same conditions (batch 1, load ~12, medians of 24 calls): numba's "
    "TBB pool (the `tbb` 2022.3 wheel) 53 vs 48 ms/image wall, 19.8 vs 17.0 CPU-ms; our own Python-thread pool in "
    "which the caller takes every band no helper has started (so it never waits for a helper that has no core "
    "yet, as ONNX Runtime's pool does) 57 ms wall, 23 CPU-ms, its per-band dispatch and the GIL costing more "
    "than the waits it saves. So OpenMP stays, and the 2-thread batch-1 row is this path's weak spot on a busy "
    "machine: each of the 19-35 kernel calls per image waits for the slower thread. No other kernel library was "
    "tried: oneDNN and XNNPACK have no maintained Python bindings that take NumPy arrays, and PyTorch or ONNX "
    "Runtime as the accelerator would be the peers.")


def ort_comparison(model: rl.Model, rounds: int, repeats: int, threads_list=(1, 2)) -> list[str]:
    """Markdown rows: the folded path (NumPy, and with the optional numba kernel when installed) vs ONNX
    Runtime, same weights and thread count, batch 1 and 16, alternating within each round."""
    import tempfile

    from transfer import _numba_kernels

    try:
        import onnxruntime as ort

        from rl.onnx import export_onnx
    except ImportError as e:
        return [f"ONNX Runtime: not measured ({e}; `pip install 'playgrad[onnx]'`)."]
    kernels = ["numpy", "numba"] if _numba_kernels.available() else ["numpy"]
    rng = np.random.default_rng(3)
    inputs = {b: rng.standard_normal((b, 224, 224, 3)).astype(np.float32) for b in BATCHES}
    ips: dict[tuple[str, int, int], list[float]] = {}  # (runner, threads, batch) -> images/s per round
    cpu_ips: dict[tuple[str, int, int], list[float]] = {}  # the same per CPU-second (one-thread runners)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "mobilenet_v2.onnx")
        runners = {}
        for t in threads_list:
            runners["ort", t] = ort_runner(path, t)
            if t > 1:  # spinning helps ORT on idle cores and hurts it on busy ones: it gets the better of the two
                runners["ort-sleeping", t] = ort_runner(path, t, spin=False)
            for k in kernels:
                runners[k, t] = FoldedMobileNetV2(model, threads=t, kernels=k)
        # Same weights, same answer: a wrong export or fold would make the speed comparison meaningless.
        diff = float(np.abs(runners["numpy", 1](inputs[1]) - runners["ort", 1](inputs[1])).max())
        for r in range(rounds):
            for (name, t), run in runners.items():
                for b, x in inputs.items():
                    wall, cpu = wall_and_cpu(lambda x=x, run=run: run(x), repeats)
                    ips.setdefault((name, t, b), []).append(b / wall)
                    cpu_ips.setdefault((name, t, b), []).append(b / cpu)
            print(f"round {r + 1} vs ONNX Runtime: " + ", ".join(
                f"{name} {t}t b{b} {v[-1]:.1f}" for (name, t, b), v in ips.items()), flush=True)
        for (name, _t), run in runners.items():
            if not name.startswith("ort"):
                run.close()
    med = {key: statistics.median(v) for key, v in ips.items()}
    cpu_med = {key: statistics.median(v) for key, v in cpu_ips.items()}
    numba_col = " | compiled path, numba (images/s) | numba / ORT" if "numba" in kernels else ""
    lines = [f"Machine: {machine_description()}. Command: `{command_line()}`.", "",
             f"MobileNetV2 224x224 inference against ONNX Runtime {ort.__version__} (CPU execution provider, "
             "the model exported by "
             f"`rl.onnx.export_onnx`, same weights; largest logit difference at batch 1: {diff:.1e}). Images/s, "
             f"medians of {rounds} rounds of {repeats} calls, the runners alternating within each round; "
             "`FoldedMobileNetV2` with the same number of threads (BLAS single-threaded inside it), with NumPy "
             "ops only (`kernels=\"numpy\"`: bands shared by Python threads) and, where numba is installed (the "
             "optional `accel` extra), with every conv a compiled kernel (`kernels=\"numba\"`: BLAS GEMM bands "
             "with the bias/ReLU6/residual applied in cache, depthwise taps in registers, bands shared by numba's "
             "threads). With 2 threads ONNX Runtime runs twice, its idle threads spinning (its default) and "
             "sleeping, and the table gives it the faster of the two. "
             f"Target: >= 0.5x ONNX Runtime. 1-minute load average at the end: {os.getloadavg()[0]:.1f}; "
             "on a shared machine the wall-clock rows mostly time the queue for the cores, so the one-thread "
             "rows are also given per CPU-second of the process (the work itself).", "",
             f"| threads | batch | ONNX Runtime (images/s) | playgrad NumPy path (images/s) | NumPy / ORT{numba_col} |",
             "| ---: | ---: | ---: | ---: | --- |" + (" ---: | --- |" if "numba" in kernels else "")]
    for t in threads_list:
        for b in BATCHES:
            e = max(med["ort", t, b], med.get(("ort-sleeping", t, b), 0.0))
            row = f"| {t} | {b} | {e:.1f} |"
            for k in kernels:
                o = med[k, t, b]
                row += f" {o:.1f} | {o / e:.2f}, {verdict(o / e, 0.5, higher_is_better=True)} |"
            lines.append(row)
    t = 1
    for b in BATCHES:
        e = cpu_med["ort", t, b]
        row = f"| 1, per CPU-second | {b} | {e:.1f} |"
        for k in kernels:
            o = cpu_med[k, t, b]
            row += f" {o:.1f} | {o / e:.2f}, {verdict(o / e, 0.5, higher_is_better=True)} |"
        lines.append(row)
    lines += ["", "Where the time goes (process-CPU time of each layer kind, summed over the network; "
              "`layer_breakdown` in the script):", "", *layer_breakdown(model, kernels)]
    lines += ["", KERNEL_CHOICE]
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus:
        lines += ["", f"Caution: measured on a loaded machine (load {load:.1f} on {cpus} cores). Contention (shared "
                  "caches, preemption) slows ONNX Runtime's vectorized kernels more than our path, so these ratios, "
                  "per CPU-second too, can be higher than on an idle machine: judge the target on an idle run. "
                  "At such loads the wall-clock rows, the 2-thread ones most, vary several-fold from round to round "
                  "(the script prints every round), so they do not show whether the target is met; the "
                  "per-CPU-second rows are the firmer figure."]
    return lines


def _step_kind(step, residual: bool) -> str:
    if step.kind == "dw":
        return "depthwise 3x3 (+ bias, ReLU6)"
    if step.ksize == 3:
        return "stem 3x3 conv (+ bias, ReLU6)"
    return "1x1 conv, expand/last (+ bias, ReLU6)" if step.relu6 else (
        "1x1 conv, project (+ bias, residual)" if residual else "1x1 conv, project (+ bias)")


def layer_breakdown(model: rl.Model, kernels: list[str], repeats: int = 10) -> list[str]:
    """Markdown rows: process-CPU milliseconds per image by kind of layer, one thread, batch 1, for the NumPy
    path and (when ``"numba"`` is in ``kernels``) the compiled path with one kernel per conv and with its fused
    kernels; the variants alternate call by call (CPU time, so a busy machine's queue is not counted)."""
    from transfer import _numba_kernels
    from transfer import mobilenet_v2 as mv

    x = np.random.default_rng(4).standard_normal((1, 224, 224, 3)).astype(np.float32)
    variants = {"NumPy path": ("numpy", True)}
    if "numba" in kernels:
        variants.update({"compiled, one kernel per conv": ("numba", False), "compiled, fused": ("numba", True)})
    spent: dict[str, dict[str, float]] = {label: {} for label in variants}
    current = [""]  # the variant being timed

    def timed(fn, kind_of):
        def wrapper(*args):
            t = time.process_time()
            out = fn(*args)
            kind = kind_of(*args)
            spent[current[0]][kind] = spent[current[0]].get(kind, 0.0) + time.process_time() - t
            return out
        return wrapper

    kinds = {"pointwise": lambda x, w, b, relu6, res, out, rows: _step_kind(
                 mv._Step("conv", w, b, 1, 1, relu6), res.shape[0] > 0),
             "depthwise3x3": lambda x, w, b, *rest: _step_kind(mv._Step("dw", w, b, 1, 3, True), False),
             "stem3x3": lambda x, w, b, *rest: _step_kind(mv._Step("conv", w, b, 2, 3, True), False),
             "depthwise_project": lambda *args: "depthwise 3x3 + project 1x1, one kernel (+ bias, ReLU6, residual)",
             "inverted_residual": lambda *args: "expand 1x1 + depthwise 3x3 + project 1x1, one kernel per block"}
    originals = {name: getattr(_numba_kernels, name) for name in kinds} if "numba" in kernels else {}
    nets, totals = {}, {label: 0.0 for label in variants}
    try:
        for name, kind_of in kinds.items() if originals else ():
            setattr(_numba_kernels, name, timed(originals[name], kind_of))
        fused = mv._FUSE_KERNELS
        for label, (k, fuse) in variants.items():
            mv._FUSE_KERNELS = fuse  # read when the net plans its calls, at its first call
            nets[label] = FoldedMobileNetV2(model, threads=1, kernels=k)
            if k == "numpy":
                nets[label]._banded_step = timed(nets[label]._banded_step, lambda x, padded, step, pad_out, res:
                                                 _step_kind(step, res is not None))
            current[0] = label
            nets[label](x)
        mv._FUSE_KERNELS = fused
        for label in variants:
            spent[label].clear()
        for _ in range(repeats):
            for label, net in nets.items():
                current[0] = label
                t = time.process_time()
                net(x)
                totals[label] += time.process_time() - t
    finally:
        for name, fn in originals.items():
            setattr(_numba_kernels, name, fn)
        for net in nets.values():
            net.close()
    per_kind = sorted({kind for s in spent.values() for kind in s}, key=lambda kd: -spent["NumPy path"].get(kd, 0.0))
    ms = 1e3 / repeats
    lines = ["| layer kind (MobileNetV2, batch 1, 1 thread; CPU ms/image) | " + " | ".join(variants) + " |",
             "| --- |" + " ---: |" * len(variants)]
    for kind in per_kind:
        lines.append(f"| {kind} | " + " | ".join(f"{spent[v][kind] * ms:.2f}" if kind in spent[v] else "–"
                                                  for v in variants) + " |")
    lines.append("| rest (pooling, classifier, Python between layers) | " + " | ".join(
        f"{(totals[v] - sum(spent[v].values())) * ms:.2f}" for v in variants) + " |")
    lines.append("| **total** | " + " | ".join(f"**{totals[v] * ms:.2f}**" for v in variants) + " |")
    return lines


def cache_timing(model: rl.Model, n_images: int, epochs: int) -> dict[str, float]:
    """Seconds for: one backbone pass, cached training (pass + ``epochs``), one uncached epoch."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n_images, 224, 224, 3)).astype(np.float32)
    y = np.arange(n_images) % 4
    rl.seed(0)
    tm = TransferModel(model, rl.Sequential([Dense(100, activation="relu"), Dense(4)], name="head"))
    t0 = time.perf_counter()
    tm.fit_cached(x, y, epochs=epochs, batch_size=16, head_lr=1e-3)
    cached_total = time.perf_counter() - t0
    t0 = time.perf_counter()
    tm.cache.compute(x)
    backbone_pass = time.perf_counter() - t0
    # Without the cache every epoch runs the backbone on every batch (frozen, so inference only).
    tm.compile("adam", loss="sparse_categorical_crossentropy", loss_options={"from_logits": True}, lr=1e-3)
    t0 = time.perf_counter()
    tm.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    uncached_epoch = time.perf_counter() - t0
    return {"backbone_pass": backbone_pass, "cached_total": cached_total, "uncached_epoch": uncached_epoch}


def gpu_row(model: rl.Model, repeats: int) -> str:
    from rl import backend

    ok, why = backend.gpu_status()
    if not ok:
        return f"GPU: not measured — CuPy is not usable here ({why})."
    cpu = FoldedMobileNetV2(model)
    x = np.random.default_rng(0).standard_normal((16, 224, 224, 3)).astype(np.float32)
    cpu_ips = 16 / median_time(lambda: cpu(x), repeats=repeats)
    backend.use_device("gpu")
    try:
        gmodel = mobilenet_v2(weights=mobilenet_v2_path())
        gnet = FoldedMobileNetV2(gmodel)
        xd = backend.to_device(x)

        def run():
            out = gnet(xd)
            backend.to_numpy(out[:1])  # synchronise

        gpu_ips = 16 / median_time(run, repeats=repeats)
    finally:
        backend.use_device("cpu")
    return f"GPU (CuPy, batch 16): {gpu_ips:.1f} images/s, {gpu_ips / cpu_ips:.1f}x the NumPy path ({cpu_ips:.1f})."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MobileNetV2 inference vs PyTorch CPU; embedding-cache savings.")
    parser.add_argument("--torch-python", default="/tmp/benchvenv_tr/bin/python")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating torch/ours rounds")
    parser.add_argument("--cache-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime comparison")
    parser.add_argument("--ort-only", action="store_true",
                        help="only the ONNX Runtime comparison (section bench_transfer_ort)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    from rl import backend

    # The NumPy rows must run on NumPy even where a GPU is usable (auto would pick CuPy); gpu_row
    # switches to the GPU itself.
    backend.use_device("cpu")
    weights = mobilenet_v2_path()
    model = mobilenet_v2(weights=weights)
    if not args.no_ort:
        ort_markdown = ("## bench_transfer_ort: MobileNetV2 inference, playgrad vs ONNX Runtime\n\n"
                        + "\n".join(ort_comparison(model, args.rounds, args.repeats)) + "\n")
        print(ort_markdown)
        if not args.no_write:
            write_section("bench_transfer_ort", ort_markdown)
    if args.ort_only:
        return 0
    net = FoldedMobileNetV2(model)
    ours: dict[int, list[float]] = {b: [] for b in BATCHES}
    torch: dict[int, list[float]] = {b: [] for b in BATCHES}
    torch_meta = None
    for r in range(args.rounds):
        result = torch_images_per_s(args.torch_python, weights, args.repeats, net.threads)
        if result is not None:
            torch_meta = result
            for b in BATCHES:
                torch[b].append(result["images_per_s"][str(b)])
        for b, v in ours_images_per_s(net, args.repeats).items():
            ours[b].append(v)
        print(f"round {r + 1}: ours " + ", ".join(f"b{b} {ours[b][-1]:.1f}" for b in BATCHES)
              + ("; torch " + ", ".join(f"b{b} {torch[b][-1]:.1f}" for b in BATCHES) if result else ""))
    x1 = np.random.default_rng(2).standard_normal((1, 224, 224, 3)).astype(np.float32)

    def graph_forward():
        with rl.no_grad(), rl.using_config("train", False):
            model(x1)

    graph_b1 = 1 / median_time(graph_forward, repeats=args.repeats, warmup=1)

    lines = [f"Machine: {machine_description()}. Command: `{command_line()}`. Inference: medians of "
             f"{args.repeats} calls per round (after warm-up), {args.rounds} alternating rounds (median over rounds); "
             "PyTorch gets as many threads as our folded path. Ratios are playgrad / PyTorch images/s (above 1: "
             "ours faster).", "",
             "| MobileNetV2 224x224 inference | batch 1 (images/s) | batch 16 (images/s) |",
             "| --- | ---: | ---: |"]
    med = {b: statistics.median(ours[b]) for b in BATCHES}
    lines.append(f"| playgrad folded NumPy path (BN folded, banded, {net.threads} threads) | {med[1]:.1f} | "
                 f"{med[16]:.1f} |")
    lines.append(f"| playgrad rl layer graph (`model(x)`, no_grad) | {graph_b1:.1f} | – |")
    if torch_meta is not None:
        tmed = {b: statistics.median(torch[b]) for b in BATCHES}
        lines.append(f"| PyTorch {torch_meta['torch']} CPU eager, {torch_meta['threads']} threads, same weights | "
                     f"{tmed[1]:.1f} | {tmed[16]:.1f} |")
        r1, r16 = med[1] / tmed[1], med[16] / tmed[16]
        lines.append(f"| ratio playgrad / PyTorch images/s | {r1:.2f}, {verdict(r1, 0.5, higher_is_better=True)} | "
                     f"{r16:.2f}, {verdict(r16, 0.5, higher_is_better=True)} |")
    else:
        lines.append(f"| PyTorch | not measured: no torch python at {args.torch_python} | |")

    ct = cache_timing(model, args.cache_images, args.epochs)
    lines += ["", f"Embedding cache, {args.cache_images} images, head Dense(100, relu) + Dense(4), batch 16 "
              "(one timed run each, not medians; the cached run's backbone pass is its first, so it includes "
              "warm-up):", "",
              "| what | seconds |", "| --- | ---: |",
              f"| one backbone pass (embed {args.cache_images} images) | {ct['backbone_pass']:.2f} |",
              f"| cached: backbone once + {args.epochs} epochs of head training | {ct['cached_total']:.2f} |",
              f"| uncached: one epoch re-running the frozen backbone | {ct['uncached_epoch']:.2f} |",
              f"| uncached, {args.epochs} epochs (the epoch above x {args.epochs}) | "
              f"{ct['uncached_epoch'] * args.epochs:.1f} |", "",
              f"Cached training of {args.epochs} epochs costs {ct['cached_total'] / ct['backbone_pass']:.2f} backbone "
              f"passes; without the cache it would cost about "
              f"{ct['uncached_epoch'] * args.epochs / ct['backbone_pass']:.0f}.",
              "", gpu_row(model, args.repeats)]
    markdown = "## bench_transfer: MobileNetV2 inference and embedding caching\n\n" + "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("bench_transfer", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
