"""``rl.vis``: the tfjs-vis of playgrad. Figures of training and of models for scripts and notebooks, and the
files that put a ``fit()`` or a classifier on the dashboard (``python scripts/dashboard.py``).

Each figure function returns a matplotlib ``Figure`` and, given ``path``, also saves it as a PNG::

    from rl import vis
    history = model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[vis.DashboardCallback("runs/mnist")])
    vis.history(history)                                   # tfvis.show.history
    vis.confusion_matrix(y_test, y_pred, labels, path="cm.png")   # tfvis.render.confusionMatrix
    vis.per_class_accuracy(y_test, y_pred, labels)         # tfvis.show.perClassAccuracy
    vis.model_summary(model); vis.histograms(model)        # tfvis.show.modelSummary / layer
    vis.activations(model, image[None], "conv2d_1")        # feature maps of one layer
    vis.write_classification("runs/digits", y_test, y_pred, labels, examples=x_test)  # the dashboard's view

Labels and predictions are class indices ``(N,)`` (one-hot or probability rows ``(N, K)`` are reduced with
argmax). Figures use matplotlib's Agg backend when no display is set, so this works on servers.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend
from rl.callbacks import Callback
from rl.experiment import MetricsLogger, RunDir, atomic_write_text, dump_toml
from rl.summaries import (
    HistogramWriter,
    MetricsFile,
    TensorBoardWriter,
    layers_json_path,
    model_table,
    named_tensors,
    summarize,
    write_layers_json,
)

__all__ = [
    "DashboardCallback",
    "activations",
    "class_metrics",
    "confusion_counts",
    "confusion_matrix",
    "histograms",
    "history",
    "model_summary",
    "per_class_accuracy",
    "write_classification",
]

MAX_EXAMPLES = 32  # misclassified examples kept by write_classification


def _plt() -> Any:
    import matplotlib  # noqa: PLC0415 - figures only when asked for

    if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower():
        matplotlib.use("Agg")  # no screen: draw to files (a notebook's inline backend is kept)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _finish(fig: Any, path: str | os.PathLike | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _labels_of(a: Any, what: str) -> np.ndarray:
    a = np.asarray(backend.to_numpy(a))
    if a.ndim == 2:
        a = a.argmax(axis=1)
    if a.ndim != 1:
        raise ValueError(f"{what} must be class indices (N,) or one row per example (N, K), got shape {a.shape}")
    if a.size and (a.min() < 0 or not np.all(a == np.round(a))):
        raise ValueError(f"{what} must be non-negative integer class indices")
    return a.astype(np.int64)


# ------------------------------------------------------------------------------------------------ metrics
def confusion_counts(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class (tfvis.metrics.confusionMatrix)."""
    t, p = _labels_of(y_true, "y_true"), _labels_of(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    k = num_classes or int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"class index {max(t.max(), p.max())} is out of range for {k} classes (labels)")
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (t, p), 1)
    return counts


def class_metrics(y_true: Any, y_pred: Any, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per class ``precision``, ``recall`` (= per-class accuracy, tfvis' perClassAccuracy) and ``support``,
    each ``(K,)``; a class never predicted has precision 0, a class never present recall 0."""
    cm = confusion_counts(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    return {"precision": precision, "recall": recall, "support": support}


def _names(labels: Sequence[Any] | None, k: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(k)]
    if len(labels) < k:
        raise ValueError(f"{len(labels)} labels for {k} classes")
    return [str(label) for label in labels[:k]]


# ------------------------------------------------------------------------------------------------ figures
def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None, normalize: bool = False,
                     path: str | os.PathLike | None = None) -> Any:
    """A heat map of :func:`confusion_counts` with the count (or, ``normalize``, the row fraction) in each cell."""
    plt = _plt()
    k = len(labels) if labels is not None else None
    cm = confusion_counts(y_true, y_pred, k)
    names = _names(labels, cm.shape[0])
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(shown, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({cm.sum()} examples, accuracy {np.trace(cm) / max(cm.sum(), 1):.1%})")
    top = shown.max() if shown.size else 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            text = f"{shown[i, j]:.2f}" if normalize else str(cm[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > 0.6 * top else "black")
    return _finish(fig, path)


def per_class_accuracy(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None,
                       path: str | os.PathLike | None = None) -> Any:
    """Bars of each class's accuracy (recall: the fraction of its examples predicted right) and precision."""
    plt = _plt()
    k = len(labels) if labels is not None else None
    m = class_metrics(y_true, y_pred, k)
    names = _names(labels, len(m["recall"]))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(names) + 2), 3.6))
    ax.bar(x - 0.2, m["recall"], width=0.4, label="accuracy (recall)", color="#2f6fdf")
    ax.bar(x + 0.2, m["precision"], width=0.4, label="precision", color="#e8590c")
    ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("per-class accuracy")
    return _finish(fig, path)


def _history_columns(source: Any) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """``{metric: (x, y)}`` and the x label from a History, a dict of lists or a run directory."""
    if hasattr(source, "history") and isinstance(source.history, Mapping):
        epochs = np.asarray(getattr(source, "epoch", None) or range(len(next(iter(source.history.values()), []))))
        return {k: (epochs + 1, np.asarray(v, dtype=np.float64)) for k, v in source.history.items()}, "epoch"
    if isinstance(source, Mapping):
        return {k: (np.arange(1, len(v) + 1), np.asarray(v, dtype=np.float64)) for k, v in source.items()}, "epoch"
    path = Path(source)
    metrics = MetricsFile(path / "metrics.jsonl" if path.is_dir() else path)
    metrics.refresh()
    if metrics.errors:
        raise ValueError(metrics.errors[0])
    hidden = {"env_steps", "step", "epoch", "iteration", "time_s"}
    cols = {k: (np.frombuffer(x), np.frombuffer(y)) for k, (x, y) in metrics.columns.items() if k not in hidden}
    return cols, "env steps" if "env_steps" in metrics.columns else "step"


def history(history_or_run: Any, metrics: Sequence[str] | None = None, path: str | os.PathLike | None = None) -> Any:
    """Curves of a training: a ``fit()`` History (or its ``.history`` dict), or a run directory / metrics.jsonl.

    One panel per metric, its ``val_`` twin drawn in the same panel (tfvis.show.history). ``metrics`` picks
    which (default: all, ``val_*`` folded into their panels; for an RL run: episode_return and the losses).
    """
    plt = _plt()
    cols, xlabel = _history_columns(history_or_run)
    if metrics is None:
        metrics = [k for k in cols if not k.startswith("val_")]
        if "episode_return" in metrics:
            metrics = [k for k in metrics if k == "episode_return" or "loss" in k]
    missing = [m for m in metrics if m not in cols]
    if missing:
        raise ValueError(f"no metric {missing[0]!r}; logged: {', '.join(sorted(cols))}")
    if not metrics:
        raise ValueError("nothing logged to plot yet")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        x, y = cols[name]
        ax.plot(x, y, label=name, color="#2f6fdf", marker="o" if len(x) < 30 else None, markersize=3)
        if f"val_{name}" in cols:
            vx, vy = cols[f"val_{name}"]
            ax.plot(vx, vy, label=f"val_{name}", color="#e8590c", marker="o" if len(vx) < 30 else None, markersize=3)
            ax.legend(fontsize=8)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    return _finish(fig, path)


def histograms(model: Any, bins: int = 30, gradients: bool = True, path: str | os.PathLike | None = None) -> Any:
    """A histogram of every trainable weight of ``model`` (and, where held, its gradient), titled with its
    stats: shape, min, max, zeros, NaNs (tfvis.show.layer / valuesDistribution)."""
    plt = _plt()
    entries = []
    for name, tensor in named_tensors({model.name: model}):
        entries.append((name, "weights", tensor.data, tensor.shape))
        if gradients and tensor.grad is not None:
            entries.append((name, "gradient", tensor.grad, tensor.shape))
    if not entries:
        raise ValueError(f"model {model.name!r} has no trainable weights (is it built?)")
    cols = min(3, len(entries))
    rows = -(-len(entries) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.ravel()[len(entries):]:
        ax.set_visible(False)
    for ax, (name, kind, values, shape) in zip(axes.ravel(), entries):
        s = summarize(values, bins)
        if s["counts"]:
            edges = np.linspace(s["lo"], s["hi"], len(s["counts"]) + 1)
            ax.stairs(s["counts"], edges, fill=True, color="#2f6fdf" if kind == "weights" else "#e8590c", alpha=0.8)
        ax.set_title(f"{name} {kind} {tuple(shape)}", fontsize=8)
        ax.text(0.02, 0.97, f"min {s['min']:.3g}  max {s['max']:.3g}\nzeros {s['zeros']}  NaN {s['nans']}",
                transform=ax.transAxes, va="top", fontsize=7, color="#444")
    return _finish(fig, path)


def model_summary(model: Any, path: str | os.PathLike | None = None) -> Any:
    """The model's layer table (name, type, output shape, parameters) as a figure (tfvis.show.modelSummary)."""
    plt = _plt()
    table = model_table(model)
    if not table["layers"]:
        raise ValueError(f"model {model.name!r} is not built yet: call it on data or give input_shape=...")
    rows = [[f"{r['name']} ({r['type']})", r["output_shape"], f"{r['params']:,}"] for r in table["layers"]]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.1))
    ax.axis("off")
    t = ax.table(cellText=rows, colLabels=["layer (type)", "output shape", "parameters"], loc="upper center",
                 cellLoc="left", colLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    ax.set_title(f"{table['name']}: {table['total_params']:,} parameters ({table['trainable_params']:,} trainable)",
                 fontsize=10)
    return _finish(fig, path)


def layer_output(model: Any, x: Any, layer: str | int) -> np.ndarray:
    """The output of ``layer`` (a name or index of ``model.layers``) for the input batch ``x``, as NumPy.

    Sequential models run their layers up to it; functional models build a sub-model ending at the layer.
    """
    import rl  # noqa: PLC0415

    target = model.get_layer(name=layer) if isinstance(layer, str) else model.get_layer(index=layer)
    with rl.no_grad(), rl.using_config("train", False):  # inference: dropout off, batch norm's running stats
        if isinstance(model, rl.Sequential):
            out = rl.as_tensor(np.asarray(x, dtype=np.float32))
            for lay in model.layers:
                out = lay(out)
                if lay is target:
                    break
        else:
            out = rl.Model(inputs=model.inputs, outputs=target.output)(np.asarray(x, dtype=np.float32))
    return np.asarray(backend.to_numpy(out.data if hasattr(out, "data") else out))


def activations(model: Any, x: Any, layer: str | int, max_maps: int = 16,
                path: str | os.PathLike | None = None) -> Any:
    """The feature maps of ``layer`` for the first example of ``x`` (``(1, H, W, C)`` images: one panel per
    channel, the first ``max_maps``; flat outputs ``(1, units)``: one bar per unit)."""
    plt = _plt()
    out = layer_output(model, x, layer)[0]
    name = layer if isinstance(layer, str) else model.layers[layer].name
    if out.ndim == 3:
        n = min(max_maps, out.shape[-1])
        cols = min(8, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows + 0.4), squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if i < n:
                ax.imshow(out[..., i], cmap="viridis")
                ax.set_title(str(i), fontsize=7)
        fig.suptitle(f"{name}: {n} of {out.shape[-1]} feature maps {out.shape[0]}x{out.shape[1]}", fontsize=9)
    else:
        flat = out.ravel()
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.bar(np.arange(flat.size), flat, color="#2f6fdf")
        ax.set_title(f"{name}: {flat.size} activations", fontsize=9)
        ax.set_xlabel("unit")
    return _finish(fig, path)


# ------------------------------------------------------------------------------------------------ run files
def write_classification(run_dir: str | os.PathLike, y_true: Any, y_pred: Any, labels: Sequence[Any],
                         examples: Any = None, split: str = "test", max_examples: int = MAX_EXAMPLES) -> Path:
    """Put a classifier's results on the dashboard: ``run_dir/classification.json`` (+ ``misclassified/*.png``).

    The JSON holds ``labels``, ``confusion`` (K x K counts, row = true), ``per_class`` (label, precision,
    recall, support), ``accuracy``, ``count``, ``split`` and ``misclassified``: up to ``max_examples``
    ``{"index", "true", "pred", "image"}`` where ``image`` is a PNG path relative to ``run_dir`` when
    ``examples`` (images ``(N, H, W)`` or ``(N, H, W, C)``, values in [0, 1] or [0, 255]) were given.

    Args:
        run_dir: the run's directory (created if missing).
        y_true, y_pred: class indices ``(N,)`` (or ``(N, K)`` rows, reduced by argmax).
        labels: the K class names.
    Returns:
        The path of ``classification.json``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t, p = _labels_of(y_true, "y_true"), _labels_of(y_pred, "y_pred")
    cm = confusion_counts(t, p, len(labels))
    m = class_metrics(t, p, len(labels))
    wrong = np.flatnonzero(t != p)[:max_examples]
    misclassified = []
    if examples is not None:
        images = np.asarray(backend.to_numpy(examples))
        if len(images) != len(t):
            raise ValueError(f"examples has {len(images)} images but y_true has {len(t)} labels")
        (run_dir / "misclassified").mkdir(exist_ok=True)
    for i in wrong:
        entry: dict[str, Any] = {"index": int(i), "true": str(labels[t[i]]), "pred": str(labels[p[i]])}
        if examples is not None:
            entry["image"] = f"misclassified/{int(i)}.png"
            _save_image(images[i], run_dir / entry["image"])
        misclassified.append(entry)
    data = {
        "labels": [str(label) for label in labels], "confusion": cm.tolist(), "split": split,
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "count": int(cm.sum()),
        "per_class": [{"label": str(labels[k]), "precision": float(m["precision"][k]),
                       "recall": float(m["recall"][k]), "support": int(m["support"][k])} for k in range(len(labels))],
        "misclassified": misclassified,
    }
    path = run_dir / "classification.json"
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def _save_image(image: np.ndarray, path: Path) -> None:
    from PIL import Image  # noqa: PLC0415

    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    lo, hi = float(a.min()), float(a.max())
    if hi <= 1.0 and lo >= 0.0:
        a = a * 255.0
    elif lo < 0.0 or hi > 255.0:  # standardized inputs: stretch to the visible range
        a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if max(img.size) < 64:  # 8x8 digits: big enough to see, pixels kept sharp
        factor = -(-64 // max(img.size))
        img = img.resize((img.size[0] * factor, img.size[1] * factor), Image.NEAREST)
    img.save(path)


class DashboardCallback(Callback):
    """Stream a ``fit()`` into a run directory the dashboard shows live (tfvis.show.fitCallbacks).

    Writes ``metrics.jsonl``: every ``batch_every`` batches ``{"step", "batch_loss"}``, at each epoch end
    ``{"epoch", "step", **logs}`` (loss, metrics, val_*), at the end ``{"event": "train_end", "step"}``
    (the dashboard then shows the run as finished); ``config.toml`` (``config``, when given) and
    ``command.txt``; ``layers.json`` (the layer table); ``histograms.jsonl`` every ``histogram_every`` epochs;
    TensorBoard event files under ``run_dir/tensorboard`` with ``tensorboard=True``.

    Args:
        run_dir: the run directory (created; an existing ``metrics.jsonl`` is replaced).
        histogram_every: epochs between weight/gradient histograms (0: none).
        tensorboard: also write TensorBoard event files (needs tensorboardX).
        config: a plain dict of what was trained (hyperparameters), shown in the dashboard's Compare tab.
        batch_every: batches between ``batch_loss`` records (0: none).
    """

    def __init__(self, run_dir: str | os.PathLike, histogram_every: int = 1, tensorboard: bool = False,
                 config: Mapping[str, Any] | None = None, batch_every: int = 10):
        super().__init__()
        self.run = RunDir(run_dir)
        self.histogram_every = histogram_every
        self.batch_every = batch_every
        self.config = dict(config or {})
        self.tensorboard = tensorboard
        self.step = 0
        self._lines = 0  # metrics lines written by earlier fit() calls with this callback
        self._metrics: MetricsLogger | None = None
        self._hist: HistogramWriter | None = None
        self._tb: TensorBoardWriter | None = None
        if tensorboard:
            TensorBoardWriter.check_installed()

    def _log(self, record: dict[str, Any]) -> None:
        self._metrics.log(record)
        if self._tb is not None:
            self._tb.scalars({k: v for k, v in record.items() if k != "step"}, self.step)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # A second fit() with the same callback continues the files (a fresh callback starts them anew).
        self._metrics = MetricsLogger(self.run.metrics_path, resume_lines=self._lines or None)
        if self.histogram_every > 0:
            self._hist = HistogramWriter(self.run.path / "histograms.jsonl")
        if self.tensorboard:
            self._tb = TensorBoardWriter(self.run.path / "tensorboard")
        config = {"fit": {k: v for k, v in self.params.items() if isinstance(v, int | float | str | bool)}}
        if self.config:
            config["config"] = self.config
        atomic_write_text(self.run.config_path, dump_toml(config))
        atomic_write_text(self.run.path / "command.txt", shlex.join(sys.argv) + "\n")
        if getattr(self.model, "built", False):
            write_layers_json(self.run.path, {self.model.name: self.model})

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step += 1
        loss = (logs or {}).get("loss")
        if self.batch_every and self.step % self.batch_every == 0 and loss is not None:
            self._log({"step": self.step, "batch_loss": float(loss)})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float | np.floating)}
        self._log({"epoch": epoch + 1, "step": self.step, **values})
        if self.histogram_every and (epoch % self.histogram_every == 0) and self.model is not None:
            networks = {self.model.name: self.model}
            if self._hist is not None:
                self._hist.write(self.step, networks)
            if self._tb is not None:
                self._tb.histograms(self.step, networks)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._log({"event": "train_end", "step": self.step})
        if layers_json_path(self.run.path) is None and getattr(self.model, "built", False):
            write_layers_json(self.run.path, {self.model.name: self.model})
        self._lines = self._metrics.lines
        for closer in (self._metrics, self._hist, self._tb):
            if closer is not None:
                closer.close()
        self._metrics = self._hist = self._tb = None
