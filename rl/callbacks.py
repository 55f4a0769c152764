"""Callbacks for :func:`rl.training.fit`: hooks called at the start/end of training, epochs and batches.

A callback subclasses :class:`Callback` and overrides the hooks it needs. ``fit`` gives each one
the model (``self.model``) and the run's parameters (``self.params``: epochs, steps, batch_size,
verbose). ``logs`` at epoch end hold ``loss``, each metric, and ``val_*`` when there is validation
data. Setting ``self.model.stop_training = True`` ends ``fit`` after the current batch/epoch.

Provided: :class:`History` (always added by ``fit``), :class:`EarlyStopping`,
:class:`ModelCheckpoint` (atomic writes), :class:`LearningRateScheduler`, :class:`CSVLogger`,
:class:`JSONLLogger`, :class:`LambdaCallback`, :class:`TerminateOnNaN`.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl import checkpoint

__all__ = [
    "Callback",
    "CallbackList",
    "CSVLogger",
    "EarlyStopping",
    "History",
    "JSONLLogger",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "TerminateOnNaN",
]


class Callback:
    """Base class: every hook is a no-op. ``self.model`` and ``self.params`` are set by ``fit``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called once after the last epoch (also when training stops early or raises)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after epoch ``epoch`` with its ``logs`` (loss, metrics, val_*)."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after each training step with ``{"batch", "size", "loss"}``."""


class CallbackList:
    """Fans each hook out to a list of callbacks, in order."""

    def __init__(self, callbacks: Sequence[Callback], model: Any):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be rl.callbacks.Callback objects, got {type(cb).__name__}")
            cb.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.set_params(params)

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is a list with one value per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(w in monitor for w in ("acc", "auc", "precision", "recall", "return", "reward")) else "min"


def _monitored(logs: dict[str, Any] | None, monitor: str, who: str) -> float:
    logs = logs or {}
    if monitor not in logs:
        raise KeyError(
            f"{who} monitors {monitor!r} but the epoch logs only have {sorted(logs)}; "
            "pass validation data for val_* keys or pick one of these"
        )
    return float(logs[monitor])


def _copy_state(model: Any) -> dict[str, Any]:
    # state_dict arrays may be live views of the parameters (the optimizers pack them); copy.
    return {k: v.copy() for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a key of the epoch logs (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names, else min).
        restore_best_weights: at the end, load the weights of the best epoch.
        baseline: stop if the monitored value does not beat this within ``patience`` epochs.

    After training, ``stopped_epoch`` is the epoch at which it stopped (0 if it never did) and
    ``best_epoch`` the best one.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        baseline: float | None = None,
    ):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(float(min_delta)), int(patience)
        self.mode = _resolve_mode(mode, monitor)
        self.restore_best_weights, self.baseline = restore_best_weights, baseline

    def _better(self, value: float, ref: float) -> bool:
        if self.mode == "min":
            return value < ref - self.min_delta
        return value > ref + self.min_delta

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_weights: dict[str, Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._better(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (architecture, weights, optimizer state) after each epoch, atomically.

    Args:
        path: file to write; may hold ``str.format`` fields from the logs and ``epoch`` (1-based),
            e.g. ``"ckpt/e{epoch:03d}-{val_loss:.3f}.safetensors"``.
        monitor, mode: what "best" means (as in :class:`EarlyStopping`).
        save_best_only: write only when ``monitor`` improves (so the file always holds the best model).
        save_weights_only: write :func:`rl.checkpoint.save_weights` files instead of whole models.

    Each write replaces the old file in one ``os.replace``, so a crash never leaves a half-written
    checkpoint; ``last_saved`` is the path of the latest file written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
    ):
        super().__init__()
        self.path = str(path)
        self.monitor, self.save_best_only, self.save_weights_only = monitor, save_best_only, save_weights_only
        self.mode = _resolve_mode(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved: Path | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            improved = value < self.best if self.mode == "min" else value > self.best
            if not improved:
                return
            self.best = value
        try:
            target = Path(self.path.format(epoch=epoch + 1, **logs))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint path {self.path!r} cannot be filled from the logs: {exc}") from None
        if self.save_weights_only:
            checkpoint.save_weights(self.model, target)
        else:
            checkpoint.save_model(self.model, target)
        self.last_saved = target


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch from ``schedule``.

    ``schedule`` is an :mod:`rl.schedules` object or any callable ``f(epoch) -> lr`` or Keras'
    ``f(epoch, lr) -> lr`` (epoch 0-based). The rate used is logged as ``lr``.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose
        try:
            params = inspect.signature(schedule).parameters.values()
            positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            self._two_args = len(positional) >= 2
        except (TypeError, ValueError):
            self._two_args = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.current_lr()) if self._two_args else self.schedule(epoch)
        # numbers.Real also admits NumPy scalars (np.float32), which a schedule computed with NumPy returns.
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool) or not math.isfinite(lr):
            raise ValueError(f"the learning-rate schedule returned {lr!r} for epoch {epoch}; expected a float")
        opt.lr = float(lr)
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {lr:.6g}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["lr"] = self.model.optimizer.current_lr()


class CSVLogger(Callback):
    """Append one CSV row per epoch (``epoch`` then the log keys in sorted order) to ``filename``.

    With ``append=False`` (default) the file is started afresh at the beginning of training.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.separator, self.append = Path(filename), separator, append
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        existing = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._keys = None
        if existing:
            with open(self.filename, newline="") as f:
                first = f.readline().strip()
            self._keys = first.split(self.separator)[1:] if first else None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        writer = csv.writer(self._file, delimiter=self.separator)
        if self._keys is None:
            self._keys = sorted(logs)
            writer.writerow(["epoch", *self._keys])
        writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None


class JSONLLogger(Callback):
    """Append one JSON object per epoch (``{"epoch": e, **logs}``) to ``filename``, one per line."""

    def __init__(self, filename: str | os.PathLike[str], append: bool = False):
        super().__init__()
        self.filename, self.append = Path(filename), append

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        if not self.append:
            self.filename.write_text("")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        record = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        with open(self.filename, "a") as f:
            f.write(json.dumps(record) + "\n")


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(
        self,
        on_train_begin: Callable[[dict], None] | None = None,
        on_train_end: Callable[[dict], None] | None = None,
        on_epoch_begin: Callable[[int, dict], None] | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        on_batch_end: Callable[[int, dict], None] | None = None,
    ):
        super().__init__()
        if on_train_begin is not None:
            self.on_train_begin = on_train_begin  # type: ignore[method-assign]
        if on_train_end is not None:
            self.on_train_end = on_train_end  # type: ignore[method-assign]
        if on_epoch_begin is not None:
            self.on_epoch_begin = on_epoch_begin  # type: ignore[method-assign]
        if on_epoch_end is not None:
            self.on_epoch_end = on_epoch_end  # type: ignore[method-assign]
        if on_batch_end is not None:
            self.on_batch_end = on_batch_end  # type: ignore[method-assign]


class TerminateOnNaN(Callback):
    """Stop training (without raising) after a batch whose loss is NaN or infinite.

    ``fit`` already raises on a non-finite loss by default; use this with
    ``fit(..., terminate_on_nan=False)`` to stop quietly instead.
    """

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.model.stop_training = True
