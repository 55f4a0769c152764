"""Transfer learning on an image folder larger than memory: stream it through MobileNetV2 once, train from disk.

    python scripts/make_image_set.py data/shapes --gigabytes 1 --classes 16     # or any class-per-folder set
    python scripts/finetune.py configs/finetune_stream.toml [--set data.image_folder=DIR] [--runs-dir runs]
    python scripts/finetune.py --resume runs/finetune_stream-s0-...             # continue after Ctrl-C
    python scripts/finetune.py CONFIG --no-progress                              # plain lines for a log file

What happens, and what stays in memory (a few batches, never the data set):

1. **embed**: the training and validation images are streamed (``data.workers`` decoding threads,
   :func:`transfer.data.imagenet_batches`) through the frozen MobileNetV2 once; the 1280-d
   embeddings go to a memory-mapped cache on disk (:meth:`transfer.api.EmbeddingCache.dataset`),
   written atomically and fingerprinted with the backbone's weights, so a rerun (or another run
   with ``data.cache_dir`` set to the same folder) reuses it and a cache from another backbone is
   refused.
2. **head**: a dense head trains ``head.epochs`` epochs on the cached embeddings (shuffled through
   a ``head.shuffle_buffer`` buffer each epoch), fast because no image is decoded and no backbone runs.
3. **fine_tune** (``fine_tune.blocks`` > 0): the top blocks of the backbone train with the head at
   ``fine_tune.lr`` on freshly streamed, randomly cropped and flipped images (the frozen blocks below
   run in inference mode); ``fine_tune.steps_per_epoch`` bounds an epoch on a big folder.

The run directory has ``config.toml``, ``command.txt``, ``info.json``, ``metrics.jsonl`` (one line
per phase/epoch, with images/s), ``checkpoints/`` (after every epoch) and ``result.json``.
``--resume RUN_DIR`` continues from the last finished epoch with the run's own config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import rl
from rl import checkpoint, data
from rl.callbacks import Callback
from rl.errors import PlaygradError
from rl.experiment import ConfigError, MetricsLogger, RunDir, load_tables
from rl.layers import Dense
from transfer.api import EmbeddingCache, GroupedOptimizer, TransferModel
from transfer.data import imagenet_batches
from transfer.mobilenet_v2 import mobilenet_v2


@dataclasses.dataclass
class ExperimentConfig:
    """The ``[experiment]`` table."""

    seed: int = 0  # seeds the split, the shuffles, the augmentation and the head's weights
    name: str = "finetune_stream"  # run directories are <runs-dir>/<name>-s<seed>-<time>


@dataclasses.dataclass
class DataConfig:
    """The ``[data]`` table: the folder, its split and the streaming pipeline."""

    image_folder: str = "data/shapes"  # one subfolder per class (scripts/make_image_set.py writes one)
    image_size: int = 224  # MobileNetV2 input side
    validation_split: float = 0.1  # of each class, held out (stratified, seeded by experiment.seed)
    batch_size: int = 32  # images per backbone call
    workers: int = 2  # decoding threads
    max_per_class: int = 0  # 0 = every image
    on_error: str = "skip"  # an unreadable image: "skip" (warned, listed in result.json) or "raise"
    cache_dir: str = ""  # where the embedding caches live; empty = RUN_DIR/cache


@dataclasses.dataclass
class BackboneConfig:
    """The ``[backbone]`` table."""

    weights: str = "imagenet"  # "imagenet" (scripts/fetch_weights.py mobilenet_v2), a .pth path, or "random"


@dataclasses.dataclass
class HeadConfig:
    """The ``[head]`` table: the classifier trained on cached embeddings."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    hidden: int = 0  # units of a hidden relu layer; 0 = softmax regression on the embedding
    shuffle_buffer: int = 16384  # embeddings in the shuffle buffer (a 1280-d float32 is 5 KiB)


@dataclasses.dataclass
class FineTuneConfig:
    """The ``[fine_tune]`` table: optional training of the backbone's top blocks on streamed images."""

    blocks: int = 0  # top blocks of MobileNetV2 to train (0 = head only; 2 = features.17-18)
    epochs: int = 1
    lr: float = 1e-4  # the backbone blocks' learning rate
    head_lr: float = 1e-4  # the head's learning rate while fine-tuning
    batch_size: int = 16
    steps_per_epoch: int = 0  # 0 = the whole training split per epoch
    augment: bool = True  # random crops and flips


TABLES = {"experiment": ExperimentConfig, "data": DataConfig, "backbone": BackboneConfig, "head": HeadConfig,
          "fine_tune": FineTuneConfig}


def load_config(path: str | None, overrides: list[str]) -> dict[str, Any]:
    """The config's tables as dataclasses (``--set`` applied); errors name the file, table and key."""
    cfg = load_tables(path, overrides, TABLES)
    if cfg["data"].on_error not in ("skip", "raise"):
        raise ConfigError(f"{path or 'config'} [data] on_error: expected 'skip' or 'raise', "
                          f"got {cfg['data'].on_error!r}")
    return cfg


class Progress:
    """Prints ``label: done/total images, N images/s`` on one line, at most a few times a second.

    With ``live=False`` (``--no-progress``: logs, CI, a pipe) only the finished line is printed: a
    carriage-return line rewritten twice a second is noise in a log file.
    """

    def __init__(self, label: str, total: int | None, log: Any, live: bool = True):
        self.label, self.total, self.log, self.live = label, total, log, live
        self.start = time.perf_counter()
        self.last = 0.0
        self.done = 0

    def __call__(self, done: int) -> None:
        self.done = done
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last > 0.5 or done == self.total:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            self.log(f"\r{self.label}: {done}{of} images, {self.rate():.1f} images/s", end="", flush=True)

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def finish(self) -> dict[str, float]:
        if self.live:
            self.log("")
        else:
            self.log(f"{self.label}: {self.done} images, {self.rate():.1f} images/s")
        return {"images": self.done, "seconds": round(time.perf_counter() - self.start, 3),
                "images_per_s": round(self.rate(), 2)}


class EpochRecorder(Callback):
    """After every epoch: a metrics line (with images/s), a printed Keras-style line and a checkpoint."""

    def __init__(self, phase: str, run: RunDir, metrics: MetricsLogger, save: Any, epochs: int, log: Any):
        super().__init__()
        self.phase, self.run, self.metrics, self.save, self.epochs, self.log = phase, run, metrics, save, epochs, log

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start, self.samples = time.perf_counter(), 0
        self.trained = self.start

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.samples += int((logs or {}).get("size", 0))
        self.trained = time.perf_counter()  # the training part of the epoch ends with its last batch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.start
        train_seconds = self.trained - self.start  # images/s of training, not of the validation pass after it
        record = {"phase": self.phase, "epoch": epoch + 1, "seconds": round(seconds, 3),
                  "train_seconds": round(train_seconds, 3),
                  "images_per_s": round(self.samples / max(train_seconds, 1e-9), 1),
                  **{k: round(float(v), 6) for k, v in (logs or {}).items()}}
        self.metrics.log(record)
        self.save()
        self.run.write_json("state.json",
                            {"phase": self.phase, "epoch": epoch + 1, "metrics_lines": self.metrics.lines})
        shown = " - ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
        self.log(f"{self.phase} epoch {epoch + 1}/{self.epochs} - {seconds:.1f} s - "
                 f"{record['images_per_s']:.0f} images/s - {shown}")


def _datasets(cfg: dict[str, Any]) -> tuple[data.Dataset, data.Dataset]:
    """The training and validation image batches (checks the folder before any run directory exists)."""
    d, seed = cfg["data"], cfg["experiment"].seed
    common = {"image_size": d.image_size, "batch_size": d.batch_size, "workers": d.workers, "on_error": d.on_error,
              "max_per_class": d.max_per_class or None, "validation_split": d.validation_split, "split_seed": seed}
    return imagenet_batches(d.image_folder, subset="training", **common), \
        imagenet_batches(d.image_folder, subset="validation", **common)


def _backbone(cfg: dict[str, Any]) -> rl.Model:
    weights = cfg["backbone"].weights
    size = cfg["data"].image_size
    return mobilenet_v2(weights=None if weights == "random" else weights, input_shape=(size, size, 3))


def _head(cfg: dict[str, Any], classes: int) -> rl.Sequential:
    h = cfg["head"]
    layers = [Dense(h.hidden, activation="relu", input_shape=(1280,))] if h.hidden else []
    layers.append(Dense(classes, input_shape=None if h.hidden else (1280,)))
    head = rl.Sequential(layers, name="head")
    head.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                 loss_options={"from_logits": True}, lr=h.lr)
    return head


def finetune(config: str | None, overrides: list[str], runs_dir: str = "runs", resume: str | None = None,
             log: Any = print, progress: bool = True) -> Path:
    """Run (or continue) the three phases; returns the run directory.

    ``progress=False`` prints each embedding pass once, when it ends, instead of a live line.
    """
    if resume:
        run = RunDir.open(resume)
        cfg = load_config(str(run.config_path), [])
        state = json.loads((run.path / "state.json").read_text()) if (run.path / "state.json").exists() else None
    else:
        cfg = load_config(config, overrides)
        state = None
    train_images, val_images = _datasets(cfg)  # a missing folder or an empty class fails here, before the run
    seed = cfg["experiment"].seed
    if not resume:
        run = RunDir.create(runs_dir, cfg["experiment"].name, seed)
        run.write_start({k: dataclasses.asdict(v) for k, v in cfg.items()}, sys.argv,
                        {"seed": seed, "device": rl.backend.current().description})
    log(f"run directory: {run.path}")
    metrics = MetricsLogger(run.metrics_path, resume_lines=state["metrics_lines"] if state else None)
    classes = train_images.classes
    rl.seed(seed)
    backbone = _backbone(cfg)
    cache_dir = Path(cfg["data"].cache_dir) if cfg["data"].cache_dir else run.path / "cache"

    # 1. embed: one streamed pass through the frozen backbone per split, cached on disk
    extractor = EmbeddingCache(backbone, batch_size=cfg["data"].batch_size)
    feats = {}
    for split, images in (("train", train_images), ("validation", val_images)):
        meter = Progress(f"embedding {split}", len(images.files), log, live=progress)
        feats[split] = extractor.dataset(images, cache_dir / split, meter)
        if meter.done:  # computed now, not read from an earlier pass
            metrics.log({"phase": "embed", "split": split, **meter.finish()})
    skipped = sorted(set(train_images.skipped) | set(val_images.skipped))

    # 2. head on the cached embeddings
    h = cfg["head"]
    head_path = run.checkpoints / "head.safetensors"
    if state and head_path.exists():
        head = checkpoint.load_model(head_path)
    else:
        head = _head(cfg, len(classes))
    start = state["epoch"] if state and state["phase"] == "head" else (h.epochs if state else 0)
    recorder = EpochRecorder("head", run, metrics, lambda: checkpoint.save_model(head, head_path), h.epochs, log)
    if start < h.epochs:
        head.fit(feats["train"].shuffle(h.shuffle_buffer, seed=seed).batch(h.batch_size), epochs=h.epochs,
                 validation_data=feats["validation"].batch(h.batch_size), initial_epoch=start, verbose=0,
                 callbacks=[recorder])
    result = {"classes": classes, "skipped": skipped,
              "head": head.evaluate(feats["validation"].batch(h.batch_size), return_dict=True)}

    # 3. optional fine-tuning of the top blocks on streamed, augmented images
    ft = cfg["fine_tune"]
    if ft.blocks > 0:
        result["fine_tune"] = _fine_tune(cfg, run, metrics, backbone, head, state, log)
    run.write_json("result.json", result)
    metrics.close()
    log(f"validation accuracy: head {result['head']['accuracy']:.4f}"
        + (f", fine-tuned {result['fine_tune']['accuracy']:.4f}" if "fine_tune" in result else "")
        + f" ({len(classes)} classes; {len(skipped)} unreadable image(s) skipped)")
    return run.path


def _fine_tune(cfg: dict[str, Any], run: RunDir, metrics: MetricsLogger, backbone: rl.Model, head: rl.Model,
               state: dict | None, log: Any) -> dict[str, float]:
    """Phase 3: train the top ``fine_tune.blocks`` blocks and the head on streamed images."""
    ft, d, seed = cfg["fine_tune"], cfg["data"], cfg["experiment"].seed
    model = TransferModel(backbone, head, fine_tune_blocks=ft.blocks)
    frozen = model.cache  # runs the frozen blocks (inference mode, folded) on each streamed batch
    assert frozen is not None

    def below(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return frozen.compute(images), labels

    common = {"image_size": d.image_size, "batch_size": ft.batch_size, "workers": d.workers, "on_error": d.on_error,
              "max_per_class": d.max_per_class or None, "validation_split": d.validation_split, "split_seed": seed}
    train = imagenet_batches(d.image_folder, subset="training", shuffle=True, seed=seed, augment=ft.augment,
                             drop_remainder=True, **common).map(below, name="frozen_blocks")
    if ft.steps_per_epoch:
        train = train.take(ft.steps_per_epoch)
    val = imagenet_batches(d.image_folder, subset="validation", **common).map(below, name="frozen_blocks")
    top = model.top
    first = next(iter(val))[0][:1]
    top(rl.Tensor(first))
    head_ids = {id(p) for p in head.parameters()}
    opt = GroupedOptimizer([(head.parameters(), ft.head_lr),
                            ([p for p in top.parameters() if id(p) not in head_ids], ft.lr)])
    top.compile(opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"], loss_options={"from_logits": True})
    path = run.checkpoints / "fine_tune.safetensors"

    def save() -> None:
        arrays = {f"backbone/{k}": v for k, v in backbone.state_dict().items()}
        arrays.update({f"head/{k}": v for k, v in head.state_dict().items()})
        arrays.update({f"optimizer/{k}": v for k, v in opt.state_dict().items()})
        checkpoint.write_safetensors(path, {k: rl.backend.to_numpy(v) for k, v in arrays.items()}, {})

    start = 0
    if state and state["phase"] == "fine_tune" and path.exists():
        arrays, _ = checkpoint.read_safetensors(path)
        for prefix, part in (("backbone/", backbone), ("head/", head), ("optimizer/", opt)):
            part.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        start = state["epoch"]
    recorder = EpochRecorder("fine_tune", run, metrics, save, ft.epochs, log)
    history = top.fit(train.prefetch(2), epochs=ft.epochs, validation_data=val, initial_epoch=start, verbose=0,
                      callbacks=[recorder])
    last = {k[len("val_"):]: v[-1] for k, v in history.history.items() if k.startswith("val_") and v}
    # the last epoch's validation pass already evaluated these weights: a second pass through the
    # backbone would only repeat it (minutes on a big folder); a resumed run with no epoch left runs it
    return last or top.evaluate(val, return_dict=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("config", nargs="?", default=None, help="TOML config, e.g. configs/finetune_stream.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override one config value, e.g. --set head.epochs=5 (repeatable)")
    parser.add_argument("--runs-dir", default="runs", help="where run directories are created (default runs/)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last finished epoch")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live images/s line while embedding: one line per pass when it ends (for logs)")
    args = parser.parse_args(argv)
    if args.resume and (args.config or args.overrides):
        print("error: --resume continues a run with its saved config; drop CONFIG and --set", file=sys.stderr)
        return 2
    try:
        finetune(args.config, args.overrides, args.runs_dir, args.resume, progress=not args.no_progress)
    except (PlaygradError, ValueError, OSError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped; the last finished epoch is checkpointed. Continue with --resume RUN_DIR", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
