"""A strict, NumPy-backed stand-in for CuPy, so the GPU code path runs on a machine without a GPU.

No GPU has been available to this project, so the code that runs when ``rl.backend`` picks CuPy
would otherwise only ever run on the rare device machine, with minutes to spare. This module plays
CuPy's part on the CPU: every array lives in a private NumPy buffer, and the stand-in behaves like
CuPy wherever CuPy differs from NumPy in a way that breaks code written for NumPy. The facts below
come from CuPy's source (``cupy/_core/core.pyx``, ``_routines_indexing.pyx``, ``_kernel.pyx``,
``cupy/random/_generator_api.pyx``; CuPy 13-14, the ``cupy-cuda13x`` wheel the device has):

* ``ndarray`` is not a ``numpy.ndarray``. ``numpy.asarray(dev)`` / ``numpy.array(dev)`` raise
  ``TypeError: Implicit conversion to a NumPy array is not allowed...``; ``.get()`` and
  ``asnumpy`` copy to the host; ``asarray`` / ``array`` copy host data (lists, NumPy arrays,
  nested lists of device arrays) to the device, so the device copy never aliases the host array.
* A host ``numpy.ndarray`` (0-d included) in a ufunc, an operator or a CuPy function raises
  ``TypeError: Unsupported type <class 'numpy.ndarray'>``; Python and NumPy scalars are fine.
  Lists are not arrays to a ufunc either. NumPy functions called on device arrays dispatch here
  (``__array_function__`` / ``__array_ufunc__``), so ``np.clip(dev, 0, 1)`` is a device array.
* Reductions and integer indexing return 0-d device arrays, never scalars. ``float``, ``int``,
  ``bool``, ``complex``, ``.item()``, ``.tolist()`` and ``format`` work (a sync on a real GPU);
  there is no ``__index__`` (so no ``range(n)``, ``list[i]`` or shape entry from a 0-d array)
  and no ``__round__``. ``len`` and iteration follow CuPy (0-d arrays raise ``TypeError``).
* Indexing accepts host index arrays and lists (CuPy copies them over). Assigning a host array
  through advanced indexing copies it over too, but through basic indexing (``dev[1:3] = host``)
  CuPy calls ``fill`` and raises ``ValueError: non-scalar numpy.ndarray cannot be used for fill``.
* ``ufunc.at`` exists only where CuPy has a scatter kernel: ``add`` (int32, float16, float32,
  _np.float64, uint32, uint64 -- not _np.int64), ``subtract`` (int32, uint32), ``maximum`` / ``minimum``
  (int32, float32, _np.float64, uint32, uint64), ``bitwise_and/or/xor`` (int32, _np.int64, uint32,
  uint64). ``ufunc.reduce`` / ``accumulate`` exist only for ``add`` and ``multiply``. Ufuncs take
  ``out``, ``dtype`` and ``casting``; ``where=`` and other NumPy keywords raise ``TypeError``.
* ``random.default_rng(seed)`` (int, ``None``, int sequence or ``numpy.random.SeedSequence``)
  returns a ``Generator`` with only CuPy's methods: random, uniform, integers, standard_normal,
  standard_exponential, exponential, standard_gamma, gamma, beta, binomial, poisson, geometric,
  hypergeometric, logseries, power, chisquare, dirichlet, f -- no normal, choice, permutation,
  shuffle or spawn. Its stream differs from NumPy's for the same seed (Philox here, XORWOW there).
* ``ndarray`` methods are CuPy's (no ``setflags``, ``ctypes``, ``flags.writeable``; ``sort`` and
  ``argsort`` take no ``kind``; ``max``/``min`` take no ``initial``); dtypes are numeric only.
* ``is_available()``, ``cuda.Device()``, ``cuda.runtime.getDeviceProperties(i)["name"]`` (bytes)
  and ``__version__`` answer as CuPy does, naming the device "simulated CuPy (NumPy-backed)".

Where CuPy's behaviour was not certain the stand-in is stricter: ``ascontiguousarray``, ``copyto``,
``take_along_axis``, ``searchsorted`` and the ``*_like`` functions accept device arrays only, and a
name CuPy may have but the project never needed raises ``AttributeError`` saying so (add it here).

Not CuPy: ``transfers`` counts host<->device copies for the round-trip tests.

What it does not model: kernels, streams and asynchrony (everything is synchronous), float
rounding and reduction order on the GPU, cuBLAS/cuDNN numerics, out-of-bounds integer-array indices
(CuPy wraps them, NumPy and this stand-in raise), duplicate indices in assignment (undefined order
in CuPy), device memory limits, multiple devices, and speed.

Activation: ``PLAYGRAD_SIMULATED_GPU=1`` makes ``tests/conftest.py`` install this module as
``sys.modules["cupy"]`` before ``rl.backend`` probes, and puts ``tests/simgpu/site`` on
``PYTHONPATH`` so subprocesses the tests start see it too. ``make test-simgpu`` runs the suite's GPU
path on it. Never active otherwise; ``rl/backend.py`` stays the only module that imports CuPy.
"""

from __future__ import annotations

import builtins
import functools
import operator
import sys
import types
import warnings
from typing import Any

import numpy as _np

__version__ = "14.2.0+simulated"

# Every copy between host and device, counted so tests can hold the GPU path to few round trips per
# step ("to_host": .get(), asnumpy, item, tolist and the scalar conversions, each a sync on a real GPU;
# "to_device": host data turned into a device array). Not part of CuPy.
transfers = {"to_host": 0, "to_device": 0}
DEVICE_NAME = "simulated CuPy (NumPy-backed)"
_THIS = sys.modules[__name__]

# dtypes and constants are NumPy's own objects in CuPy too (``cupy.float32 is numpy.float32``)
_NUMPY_ALIASES = [
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "intc",
    "intp",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "uintc",
    "uintp",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "dtype",
    "finfo",
    "iinfo",
    "generic",
    "number",
    "integer",
    "signedinteger",
    "unsignedinteger",
    "inexact",
    "floating",
    "complexfloating",
    "e",
    "pi",
    "inf",
    "nan",
    "euler_gamma",
    "newaxis",
]
for _alias in _NUMPY_ALIASES:
    setattr(_THIS, _alias, getattr(_np, _alias))

can_cast = _np.can_cast
promote_types = _np.promote_types
min_scalar_type = _np.min_scalar_type
issubdtype = _np.issubdtype
ndindex = _np.ndindex
byte = _np.byte
ubyte = _np.ubyte
short = _np.short
ushort = _np.ushort
longlong = _np.longlong
ulonglong = _np.ulonglong
half = _np.half
single = _np.single
double = _np.double
cfloat = _np.complex128
csingle = _np.csingle
cdouble = _np.cdouble


def _unsupported(x: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}")


def _is_scalar(x: Any) -> bool:
    """Python or NumPy scalars: what CuPy passes to a kernel by value."""
    return isinstance(x, bool | int | float | complex | _np.generic) and not isinstance(x, _np.ndarray)


def _check_dtype(dt: Any) -> _np.dtype:
    dt = _np.dtype(dt)
    if dt.kind not in "biufc" or (dt.kind in "fc" and dt.itemsize > 16) or dt == _np.longdouble and dt.itemsize > 8:
        raise ValueError(f"Unsupported dtype {dt}")
    return dt


# --------------------------------------------------------------------------------------- ndarray
class _Flags:
    """CuPy's flags: only c_contiguous, f_contiguous and owndata (read-only)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: _np.ndarray):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)

    def __getitem__(self, name: str) -> bool:
        key = {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous", "OWNDATA": "owndata"}[name.upper()]
        return getattr(self, key)

    def __repr__(self) -> str:
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class _MemoryPointer:
    """Stands for ``cupy.cuda.MemoryPointer``: not a buffer the host can read."""

    __slots__ = ("ptr", "device_id")

    def __init__(self, a: _np.ndarray):
        self.ptr = a.__array_interface__["data"][0]
        self.device_id = 0


def _should_use_rop(x: Any, y: Any) -> bool:
    # CuPy's rule: defer to the right operand when it opted out of __array_ufunc__ (NEP 13)
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: the data sits in a private NumPy buffer that only ``.get()`` copies out."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None, order: str = "C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the simulated CuPy does not model memptr/strides")
        self._a = _np.empty(_shape_arg(shape), dtype=_check_dtype(dtype), order=order)

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value: Any) -> None:
        self._a.shape = _shape_arg(value)

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self._a))
    device = property(lambda self: cuda.Device(0))
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(_np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))

    @property
    def base(self) -> Any:
        return None if self._a.base is None else _wrap(self._a.base) if isinstance(self._a.base, _np.ndarray) else None

    @property
    def flat(self) -> Any:
        raise NotImplementedError("the simulated CuPy does not model cupy.flatiter")

    # ------------------------------------------------------------------ host transfers
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> _np.ndarray:
        """Copy to the host (a new ``numpy.ndarray``; ``out`` must be one of the same shape and dtype)."""
        transfers["to_host"] += 1
        if out is not None:
            if not isinstance(out, _np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr: Any, stream: Any = None) -> None:
        if not isinstance(arr, _np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        self._a[...] = arr

    def item(self) -> Any:
        transfers["to_host"] += 1
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self._a.item()

    def tolist(self) -> Any:
        transfers["to_host"] += 1
        return self._a.tolist()

    def tobytes(self, order: str = "C") -> bytes:
        return self._a.tobytes(order)

    def tofile(self, fid: Any, sep: str = "", format: str = "%s") -> None:  # noqa: A002
        self._a.tofile(fid, sep, format)

    # ------------------------------------------------------------------ numpy interop (CuPy's rules)
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
            "explicitly."
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        func = getattr(_THIS, ufunc.__name__, None)
        if not isinstance(func, ufunc_type):
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method)
        for x in inout:
            if not (isinstance(x, ndarray | _np.ndarray) or _is_scalar(x)):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            inputs = tuple(x.item() if isinstance(x, _np.ndarray) and x.ndim == 0 else x for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        module: Any = _THIS
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
            if module is None:
                return NotImplemented
        ours = getattr(module, func.__name__, None)
        if ours is None or ours is func:
            return NotImplemented
        for t in types_:
            if not issubclass(t, ndarray | _np.ndarray):
                return NotImplemented
        return ours(*args, **kwargs)

    # ------------------------------------------------------------------ conversions
    def __int__(self) -> int:
        transfers["to_host"] += 1
        return int(self._a)

    def __float__(self) -> float:
        transfers["to_host"] += 1
        return float(self._a)

    def __complex__(self) -> complex:
        transfers["to_host"] += 1
        return complex(self._a)

    def __bool__(self) -> bool:
        transfers["to_host"] += 1
        if self.size == 0:
            warnings.warn(
                "The truth value of an empty array is ambiguous. Returning False, but in future this will result "
                "in an error. Use `array.size > 0` to check that an array is not empty.",
                DeprecationWarning,
                stacklevel=2,
            )
            return False
        if self.size == 1:
            return bool(self._a.reshape(()))
        raise ValueError("The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()")

    def __repr__(self) -> str:
        return repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __format__(self, spec: str) -> str:
        transfers["to_host"] += 1
        return format(self._a, spec)

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> ndarray:
        return self.copy()

    def __reduce__(self) -> Any:
        return array, (self.get(),)

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key: Any) -> ndarray:
        index, advanced = _index(key)
        if not advanced:
            # CuPy returns a view even for a full integer index (a 0-d array sharing memory), where
            # NumPy returns a scalar copy; an Ellipsis makes NumPy return the view too
            items = index if isinstance(index, tuple) else (index,)
            if not builtins.any(i is Ellipsis for i in items):
                index = (*items, Ellipsis)
        return _wrap(self._a[index])

    def __setitem__(self, key: Any, value: Any) -> None:
        index, advanced = _index(key)
        self._a[index] = _assigned_value(value, advanced)

    # ------------------------------------------------------------------ methods (CuPy's signatures)
    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None, copy: bool = True) -> Any:
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        dt = _check_dtype(dtype)
        if not copy and dt == self.dtype:
            return self
        return _wrap(self._a.astype(dt, order=order, copy=True))

    def copy(self, order: str = "C") -> ndarray:
        return _wrap(self._a.copy(order=order))

    def view(self, dtype: Any = None) -> ndarray:
        return _wrap(self._a.view() if dtype is None else self._a.view(_check_dtype(dtype)))

    def fill(self, value: Any) -> None:
        if isinstance(value, _np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        if isinstance(value, ndarray):
            self._a[...] = value._a
        elif _is_scalar(value):
            self._a.fill(value)
        else:
            raise _unsupported(value)

    def reshape(self, *shape: Any, order: str = "C") -> ndarray:
        if len(shape) == 1 and not isinstance(shape[0], int | _np.integer):
            shape = shape[0]
        return _wrap(self._a.reshape(_shape_arg(shape), order=order))

    def transpose(self, *axes: Any) -> ndarray:
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], tuple | list)):
            axes = axes[0]
        return _wrap(self._a.transpose(*((_shape_arg(axes),) if axes else ())))

    def swapaxes(self, axis1: int, axis2: int) -> ndarray:
        return _wrap(self._a.swapaxes(_int(axis1), _int(axis2)))

    def flatten(self) -> ndarray:
        return _wrap(self._a.flatten())

    def ravel(self, order: str = "C") -> ndarray:
        return _wrap(self._a.ravel(order))

    def squeeze(self, axis: Any = None) -> ndarray:
        return _wrap(self._a.squeeze(axis))

    def take(self, indices: Any, axis: Any = None, out: Any = None) -> ndarray:
        return take(self, indices, axis, out)

    def put(self, indices: Any, values: Any, mode: str = "wrap") -> None:
        idx = array(indices)._a.ravel()
        vals = values._a if isinstance(values, ndarray) else array(values, dtype=self.dtype)._a
        self._a.put(idx, vals, mode=mode)

    def repeat(self, repeats: Any, axis: Any = None) -> ndarray:
        if isinstance(repeats, ndarray | _np.ndarray):
            raise ValueError("`repeats` should be int or list of ints (CuPy accepts no arrays here)")
        return _wrap(self._a.repeat(repeats, axis))

    def sort(self, axis: int = -1) -> None:
        self._a.sort(axis=axis, kind="stable")

    def argsort(self, axis: Any = -1) -> ndarray:
        return _wrap(self._a.argsort(axis=axis, kind="stable"))

    def nonzero(self) -> tuple[ndarray, ...]:
        return _wrap(self._a.nonzero())

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> ndarray:
        return _wrap(self._a.diagonal(offset, axis1, axis2))

    def dot(self, b: Any, out: Any = None) -> ndarray:
        return dot(self, b, out)

    def conj(self) -> ndarray:
        return _wrap(self._a.conj())

    conjugate = conj

    def _reduce(self, name: str, axis: Any, out: Any, keepdims: bool, **kw: Any) -> Any:
        kw = {k: (_np.dtype(v) if k == "dtype" and v is not None else v) for k, v in kw.items()}
        result = getattr(self._a, name)(axis=_axis_arg(axis), out=_out(out), keepdims=keepdims, **kw)
        return out if out is not None else _wrap(result)

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("max", axis, out, keepdims)

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("min", axis, out, keepdims)

    def argmax(self, axis: Any = None, out: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        result = _wrap(self._a.argmax(axis=axis, keepdims=keepdims))
        return result if dtype is None else result.astype(dtype, copy=False)

    def argmin(self, axis: Any = None, out: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        result = _wrap(self._a.argmin(axis=axis, keepdims=keepdims))
        return result if dtype is None else result.astype(dtype, copy=False)

    def ptp(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return _wrap(_np.ptp(self._a, axis=axis, keepdims=keepdims))

    def clip(self, min: Any = None, max: Any = None, out: Any = None) -> Any:  # noqa: A002
        return clip(self, min, max, out=out)

    def round(self, decimals: int = 0, out: Any = None) -> Any:
        return _THIS.around(self, decimals, out=out)

    def trace(self, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None) -> Any:
        return _wrap(self._a.trace(offset, axis1, axis2, dtype=dtype, out=_out(out)))

    def sum(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("sum", axis, out, keepdims, dtype=dtype)

    def prod(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("prod", axis, out, keepdims, dtype=dtype)

    def mean(self, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("mean", axis, out, keepdims, dtype=dtype)

    def var(self, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
        return self._reduce("var", axis, out, keepdims, dtype=dtype, ddof=ddof)

    def std(self, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
        return self._reduce("std", axis, out, keepdims, dtype=dtype, ddof=ddof)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("all", axis, out, keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("any", axis, out, keepdims)

    def cumsum(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        return _wrap(self._a.cumsum(axis=axis, dtype=dtype, out=_out(out)))

    def cumprod(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        return _wrap(self._a.cumprod(axis=axis, dtype=dtype, out=_out(out)))


ndarray.__module__ = "cupy"


def _binary_dunder(name: str, reflected: bool = False, inplace: bool = False) -> Any:
    def method(self: ndarray, other: Any) -> Any:
        func = getattr(_THIS, name)
        if name in ("less", "less_equal", "greater", "greater_equal") and isinstance(other, _np.ndarray):
            other = other.item() if other.ndim == 0 else other  # CuPy's __richcmp__ workaround
        if inplace:
            return func(self, other, out=self)
        if not isinstance(other, ndarray) and _should_use_rop(self, other):
            return NotImplemented
        return func(other, self) if reflected else func(self, other)

    return method


for _op, _name in [
    ("add", "add"),
    ("sub", "subtract"),
    ("mul", "multiply"),
    ("truediv", "true_divide"),
    ("floordiv", "floor_divide"),
    ("mod", "remainder"),
    ("pow", "power"),
    ("matmul", "matmul"),
    ("and", "bitwise_and"),
    ("or", "bitwise_or"),
    ("xor", "bitwise_xor"),
    ("lshift", "left_shift"),
    ("rshift", "right_shift"),
]:
    setattr(ndarray, f"__{_op}__", _binary_dunder(_name))
    setattr(ndarray, f"__r{_op}__", _binary_dunder(_name, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary_dunder(_name, inplace=True))
for _op, _name in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal")]:
    setattr(ndarray, f"__{_op}__", _binary_dunder(_name))


def _eq(self: ndarray, other: Any) -> Any:
    # CuPy: an object with object's own __eq__ (or None) never equals an element; anything else goes
    # to cupy.equal, which refuses what is not an array or a scalar
    if other is None or (not isinstance(other, ndarray) and type(other).__eq__ is object.__eq__):
        return zeros(self.shape, dtype=_np.bool_)
    return _THIS.equal(self, other.item() if isinstance(other, _np.ndarray) and other.ndim == 0 else other)


def _ne(self: ndarray, other: Any) -> Any:
    if other is None or (not isinstance(other, ndarray) and type(other).__ne__ is object.__ne__
                         and type(other).__eq__ is object.__eq__):
        return ones(self.shape, dtype=_np.bool_)
    return _THIS.not_equal(self, other.item() if isinstance(other, _np.ndarray) and other.ndim == 0 else other)


ndarray.__eq__ = _eq  # type: ignore[method-assign,assignment]
ndarray.__ne__ = _ne  # type: ignore[method-assign,assignment]
ndarray.__neg__ = lambda self: _THIS.negative(self)  # type: ignore[attr-defined]
ndarray.__pos__ = lambda self: self  # type: ignore[attr-defined]
ndarray.__abs__ = lambda self: _THIS.absolute(self)  # type: ignore[attr-defined]
ndarray.__invert__ = lambda self: _THIS.invert(self)  # type: ignore[attr-defined]
ndarray.__divmod__ = lambda self, other: _THIS.divmod(self, other)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------- helpers
def _wrap(r: Any) -> Any:
    """NumPy results -> device arrays; NumPy scalars become 0-d device arrays, as CuPy returns them."""
    if isinstance(r, _np.ndarray):
        _check_dtype(r.dtype)
        out = ndarray.__new__(ndarray)
        out._a = r
        return out
    if isinstance(r, _np.generic):
        return _wrap(_np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    if isinstance(r, list):
        return [_wrap(x) for x in r]
    return r


def _int(x: Any) -> int:
    """An integer argument the way Cython's ``Py_ssize_t`` takes it: via ``__index__`` (device arrays have none)."""
    return operator.index(x)


def _shape_arg(shape: Any) -> Any:
    if shape is None:
        return None
    if isinstance(shape, list | tuple):
        return tuple(_int(s) for s in shape)
    return _int(shape)


def _axis_arg(axis: Any) -> Any:
    if axis is None:
        return None
    if isinstance(axis, list | tuple):
        return tuple(_int(a) for a in axis)
    return _int(axis)


def _out(out: Any) -> Any:
    if out is None:
        return None
    if not isinstance(out, ndarray):
        raise TypeError("Output arguments must be cupy.ndarray")
    return out._a


def _dev(x: Any, what: str = "argument") -> Any:
    """A device array's buffer or a scalar; anything else (host arrays, lists) is CuPy's TypeError."""
    if isinstance(x, ndarray):
        return x._a
    if _is_scalar(x):
        return x
    raise _unsupported(x)


def _dev_array(x: Any) -> _np.ndarray:
    """A device array argument that CuPy reads attributes of (``a.shape``, ``a.dtype``, ``a.reshape``)."""
    if isinstance(x, ndarray):
        return x._a
    raise _unsupported(x)


def _plain(x: Any) -> Any:
    """Non-array arguments (axes, shapes, dtypes, flags): device arrays and host arrays are refused."""
    if isinstance(x, ndarray | _np.ndarray):
        raise _unsupported(x)
    if isinstance(x, list | tuple):
        return type(x)(_plain(v) for v in x)
    return x


def _host_data(obj: Any) -> Any:
    """Host data bound for the device (``cupy.array``): nested sequences of device arrays are allowed whole."""
    if isinstance(obj, list | tuple) and obj:
        leaves = list(_leaves(obj))
        # builtins: this module's own any/all are CuPy's reductions
        if builtins.any(isinstance(v, ndarray) for v in leaves):
            if not builtins.all(isinstance(v, ndarray) for v in leaves):
                # CuPy's nested-sequence path hands a mixed list to NumPy, which hits __array__
                raise TypeError(
                    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
                    "array explicitly."
                )
            return _np.array(_unwrap_nested(obj))
    return obj


def _leaves(obj: Any) -> Any:
    if isinstance(obj, list | tuple):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


def _unwrap_nested(obj: Any) -> Any:
    if isinstance(obj, list | tuple):
        return [_unwrap_nested(v) for v in obj]
    return obj._a


def _index(key: Any) -> tuple[Any, bool]:
    """Translate an index as CuPy's ``_prepare_slice_list`` does; returns (numpy index, uses advanced indexing)."""
    items = key if isinstance(key, tuple) else (key,)
    out = []
    advanced = False
    for s in items:
        if s is None or s is Ellipsis:
            out.append(s)
        elif isinstance(s, slice):
            out.append(slice(*(None if v is None else _int(v) for v in (s.start, s.stop, s.step))))
        elif isinstance(s, ndarray):
            if s.dtype.kind not in "biu":
                raise IndexError(f"arrays used as indices must be of integer or boolean type. (actual: {s.dtype.type})")
            out.append(s._a)
            advanced = True
        elif isinstance(s, bool | _np.bool_):
            out.append(_np.asarray(s))
            advanced = True
        elif isinstance(s, int | _np.integer):
            out.append(int(s))
        elif isinstance(s, _np.ndarray | list | tuple):
            arr = _np.array(_host_data(s))  # CuPy copies host index arrays to the device
            if arr.size == 0 and isinstance(s, list | tuple):
                arr = arr.astype(_np.int32)
            if arr.dtype.kind not in "biu":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            out.append(arr)
            advanced = True
        else:
            raise IndexError(
                "only integers, slices (`:`), ellipsis (`...`),numpy.newaxis (`None`) and integer or boolean arrays "
                "are valid indices"
            )
    return (tuple(out) if isinstance(key, tuple) else out[0]), advanced


def _assigned_value(value: Any, advanced: bool) -> Any:
    if isinstance(value, ndarray):
        return value._a
    if _is_scalar(value):
        return value
    if isinstance(value, _np.ndarray) and value.ndim == 0:
        return value.item()
    if advanced:  # CuPy's scatter path copies host values over (core.array)
        return array(value)._a
    # basic indexing ends in ndarray.fill(value)
    if isinstance(value, _np.ndarray):
        raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
    raise _unsupported(value)


# --------------------------------------------------------------------------------------- ufuncs
_SCATTER = {
    "add": ("add", (_np.int32, _np.float16, _np.float32, _np.float64, _np.uint32, _np.uint64)),
    "subtract": ("sub", (_np.int32, _np.uint32)),
    "maximum": ("max", (_np.int32, _np.float32, _np.float64, _np.uint32, _np.uint64)),
    "minimum": ("min", (_np.int32, _np.float32, _np.float64, _np.uint32, _np.uint64)),
    "bitwise_and": ("and", (_np.int32, _np.int64, _np.uint32, _np.uint64)),
    "bitwise_or": ("or", (_np.int32, _np.int64, _np.uint32, _np.uint64)),
    "bitwise_xor": ("xor", (_np.int32, _np.int64, _np.uint32, _np.uint64)),
}


class ufunc:  # noqa: N801 - CuPy's name
    """A CuPy ufunc: device arrays and scalars in; ``out``, ``dtype`` and ``casting`` are its only keywords."""

    def __init__(self, np_ufunc: _np.ufunc):
        self._np = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.name = "cupy_" + np_ufunc.__name__
        self.nin = np_ufunc.nin
        self.nout = np_ufunc.nout
        self.nargs = np_ufunc.nargs
        self.__doc__ = f"Simulated cupy.{self.__name__} (NumPy-backed)."

    def __repr__(self) -> str:
        return f"<ufunc '{self.name}'>"

    def __call__(
        self, *args: Any, out: Any = None, dtype: Any = None, casting: str = "same_kind", **kwargs: Any
    ) -> Any:
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        inputs = [_dev(x) for x in args[: self.nin]]
        outs = list(args[self.nin :])
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            outs = list(out) if isinstance(out, tuple) else [out]
        np_out = tuple(_out(o) for o in outs) if outs else None
        kw: dict[str, Any] = {"casting": casting}
        if dtype is not None:
            kw["dtype"] = dtype
        if np_out is not None:
            kw["out"] = np_out if len(np_out) > 1 else np_out[0]
        result = self._np(*inputs, **kw)
        if np_out is not None:
            return outs[0] if len(outs) == 1 else tuple(outs)
        return _wrap(result)

    def at(self, a: Any, indices: Any, b: Any = None) -> None:
        spec = _SCATTER.get(self.__name__)
        if spec is None:
            raise NotImplementedError(f"`{self.name}.at` is not supported yet")
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        op, dtypes = spec
        index, advanced = _index(indices)
        if not advanced:  # basic indices: CuPy applies the ufunc to the view in place
            view = a[indices]
            self(view, b, out=view)
            return
        if not issubclass(a.dtype.type, dtypes):
            names = ", ".join(_np.dtype(t).name for t in dtypes)
            raise TypeError(f"cupy.{self.__name__}.at only supports {names} as data type")
        value = b._a.astype(a.dtype, copy=False) if isinstance(b, ndarray) else array(b, dtype=a.dtype)._a
        self._np.at(a._a, index, value)

    def reduce(self, array_: Any, axis: Any = 0, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        if self.__name__ == "add":
            return _dev_wrapper(array_).sum(axis, dtype, out, keepdims)
        if self.__name__ == "multiply":
            return _dev_wrapper(array_).prod(axis, dtype, out, keepdims)
        raise NotImplementedError(f"`{self.name}.reduce` is not supported yet")

    def accumulate(self, array_: Any, axis: int = 0, dtype: Any = None, out: Any = None) -> Any:
        if self.__name__ == "add":
            return _dev_wrapper(array_).cumsum(axis, dtype, out)
        if self.__name__ == "multiply":
            return _dev_wrapper(array_).cumprod(axis, dtype, out)
        raise NotImplementedError(f"`{self.name}.accumulate` is not supported yet")

    def outer(self, a: Any, b: Any, **kwargs: Any) -> Any:
        a_, b_ = array(a), array(b)
        return self(a_.reshape(a_.shape + (1,) * b_.ndim), b_.reshape((1,) * a_.ndim + b_.shape), **kwargs)


ufunc_type = ufunc


def _dev_wrapper(x: Any) -> ndarray:
    if not isinstance(x, ndarray):
        raise _unsupported(x)
    return x


_UFUNC_NAMES = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "true_divide",
    "floor_divide",
    "negative",
    "positive",
    "power",
    "float_power",
    "remainder",
    "mod",
    "fmod",
    "absolute",
    "fabs",
    "rint",
    "sign",
    "heaviside",
    "conjugate",
    "conj",
    "exp",
    "exp2",
    "log",
    "log2",
    "log10",
    "expm1",
    "log1p",
    "sqrt",
    "square",
    "cbrt",
    "reciprocal",
    "gcd",
    "lcm",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "hypot",
    "sinh",
    "cosh",
    "tanh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "degrees",
    "radians",
    "deg2rad",
    "rad2deg",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "invert",
    "left_shift",
    "right_shift",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "not_equal",
    "equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "isfinite",
    "isinf",
    "isnan",
    "signbit",
    "copysign",
    "nextafter",
    "modf",
    "ldexp",
    "frexp",
    "floor",
    "ceil",
    "trunc",
    "logaddexp",
    "logaddexp2",
]
for _name in _UFUNC_NAMES:
    setattr(_THIS, _name, ufunc(getattr(_np, _name)))
abs = _THIS.absolute  # noqa: A001
setattr(_THIS, "divmod", ufunc(_np.divmod))  # noqa: B010


# --------------------------------------------------------------------------------------- functions
def _array_func(np_func: Any, name: str | None = None, *, sequence: bool = False, allowed: tuple[str, ...] = ()) -> Any:
    """A CuPy function over device arrays: the first argument must be a device array (or, with
    ``sequence``, a sequence of them); other array arguments may be device arrays or scalars;
    keywords outside ``allowed`` (NumPy-only ones) raise ``TypeError``."""

    def func(*args: Any, **kwargs: Any) -> Any:
        for k in kwargs:
            if k not in allowed:
                raise TypeError(f"{func.__name__}() got an unexpected keyword argument {k!r} (not in CuPy)")
        if not args:
            raise TypeError(f"{func.__name__}() missing its array argument")
        first, rest = args[0], args[1:]
        if sequence:
            if isinstance(first, ndarray):
                first = list(first)
            if not isinstance(first, list | tuple):
                raise _unsupported(first)
            first = [_dev_array(x) for x in first]
        else:
            first = _dev_array(first)
        rest = tuple(_arg(x) for x in rest)
        kw = {k: (_out(v) if k == "out" else _arg(v)) for k, v in kwargs.items()}
        result = np_func(first, *rest, **kw)
        if "out" in kwargs and kwargs["out"] is not None:
            return kwargs["out"]
        return _wrap(result)

    func.__name__ = name or np_func.__name__
    func.__qualname__ = func.__name__
    func.__module__ = "cupy"
    func.__doc__ = f"Simulated cupy.{func.__name__} (NumPy-backed, strict about host arrays)."
    return func


def _arg(x: Any) -> Any:
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise _unsupported(x)
    if isinstance(x, list | tuple):
        return type(x)(_arg(v) for v in x)
    return x


_REDUCE_KW = ("axis", "dtype", "out", "keepdims")
for _name, _kw in {
    "sum": _REDUCE_KW,
    "prod": _REDUCE_KW,
    "mean": _REDUCE_KW,
    "var": (*_REDUCE_KW, "ddof"),
    "std": (*_REDUCE_KW, "ddof"),
    "cumsum": ("axis", "dtype", "out"),
    "cumprod": ("axis", "dtype", "out"),
    "nansum": _REDUCE_KW,
    "nanmean": _REDUCE_KW,
    "all": ("axis", "out", "keepdims"),
    "any": ("axis", "out", "keepdims"),
    "argmax": ("axis", "dtype", "out", "keepdims"),
    "argmin": ("axis", "dtype", "out", "keepdims"),
    "count_nonzero": ("axis",),
    "median": ("axis", "out", "overwrite_input", "keepdims"),
    "percentile": ("axis", "out", "interpolation", "keepdims", "method"),
    "ptp": ("axis", "out", "keepdims"),
    "reshape": ("order", "newshape", "shape"),
    "ravel": ("order",),
    "transpose": ("axes",),
    "swapaxes": (),
    "moveaxis": (),
    "rollaxis": ("start",),
    "expand_dims": ("axis",),
    "squeeze": ("axis",),
    "broadcast_to": ("shape",),
    "flip": ("axis",),
    "fliplr": (),
    "flipud": (),
    "roll": ("shift", "axis"),
    "tile": ("reps",),
    "repeat": ("repeats", "axis"),
    "pad": ("mode", "constant_values", "pad_width"),
    "split": ("axis",),
    "array_split": ("axis",),
    "atleast_1d": (),
    "atleast_2d": (),
    "nonzero": (),
    "flatnonzero": (),
    "argwhere": (),
    "diag": ("k",),
    "diagonal": ("offset", "axis1", "axis2"),
    "trace": ("offset", "axis1", "axis2", "dtype", "out"),
    "tril": ("k",),
    "triu": ("k",),
    "isclose": ("rtol", "atol", "equal_nan"),
    "allclose": ("rtol", "atol", "equal_nan"),
    "array_equal": ("equal_nan",),
    "unique": ("return_index", "return_inverse", "return_counts", "axis", "equal_nan"),
    "bincount": ("weights", "minlength"),
    "outer": ("out",),
    "inner": (),
    "tensordot": ("axes",),
    "kron": (),
    "cross": ("axis", "axisa", "axisb", "axisc"),
    "around": ("decimals", "out"),
    "round": ("decimals", "out"),
    "nan_to_num": ("copy", "nan", "posinf", "neginf"),
    "cov": ("rowvar", "bias", "ddof"),
    "corrcoef": ("rowvar",),
    "histogram": ("bins", "range", "weights", "density"),
    "diff": ("n", "axis", "prepend", "append"),
}.items():
    setattr(_THIS, _name, _array_func(getattr(_np, _name), _name, allowed=_kw))
amax = _array_func(_np.max, "amax", allowed=("axis", "out", "keepdims"))
amin = _array_func(_np.min, "amin", allowed=("axis", "out", "keepdims"))
max = amax  # noqa: A001
min = amin  # noqa: A001
nanmax = _array_func(_np.nanmax, "nanmax", allowed=("axis", "out", "keepdims"))
nanmin = _array_func(_np.nanmin, "nanmin", allowed=("axis", "out", "keepdims"))
argsort = _array_func(functools.partial(_np.argsort, kind="stable"), "argsort", allowed=("axis", "kind"))
sort = _array_func(functools.partial(_np.sort, kind="stable"), "sort", allowed=("axis", "kind"))
concatenate = _array_func(_np.concatenate, "concatenate", sequence=True, allowed=("axis", "out", "dtype", "casting"))
stack = _array_func(_np.stack, "stack", sequence=True, allowed=("axis", "out", "dtype", "casting"))
vstack = _array_func(_np.vstack, "vstack", sequence=True, allowed=("dtype", "casting"))
hstack = _array_func(_np.hstack, "hstack", sequence=True, allowed=("dtype", "casting"))
dstack = _array_func(_np.dstack, "dstack", sequence=True)
column_stack = _array_func(_np.column_stack, "column_stack", sequence=True)
broadcast_arrays = _array_func(lambda *a: _np.broadcast_arrays(*a), "broadcast_arrays")
take_along_axis = _array_func(_np.take_along_axis, "take_along_axis", allowed=("axis",))
put_along_axis = _array_func(_np.put_along_axis, "put_along_axis", allowed=("axis",))
searchsorted = _array_func(_np.searchsorted, "searchsorted", allowed=("side", "sorter"))
ascontiguousarray = _array_func(
    lambda a, dtype=None: _np.ascontiguousarray(a, dtype), "ascontiguousarray", allowed=("dtype",)
)
asfortranarray = _array_func(lambda a, dtype=None: _np.asfortranarray(a, dtype), "asfortranarray", allowed=("dtype",))
dot = _array_func(_np.dot, "dot", allowed=("out",))
vdot = _array_func(_np.vdot, "vdot")
matmul = _array_func(_np.matmul, "matmul", allowed=("out", "dtype", "casting"))
clip = _array_func(_np.clip, "clip", allowed=("out", "a_min", "a_max", "min", "max"))
zeros_like = _array_func(_np.zeros_like, "zeros_like", allowed=("dtype", "order", "subok", "shape"))
ones_like = _array_func(_np.ones_like, "ones_like", allowed=("dtype", "order", "subok", "shape"))
empty_like = _array_func(_np.empty_like, "empty_like", allowed=("dtype", "order", "subok", "shape"))
full_like = _array_func(_np.full_like, "full_like", allowed=("dtype", "order", "subok", "shape"))
copy = _array_func(lambda a, order="K": _np.array(a, order=order, copy=True), "copy", allowed=("order",))


def einsum(subscripts: str, *operands: Any, **kwargs: Any) -> Any:
    """``cupy.einsum``: device operands only."""
    return _wrap(_np.einsum(subscripts, *(_dev_array(o) for o in operands), **_plain(kwargs)))


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    """``cupy.where``: ``condition`` must be a device array; ``x``/``y`` device arrays or scalars."""
    if (x is None) != (y is None):
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    cond = _dev_array(condition)
    if x is None:
        return _wrap(_np.nonzero(cond))
    return _wrap(_np.where(cond.astype(bool), _dev(x), _dev(y)))


def take(a: Any, indices: Any, axis: Any = None, out: Any = None) -> Any:
    """``cupy.take``: host index lists/arrays are copied over (CuPy's ``_take`` calls ``core.array``)."""
    idx = indices._a if isinstance(indices, ndarray) else indices if _is_scalar(indices) else _np.array(indices)
    result = _np.take(_dev_array(a), idx, axis=axis, out=_out(out))
    return out if out is not None else _wrap(result)


def copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = None) -> None:
    """``cupy.copyto``: ``dst`` a device array; ``src`` and ``where`` device arrays or scalars."""
    _np.copyto(_dev_array(dst), _dev(src), casting=casting, where=True if where is None else _dev(where))


def result_type(*arrays_and_dtypes: Any) -> _np.dtype:
    """``cupy.result_type``: device arrays count by their dtype."""
    return _np.result_type(*(a.dtype if isinstance(a, ndarray) else a for a in arrays_and_dtypes))


def shape(a: Any) -> tuple[int, ...]:
    return a.shape if isinstance(a, ndarray) else _np.shape(_plain(a))


def ndim(a: Any) -> int:
    return a.ndim if isinstance(a, ndarray) else _np.ndim(_plain(a))


def size(a: Any, axis: Any = None) -> int:
    if isinstance(a, ndarray):
        return a.size if axis is None else a.shape[axis]
    return _np.size(_plain(a), axis)


def isscalar(element: Any) -> bool:
    return _np.isscalar(element)


# ------------------------------------------------------------------------------ creation
def _creator(np_func: Any, name: str) -> Any:
    def func(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
        return _wrap(np_func(_shape_arg(shape), dtype=_check_dtype(dtype), order=order))

    func.__name__ = func.__qualname__ = name
    func.__module__ = "cupy"
    func.__doc__ = f"Simulated cupy.{name}: the shape must be ints (device arrays have no __index__)."
    return func


zeros = _creator(_np.zeros, "zeros")
ones = _creator(_np.ones, "ones")
empty = _creator(_np.empty, "empty")


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> ndarray:
    """``cupy.full``: ``fill_value`` a scalar or a device array."""
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, ndarray) else _np.array(fill_value).dtype
    out = empty(shape, dtype, order)
    copyto(out, fill_value, casting="unsafe")
    return out


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> ndarray:
    """``cupy.arange``: bounds are Python/NumPy numbers (not device arrays)."""
    for v in (start, stop, step):
        if v is not None and not _is_scalar(v):
            raise _unsupported(v)
    result = _np.arange(start, stop, step) if stop is not None else _np.arange(start, step=step)
    return _wrap(result if dtype is None else result.astype(_check_dtype(dtype)))


def linspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False, dtype: Any = None, axis: int = 0
) -> Any:
    return _wrap(_np.linspace(_dev(start), _dev(stop), _int(num), endpoint, retstep, dtype, axis))


def eye(N: int, M: Any = None, k: int = 0, dtype: Any = float, order: str = "C") -> ndarray:  # noqa: N803
    return _wrap(_np.eye(_int(N), None if M is None else _int(M), k, dtype=_check_dtype(dtype), order=order))


def identity(n: int, dtype: Any = float) -> ndarray:
    return eye(n, dtype=dtype)


def indices(dimensions: Any, dtype: Any = int) -> ndarray:
    return _wrap(_np.indices(_shape_arg(dimensions), dtype=_check_dtype(dtype)))


def array(
    obj: Any,
    dtype: Any = None,
    copy: bool = True,
    order: str = "K",
    subok: bool = False,  # noqa: A002
    ndmin: int = 0,
    *,
    blocking: bool = False,
) -> ndarray:
    """``cupy.array``: host data (lists, NumPy arrays, scalars) is copied to the device."""
    if isinstance(obj, ndarray):
        a = obj._a
        if dtype is not None:
            a = a.astype(_check_dtype(dtype), copy=False)
        a = _np.array(a, copy=True if copy else None, order=order, ndmin=ndmin)
        return _wrap(a)
    transfers["to_device"] += 1
    data = _host_data(obj)
    host = _np.array(data, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    _check_dtype(host.dtype)
    return _wrap(host)


array.__module__ = "cupy"


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    """``cupy.asarray``: a device array as is (cast if asked); host data copied to the device."""
    if isinstance(a, ndarray):
        if dtype is None or _np.dtype(dtype) == a.dtype:
            return a
        return a.astype(dtype)
    return array(a, dtype=dtype, order=order or "K")


asanyarray = asarray


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> _np.ndarray:
    """Copy a device array to the host; host data comes back as ``numpy.asarray`` of it."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    result = _np.asarray(a, order=order)
    if out is not None:
        out[...] = result
        return out
    return result


def get_array_module(*args: Any) -> types.ModuleType:
    """``cupy`` if any argument is a device array, else ``numpy``."""
    for a in args:
        if isinstance(a, ndarray):
            return _THIS
    return _np


def is_available() -> bool:
    return True


# --------------------------------------------------------------------------------------- submodules
def _submodule(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(f"cupy.{name}", doc)
    setattr(_THIS, name, module)
    return module


linalg = _submodule("linalg", "Simulated cupy.linalg.")
for _name, _kw in {
    "qr": ("mode",),
    "norm": ("ord", "axis", "keepdims"),
    "inv": (),
    "svd": ("full_matrices", "compute_uv"),
    "solve": (),
    "det": (),
    "cholesky": (),
    "eigh": ("UPLO",),
    "pinv": ("rcond",),
}.items():
    setattr(linalg, _name, _array_func(getattr(_np.linalg, _name), _name, allowed=_kw))

lib = _submodule("lib", "Simulated cupy.lib.")
lib.stride_tricks = types.ModuleType("cupy.lib.stride_tricks")  # type: ignore[attr-defined]


def _as_strided(x: Any, shape: Any = None, strides: Any = None) -> ndarray:
    """``cupy.lib.stride_tricks.as_strided(x, shape, strides)``: CuPy takes no ``subok``/``writeable``."""
    return _wrap(_np.lib.stride_tricks.as_strided(_dev_array(x), _shape_arg(shape), _shape_arg(strides)))


lib.stride_tricks.as_strided = _as_strided  # type: ignore[attr-defined]

# ------------------------------------------------------------------------------ cuda
cuda = _submodule("cuda", "Simulated cupy.cuda: one device, everything synchronous.")


class _Device:
    """``cupy.cuda.Device``: the one simulated device."""

    def __init__(self, device: Any = None):
        self.id = 0 if device is None else _int(device)
        if self.id != 0:
            raise RuntimeError(f"simulated CuPy has one device; device {self.id} does not exist")

    def synchronize(self) -> None:
        pass

    def use(self) -> None:
        pass

    @property
    def compute_capability(self) -> str:
        return "00"

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id} ({DEVICE_NAME})>"


class _Stream:
    def synchronize(self) -> None:
        pass

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


_Stream.null = _Stream()  # type: ignore[attr-defined]
cuda.Device = _Device  # type: ignore[attr-defined]
cuda.Stream = _Stream  # type: ignore[attr-defined]
cuda.get_device_id = lambda: 0  # type: ignore[attr-defined]
cuda.is_available = is_available  # type: ignore[attr-defined]
cuda.runtime = types.ModuleType("cupy.cuda.runtime")  # type: ignore[attr-defined]
cuda.runtime.is_hip = False  # type: ignore[attr-defined]
cuda.runtime.getDeviceCount = lambda: 1  # type: ignore[attr-defined]
cuda.runtime.getDeviceProperties = lambda device_id: {  # type: ignore[attr-defined]
    "name": DEVICE_NAME.encode(),
    "totalGlobalMem": 0,
    "major": 0,
    "minor": 0,
    "multiProcessorCount": 1,
}
cuda.runtime.runtimeGetVersion = lambda: 13000  # type: ignore[attr-defined]

# ------------------------------------------------------------------------------ random
random = _submodule("random", "Simulated cupy.random: the Generator API only.")


class BitGenerator:
    """Seeds like CuPy's: ``None``, an int, int sequence or ``numpy.random.SeedSequence``."""

    def __init__(self, seed: Any = None):
        if isinstance(seed, _np.random.SeedSequence):
            self._seed_seq = seed
        else:
            if isinstance(seed, ndarray):
                seed = seed.get()
            self._seed_seq = _np.random.SeedSequence(seed)
        # a different bit stream than NumPy's PCG64 for the same seed, as XORWOW is on the GPU
        self._np = _np.random.Generator(_np.random.Philox(self._seed_seq))


class XORWOW(BitGenerator):
    """The default bit generator's name; the simulated stream is Philox."""


class Generator:
    """``cupy.random.Generator``: only the methods CuPy has; every draw is a device array (0-d for no size)."""

    def __init__(self, bit_generator: BitGenerator):
        self.bit_generator = bit_generator
        self._rng = bit_generator._np

    @staticmethod
    def _size(size: Any) -> Any:
        return () if size is None else _shape_arg(size)

    @staticmethod
    def _float_dtype(dtype: Any) -> _np.dtype:
        dt = _np.dtype(dtype)
        if dt.char not in "fd":
            raise TypeError(f"Unsupported dtype {dt.name}")
        return dt

    def _param(self, x: Any, name: str) -> Any:
        if isinstance(x, ndarray):
            return x._a
        if type(x) in (float, int):
            return x
        raise TypeError(f"{name} is required to be a cupy.ndarray or a scalar")

    def _fill(self, values: Any, out: Any) -> Any:
        if out is None:
            return _wrap(_np.asarray(values))
        out._a[...] = values
        return out

    def random(self, size: Any = None, dtype: Any = _np.float64, out: Any = None) -> ndarray:
        dt = self._float_dtype(dtype)
        return self._fill(self._rng.random(self._size(size), dtype=dt), out)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: Any = _np.float64) -> ndarray:
        lo, hi = _dev(low), _dev(high)
        shape = _np.broadcast_shapes(_np.shape(lo), _np.shape(hi)) if size is None else self._size(size)
        dt = self._float_dtype(dtype)
        u = self._rng.random(shape, dtype=dt)
        return _wrap(_np.asarray(lo + (hi - lo) * u).astype(dt, copy=False))

    def integers(
        self, low: Any, high: Any = None, size: Any = None, dtype: Any = _np.int64, endpoint: bool = False
    ) -> Any:
        lo, hi = (0, int(low)) if high is None else (int(low), int(high))
        return _wrap(
            _np.asarray(self._rng.integers(lo, hi, self._size(size), dtype=_np.int64, endpoint=endpoint)).astype(dtype)
        )

    def standard_normal(self, size: Any = None, dtype: Any = _np.float64, out: Any = None) -> ndarray:
        dt = _np.dtype(dtype)
        if dt.char not in "fd":
            raise TypeError(f"Unsupported dtype {dt.name} for standard_normal")
        return self._fill(self._rng.standard_normal(self._size(size), dtype=dt), out)

    def standard_exponential(
        self, size: Any = None, dtype: Any = _np.float64, method: str = "inv", out: Any = None
    ) -> Any:
        if method == "zig":
            raise NotImplementedError("Ziggurat method is not supported")
        return self._fill(self._rng.standard_exponential(self._size(size)).astype(dtype), out)

    def exponential(self, scale: Any = 1.0, size: Any = None) -> ndarray:
        return self.standard_exponential(size) * scale

    def standard_gamma(self, shape: Any, size: Any = None, dtype: Any = _np.float64, out: Any = None) -> ndarray:
        return self._fill(self._rng.standard_gamma(self._param(shape, "shape"), size).astype(dtype), out)

    def gamma(self, shape: Any, scale: Any = 1.0, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.gamma(self._param(shape, "shape"), _dev(scale), size)))

    def beta(self, a: Any, b: Any, size: Any = None, dtype: Any = _np.float64) -> ndarray:
        return _wrap(_np.asarray(self._rng.beta(self._param(a, "a"), self._param(b, "b"), size)).astype(dtype))

    def chisquare(self, df: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.chisquare(self._param(df, "df"), size)))

    def f(self, dfnum: Any, dfden: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.f(self._param(dfnum, "dfnum"), self._param(dfden, "dfden"), size)))

    def dirichlet(self, alpha: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.dirichlet(self._param(alpha, "alpha"), size)))

    def geometric(self, p: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.geometric(self._param(p, "p"), size)).astype(_np.int64))

    def hypergeometric(self, ngood: Any, nbad: Any, nsample: Any, size: Any = None) -> ndarray:
        draws = self._rng.hypergeometric(
            self._param(ngood, "ngood"), self._param(nbad, "nbad"), self._param(nsample, "nsample"), size
        )
        return _wrap(_np.asarray(draws).astype(_np.int64))

    def logseries(self, p: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.logseries(self._param(p, "p"), size)).astype(_np.int64))

    def poisson(self, lam: Any = 1.0, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.poisson(self._param(lam, "lam"), size)).astype(_np.int64))

    def power(self, a: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.power(self._param(a, "a"), size)))

    def binomial(self, n: Any, p: Any, size: Any = None) -> ndarray:
        return _wrap(_np.asarray(self._rng.binomial(self._param(n, "n"), self._param(p, "p"), size)).astype(_np.int64))


def default_rng(seed: Any = None) -> Generator:
    """``cupy.random.default_rng``: a :class:`Generator` over the (simulated) XORWOW bit generator."""
    if isinstance(seed, Generator):
        return seed
    if isinstance(seed, BitGenerator):
        return Generator(seed)
    return Generator(XORWOW(seed))


random.BitGenerator = BitGenerator  # type: ignore[attr-defined]
random.XORWOW = XORWOW  # type: ignore[attr-defined]
random.Generator = Generator  # type: ignore[attr-defined]
random.default_rng = default_rng  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------- strictness
def __getattr__(name: str) -> Any:
    # A name NumPy has but this stand-in lacks is either missing from CuPy or not needed so far;
    # say which file to extend rather than failing as if CuPy lacked it.
    if hasattr(_np, name):
        raise AttributeError(
            f"module 'cupy' has no attribute {name!r} in the simulated CuPy (tests/simgpu/fake_cupy.py); "
            "check CuPy's docs and add it there if CuPy has it"
        )
    raise AttributeError(f"module 'cupy' has no attribute {name!r}")


del _name, _op, _kw, _alias
