"""Keras-style training loop: ``compile``, ``fit``, ``evaluate``, ``predict``, ``train_on_batch``.

These are functions of a model (``fit(model, x, y, ...)``); :class:`rl.models.Model` exposes them as
methods. Data arrive as host arrays (NumPy, any shape ``(N, ...)``); each batch is moved to the
active device once with :func:`rl.backend.to_device`, and only scalars (the loss, metric sums) come
back. One training step is::

    pred = model(x_batch)                 # config.train is True: dropout on, batch-norm batch stats
    loss = loss_fn(y_batch, pred)         # Keras order: (y_true, y_pred) -> scalar Tensor
    optimizer.zero_grad(); loss.backward(); optimizer.step()

A non-finite loss stops training with :class:`NonFiniteLossError` *before* the step, so the weights
(and any checkpoint a :class:`~rl.callbacks.ModelCheckpoint` wrote) are those of the last good
batch; ``fit(..., terminate_on_nan=False)`` skips that batch's update and carries on instead.

``compile`` sets these attributes on the model, which the rest of the loop reads:
``optimizer`` (:class:`~rl.optimizers.Optimizer`), ``loss_fn`` (callable ``(y_true, y_pred)``),
``loss_name`` (str or None), ``loss_options`` (dict), ``metric_names`` (list of str),
``stop_training`` (bool, callbacks set it to end ``fit``).

Metrics (Keras names): ``"accuracy"``/``"acc"`` picks, from the shapes like Keras, sparse
categorical (labels ``(N,)`` or ``(N, 1)`` with predictions ``(N, C>1)``), binary (predictions
``(N,)`` or ``(N, 1)``, threshold 0.5) or categorical (one-hot labels, argmax both); ``"mae"``,
``"mse"``. Reported values are means over the samples seen in the epoch so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rl import backend, losses
from rl import random as rl_random
from rl.callbacks import Callback, CallbackList, History
from rl.data import Dataset
from rl.errors import NonFiniteLossError
from rl.optimizers import Optimizer, get_optimizer
from rl.tensor import Tensor, no_grad, using_config

__all__ = [
    "NonFiniteLossError",
    "compile",
    "evaluate",
    "fit",
    "get_metric",
    "predict",
    "train_on_batch",
]


# ============================================================================ metrics
def _accuracy(y_true: Any, y_pred: Any) -> Any:
    """Per-sample 0/1 correctness, the kind chosen from the shapes as Keras does."""
    xp = backend.get_array_module(y_pred)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1]:
            true_cls = y_true.argmax(axis=-1)  # one-hot labels
        else:
            true_cls = y_true.reshape(y_pred.shape[:-1])  # sparse integer labels (N,) or (N, 1)
        return (y_pred.argmax(axis=-1) == true_cls).astype(xp.float32)
    pred = (y_pred.reshape(y_true.shape) > 0.5).astype(xp.float32)
    return (pred == (y_true > 0.5)).astype(xp.float32)


def _mae(y_true: Any, y_pred: Any) -> Any:
    d = abs(y_pred - y_true.reshape(y_pred.shape))
    return d.reshape(d.shape[0], -1).mean(axis=1)


def _mse(y_true: Any, y_pred: Any) -> Any:
    d = y_pred - y_true.reshape(y_pred.shape)
    return (d * d).reshape(d.shape[0], -1).mean(axis=1)


_METRICS: dict[str, Callable[[Any, Any], Any]] = {
    "accuracy": _accuracy,
    "acc": _accuracy,
    "mae": _mae,
    "mean_absolute_error": _mae,
    "mse": _mse,
    "mean_squared_error": _mse,
}


def get_metric(name: str) -> Callable[[Any, Any], Any]:
    """A metric by Keras name: ``f(y_true, y_pred)`` on raw ``xp`` arrays -> per-sample values ``(N,)``."""
    try:
        return _METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(sorted(_METRICS))}") from None


# ============================================================================ compile
class _NamedLoss:
    """A :mod:`rl.losses` function (``loss(pred, target)``) called in Keras' order ``(y_true, y_pred)``."""

    def __init__(self, name: str, options: dict[str, Any]):
        self.name, self.options = name, dict(options)
        self.fn = losses.get_loss(name, **self.options)

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return self.fn(y_pred, y_true)


def compile(  # noqa: A001 - Keras' name
    model: Any,
    optimizer: str | Optimizer = "adam",
    loss: str | Callable[[Tensor, Tensor], Tensor] | None = "mse",
    metrics: Sequence[str] | None = None,
    loss_options: dict[str, Any] | None = None,
    **optimizer_kwargs: Any,
) -> None:
    """Attach an optimizer, a loss and metrics to ``model`` for :func:`fit`.

    Args:
        optimizer: a Keras name (built over ``model.parameters()`` with ``optimizer_kwargs``, e.g.
            ``lr=1e-3``) or an :class:`~rl.optimizers.Optimizer`.
        loss: a Keras name looked up in :mod:`rl.losses` (``"mse"``,
            ``"sparse_categorical_crossentropy"``, ...), or a callable in Keras' argument order
            ``loss(y_true, y_pred) -> scalar Tensor``, or None (enough for ``predict``).
        metrics: Keras metric names (``"accuracy"``, ``"mae"``, ``"mse"``).
        loss_options: keyword options bound to a named loss, e.g. ``{"from_logits": True}``;
            saved with the model so :func:`rl.checkpoint.load_model` can compile it again.
    """
    if isinstance(optimizer, Optimizer):
        opt = optimizer
    else:
        opt = get_optimizer(optimizer, model.parameters(), **optimizer_kwargs)
    if loss is None:
        loss_fn, loss_name = None, None
    elif isinstance(loss, str):
        loss_fn, loss_name = _NamedLoss(loss, loss_options or {}), loss
    elif callable(loss):
        if loss_options:
            raise ValueError("loss_options apply to a loss given by name, not to a callable")
        loss_fn, loss_name = loss, None  # a callable cannot be rebuilt by name from a checkpoint
    else:
        raise TypeError(f"loss must be a Keras name or a callable(y_true, y_pred), got {type(loss).__name__}")
    names = list(metrics or [])
    for name in names:
        get_metric(name)  # fail now, not after the first epoch
    model.optimizer = opt
    model.loss_fn = loss_fn
    model.loss_name = loss_name
    model.loss_options = dict(loss_options or {})
    model.metric_names = names
    model.stop_training = False


def _require_compiled(model: Any, what: str) -> None:
    if getattr(model, "loss_fn", None) is None or getattr(model, "optimizer", None) is None:
        raise RuntimeError(f"{what} needs a compiled model: call model.compile(optimizer=..., loss=...) first")


# ============================================================================ batches
def _as_array(name: str, a: Any) -> Any:
    if isinstance(a, Tensor):
        return a.data
    if backend.is_device_array(a) or isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be an array (N, ...), got {type(a).__name__}: {exc}") from None


def _model_input_count(model: Any) -> int:
    """How many input tensors a model takes: ``len(model.inputs)``; 1 where it has no symbolic inputs."""
    try:
        return len(model.inputs)
    except (AttributeError, TypeError):  # a subclassed model, or one not built yet
        return 1


def _num_samples(x: Any) -> int:
    """N of ``x (N, ...)`` or of a multi-input model's list of such arrays."""
    return len(x[0]) if isinstance(x, list) else len(x)


def _check_xy(x: Any, y: Any, what: str, batch_size: int = 1, n_inputs: int = 1) -> tuple[Any, Any]:
    """``x (N, ...)`` and ``y (N, ...)`` as arrays, checked; ``what`` names the caller in errors.

    For a model of ``n_inputs > 1`` inputs, ``x`` may be a list (or tuple) of that many arrays
    ``(N, ...)``, returned as a list. ``y`` may be None only for ``predict`` (the others index it batch by batch).
    """
    if batch_size < 1:
        raise ValueError(f"{what}: batch_size must be >= 1, got {batch_size}")
    if n_inputs > 1 and isinstance(x, list | tuple):
        if len(x) != n_inputs:
            raise ValueError(f"{what}: the model takes {n_inputs} inputs, got a list of {len(x)} arrays")
        x = [_as_array(f"x[{i}]", a) for i, a in enumerate(x)]
        if any(a.ndim == 0 for a in x):
            raise ValueError(f"{what}: every input must have a leading batch axis, got a scalar")
        if len({len(a) for a in x}) > 1:
            raise ValueError(f"{what}: the inputs have different sample counts {[len(a) for a in x]}")
    else:
        x = _as_array("x", x)
        if x.ndim == 0:
            raise ValueError(f"{what}: x must have a leading batch axis, got a scalar")
    if y is None:
        if what != "predict":
            raise ValueError(f"{what} needs targets: call it as {what}(x, y)")
        return x, None
    y = _as_array("y", y)
    if len(y) != _num_samples(x):
        raise ValueError(f"{what}: x has {_num_samples(x)} samples but y has {len(y)}")
    return x, y


def _take(a: Any, idx: Any) -> Any:
    """Rows ``idx`` of ``a`` (or of each array of a list) on the active device (host arrays move once, here)."""
    if isinstance(a, list):
        return [_take(e, idx) for e in a]
    if backend.is_device_array(a):
        return a[backend.get_array_module(a).asarray(idx)]
    return backend.to_device(a[idx])


def _rows(x: Any, rows: slice) -> Any:
    """``x[rows]``, or that slice of each array of a multi-input list."""
    return [a[rows] for a in x] if isinstance(x, list) else x[rows]


def _array_batches(x: Any, y: Any, order: np.ndarray, batch_size: int) -> Any:
    """``(x_batch, y_batch)`` device arrays of ``x``, ``y`` rows in ``order``, ``batch_size`` at a time."""
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield _take(x, idx), (None if y is None else _take(y, idx))


def _dataset_batches(ds: Dataset, epoch: int, what: str) -> Any:
    """``(x_batch, y_batch)`` device arrays of epoch ``epoch`` of a batched :class:`rl.data.Dataset`.

    Its elements are ``(x, y)`` batches; for ``predict`` a bare ``x`` batch also does (y is None then).
    """
    it = ds.iterate(epoch=epoch)
    try:
        for element in it:
            if isinstance(element, tuple) and len(element) == 2:
                xb, yb = element
            elif what == "predict" and not isinstance(element, tuple | dict):
                xb, yb = element, None
            else:
                raise ValueError(f"{what}: a Dataset must yield (x_batch, y_batch) tuples (add .batch(n) after "
                                 f"the source), got {type(element).__name__}"
                                 + (f" of {len(element)}" if isinstance(element, tuple) else ""))
            yield backend.to_device(xb), (None if yb is None else backend.to_device(yb))
    finally:
        it.close()


def _dataset_steps(ds: Dataset) -> int | None:
    try:
        return len(ds)
    except TypeError:
        return None  # a generator or filter: the step count shows up as the epoch runs


def _float_input(a: Any) -> Any:
    # Integer images (uint8 pixels) are fed as float32, as Keras does; float64 stays float64.
    return a.astype(np.float32) if a.dtype.kind in "biu" else a


def _model_input(xb: Any) -> Any:
    """What the model is called on: a Tensor of a batch, or a list of them for a multi-input model."""
    if isinstance(xb, list):
        return [Tensor(_float_input(a)) for a in xb]
    return Tensor(_float_input(xb))


class _Running:
    """Sample-weighted running means of the loss and metrics, kept on the device until read."""

    def __init__(self, names: list[str]):
        self.names = names
        self.sums: dict[str, Any] = dict.fromkeys(["loss", *names], 0.0)
        self.count = 0

    def add(self, loss: float, y_true: Any, y_pred: Any) -> None:
        n = len(y_pred)
        self.count += n
        self.sums["loss"] += loss * n
        for name in self.names:
            self.sums[name] = self.sums[name] + _METRICS[name](y_true, y_pred).sum()

    def means(self, prefix: str = "") -> dict[str, float]:
        c = max(self.count, 1)
        return {prefix + k: float(v) / c for k, v in self.sums.items()}


# ============================================================================ steps
def _train_step(model: Any, xb: Any, yb: Any) -> tuple[float, Any, Any]:
    """One optimizer step on a device batch; returns (loss value, loss tensor, predictions array)."""
    pred = model(_model_input(xb))
    loss = model.loss_fn(Tensor(yb), pred)
    value = float(loss.data)
    if math.isfinite(value):
        model.optimizer.zero_grad()
        loss.backward()
        model.optimizer.step()
    return value, loss, pred.data


def train_on_batch(model: Any, x: Any, y: Any) -> float | dict[str, float]:
    """One optimizer step on ``x (N, ...)``, ``y (N, ...)``; returns the loss, or a dict when metrics are set."""
    _require_compiled(model, "train_on_batch")
    x, y = _check_xy(x, y, "train_on_batch", n_inputs=_model_input_count(model))
    idx = np.arange(_num_samples(x))
    yb = _take(y, idx)
    with using_config("train", True):
        value, _, pred = _train_step(model, _take(x, idx), yb)
    if not math.isfinite(value):
        raise NonFiniteLossError(f"loss is {value} on this batch; the step was skipped, the weights are unchanged")
    if not model.metric_names:
        return value
    run = _Running(model.metric_names)
    run.add(value, yb, pred)
    return run.means()


def _epoch_order(n: int, shuffle: bool, seed: int | None, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a function of (seed, epoch) when seeded, so a run resumed at
    ``initial_epoch=k`` shuffles exactly as the uninterrupted run did in epoch k."""
    if not shuffle:
        return np.arange(n)
    if seed is None:
        return rl_random.default_generator().numpy.permutation(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def fit(
    model: Any,
    x: Any,
    y: Any,
    batch_size: int = 32,
    epochs: int = 1,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks: Sequence[Callback] | None = None,
    verbose: int = 1,
    seed: int | None = None,
    initial_epoch: int = 0,
    terminate_on_nan: bool = True,
) -> History:
    """Train ``model`` on ``x (N, ...)``, ``y (N, ...)`` for ``epochs`` epochs of mini-batches.

    Args:
        batch_size: samples per step (the last batch of an epoch may be smaller).
        validation_data: ``(x_val, y_val)`` evaluated after each epoch (``val_loss``, ``val_<metric>``).
        validation_split: fraction in [0, 1) of the samples, taken from the *end* of ``x``/``y``
            before shuffling (as Keras does), held out for validation; ignored when
            ``validation_data`` is given.
        shuffle: reshuffle the training samples every epoch.
        callbacks: :class:`~rl.callbacks.Callback` objects; a :class:`~rl.callbacks.History` is
            always added and returned.
        verbose: 1 shows a tqdm progress bar per epoch with the running loss and metrics; 2 prints one
            line per epoch (Keras' ``Epoch 3/10 - 4.2s - loss: 0.3120 - val_loss: ...``), which reads
            well in logs and pipes; 0 is silent.
        seed: seeds the shuffling: epoch ``e`` uses ``numpy.random.default_rng([seed, e])``, so a
            run resumed with ``initial_epoch`` shuffles as the uninterrupted one did. ``None``
            draws from the module's default generator (``rl.random.seed(n)`` makes that
            reproducible too, but not across a resume).
        initial_epoch: epoch index to start counting from (resuming).
        terminate_on_nan: raise :class:`NonFiniteLossError` on a NaN/inf loss, before the step
            (False: skip that update and go on).

    For a model of several inputs, ``x`` is a list of arrays ``(N, ...)``, one per input in
    ``model.inputs`` order.
    ``x`` may instead be a batched :class:`rl.data.Dataset` of ``(x_batch, y_batch)`` (``y`` None):
    epoch ``e`` iterates ``x.iterate(epoch=e)``, so the dataset's seeded shuffles reshuffle every
    epoch and a resumed run sees the same batches; ``batch_size``, ``shuffle``, ``seed`` and
    ``validation_split`` are the dataset's business then. ``validation_data`` may be a Dataset too.

    Returns the :class:`~rl.callbacks.History` (``history.history["loss"]`` per epoch, ...), also
    stored as ``model.history``.
    """
    _require_compiled(model, "fit")
    if isinstance(x, Dataset):
        if y is not None or validation_split:
            raise ValueError("fit: with a Dataset, y and validation_split are not used (the dataset yields "
                             "(x, y) batches; pass validation_data=another Dataset)")
        return _fit_loop(model, x, None, _dataset_steps(x), batch_size, epochs, validation_data, shuffle,
                         callbacks, verbose, seed, initial_epoch, terminate_on_nan)
    x, y = _check_xy(x, y, "fit", batch_size, _model_input_count(model))
    if validation_data is None and validation_split:
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        n_val = int(_num_samples(x) * validation_split)
        if n_val == 0 or n_val == _num_samples(x):
            raise ValueError(f"validation_split={validation_split} of {_num_samples(x)} samples leaves an empty split")
        cut = _num_samples(x) - n_val
        validation_data = (_rows(x, slice(cut, None)), y[cut:])
        x, y = _rows(x, slice(None, cut)), y[:cut]
    n = _num_samples(x)
    if n == 0:
        raise ValueError("fit got no training samples")
    return _fit_loop(model, x, y, math.ceil(n / batch_size), batch_size, epochs, validation_data, shuffle,
                     callbacks, verbose, seed, initial_epoch, terminate_on_nan)


def _fit_loop(model: Any, x: Any, y: Any, steps_per_epoch: int | None, batch_size: int, epochs: int,
              validation_data: Any, shuffle: bool, callbacks: Sequence[Callback] | None, verbose: int,
              seed: int | None, initial_epoch: int, terminate_on_nan: bool) -> History:
    """The epochs of :func:`fit` over checked arrays or a Dataset (``steps_per_epoch`` None: unknown)."""
    history = History()
    cbs = CallbackList([*(callbacks or []), history], model)
    cbs.set_params({"epochs": epochs, "steps": steps_per_epoch, "batch_size": batch_size, "verbose": verbose})
    model.stop_training = False
    model.history = history
    cbs.on_train_begin({})
    try:
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, {})
            if isinstance(x, Dataset):
                batches = _dataset_batches(x, epoch, "fit")
            else:
                batches = _array_batches(x, y, _epoch_order(_num_samples(x), shuffle, seed, epoch), batch_size)
            run = _Running(model.metric_names)
            bar = _progress(verbose, steps_per_epoch, epoch, epochs)
            epoch_start = time.perf_counter()
            with using_config("train", True):
                for step, (xb, yb) in enumerate(batches):
                    value, _, pred = _train_step(model, xb, yb)
                    if not math.isfinite(value) and terminate_on_nan:
                        raise NonFiniteLossError(
                            f"loss became {value} at epoch {epoch + 1}, batch {step + 1}/{steps_per_epoch or '?'}; "
                            "training stopped before this batch's update, so the weights (and the last "
                            "checkpoint any ModelCheckpoint wrote) are from the last finite step. Lower the "
                            "learning rate, clip gradients (clipnorm=) or check the data for NaNs."
                        )
                    if math.isfinite(value):  # a skipped non-finite batch must not poison the epoch's mean
                        run.add(value, yb, pred)
                    batch_logs = {"batch": step, "size": _num_samples(xb), "loss": value}
                    cbs.on_batch_end(step, batch_logs)
                    if bar is not None:
                        bar.set_postfix(run.means(), refresh=False)
                        bar.update(1)
                    if model.stop_training:
                        break
            logs = run.means()
            if validation_data is not None:
                val_xy = (validation_data,) if isinstance(validation_data, Dataset) else validation_data
                val = evaluate(model, *val_xy, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if bar is not None:
                bar.set_postfix(logs, refresh=True)
                bar.close()
            if verbose == 2:
                shown = "".join(f" - {k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - epoch_start:.1f}s{shown}", flush=True)
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        cbs.on_train_end({})
    return history


def _progress(verbose: int, total: int, epoch: int, epochs: int) -> Any:
    if verbose != 1:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True, dynamic_ncols=True)


def evaluate(
    model: Any, x: Any, y: Any = None, batch_size: int = 32, verbose: int = 0, return_dict: bool = False
) -> float | dict[str, float]:
    """Mean loss (and metrics) of ``model`` on ``x (N, ...)``, ``y (N, ...)`` in inference mode.

    For a model of several inputs (a DDPG critic's observation and action), ``x`` is a list of arrays
    ``(N, ...)``, one per input in ``model.inputs`` order (as for :func:`predict` and :func:`fit`).
    ``x`` may instead be a batched :class:`rl.data.Dataset` of ``(x_batch, y_batch)`` (epoch 0 of it).

    Returns the loss as a float when the model has no metrics and ``return_dict`` is False, else a
    dict ``{"loss": ..., "<metric>": ...}``.
    """
    if getattr(model, "loss_fn", None) is None:
        raise RuntimeError("evaluate needs a compiled model: call model.compile(loss=...) first")
    if isinstance(x, Dataset):
        batches, steps = _dataset_batches(x, 0, "evaluate"), _dataset_steps(x)
    else:
        x, y = _check_xy(x, y, "evaluate", batch_size, _model_input_count(model))
        n = _num_samples(x)
        batches, steps = _array_batches(x, y, np.arange(n), batch_size), math.ceil(n / batch_size)
    run = _Running(getattr(model, "metric_names", []))
    bar = _progress(verbose, steps, 0, 1)
    with no_grad(), using_config("train", False):
        for xb, yb in batches:
            pred = model(_model_input(xb))
            run.add(float(model.loss_fn(Tensor(yb), pred).data), yb, pred.data)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    out = run.means()
    return out if (return_dict or run.names) else out["loss"]


def predict(model: Any, x: Any, batch_size: int = 32) -> Any:
    """Outputs of ``model`` on ``x (N, ...)`` in inference mode, as one host NumPy array ``(N, ...)``.

    For a model of several inputs, ``x`` is a list of arrays ``(N, ...)``, one per input in
    ``model.inputs`` order: ``critic.predict([obs, actions])``. A model of several outputs gives a
    list of arrays, one per output (as Keras).
    ``x`` may instead be a batched :class:`rl.data.Dataset` of ``x`` batches or ``(x, y)`` batches.
    """
    if isinstance(x, Dataset):
        batches = _dataset_batches(x, 0, "predict")
    else:
        x, _ = _check_xy(x, None, "predict", batch_size, _model_input_count(model))
        batches = _array_batches(x, None, np.arange(_num_samples(x)), batch_size)
    outs = []
    with no_grad(), using_config("train", False):
        for xb, _ in batches:
            out = model(_model_input(xb))
            outs.append([backend.to_numpy(o.data) for o in (out if isinstance(out, list | tuple) else [out])])
    if not outs:
        raise ValueError("predict got no samples")
    joined = [np.concatenate(parts, axis=0) for parts in zip(*outs)]
    return joined if isinstance(out, list | tuple) else joined[0]
