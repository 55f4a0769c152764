"""The book's mnist-transfer-cnn on scikit-learn's digits: train on 0-4, retrain on 5-9 three ways.

    python scripts/digits_transfer.py [configs/digits_transfer.toml] [--set retrain.epochs=5] [--out DIR]

1. **Base model** (the Keras script's CNN, 28x28x1 input): conv 32 3x3, relu, conv 32 3x3, relu,
   max-pool 2, dropout 0.25, flatten, dense 128, relu, dropout 0.5, dense 5, softmax — trained on
   the digits 0-4 (sklearn's 8x8 digits upscaled to 28x28).
2. **Retraining** on the digits 5-9 relabelled 0-4, in the browser demo's three modes:

   * ``freeze-feature-layers``: the first 7 layers (conv, relu, conv, relu, pool, dropout, flatten)
     keep their weights; only the dense head trains;
   * ``no-freezing``: everything fine-tunes from the base weights;
   * ``reinitialize-weights``: the same topology from fresh random weights (from scratch).

   Compiled as the demo: sparse categorical cross-entropy, Adam, batch 128, accuracy on the
   held-out 5-9 digits after every epoch.

Prints one Keras-style line per epoch as it trains (``fit(verbose=2)``), then the table. Writes
``digits_transfer.md`` (a table of validation accuracy per epoch per mode) and ``digits_transfer.png``
(the curves) to ``--out`` (default ``runs/digits_transfer``), and one run directory per model under it
(``base/``, ``<mode>/``: metrics per epoch, the layer table and weight histograms through
:class:`rl.vis.DashboardCallback`, and each retrained mode's confusion matrix and misclassified digits
through :func:`rl.vis.write_classification`), which ``scripts/dashboard.py --runs-dir runs`` shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

import rl
from rl.experiment import ConfigError, load_tables
from rl.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from rl.vis import DashboardCallback, write_classification
from transfer.data import load_digits, split_indices

MODES = ("freeze-feature-layers", "no-freezing", "reinitialize-weights")
N_FEATURE_LAYERS = 7  # conv, relu, conv, relu, max-pool, dropout, flatten (index.js freezes layers[0..6])


@dataclasses.dataclass
class BaseConfig:
    """The ``[base]`` table: the CNN and its training on the digits 0-4."""

    epochs: int = 5  # the Keras script's default
    batch_size: int = 128
    lr: float = 1e-3  # Keras Adam's default (the script passes optimizer='adam')
    filters: int = 32
    kernel_size: int = 3
    pool_size: int = 2


@dataclasses.dataclass
class RetrainConfig:
    """The ``[retrain]`` table: training on the digits 5-9, and which of the three modes to run."""

    epochs: int = 10  # the demo's default in the epochs field
    batch_size: int = 128
    lr: float = 0.01  # tf.train.adam(0.01) in index.js
    modes: list[str] = dataclasses.field(default_factory=lambda: list(MODES))


@dataclasses.dataclass
class DataConfig:
    """The ``[data]`` table: image side, held-out fraction and training-set cap."""

    image_size: int = 28
    test_fraction: float = 0.3  # of each digit, held out for validation
    max_train: int = 0  # 0 = all; else keep this many of each training set (0-4 and 5-9; the demo keeps 1024)


@dataclasses.dataclass
class ExperimentConfig:
    """The ``[experiment]`` table: the seed of the splits, the weights and the batches."""

    seed: int = 0


def load_config(path: str | None, overrides: list[str]) -> dict:
    """Read the TOML (if any), apply ``--set`` overrides and validate each table; errors name the key."""
    tables = {"experiment": ExperimentConfig, "data": DataConfig, "base": BaseConfig, "retrain": RetrainConfig}
    cfg = load_tables(path, overrides, tables)
    bad = [m for m in cfg["retrain"].modes if m not in MODES]
    if bad:
        raise ConfigError(f"{path or 'config'} [retrain] modes: unknown {bad}; valid: {list(MODES)}")
    return cfg


def build_cnn(cfg: BaseConfig, image_size: int, num_classes: int = 5) -> rl.Sequential:
    """The book's 12-layer CNN (softmax output) for ``(N, image_size, image_size, 1)`` images."""
    return rl.Sequential([
        Conv2D(cfg.filters, cfg.kernel_size, input_shape=(image_size, image_size, 1)),
        Activation("relu"),
        Conv2D(cfg.filters, cfg.kernel_size),
        Activation("relu"),
        MaxPooling2D(cfg.pool_size),
        Dropout(0.25),
        Flatten(),
        Dense(128),
        Activation("relu"),
        Dropout(0.5),
        Dense(num_classes),
        Activation("softmax"),
    ], name="mnist_transfer_cnn")


def split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, max_train: int = 0):
    """Stratified train/test split of ``x (N, ...)``, ``y (N,)``; ``max_train`` > 0 keeps that many training
    samples (the first in dataset order)."""
    tr, te = split_indices(y, fraction, seed)
    if max_train:
        tr = tr[:max_train]
    return (x[tr], y[tr]), (x[te], y[te])


def run(cfg: dict, out_dir: Path, verbose: bool = True) -> dict[str, list[float]]:
    """Train the base model, retrain in each mode; return ``{mode: [val_accuracy per epoch]}`` and write outputs."""
    seed = cfg["experiment"].seed
    data, base_cfg, re_cfg = cfg["data"], cfg["base"], cfg["retrain"]
    x, y = load_digits(data.image_size)
    lo, hi = y < 5, y >= 5
    (x_lo, y_lo), (x_lo_test, y_lo_test) = split(x[lo], y[lo], data.test_fraction, seed, data.max_train)
    (x_hi, y_hi), (x_hi_test, y_hi_test) = split(x[hi], y[hi] - 5, data.test_fraction, seed, data.max_train)

    rl.seed(seed)
    base = build_cnn(base_cfg, data.image_size)
    base.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=base_cfg.lr)
    t0 = time.perf_counter()
    if verbose:
        print(f"base model on digits 0-4 ({len(x_lo)} training images):")
    base.fit(x_lo, y_lo, epochs=base_cfg.epochs, batch_size=base_cfg.batch_size, verbose=2 if verbose else 0,
             seed=seed, callbacks=[DashboardCallback(out_dir / "base", config=dataclasses.asdict(base_cfg))])
    base_acc = base.evaluate(x_lo_test, y_lo_test, return_dict=True)["accuracy"]
    if verbose:
        print(f"base model on digits 0-4: test accuracy {base_acc:.4f} after {base_cfg.epochs} epochs "
              f"({time.perf_counter() - t0:.1f} s, {len(x_lo)} training images)")
    base_weights = base.get_weights()

    curves: dict[str, list[float]] = {}
    for mode in re_cfg.modes:
        rl.seed(seed + 1)
        model = build_cnn(base_cfg, data.image_size)
        if mode != "reinitialize-weights":
            model.set_weights(base_weights)
        if mode == "freeze-feature-layers":
            for layer in model.layers[:N_FEATURE_LAYERS]:
                layer.trainable = False
        model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=re_cfg.lr)
        t0 = time.perf_counter()
        if verbose:
            print(f"retraining on digits 5-9, {mode}:")
        board = DashboardCallback(out_dir / mode, config={"mode": mode, **dataclasses.asdict(re_cfg)})
        hist = model.fit(x_hi, y_hi, epochs=re_cfg.epochs, batch_size=re_cfg.batch_size,
                         validation_data=(x_hi_test, y_hi_test), verbose=2 if verbose else 0, seed=seed,
                         callbacks=[board])
        write_classification(out_dir / mode, y_hi_test, model.predict(x_hi_test), labels=[str(d) for d in range(5, 10)],
                             examples=x_hi_test, split="validation")
        curves[mode] = [float(a) for a in hist.history["val_accuracy"]]
        if verbose:
            print(f"{mode:>22s}: val accuracy {curves[mode][-1]:.4f} after {re_cfg.epochs} epochs "
                  f"({time.perf_counter() - t0:.1f} s, {len(model.parameters())} trainable tensors)")

    out_dir.mkdir(parents=True, exist_ok=True)
    table = format_table(curves, base_acc, len(x_hi), len(x_hi_test))
    (out_dir / "digits_transfer.md").write_text(table)
    plot(curves, out_dir / "digits_transfer.png")
    if verbose:
        print(table)
        print(f"wrote {out_dir / 'digits_transfer.md'} and {out_dir / 'digits_transfer.png'}")
    return curves


def format_table(curves: dict[str, list[float]], base_acc: float, n_train: int, n_test: int) -> str:
    """Markdown: one row per epoch, one column per mode (validation accuracy on digits 5-9)."""
    modes = list(curves)
    epochs = max(len(c) for c in curves.values())
    lines = [f"Base CNN on digits 0-4: test accuracy {base_acc:.4f}. Retraining on digits 5-9 "
             f"({n_train} train / {n_test} validation images); validation accuracy per epoch:", "",
             "| epoch | " + " | ".join(modes) + " |", "| ---: | " + " | ".join("---:" for _ in modes) + " |"]
    for e in range(epochs):
        cells = [f"{curves[m][e]:.4f}" if e < len(curves[m]) else "" for m in modes]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[float]], path: Path) -> None:
    """Validation accuracy per epoch, one line per mode, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for mode, accs in curves.items():
        ax.plot(range(1, len(accs) + 1), accs, marker="o", label=mode)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (digits 5-9)")
    ax.set_title("Retraining the digits 0-4 CNN on 5-9")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=None, help="TOML config (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override one config value, e.g. --set retrain.epochs=5 (repeatable)")
    parser.add_argument("--out", default="runs/digits_transfer", help="output folder for the table and plot")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run(cfg, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
