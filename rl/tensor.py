"""Tensors and define-by-run reverse-mode autograd.

A :class:`Tensor` wraps one ``xp`` array (NumPy or CuPy, see :mod:`rl.backend`). Every
differentiable operation is a small :class:`Function` whose ``forward`` and ``backward`` sit side
by side and keep only what the backward needs. Calling an op on tensors that require gradients
records the function as the result's creator; ``loss.backward()`` then walks the recorded graph in
reverse creation order (a heap of pending nodes, so there is no recursion limit), accumulates
``grad += ...`` into the leaves, and frees the graph as it goes so a long training loop holds
constant memory.

Broadcasting is handled once, in the engine: whatever gradient an op returns for an input is summed
down to that input's shape, so each op's backward is written as if shapes matched.

Global switches (Chainer's ``using_config``): ``config.train`` tells layers such as dropout and
batch normalization which mode they are in; ``config.enable_grad`` turns recording off
(:func:`no_grad`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np

from rl import backend

__all__ = [
    "Function",
    "Tensor",
    "as_tensor",
    "config",
    "no_grad",
    "tensor",
    "using_config",
]


class _Config(threading.local):
    """Per-thread switches read by ops and layers."""

    def __init__(self) -> None:
        self.train = True  # layers behave as in training (dropout on, batch-norm batch statistics)
        self.enable_grad = True  # ops record the graph for backward


config = _Config()


class _ConfigSwitch:
    """``config.<name> = value`` inside a ``with`` block, restored after (a class, not a generator:
    agents enter one per environment step, and ``contextlib``'s generator machinery costs several times more)."""

    __slots__ = ("name", "value", "old")

    def __init__(self, name: str, value: Any):
        self.name, self.value = name, value

    def __enter__(self) -> None:
        self.old = getattr(config, self.name)
        setattr(config, self.name, self.value)

    def __exit__(self, *exc_info: Any) -> None:
        setattr(config, self.name, self.old)


def using_config(name: str, value: Any) -> contextlib.AbstractContextManager[None]:
    """Temporarily set ``config.<name>`` (``"train"`` or ``"enable_grad"``) inside a ``with`` block."""
    if not hasattr(config, name):
        raise AttributeError(f"unknown config switch {name!r}; valid: 'train', 'enable_grad'")
    return _ConfigSwitch(name, value)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager: ops inside build no graph (inference, target computation, optimizer steps)."""
    return _ConfigSwitch("enable_grad", False)


def _default_float() -> type:
    return np.float32


class Tensor:
    """An ``xp`` array that can record the operations applied to it.

    Args:
        data: array-like of any shape; Python numbers and lists become float32 (ints stay ints
            only when given as integer arrays). Arrays already on the active device are used
            without a copy.
        requires_grad: whether gradients are accumulated into ``.grad`` by ``backward``.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "name", "__weakref__")
    __array_priority__ = 1000  # so ``ndarray + Tensor`` defers to ``Tensor.__radd__``

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.generic):
            data = np.asarray(data)
        if isinstance(data, np.ndarray) or backend.is_device_array(data):
            # Arrays keep their dtype; host arrays move to the GPU when that is the active device.
            if dtype is not None or (isinstance(data, np.ndarray) and backend.current().xp is not np):
                data = backend.to_device(data, dtype)
        else:
            # Python numbers and (nested) lists become float32 unless told otherwise.
            data = backend.to_device(data, dtype if dtype is not None else _default_float())
        self.data = data
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self.creator: Function | None = None
        self.name = name

    # ----------------------------------------------------------------------------- basic facts
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def xp(self) -> Any:
        """The array module that owns this tensor's data."""
        return backend.get_array_module(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{grad})"

    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data (shape ``self.shape``)."""
        return np.array(backend.to_numpy(self.data))

    def item(self) -> float:
        """The single value of a one-element tensor as a Python number (syncs on the GPU)."""
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing this data with no history and no gradient."""
        return Tensor(self.data)

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype`` (differentiable for float-to-float casts)."""
        return Cast.apply(self, dtype=dtype)

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------------------- autograd
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            grad: upstream gradient, same shape as ``self``; defaults to ones (so a scalar loss
                needs no argument).
            retain_graph: keep the recorded graph so ``backward`` can be called again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (made under no_grad?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, got shape {self.shape}")
            grad = xp.ones(self.data.shape, dtype=self.data.dtype)
        elif isinstance(grad, Tensor):
            grad = grad.data
        else:
            grad = xp.asarray(grad)  # a host gradient for device data is copied over (CuPy refuses to mix)
        if grad.shape != self.data.shape:
            # Broadcasting it would hand every op a wrongly shaped gradient (or a leaf a wrong .grad).
            raise ValueError(
                f"backward() got a gradient of shape {tuple(grad.shape)} for a tensor of shape {self.shape}"
            )

        if self.creator is None:  # backward on a leaf: its gradient is the upstream one
            self.grad = grad if self.grad is None else self.grad + grad
            return
        # Nodes run in reverse creation order (PyTorch's engine does the same with its sequence numbers):
        # every consumer of a tensor was created after it, so when a node has the highest number among
        # the pending ones, all gradients into it have arrived. One heap replaces a separate
        # depth-first ordering pass, and only nodes that receive a gradient are ever visited. Leaves
        # (parameters, inputs) never enter the heap: their gradients are accumulated the moment an op
        # hands them out.
        grads: dict[int, Any] = {id(self): grad}
        pending: list[tuple[int, int, Tensor]] = [(-self.creator.seq, id(self), self)]
        while pending:
            _, key, node = heappop(pending)
            fn = node.creator
            input_grads = fn.backward(grads.pop(key))
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            for parent, pg in zip(fn.inputs, input_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.data.shape:
                    pg = _sum_to_shape(pg, parent.data.shape)
                creator = parent.creator
                if creator is None:
                    # ``.grad`` may alias another gradient or be a read-only broadcast view: code that
                    # changes gradients replaces them (``p.grad = p.grad * c``), never writes through.
                    parent.grad = pg if parent.grad is None else parent.grad + pg
                else:
                    key = id(parent)
                    prev = grads.get(key)
                    if prev is None:
                        grads[key] = pg
                        heappush(pending, (-creator.seq, key, parent))
                    else:
                        grads[key] = prev + pg
            if not retain_graph:
                node.creator = _FREED  # free the graph behind us: constant memory in training loops

    # ----------------------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return Sub.apply(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(other, self)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return PowTensor.apply(self, exponent)
        return Pow.apply(self, exponent=exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return PowTensor.apply(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return MatMul.apply(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return MatMul.apply(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return GetItem.apply(self, index=index)

    # Comparisons give plain boolean arrays wrapped as tensors: they have no gradient.
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= _raw(other))

    __hash__ = object.__hash__

    # ----------------------------------------------------------------------------- methods
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=_axis(axis), keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return Mean.apply(self, axis=_axis(axis), keepdims=keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return Max.apply(self, axis=_axis(axis), keepdims=keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return -Max.apply(-self, axis=_axis(axis), keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def flatten(self, start_axis: int = 1) -> Tensor:
        """Merge the axes from ``start_axis`` on: ``(N, ...)`` -> ``(N, prod(...))`` by default."""
        return self.reshape(self.shape[:start_axis] + (-1,))

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return Transpose.apply(self, axes=None)

    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def tanh(self) -> Tensor:
        return Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return ReLU.apply(self)

    def clip(self, low: float | None, high: float | None) -> Tensor:
        return Clip.apply(self, low=low, high=high)


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a :class:`Tensor` on the active device (float32 unless ``data`` or ``dtype`` says otherwise)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(x: Any, like: Any = None) -> Tensor:
    """Return ``x`` if it is a Tensor, else wrap it (no gradient).

    A Python number next to an operand ``like`` (a Tensor or array) takes the dtype NumPy's own
    arithmetic would give it there, so ``minimum(float64_tensor, 2.328)`` compares against the
    float64 2.328, not its float32 rounding (float stays float, int next to int stays int). Without
    ``like``, numbers become float32 as in :class:`Tensor`.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and type(x) in (bool, int, float):
        other = like.data if isinstance(like, Tensor) else like
        if hasattr(other, "dtype"):
            return Tensor(x, dtype=np.result_type(other.dtype, x))
    return Tensor(x)


def _sum_to_shape(grad: Any, shape: tuple[int, ...]) -> Any:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.ndim == len(shape) and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != tuple(shape):
        # An op returned a gradient that is not a broadcast of its input: a bug in that op's backward.
        raise RuntimeError(f"gradient of shape {grad.shape} does not fit an input of shape {tuple(shape)}")
    return grad


class Function:
    """One differentiable operation: ``forward`` on raw arrays, ``backward`` on the output gradient.

    Subclasses implement ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad_out) -> grad or tuple of grads`` (one per positional input, ``None``
    where an input needs none). Keep only what the backward needs on ``self``. Use
    ``Function.apply(*inputs, **params)``; non-tensor inputs (numbers, arrays) are treated as
    constants.
    """

    inputs: tuple[Tensor, ...]
    seq: int  # creation number of a recorded node: backward runs nodes from the highest down

    def forward(self, *arrays: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Tensor:
        # The hot path of every model: kept to plain attribute stores and one pass over the inputs.
        fn = cls()
        needs_grad = False
        all_tensors = True
        arrays = []
        for x in inputs:
            if type(x) is Tensor:
                arrays.append(x.data)
                if x.requires_grad:
                    needs_grad = True
            else:
                arrays.append(x)
                all_tensors = False
        out = _new_tensor(fn.forward(*arrays, **params))
        if needs_grad and config.enable_grad:
            out.requires_grad = True
            # Constants become grad-free tensors so backward can zip inputs and grads.
            fn.inputs = inputs if all_tensors else tuple([x if type(x) is Tensor else _CONSTANT for x in inputs])
            fn.seq = _next_seq()
            out.creator = fn
        return out


def _new_tensor(data: Any) -> Tensor:
    """A Tensor around an op's output array, without the conversions of ``Tensor.__init__``."""
    out = _tensor_new(Tensor)
    out.data = data
    out.grad = None
    out.name = None
    out.creator = None
    out.requires_grad = False
    return out


_tensor_new = Tensor.__new__
_next_seq = itertools.count(1).__next__  # thread-safe under the GIL; one counter orders every graph


class _FreedGraph(Function):
    inputs = ()
    seq = 0

    def backward(self, grad_out: Any) -> Any:
        raise RuntimeError(
            "backward() through a graph that was already freed; pass retain_graph=True to the first call"
        )


_FREED = _FreedGraph()
_CONSTANT = Tensor(0.0)  # stands in for non-tensor inputs in a graph; never requires grad


# =============================================================================================
# Primitive ops. Each backward is a few lines beside its forward (micrograd's layout).
# =============================================================================================


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.inputs[1].requires_grad else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        # Only the inputs that need a gradient get one: in ``x * constant`` half the work is skipped.
        a_in, b_in = self.inputs
        return (g * self.b if a_in.requires_grad else None), (g * self.a if b_in.requires_grad else None)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        gb = None
        if self.inputs[1].requires_grad:
            gb = -g * self.a / (self.b * self.b)
        return g / self.b, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    """``a ** exponent`` for a constant exponent."""

    def forward(self, a, exponent):
        self.a, self.exponent = a, exponent
        return a**exponent

    def backward(self, g):
        if self.exponent == 0:  # d(a**0)/da = 0 everywhere (the formula gives 0 * inf = nan at a = 0)
            return backend.get_array_module(g).zeros_like(g)
        if self.exponent == 2:  # squares (losses): a ** 1 is a exactly, so skip that pass
            return g * 2 * self.a
        return g * self.exponent * self.a ** (self.exponent - 1)


class PowTensor(Function):
    """``a ** b`` where the exponent is a tensor too."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        xp = backend.get_array_module(g)
        # A constant base (``2.0 ** t``) arrives as a Python number: CuPy's where needs an array, and
        # one of g's dtype keeps a float32 gradient float32.
        a = self.a if isinstance(self.a, type(g)) else xp.asarray(self.a, dtype=g.dtype)
        ga = g * self.b * a ** (self.b - 1)
        gb = g * self.out * xp.log(xp.where(a > 0, a, 1))
        return ga, gb


class MatMul(Function):
    """``a @ b`` with NumPy's matmul rules (1-d operands promoted, leading axes broadcast)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        xp = backend.get_array_module(g)
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:  # a dot product: g is a scalar
            return g * b, g * a
        # Promote 1-d operands the way matmul does, then drop the added axes again.
        if a.ndim == 1:
            a, g = a[None, :], xp.expand_dims(g, -2)
        if b.ndim == 1:
            b, g = b[:, None], xp.expand_dims(g, -1)
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = g @ xp.swapaxes(b, -1, -2)
            if self.a.ndim == 1:
                ga = ga[..., 0, :]
        if self.inputs[1].requires_grad:
            gb = xp.swapaxes(a, -1, -2) @ g
            if self.b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


class Exp(Function):
    def forward(self, a):
        self.out = backend.get_array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return backend.get_array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = backend.get_array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return abs(a)

    def backward(self, g):
        return g * backend.get_array_module(g).sign(self.a)


class Cast(Function):
    def forward(self, a, dtype):
        self.dtype_in = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype_in) if self.dtype_in.kind == "f" else None


def _reduce_sum(a: Any, axis: Any, keepdims: bool) -> Any:
    """``a.sum(axis, keepdims=...)``; on NumPy the ufunc reduction it wraps, called directly (ndarray.sum
    passes through a Python-level wrapper that costs as much as summing a small array)."""
    if type(a) is np.ndarray:
        return np.add.reduce(a, axis=axis, keepdims=keepdims)
    return a.sum(axis=axis, keepdims=keepdims)


def _reduce_max(a: Any, axis: Any, keepdims: bool) -> Any:
    """``a.max(axis, keepdims=...)``, on NumPy by its ufunc reduction (see ``_reduce_sum``)."""
    if type(a) is np.ndarray:
        return np.maximum.reduce(a, axis=axis, keepdims=keepdims)
    return a.max(axis=axis, keepdims=keepdims)


def _spread(g: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """The gradient of a reduction over ``axis``: ``g`` repeated back to the input's ``shape``."""
    xp = backend.get_array_module(g)
    if axis is not None and not keepdims:
        g = xp.expand_dims(g, axis)
    if xp is np:
        # A filled array rather than np.broadcast_to's read-only view: same values, one C call.
        out = np.empty(shape, dtype=g.dtype)
        out[...] = g
        return out
    return xp.broadcast_to(g, shape)


class Sum(Function):
    def forward(self, a, axis, keepdims):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return _reduce_sum(a, axis, keepdims)

    def backward(self, g):
        return _spread(g, self.shape, self.axis, self.keepdims)


class Mean(Function):
    def forward(self, a, axis, keepdims):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        if a.dtype.kind != "f" or a.dtype.itemsize < 4 or not a.size:  # float16 means accumulate in float32
            out = a.mean(axis=axis, keepdims=keepdims)
            self.count = a.size // max(out.size, 1) if a.size else 1
            return out
        # A float mean is NumPy's own sum then one division by the count (what ndarray.mean does,
        # bit for bit), without ndarray.mean's Python-level wrapper, which costs more than the sum
        # on the small arrays of RL losses.
        out = _reduce_sum(a, axis, keepdims)
        self.count = a.size // max(out.size, 1)
        return out / self.count

    def backward(self, g):
        return _spread(g / self.count, self.shape, self.axis, self.keepdims)


class Max(Function):
    """Maximum over ``axis``; ties share the gradient equally (the subgradient torch's amax uses)."""

    def forward(self, a, axis, keepdims):
        self.a, self.axis, self.keepdims = a, axis, keepdims
        self.out = a.max(axis=axis, keepdims=True)
        return self.out if keepdims else self.out.reshape(a.max(axis=axis).shape)

    def backward(self, g):
        mask = (self.a == self.out).astype(g.dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        if not self.keepdims:
            g = g.reshape(self.out.shape)
        return mask * g


class Reshape(Function):
    def forward(self, a, shape):
        self.shape_in = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape_in)


class Transpose(Function):
    def forward(self, a, axes):
        if axes is not None:
            axes = tuple(int(ax) % a.ndim for ax in axes)  # argsort inverts only non-negative permutations
        self.axes = axes
        return a.transpose(axes) if axes is not None else a.T

    def backward(self, g):
        if self.axes is None:
            return g.T
        return g.transpose(tuple(np.argsort(self.axes)))


class GetItem(Function):
    """Basic and advanced indexing; backward scatters with ``add.at`` so repeated indices add up."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        xp.add.at(out, self.index, g)
        return out


class Tanh(Function):
    def forward(self, a):
        self.out = backend.get_array_module(a).tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    def forward(self, a):
        xp = backend.get_array_module(a)
        # tanh form: stable for large |a| without a branch
        self.out = 0.5 * (xp.tanh(0.5 * a) + 1)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class ReLU(Function):
    def forward(self, a):
        # One pass, and right at -inf (a * (a > 0) would give -inf * 0 = nan); NaN stays NaN. The mask
        # the backward needs is taken from the output there, so inference never builds it.
        self.out = backend.get_array_module(a).maximum(a, 0)
        return self.out

    def backward(self, g):
        return g * (self.out > 0)


class Clip(Function):
    """Clamp to ``[low, high]``; the gradient flows only where the input was inside the range (ends included)."""

    def forward(self, a, low, high):
        xp = backend.get_array_module(a)
        # np.clip's values (its ufunc is minimum(maximum(a, low), high)) without its Python-level wrapper.
        out = a.copy() if low is None else xp.maximum(a, low)
        if high is not None:
            out = xp.minimum(out, high)
        self.a, self.out = a, out
        return out

    def backward(self, g):
        # Inside the range exactly where clamping left the value alone: one comparison instead of two
        # and a conjunction. NaN stays NaN and compares unequal, so it gets no gradient, as before.
        return g * (self.out == self.a)
