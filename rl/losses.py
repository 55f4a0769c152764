"""Loss functions, each returning a Tensor you can call ``backward()`` on.

The cross-entropies on logits (:func:`softmax_cross_entropy`, :func:`sigmoid_bce`) are single
fused ops: stable for any logit size (log-sum-exp shift, ``log1p(exp(-|z|))``) and with the
one-line gradients ``softmax - target`` and ``sigmoid - target``. The rest are composed from
primitive ops.

Reductions: ``reduction="mean"`` (default) averages over every loss element, ``"sum"`` adds them,
``"none"`` returns them unreduced: elementwise for the regression losses (the shape of ``pred``)
and per sample ``(B,)`` for the cross-entropies over classes.

:func:`get_loss` maps Keras loss names to these functions for ``model.compile(loss="...")``. As in
Keras, ``categorical_crossentropy``, ``sparse_categorical_crossentropy`` and
``binary_crossentropy`` take **probabilities** by default (the output of a softmax / sigmoid
layer, clipped to ``[1e-7, 1 - 1e-7]`` before the log); pass ``from_logits=True`` to feed raw
logits to the fused, more stable versions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from rl import _fused, backend
from rl.tensor import Function, Tensor, _reduce_sum, as_tensor

__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "clipped_surrogate",
    "clipped_surrogate_arrays",
    "get_loss",
    "huber",
    "mae",
    "mse",
    "sigmoid_bce",
    "softmax_cross_entropy",
    "sparse_categorical_crossentropy",
]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]
_REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}")


def _check_same_shape(pred: Tensor, target: Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{name}: prediction shape {pred.shape} and target shape {target.shape} differ")


def _raw(x: Any, like: Any) -> Any:
    """The array behind ``x``, on the device of ``like`` (labels may arrive as host arrays)."""
    data = x.data if isinstance(x, Tensor) else x
    return backend.get_array_module(like).asarray(data)


# ---------------------------------------------------------------------------------- policy gradients
def clipped_surrogate_arrays(logp: Any, old_logp: Any, adv: Any, clip: float,
                             normalize: bool) -> tuple[Any, Any, Any, Any]:
    """:func:`clipped_surrogate` on raw ``(B,)`` arrays (B >= 1): ``(loss, dlogp, approx_kl, clip_fraction)``,
    the 0-d loss in ``logp``'s dtype, d loss / d logp ``(B,)`` and the two statistics as 0-d arrays; one
    compiled loop where :mod:`rl._fused` has one (host float32), the NumPy (or CuPy) ops otherwise."""
    kern = _fused.kernels()
    if kern is not None and _fused.is_host_float32(logp, old_logp, adv) and logp.ndim == 1:
        dlogp, out = np.empty((1, logp.shape[0]), dtype=logp.dtype), np.empty((1, 3))
        kern.clipped_surrogate(logp[None], old_logp[None], adv[None], np.array([logp.shape[0]]), float(clip),
                               bool(normalize), dlogp, out)  # one seed of the stacked kernel, all its rows
        loss, kl, frac = out[0]
        return np.asarray(loss, dtype=logp.dtype), dlogp[0], np.float32(kl), np.float32(frac)
    xp = backend.get_array_module(logp)
    if normalize and adv.size > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    log_ratio = logp - old_logp
    ratio = xp.exp(log_ratio)
    neg_adv = -adv
    unclipped = ratio * neg_adv
    clamped = xp.minimum(xp.maximum(ratio, 1.0 - clip), 1.0 + clip)
    clipped = clamped * neg_adv
    take_unclipped = unclipped >= clipped  # F.maximum's rule: ties go to the first operand
    count = max(logp.size, 1)
    # The gradient the separate nodes would give: (1/B) * -A * r through the chosen term, and through the
    # clipped one only where the clip left r alone.
    dlogp = ((logp.dtype.type(1) / count) * neg_adv) * ratio * (take_unclipped | (clamped == ratio))
    loss = _reduce_sum(xp.where(take_unclipped, unclipped, clipped), None, False) / count
    return loss, dlogp, ((ratio - 1.0) - log_ratio).mean(), (xp.abs(ratio - 1.0) > clip).mean()


class _ClippedSurrogate(Function):
    """PPO's clipped surrogate as one node; ``forward`` also computes the gradient and the logged statistics
    (see :func:`clipped_surrogate`), in one compiled loop where :mod:`rl._fused` has one."""

    def forward(self, logp, old_logp, adv, clip, normalize, stats):
        loss, self.dlogp, kl, frac = clipped_surrogate_arrays(logp, old_logp, adv, clip, normalize)
        stats[:] = [kl, frac]
        return loss

    def backward(self, g):
        return g * self.dlogp, None, None


def clipped_surrogate(logp: Tensor, old_logp: Any, adv: Any, clip: float,
                      normalize: bool = False) -> tuple[Tensor, Any, Any]:
    """PPO's clipped surrogate loss (Schulman et al. 2017) over ``B`` rows, as one graph node.

    ``loss = mean(max(-A r, -A clip(r, 1 - clip, 1 + clip)))`` with ``r = exp(logp - old_logp)``: the
    policy gains nothing from moving its ratio beyond ``1 +- clip``. With ``normalize`` the advantages ``A``
    are first made zero-mean, unit-std over the rows (population std, ``+ 1e-8``).

    Args:
        logp: ``(B,)`` log-probabilities of the taken actions under the current policy (differentiable).
        old_logp, adv: ``(B,)`` arrays: the log-probabilities at collection time and the advantages.
    Returns:
        ``(loss, approx_kl, clip_fraction)``: the scalar loss Tensor, then Schulman's KL estimate
        ``mean((r - 1) - log r)`` and the fraction of rows with ``|r - 1| > clip``, as 0-d arrays on the
        rows' device (no host sync). Equal to the composed ops' values within float32 rounding.
    """
    stats: list[Any] = []  # forward fills in (approx_kl, clip_fraction)
    loss = _ClippedSurrogate.apply(logp, old_logp, adv, clip=clip, normalize=normalize, stats=stats)
    return loss, stats[0], stats[1]


# ---------------------------------------------------------------------------------- regression
class _MeanSquaredError(Function):
    """``mean((pred - target)**2)`` as one graph node: the same arithmetic as the three nodes it replaces
    (difference, square, mean), bit for bit, in two array passes forward and one backward."""

    def forward(self, pred, target):
        self.diff = pred - target
        self.count = max(self.diff.size, 1)
        return _reduce_sum(self.diff * self.diff, None, False) / self.count

    def backward(self, g):
        # Mean hands each element g / count; the square's two equal factors each add (g / count) * diff.
        grad = (g / self.count) * self.diff
        grad = grad + grad
        return grad, (-grad if self.inputs[1].requires_grad else None)


def mse(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(pred - target)**2``; ``pred`` and ``target`` of the same shape."""
    target = as_tensor(target)
    _check_same_shape(pred, target, "mse")
    if reduction == "mean" and pred.dtype.kind == "f" and pred.dtype.itemsize >= 4 and pred.data.size:
        return _MeanSquaredError.apply(pred, target)
    diff = pred - target
    return _reduce(diff * diff, reduction)


def mae(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|pred - target|``; same shapes."""
    target = as_tensor(target)
    _check_same_shape(pred, target, "mae")
    return _reduce((pred - target).abs(), reduction)


class _Huber(Function):
    def forward(self, pred, target, delta):
        xp = backend.get_array_module(pred)
        diff = pred - target
        small = abs(diff) <= delta
        self.grad = xp.clip(diff, -delta, delta)  # d loss / d pred: the clipped error
        return xp.where(small, 0.5 * diff * diff, delta * (abs(diff) - 0.5 * delta)).astype(pred.dtype)

    def backward(self, g):
        gp = g * self.grad
        return gp, -gp


def huber(pred: Tensor, target: Any, delta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Huber loss: ``0.5 d**2`` for ``|d| <= delta``, else ``delta * (|d| - delta/2)``, with ``d = pred - target``.

    Same shapes. Its gradient is the error clipped to ``[-delta, delta]`` (DQN's error clipping).
    """
    if delta <= 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    target = as_tensor(target)
    _check_same_shape(pred, target, "huber")
    return _reduce(_Huber.apply(pred, target, delta=float(delta)), reduction)


# ---------------------------------------------------------------------------------- classification
def _check_class_indices(labels: Any, pred_shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``labels`` are integer class indices of shape ``pred_shape[:-1]``, each in ``[0, K)``.

    An index out of range would otherwise pick no class at all (an all-zero one-hot row gives a
    finite, meaningless loss) or, in the fused path, another row's entry.
    """
    k = pred_shape[-1]
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name}: class-index labels must be integers, got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(pred_shape[:-1]):
        raise ValueError(f"{name}: labels shape {tuple(labels.shape)} does not match predictions {tuple(pred_shape)} "
                         f"(expected {tuple(pred_shape[:-1])})")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"{name}: labels must lie in [0, {k}), got [{int(labels.min())}, {int(labels.max())}]")


class _SoftmaxCrossEntropy(Function):
    """Per-sample ``-sum_k p_k log softmax(z)_k``; labels are class indices or target distributions."""

    def forward(self, logits, labels):
        xp = backend.get_array_module(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=-1, keepdims=True)
        log_probs = shifted - xp.log(total)
        self.softmax = exp / total
        self.labels = labels
        if labels.ndim == logits.ndim - 1:  # class indices
            picked = xp.take_along_axis(log_probs, labels[..., None].astype(xp.int64), axis=-1)
            return -picked[..., 0]
        self.target_mass = labels.sum(axis=-1, keepdims=True)
        self.log_probs = log_probs  # the gradient for soft labels (distillation targets)
        return -(labels * log_probs).sum(axis=-1)

    def backward(self, g):
        xp = backend.get_array_module(g)
        labels = self.labels
        if labels.ndim == self.softmax.ndim - 1:
            grad = self.softmax.copy()
            flat = grad.reshape(-1, grad.shape[-1])  # a view: subtract 1 at each row's label
            flat[xp.arange(flat.shape[0]), labels.reshape(-1)] -= 1
        else:
            grad = self.softmax * self.target_mass - labels
            if self.inputs[1].requires_grad:
                return grad * g[..., None], -self.log_probs * g[..., None]
        return grad * g[..., None], None


def softmax_cross_entropy(logits: Tensor, labels: Any, reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``softmax(logits)`` against the labels, fused and stable.

    Args:
        logits: ``(B, K)`` (or ``(..., K)``).
        labels: integer class indices ``(B,)``, or one-hot / probability rows ``(B, K)``.
    Returns:
        the reduced loss; ``reduction="none"`` gives ``(B,)``.
    """
    lab = _raw(labels, logits.data)
    if isinstance(labels, Tensor) and labels.requires_grad and lab.shape == logits.shape:
        return _reduce(_SoftmaxCrossEntropy.apply(logits, labels), reduction)
    if lab.ndim == logits.ndim - 1:
        _check_class_indices(lab, logits.shape, "softmax_cross_entropy")
    elif lab.shape == logits.shape:
        lab = lab.astype(logits.dtype, copy=False)
    else:
        raise ValueError(
            f"softmax_cross_entropy: labels must be class indices {logits.shape[:-1]} or rows {logits.shape}, "
            f"got shape {lab.shape}"
        )
    return _reduce(_SoftmaxCrossEntropy.apply(logits, lab), reduction)


class _SigmoidBCE(Function):
    def forward(self, logits, targets):
        xp = backend.get_array_module(logits)
        self.logits, self.targets = logits, targets
        # max(z, 0) - z*t + log(1 + e^-|z|): the log never sees an overflowing exp
        return xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-abs(logits)))

    def backward(self, g):
        xp = backend.get_array_module(g)
        sig = 0.5 * (xp.tanh(0.5 * self.logits) + 1)
        return g * (sig - self.targets), -g * self.logits


def sigmoid_bce(logits: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of ``sigmoid(logits)`` against targets in [0, 1], computed from the logits.

    ``logits`` and ``targets`` of the same shape; ``"none"`` gives that shape.
    """
    targets = as_tensor(targets)
    _check_same_shape(logits, targets, "sigmoid_bce")
    if targets.dtype != logits.dtype:
        targets = targets.astype(logits.dtype)
    return _reduce(_SigmoidBCE.apply(logits, targets), reduction)


def binary_crossentropy(
    probs: Tensor, targets: Any, from_logits: bool = False, reduction: str = "mean", eps: float = EPSILON
) -> Tensor:
    """Binary cross-entropy ``-(t log p + (1 - t) log(1 - p))`` on probabilities (Keras' default).

    ``probs`` are clipped to ``[eps, 1 - eps]`` first, as Keras does; ``from_logits=True``
    forwards to :func:`sigmoid_bce`. Same shapes; ``"none"`` gives that shape.
    """
    if from_logits:
        return sigmoid_bce(probs, targets, reduction)
    targets = as_tensor(targets)
    _check_same_shape(probs, targets, "binary_crossentropy")
    if targets.dtype != probs.dtype:
        targets = targets.astype(probs.dtype)
    p = probs.clip(eps, 1.0 - eps)
    losses = -(targets * p.log() + (1.0 - targets) * (1.0 - p).log())
    return _reduce(losses, reduction)


def categorical_crossentropy(
    probs: Tensor, targets: Any, from_logits: bool = False, reduction: str = "mean", eps: float = EPSILON
) -> Tensor:
    """Cross-entropy against one-hot / probability rows ``targets`` (B, K), Keras style.

    ``probs`` (B, K) are rescaled to sum to 1 and clipped to ``[eps, 1 - eps]`` before the log;
    ``from_logits=True`` treats them as logits (fused :func:`softmax_cross_entropy`). ``"none"``
    gives ``(B,)``.
    """
    if from_logits:
        return softmax_cross_entropy(probs, targets, reduction)
    t = targets if isinstance(targets, Tensor) else Tensor(_raw(targets, probs.data))
    if t.shape != probs.shape:
        raise ValueError(
            f"categorical_crossentropy: targets shape {t.shape} must equal predictions {probs.shape} "
            "(use sparse_categorical_crossentropy for class indices)"
        )
    p = (probs / probs.sum(axis=-1, keepdims=True)).clip(eps, 1.0 - eps)
    if t.dtype != probs.dtype:
        t = t.astype(probs.dtype)
    losses = -(t * p.log()).sum(axis=-1)
    return _reduce(losses, reduction)


def sparse_categorical_crossentropy(
    probs: Tensor, labels: Any, from_logits: bool = False, reduction: str = "mean", eps: float = EPSILON
) -> Tensor:
    """Cross-entropy against integer class ``labels`` (B,), Keras style (probabilities by default).

    ``from_logits=True`` uses the fused :func:`softmax_cross_entropy`. ``"none"`` gives ``(B,)``.
    """
    if from_logits:
        return softmax_cross_entropy(probs, labels, reduction)
    lab = _raw(labels, probs.data)
    _check_class_indices(lab, probs.shape, "sparse_categorical_crossentropy")
    xp = backend.get_array_module(probs.data)
    onehot = (lab[..., None] == xp.arange(probs.shape[-1])).astype(probs.dtype)
    return categorical_crossentropy(probs, onehot, reduction=reduction, eps=eps)


# ---------------------------------------------------------------------------------- lookup by name
LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mse,
    "mean_squared_error": mse,
    "mae": mae,
    "mean_absolute_error": mae,
    "huber": huber,
    "huber_loss": huber,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "sigmoid_bce": sigmoid_bce,
}


def get_loss(name: str | Callable[..., Tensor], **options: Any) -> Callable[..., Tensor]:
    """Look up a loss by its Keras name; ``options`` (``from_logits=True``, ``delta=...``) are bound.

    The returned callable is ``loss(pred, target) -> scalar Tensor``. A callable ``name`` is
    returned as is. Unknown names raise ``ValueError`` listing the valid ones.
    """
    if callable(name):
        return functools.partial(name, **options) if options else name
    try:
        fn = LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}") from None
    return functools.partial(fn, **options) if options else fn
