"""Differentiable functions on tensors: activations, softmax family, joins, selection, linear.

Everything here takes and returns :class:`~rl.tensor.Tensor`. Functions used on hot paths
(activations, ``linear``, softmax) are single fused ops with their own backward; the rest are
composed from primitives so their gradients come for free. Convolution, pooling, batch
normalization, dropout and padding live in :mod:`rl.nn_ops` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl import _fused, backend
from rl.tensor import Clip, Function, ReLU, Sigmoid, Tanh, Tensor, _reduce_max, _reduce_sum, as_tensor

__all__ = [
    "concat",
    "elu",
    "gelu",
    "leaky_relu",
    "linear",
    "log_softmax",
    "log_softmax_array",
    "logsumexp",
    "maximum",
    "minimum",
    "relu",
    "relu6",
    "sigmoid",
    "softmax",
    "softplus",
    "stack",
    "take_along_axis",
    "tanh",
    "where",
    "clip",
    "ACTIVATIONS",
    "get_activation",
]


# ---------------------------------------------------------------------------------- activations
def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise."""
    return ReLU.apply(x)


class _ReLU6(Function):
    def forward(self, a):
        # The same values as clip(a, 0, 6); the backward's mask comes from the output, as ReLU's does.
        self.out = backend.get_array_module(a).clip(a, 0.0, 6.0)
        return self.out

    def backward(self, g):
        # Strictly inside (0, 6): 0 at both kinks, as TF and torch, and as our relu at 0. A clip to [0, 6]
        # would let the gradient through at x == 0 and x == 6. NaN and +-inf inputs get 0 too.
        return g * ((self.out > 0) & (self.out < 6))


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6), elementwise (MobileNet's activation); the gradient is 0 at x == 0 and x == 6."""
    return _ReLU6.apply(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, elementwise."""
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), elementwise."""
    return Sigmoid.apply(x)


def clip(x: Tensor, low: float | None, high: float | None) -> Tensor:
    """Clamp to ``[low, high]``; gradient flows only inside the range."""
    return Clip.apply(x, low=low, high=high)


class _LeakyReLU(Function):
    def forward(self, a, slope):
        self.scale = backend.get_array_module(a).where(a > 0, 1.0, slope).astype(a.dtype)
        return a * self.scale

    def backward(self, g):
        return g * self.scale


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """x for x > 0, ``negative_slope * x`` otherwise.

    The default slope 0.2 is that of Keras' ``leaky_relu`` activation function, which the
    ``"leaky_relu"`` activation string names; Keras' ``LeakyReLU`` *layer* defaults to 0.3.
    """
    return _LeakyReLU.apply(x, slope=negative_slope)


class _ELU(Function):
    def forward(self, a, alpha):
        xp = backend.get_array_module(a)
        self.neg = a <= 0
        self.exp_part = alpha * xp.exp(xp.minimum(a, 0))  # alpha*exp(a) on the negative side
        return xp.where(self.neg, self.exp_part - alpha, a)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g * xp.where(self.neg, self.exp_part, 1.0).astype(g.dtype)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    return _ELU.apply(x, alpha=alpha)


class _Softplus(Function):
    def forward(self, a):
        xp = backend.get_array_module(a)
        self.a = a
        # log(1 + e^a) = max(a, 0) + log1p(e^-|a|): no overflow for large a
        return xp.maximum(a, 0) + xp.log1p(xp.exp(-abs(a)))

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g * 0.5 * (xp.tanh(0.5 * self.a) + 1)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)), computed without overflow."""
    return _Softplus.apply(x)


class _GELU(Function):
    # The tanh approximation (Hendrycks & Gimpel; PyTorch's approximate="tanh"): NumPy has no
    # vectorized erf, and the two differ by < 1e-3.
    _C = math.sqrt(2.0 / math.pi)

    def forward(self, a):
        xp = backend.get_array_module(a)
        self.a = a
        self.t = xp.tanh(self._C * (a + 0.044715 * a**3))
        return 0.5 * a * (1 + self.t)

    def backward(self, g):
        a, t = self.a, self.t
        dinner = self._C * (1 + 3 * 0.044715 * a * a)
        return g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * dinner)


def gelu(x: Tensor) -> Tensor:
    """Gaussian error linear unit, tanh approximation."""
    return _GELU.apply(x)


def _linear_activation(x: Tensor) -> Tensor:
    return x


ACTIVATIONS = {
    "linear": _linear_activation,
    "relu": relu,
    "relu6": relu6,
    "elu": elu,
    "leaky_relu": leaky_relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "gelu": gelu,
}


def get_activation(name: str | None):
    """Look up an activation by its Keras name (``None`` means linear); unknown names list the valid ones."""
    if name is None:
        return _linear_activation
    if callable(name):
        return name
    if name == "softmax":
        return softmax
    try:
        return ACTIVATIONS[name]
    except KeyError:
        valid = ", ".join(sorted([*ACTIVATIONS, "softmax"]))
        raise ValueError(f"unknown activation {name!r}; valid: {valid}") from None


# ---------------------------------------------------------------------------------- softmax family
class _Softmax(Function):
    def forward(self, a, axis):
        xp = backend.get_array_module(a)
        e = xp.exp(a - a.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        self.axis = axis
        return self.out

    def backward(self, g):
        s = self.out
        return s * (g - (g * s).sum(axis=self.axis, keepdims=True))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max for stability."""
    return _Softmax.apply(x, axis=axis)


def log_softmax_array(a: Any, axis: int = -1) -> Any:
    """``log(softmax(a))`` of a raw ``xp`` array along ``axis`` (no graph): shifted by the max, one pass.

    The one computation behind :func:`log_softmax` and :class:`rl.distributions.Categorical`, which
    reads it once per distribution for sampling, log-probabilities and entropy.
    """
    if a.ndim == 2 and axis in (-1, 1) and a.shape[1]:
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(a):
            out = np.empty_like(a)
            kern.log_softmax_rows(a, out)  # one pass per row instead of six array calls (same formula)
            return out
    xp = backend.get_array_module(a)
    shifted = a - _reduce_max(a, axis, True)
    return shifted - xp.log(_reduce_sum(xp.exp(shifted), axis, True))


class _LogSoftmax(Function):
    def forward(self, a, axis):
        out = log_softmax_array(a, axis)
        self.out, self.axis = out, axis
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g - xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably in one pass."""
    return _LogSoftmax.apply(x, axis=axis)


class _LogSumExp(Function):
    def forward(self, a, axis, keepdims):
        xp = backend.get_array_module(a)
        m = a.max(axis=axis, keepdims=True)
        # An infinite max cannot be the shift (inf - inf = NaN); unshifted, exp gives 0 or inf and the
        # log -inf or inf, the right answers for a row of -inf or a row holding +inf.
        m = xp.where(xp.isinf(m), 0, m).astype(a.dtype, copy=False)
        out = m + xp.log(xp.exp(a - m).sum(axis=axis, keepdims=True))
        self.a, self.out_k, self.axis, self.keepdims = a, out, axis, keepdims
        return out if keepdims else out.squeeze(axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        if not self.keepdims and self.axis is not None:  # over all axes g is a scalar and broadcasts
            g = xp.expand_dims(g, self.axis)
        return g * xp.exp(self.a - self.out_k)


def logsumexp(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) along ``axis``, without overflow."""
    return _LogSumExp.apply(x, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------------------------- joins
class _Concat(Function):
    def forward(self, *arrays, axis):
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        self.splits = list(_cumsum([a.shape[axis] for a in arrays]))[:-1]
        return xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return tuple(xp.split(g, self.splits, axis=self.axis))


def _cumsum(values: Sequence[int]):
    total = 0
    for v in values:
        total += v
        yield total


def concat(tensors: Sequence[Tensor], axis: int = -1) -> Tensor:
    """Join tensors along an existing ``axis`` (all other axes equal)."""
    return _Concat.apply(*tensors, axis=axis)


class _Stack(Function):
    def forward(self, *arrays, axis):
        xp = backend.get_array_module(*arrays)
        self.axis, self.n = axis, len(arrays)
        return xp.stack(arrays, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(self.n))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join equal-shaped tensors along a new ``axis``."""
    return _Stack.apply(*tensors, axis=axis)


# ---------------------------------------------------------------------------------- selection
class _Where(Function):
    def forward(self, cond, a, b):
        xp = backend.get_array_module(a, b)
        self.cond = cond
        return xp.where(cond, a, b)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = backend.get_array_module(g)
        # A constant side (``where(mask, x, 0.0)``) needs no gradient: skip its pass.
        ga = xp.where(self.cond, g, zero) if self.inputs[1].requires_grad else None
        gb = xp.where(self.cond, zero, g) if self.inputs[2].requires_grad else None
        return None, ga, gb


def _operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors; a Python number takes the other operand's dtype (see ``as_tensor``)."""
    return as_tensor(a, like=b), as_tensor(b, like=a)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` holds, else ``b`` (broadcast); gradients go to the chosen side."""
    a, b = _operands(a, b)
    cond = condition.data if isinstance(condition, Tensor) else condition
    # A host mask is accepted with device tensors (as take_along_axis takes host indices); CuPy's
    # where refuses NumPy arrays, so it moves over here.
    cond = backend.get_array_module(a.data, b.data).asarray(cond)
    return _Where.apply(cond, a, b)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max; the gradient goes to the larger input (to ``a`` on ties)."""
    a, b = _operands(a, b)
    return _Where.apply(a.data >= b.data, a, b)  # the mask is already an array of the operands' module


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min; the gradient goes to the smaller input (to ``a`` on ties)."""
    a, b = _operands(a, b)
    return _Where.apply(a.data <= b.data, a, b)


class _TakeAlongAxis(Function):
    def forward(self, a, indices, axis):
        xp = backend.get_array_module(a)
        self.shape, self.indices, self.axis = a.shape, indices, axis
        return xp.take_along_axis(a, indices, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        axis = self.axis % len(self.shape)
        # put_along_axis would drop repeated indices; add.at over an explicit index grid keeps them.
        # The grid follows g's shape: indices may broadcast against x's other axes, as in NumPy.
        # Open grids from arange: cupy.indices has no sparse=True (it takes dimensions and dtype only).
        # An axis where x has size 1 and the indices broadcast it maps every position to element 0.
        idx = [(xp.arange(n) if m == n else xp.zeros(n, dtype=xp.int64)).reshape(
            (1,) * i + (n,) + (1,) * (g.ndim - i - 1)) for i, (n, m) in enumerate(zip(g.shape, self.shape))]
        idx[axis] = xp.broadcast_to(self.indices, g.shape)
        if g.shape[axis] == 1 and all(n == 1 or n == m for n, m in zip(self.indices.shape, self.shape)):
            # One index per line along the axis (the action or label of each row) and no broadcast
            # over x's other axes: no element is picked twice, so a plain scatter is exact and much
            # cheaper than add.at.
            out[tuple(idx)] = g
        else:
            xp.add.at(out, tuple(idx), g)
        return out, None


def take_along_axis(x: Tensor, indices: Any, axis: int = -1) -> Tensor:
    """Gather ``x`` at integer ``indices`` along ``axis`` (NumPy's ``take_along_axis``).

    Typical use: Q-values of the taken actions, ``take_along_axis(q, actions[:, None], 1)``
    for ``q`` of shape ``(B, A)`` and integer ``actions`` of shape ``(B,)`` gives ``(B, 1)``.
    """
    idx = indices.data if isinstance(indices, Tensor) else indices
    if not isinstance(idx, type(x.data)):
        idx = backend.get_array_module(x.data).asarray(idx)
    return _TakeAlongAxis.apply(x, idx, axis=axis)


# ---------------------------------------------------------------------------------- linear
class _Linear(Function):
    """``act(x @ w + b)`` as one node: the hot path of every MLP. ``act`` is None, ``"tanh"`` or
    ``"relu"``, computed in place on the fresh output and differentiated from it exactly as the
    separate Tanh/ReLU nodes do (same values, bit for bit), one graph node and one dispatch fewer."""

    def forward(self, x, w, b, act=None):
        self.x, self.w = x, w
        self.has_bias = b is not None
        self.act = act
        out = linear_array(x, w, b, act)
        self.out = out
        return out

    def backward(self, g):
        x_in, w_in = self.inputs[0], self.inputs[1]
        return _linear_backward(g, self.x, self.w, self.out, self.act, self.has_bias, x_in.requires_grad,
                                w_in.requires_grad)


def _linear_backward(g, x, w, out, act, has_bias, need_gx, need_gw):
    """Gradients ``(gx, gw, gb)`` of ``out = act(x @ w + b)`` for the output gradient ``g`` (None where not
    needed): the activation's derivative from ``out``, then two GEMMs and the bias's column sums."""
    if g.ndim == 2:
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(g, x, w):
            # The activation's derivative and the bias gradient in one compiled pass (the same float32
            # arithmetic, so the same bits); gb is computed even without a bias (then dropped): one kernel.
            gb = np.empty(g.shape[1], dtype=np.float32)
            if act is not None:
                d = np.empty(g.shape, dtype=np.float32)
                kern.act_grad_bias(out, g, act == "relu", d, gb)
                g = d
            elif has_bias:
                kern.column_sums(g, gb)
            if has_bias and g.shape[1] == 1:  # one column: NumPy sums it pairwise, as a contiguous vector
                gb = _reduce_sum(g, 0, False)
            gx = gw = None
            if need_gx:
                if w.shape[1] == 1:  # an outer product: matmul's non-BLAS loop is ~15x slower than this
                    gx = np.empty((g.shape[0], w.shape[0]), dtype=np.float32)
                    kern.outer(g[:, 0], w[:, 0], gx)
                else:
                    gx = g @ w.T
            if need_gw:
                if x.shape[0] == 1:  # one row: again an outer product
                    gw = np.empty((x.shape[1], g.shape[1]), dtype=np.float32)
                    kern.outer(x[0], g[0], gw)
                else:
                    gw = x.T @ g
            return gx, gw, (gb if has_bias else None)
    if act == "tanh":  # g * (1 - out**2), in one scratch array instead of three temporaries
        d = out * out
        xp = backend.get_array_module(d)
        xp.subtract(1, d, out=d)
        d *= g
        g = d
    elif act == "relu":
        g = g * (out > 0)
    # A product over an axis of length 1 (one output unit, or one row) is an outer product, where NumPy's
    # matmul leaves BLAS for a loop ~3x slower than broadcasting (the same single products, so the same bits).
    gx = (g * w[:, 0] if w.shape[1] == 1 else g @ w.T) if need_gx else None
    g2 = g.reshape(-1, g.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    gw = (x2.T * g2[0] if x2.shape[0] == 1 else x2.T @ g2) if need_gw else None
    gb = _reduce_sum(g2, 0, False) if has_bias else None
    return gx, gw, gb


class _DenseStack(Function):
    """A stack of dense layers ``act_i(x_i @ w_i + b_i)`` as one graph node: what the chain of
    :class:`_Linear` nodes computes, bit for bit, with one dispatch and one graph entry for the whole MLP.

    Inputs: ``x`` then each layer's ``w`` and (where it has one) ``b``; ``layout`` holds ``(has_bias, act)``
    per layer.
    """

    def forward(self, x, *weights, layout):
        self.layout = layout
        self.xs, self.outs = [], []
        i = 0
        for has_bias, act in layout:
            w = weights[i]
            b = weights[i + 1] if has_bias else None
            i += 2 if has_bias else 1
            self.xs.append(x)
            x = linear_array(x, w, b, act)
            self.outs.append(x)
        self.weights = weights
        return x

    def backward(self, g):
        grads = []  # built back to front: [gb_n, gw_n, ..., gw_1] then reversed
        i = len(self.weights)
        need = [t.requires_grad for t in self.inputs]
        for k in range(len(self.layout) - 1, -1, -1):
            has_bias, act = self.layout[k]
            i -= 2 if has_bias else 1
            need_gx = k > 0 or need[0]
            gx, gw, gb = _linear_backward(g, self.xs[k], self.weights[i], self.outs[k], act, has_bias, need_gx,
                                          need[1 + i])
            if has_bias:
                grads.append(gb)
            grads.append(gw)
            g = gx
        grads.append(g)
        grads.reverse()
        return tuple(grads)


def dense_stack(x: Tensor, layers: Sequence[tuple[Tensor, Tensor | None, str | None]]) -> Tensor:
    """``x`` through dense layers given as ``(weight (in, out), bias (out,) or None, activation)``, the
    activations None, ``"tanh"`` or ``"relu"``; one graph node (see :class:`_DenseStack`), the values of
    ``linear`` applied layer by layer."""
    weights: list[Tensor] = []
    layout = []
    for w, b, act in layers:
        if act is not None and act not in LINEAR_FUSED_ACTIVATIONS:
            raise ValueError(f"dense_stack fuses only {sorted(LINEAR_FUSED_ACTIVATIONS)}, got activation {act!r}")
        weights.append(w)
        if b is not None:
            weights.append(b)
        layout.append((b is not None, act))
    return _DenseStack.apply(x, *weights, layout=tuple(layout))


def linear_array(x: Any, w: Any, b: Any = None, act: str | None = None) -> Any:
    """:func:`linear` on raw arrays, with no graph: ``act(x @ w + b)``, the bias and activation applied in
    place on the fresh product (the values :func:`linear` gives, bit for bit). For inference fast paths."""
    out = x @ w
    if b is not None:
        kern = _fused.kernels() if out.ndim == 2 else None
        if kern is not None and _fused.is_host_float32(out, b):
            kern.add_row(out, b)  # the same float32 adds, without NumPy's broadcast loop per row
        else:
            out += b
    if act is not None:
        xp = backend.get_array_module(out)
        if act == "tanh":
            xp.tanh(out, out=out)
        else:  # "relu": max(a, 0) as ReLU computes it (NaN stays NaN)
            xp.maximum(out, 0, out=out)
    return out


LINEAR_FUSED_ACTIVATIONS = {"tanh": tanh, "relu": relu}  # what linear(..., activation=) computes in its node


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """Affine map: ``x (..., in) @ weight (in, out) + bias (out,)`` -> ``(..., out)``, then optionally
    ``activation`` (``"tanh"`` or ``"relu"``) in the same graph node (equal to ``tanh(linear(...))``)."""
    if activation is not None and activation not in LINEAR_FUSED_ACTIVATIONS:
        raise ValueError(f"linear fuses only {sorted(LINEAR_FUSED_ACTIVATIONS)}, got activation {activation!r}")
    return _Linear.apply(x, weight, bias, act=activation)


# ---------------------------------------------------------------------------------- NN ops (rl.nn_ops)
from rl.nn_ops import (  # noqa: E402
    avg_pool2d,
    batch_norm,
    conv2d,
    depthwise_conv2d,
    dropout,
    global_avg_pool2d,
    max_pool2d,
    pad2d,
)

__all__ += [
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "depthwise_conv2d",
    "dropout",
    "global_avg_pool2d",
    "max_pool2d",
    "pad2d",
]
