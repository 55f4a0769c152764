"""rl.data benchmarks on an image folder: the input pipeline beside PyTorch's, the cache, the memory bound.

    python scripts/make_image_set.py /tmp/shapes --gigabytes 0.5 --classes 16
    python benchmarks/bench_data.py --folder /tmp/shapes --torch-python /tmp/benchvenv/bin/python [--rss]

1. **Pipeline**: decode JPEG -> resize the shorter side to 256 -> center-crop 224 -> normalize with the
   ImageNet mean/std -> batches of 32, ``--workers`` workers, over the same ``--images`` files:
   :func:`transfer.data.imagenet_batches` (Pillow in threads, normalization on whole batches) beside
   ``torch.utils.data.DataLoader`` over ``torchvision.datasets.ImageFolder`` with
   ``Resize(256), CenterCrop(224), ToTensor(), Normalize`` and ``num_workers`` = the same count. Ours
   runs twice: as shipped (a JPEG at least twice the resize size is decoded at a reduced DCT scale,
   Pillow's ``draft``) and with ``jpeg_draft=False`` (every pixel decoded, as torchvision does), so
   the table shows what the draft decode and what the rest of the pipeline contribute. Each round
   times one pass of each, alternating (ours, ours with full decodes, torch), after one untimed pass
   each to warm the page cache; medians of images/s and their ratios to torch. Torch runs in ``--torch-python`` (a
   separate venv with torch and torchvision; the project's venv does not carry torchvision), timed
   inside that process from the first ``iter(loader)`` to the last batch (worker start-up included,
   as our thread pool's is).
2. **Cache and memory** (``--rss``): ``scripts/finetune.py`` on the whole folder under
   ``/usr/bin/time -v`` (embedding pass, ``--head-epochs`` head epochs from the on-disk cache, then
   ``--fine-tune-steps`` streamed fine-tuning steps of the top 2 blocks): its peak RSS, and from its
   ``metrics.jsonl`` the images/s of the epoch through the backbone (decode + MobileNetV2) beside the
   median images/s of an epoch over the cached embeddings. Its output goes to ``finetune.log`` in a
   ``bench_data_runs-*`` folder under the temporary directory (the path is printed: follow it there).

The 1-minute load average is sampled every 30 s over the whole run and reported with the results.

3. **Device prefetch** (``--device-prefetch``): the embedding pass (pipeline + MobileNetV2 on the
   active :mod:`rl.backend` device) with batches copied to the device by the consumer, beside
   ``prefetch(2, device="active")`` copying the next batch in the background while the current one
   runs; alternating rounds, medians. On a GPU this is the copy/compute overlap; on the CPU the
   overlap of decoding with the backbone. ``scripts/gpu_checks.sh`` runs it on a CUDA machine.

Writes the ``bench_data`` section of ``docs/benchmarks.md`` (``--no-write`` only prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _benchlib import command_line, machine_description, verdict, write_section

from transfer.data import imagenet_batches

TORCH_PIPELINE = r"""
import sys, time, json
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
root, listing, workers, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
wanted = set(open(listing).read().split("\n"))
tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                         transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = datasets.ImageFolder(root, transform=tf)
ds = Subset(ds, [i for i, (p, _) in enumerate(ds.samples) if p in wanted])
loader = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False)
for line in sys.stdin:  # one timed pass per line read
    start, n = time.perf_counter(), 0
    for x, y in loader:
        n += len(y)
    print(json.dumps({"images": n, "seconds": time.perf_counter() - start, "shape": list(x.shape)}), flush=True)
"""


def ours_pass(folder: str, per_class: int, workers: int, batch: int, jpeg_draft: bool = True) -> tuple[int, float]:
    """One pass of our pipeline: (images, seconds)."""
    ds = imagenet_batches(folder, image_size=224, batch_size=batch, workers=workers, max_per_class=per_class,
                          jpeg_draft=jpeg_draft)
    start, n = time.perf_counter(), 0
    for x, _ in ds:
        n += len(x)
        assert x.shape[1:] == (224, 224, 3) and x.dtype == "float32"
    return n, time.perf_counter() - start


def bench_pipeline(folder: str, images: int, workers: int, batch: int, rounds: int, torch_python: str,
                   log=print) -> dict:
    """Alternating passes of ours (as shipped, then with full JPEG decodes) and torch's over the same files;
    medians of images/s."""
    probe = imagenet_batches(folder, batch_size=batch)
    per_class = max(1, images // len(probe.classes))
    files = imagenet_batches(folder, batch_size=batch, max_per_class=per_class).files
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(p) for p in files))
        listing = f.name
    peer = subprocess.Popen([torch_python, "-c", TORCH_PIPELINE, folder, listing, str(workers), str(batch)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def torch_pass() -> tuple[int, float]:
        peer.stdin.write("go\n")
        peer.stdin.flush()
        line = peer.stdout.readline()
        if not line:
            raise RuntimeError(f"the torch pipeline in {torch_python} stopped (is torchvision installed there?)")
        out = json.loads(line)
        assert out["shape"][1:] == [3, 224, 224]
        return out["images"], out["seconds"]

    passes = {"ours": lambda: ours_pass(folder, per_class, workers, batch),
              "ours_full_decode": lambda: ours_pass(folder, per_class, workers, batch, jpeg_draft=False),
              "torch": torch_pass}
    try:
        for fn in passes.values():  # warm the page cache (the same files for all), compile nothing later
            fn()
        rates: dict[str, list[float]] = {name: [] for name in passes}
        for r in range(rounds):
            for name, fn in passes.items():
                n, seconds = fn()
                if n != len(files):
                    raise RuntimeError(f"{name} delivered {n} images, expected {len(files)}")
                rates[name].append(n / seconds)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " images/s")
    finally:
        peer.stdin.close()
        peer.wait(timeout=60)
        os.unlink(listing)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"images": len(files), **med, "ratio": med["ours"] / med["torch"],
            "ratio_full_decode": med["ours_full_decode"] / med["torch"], "samples": rates}


def bench_finetune(folder: str, workers: int, head_epochs: int, fine_tune_steps: int, max_per_class: int = 0,
                   overrides: tuple[str, ...] = (), log=print) -> dict:
    """scripts/finetune.py on the folder (``max_per_class`` of each class; 0 = all) under /usr/bin/time -v:
    peak RSS and the epoch rates. ``overrides`` are more ``--set`` values (tests make the run tiny)."""
    root = Path(__file__).resolve().parent.parent
    runs = Path(tempfile.mkdtemp(prefix="bench_data_runs-"))
    sets = [f'data.image_folder="{folder}"', f"data.workers={workers}", f"head.epochs={head_epochs}",
            "fine_tune.blocks=2", f"fine_tune.steps_per_epoch={fine_tune_steps}",
            f"data.max_per_class={max_per_class}", *overrides]
    cmd = ["/usr/bin/time", "-v", sys.executable, str(root / "scripts" / "finetune.py"),
           str(root / "configs" / "finetune_stream.toml"), "--runs-dir", str(runs / "runs"),
           *[a for s in sets for a in ("--set", s)]]
    log("running: " + " ".join(cmd) + f"\n  (its output: {runs / 'finetune.log'})")
    start = time.perf_counter()
    with open(runs / "finetune.log", "w") as out, open(runs / "time.txt", "w+") as err:
        code = subprocess.run(cmd, stdout=out, stderr=err, text=True).returncode
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"finetune.py failed ({code}): {stderr[-2000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    run = next((runs / "runs").iterdir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    embed = [r for r in lines if r["phase"] == "embed"]
    head = [r for r in lines if r["phase"] == "head"]
    tuned = [r for r in lines if r["phase"] == "fine_tune"]
    result = json.loads((run / "result.json").read_text())
    cache_bytes = sum(p.stat().st_size for p in (run / "cache").rglob("*") if p.is_file())
    embedded, embed_s = sum(r["images"] for r in embed), sum(r["seconds"] for r in embed)
    train_embed = next(r for r in embed if r["split"] == "train")
    return {"peak_rss_mib": peak_kib / 1024, "wall_s": wall, "backbone_images_per_s": embedded / embed_s,
            "embedded_images": embedded, "embed_s": embed_s, "train_images": train_embed["images"],
            "cached_images_per_s": statistics.median(r["images_per_s"] for r in head),
            "cached_epoch_s": statistics.median(r["train_seconds"] for r in head), "head_epochs": len(head),
            "fine_tune_images_per_s": tuned[-1]["images_per_s"] if tuned else None,
            "val_accuracy_head": result["head"]["accuracy"],
            "val_accuracy_fine_tuned": result.get("fine_tune", {}).get("accuracy"),
            "classes": len(result["classes"]), "cache_mib": cache_bytes / 2**20, "run": str(run)}


def bench_device_prefetch(folder: str, images: int, workers: int, batch: int, rounds: int, log=print) -> dict:
    """Embedding pass images/s without and with ``prefetch(2, device="active")`` (alternating, medians)."""
    from rl import backend  # noqa: PLC0415
    from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2  # noqa: PLC0415

    extractor = FoldedMobileNetV2(mobilenet_v2("imagenet", cut_at="embedding"))
    per_class = max(1, images // len(imagenet_batches(folder).classes))

    def run(prefetch: bool) -> float:
        ds = imagenet_batches(folder, batch_size=batch, workers=workers, max_per_class=per_class)
        ds = ds.prefetch(2, device="active") if prefetch else ds
        start, n = time.perf_counter(), 0
        for x, _ in ds:
            feats = extractor(x if prefetch else backend.to_device(x))
            n += len(backend.to_numpy(feats))  # waits for the device
        return n / (time.perf_counter() - start)

    run(True)  # warm-up: page cache, kernels
    rates: dict[str, list[float]] = {"plain": [], "prefetch": []}
    for r in range(rounds):
        rates["plain"].append(run(False))
        rates["prefetch"].append(run(True))
        log(f"round {r + 1}/{rounds}: plain {rates['plain'][-1]:.1f} images/s, prefetch {rates['prefetch'][-1]:.1f}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"device": backend.current().description, **med, "ratio": med["prefetch"] / med["plain"]}


def folder_size(folder: str) -> tuple[int, float, str]:
    """(files, GiB, the image sizes of the first file of each class, e.g. "640x640 px")."""
    from PIL import Image  # noqa: PLC0415

    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    sizes = set()
    for class_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        first = min((p for p in class_dir.iterdir() if p.is_file()), default=None)
        if first is not None:
            with Image.open(first) as img:
                sizes.add("{}x{} px".format(*img.size))
    return len(files), sum(p.stat().st_size for p in files) / 2**30, ", ".join(sorted(sizes))


class LoadSampler:
    """The 1-minute load average every ``every`` seconds in a background thread, for the notes."""

    def __init__(self, every: float = 30.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        s = self.samples
        return (f"The 1-minute load average, sampled every 30 s over the run ({len(s)} samples), ranged "
                f"{min(s):.1f}-{max(s):.1f} (median {statistics.median(s):.1f}) on these {os.cpu_count()} cores.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--folder", required=True, help="image folder (scripts/make_image_set.py writes one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=2048, help="images per pipeline pass (spread over classes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torch-python", default="/tmp/benchvenv/bin/python",
                        help="a Python with torch and torchvision (a separate venv)")
    parser.add_argument("--rss", action="store_true", help="also run finetune.py on the whole folder (slow)")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-steps", type=int, default=40)
    parser.add_argument("--max-per-class", type=int, default=0,
                        help="images per class in the finetune.py run (0 = the whole folder)")
    parser.add_argument("--finetune-set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="one more --set for the finetune.py run (repeatable; stated in the results)")
    parser.add_argument("--device-prefetch", action="store_true",
                        help="also time the embedding pass with and without prefetch(device='active')")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out the torch comparison")
    parser.add_argument("--note", default="", help="a sentence about the machine's load, printed with the results")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        print(f"error: image folder {args.folder} does not exist", file=sys.stderr)
        return 2
    n_files, gib, sizes = folder_size(args.folder)
    load = LoadSampler()
    lines = [
        f"Folder: {n_files} JPEGs, {gib:.2f} GiB (`scripts/make_image_set.py`, {sizes}).",
    ]
    if not args.skip_pipeline:
        lines += pipeline_lines(args)
        print("\n".join(lines), flush=True)  # kept in the log should a later part fail
    if args.device_prefetch:
        dev = bench_device_prefetch(args.folder, args.images, args.workers, args.batch, args.rounds)
        lines += [
            "",
            f"Embedding pass on {dev['device']} ({args.images} images, batch {args.batch}, alternating, medians):",
            "",
            "| batches reach the device | images/s | ratio |",
            "| --- | ---: | ---: |",
            f"| copied by the training loop | {dev['plain']:.1f} | 1.00x |",
            f"| `prefetch(2, device=\"active\")`: copied in the background | {dev['prefetch']:.1f} | "
            f"{dev['ratio']:.2f}x |",
        ]
    lines += rss_lines(args) if args.rss else []
    command = command_line(argv if argv is None else ["benchmarks/bench_data.py", *argv])
    code = f"`` {command} ``" if "`" in command else f"`{command}`"  # a --note may quote commands in backticks
    lines = [f"Command: {code}",
             f"Machine: {machine_description()}. {load.summary()} {args.note}".rstrip(), *lines]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("bench_data", "## rl.data input pipeline (`benchmarks/bench_data.py`)\n\n" + text)
    return 0


def pipeline_lines(args: argparse.Namespace) -> list[str]:
    pipe = bench_pipeline(args.folder, args.images, args.workers, args.batch, args.rounds, args.torch_python)
    return [
        "",
        f"Decode -> resize 256 -> center-crop 224 -> normalize -> batch {args.batch}, {args.workers} workers, "
        f"{pipe['images']} images per pass, {args.rounds} alternating rounds (medians):",
        "",
        "| pipeline | images/s | ratio |",
        "| --- | ---: | ---: |",
        f"| rl.data (`transfer.data.imagenet_batches`, threads) | {pipe['ours']:.1f} | {pipe['ratio']:.2f}x |",
        f"| rl.data with `jpeg_draft=False` (every JPEG pixel decoded, as torchvision) | "
        f"{pipe['ours_full_decode']:.1f} | {pipe['ratio_full_decode']:.2f}x |",
        f"| torch DataLoader + torchvision transforms (processes) | {pipe['torch']:.1f} | 1.00x |",
        "",
        f"Target: at least torch's images/s: {verdict(pipe['ratio'], 1.0, higher_is_better=True, unit='x')} "
        f"as shipped, {verdict(pipe['ratio_full_decode'], 1.0, higher_is_better=True, unit='x')} with full "
        "decodes. Per-round ratios (ours / torch): "
        + ", ".join(f"{a / b:.2f}" for a, b in zip(pipe["samples"]["ours"], pipe["samples"]["torch"], strict=True))
        + "; with full decodes: "
        + ", ".join(f"{a / b:.2f}" for a, b in zip(pipe["samples"]["ours_full_decode"], pipe["samples"]["torch"],
                                                    strict=True)) + ".",
    ]


def rss_lines(args: argparse.Namespace) -> list[str]:
    fin = bench_finetune(args.folder, args.workers, args.head_epochs, args.fine_tune_steps, args.max_per_class,
                         tuple(args.finetune_set))
    speedup = fin["cached_images_per_s"] / fin["backbone_images_per_s"]
    which = f"{args.max_per_class} images per class of the folder" if args.max_per_class else "the whole folder"
    return [
        "",
        f"`scripts/finetune.py` on {which} "
        f"({fin['classes']} classes, {fin['train_images']} training "
        f"images; {args.head_epochs} head epochs from the cache, then {args.fine_tune_steps} fine-tuning steps "
        f"of the top 2 blocks on streamed augmented images), under `/usr/bin/time -v`:",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| epoch through decode + MobileNetV2 (embedding pass, training and validation images) | "
        f"{fin['backbone_images_per_s']:.1f} images/s ({fin['embedded_images']} images in {fin['embed_s']:.0f} s) |",
        f"| training epoch over the cached embeddings (median of {fin['head_epochs']}) | "
        f"{fin['cached_images_per_s']:.0f} images/s ({fin['cached_epoch_s']:.2f} s) |",
        f"| cached epoch speed-up | {speedup:.0f}x ({verdict(speedup, 50, higher_is_better=True, unit='x')}) |",
        f"| peak RSS of the whole run | {fin['peak_rss_mib']:.0f} MiB "
        f"({verdict(fin['peak_rss_mib'] * 2**20 / 1e9, 1.5, unit=' GB')}) |",
        f"| embedding cache on disk | {fin['cache_mib']:.0f} MiB |",
        f"| validation accuracy: head / after fine-tuning | {fin['val_accuracy_head']:.3f} / "
        f"{fin['val_accuracy_fine_tuned']:.3f} |",
        f"| fine-tuning throughput | {fin['fine_tune_images_per_s']:.1f} images/s |",
        f"| wall time of the run | {fin['wall_s']:.0f} s |",
    ]


if __name__ == "__main__":
    sys.exit(main())
