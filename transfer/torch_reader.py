"""Read PyTorch ``.pth``/``.pt`` checkpoints into NumPy arrays, safely and without importing torch.

Both of torch's on-disk formats are read (``docs/specs/formats.md`` §4):

* the **legacy stream** (``torch.save(..., _use_new_zipfile_serialization=False)`` and every file
  from before torch 1.6, torchvision's MobileNetV2 weights among them): pickled magic number,
  protocol version and ``sys_info``; the pickled object, whose storages are persistent ids; the
  sorted list of storage keys; then per key an 8-byte little-endian element count and the raw bytes;
* the **zip container** (the default since 1.6): ``<prefix>/data.pkl`` holding the object,
  ``<prefix>/data/<key>`` holding each storage's raw bytes, and ``<prefix>/byteorder``.

A checkpoint is a pickle, and unpickling runs whatever callables the file names. This reader never
unpickles with the stock ``find_class``: :class:`_RestrictedUnpickler` maps the handful of globals a
tensor state dict needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
friends, the typed storage classes, ``_codecs.encode``) to local stand-ins that only *record* what
the file describes, and refuses every other global with :class:`UnsafeCheckpointError` — a file
asking for ``os.system`` is rejected before anything runs. Every size, count, offset and stride
the file claims is checked against the bytes actually present before a single array view is
made, and tensors are copied out of their storages, so a corrupt or hostile file yields a
:class:`CheckpointFormatError` naming the file and the short storage or tensor, never an
out-of-bounds read.

A pickle can also ask for work rather than code: ``(t, t)`` nested 40 deep is a few hundred
bytes, but hashing or printing it visits 2**40 nodes. So the unpickler is CPython's pure-Python
one (``pickle._Unpickler``; its opcode table is the only place a hashing opcode can be checked),
dict keys must be small tuples of plain values, error messages print pickled values through a
bounded :func:`_brief`, ints are int64, and zip records must be stored uncompressed (as torch
writes them), so no claimed size is larger than the file.

Every load also runs under explicit budgets (:class:`ReadLimits`), each checked *before* the work
it bounds: the file's size (a path must be a regular file), the bytes the tensors may occupy —
a multiple of the file's size plus some slack, bfloat16's widening to float32 included — so a
few hundred bytes of zero-stride ``expand()`` cannot claim gigabytes; the pickle opcodes run; how
deep containers nest; and the wall-clock time. Zip records must not overlap (Python 3.11's
``zipfile`` does not check), so the storages read add up to at most the file. Going over a budget
raises :class:`CheckpointLimitError`, which names the budget and how to raise it.

Typical use::

    from transfer.torch_reader import load_state_dict
    state = load_state_dict("mobilenet_v2-b0353104.pth")   # dict[str, np.ndarray], file order
    state["features.0.0.weight"].shape                      # (32, 3, 3, 3), float32
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rl.errors import CheckpointError

__all__ = [
    "DEFAULT_LIMITS",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointLimitError",
    "ReadLimits",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "load_state_dict",
]

# torch/serialization.py
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_LOCAL_HEADER_BYTES = 30
_PICKLE_PROTO2 = b"\x80\x02"
# torch sizes, strides and offsets are int64; anything wider is corrupt (and too long to print).
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
# NumPy 1.x's limit (2.x allows 64); no real checkpoint comes near it.
_MAX_NDIM = 32
# Values that come back as they were pickled (containers and tensors are converted).
_PLAIN_TYPES = (str, bytes, int, float, complex, bool, type(None))
# Parts (counted with repeats) a tuple dict key may have: hashing visits each one.
_MAX_KEY_PARTS = 64


class CheckpointFormatError(CheckpointError):
    """The file is truncated, corrupt, or not a PyTorch tensor checkpoint. The message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle asks for a global this reader does not allow (it could run code)."""


class CheckpointLimitError(CheckpointFormatError):
    """Loading the file would exceed one of the :class:`ReadLimits` budgets; nothing was allocated for it."""


@dataclass(frozen=True)
class ReadLimits:
    """The budgets one load may spend. Each is checked before the work it bounds is done.

    Attributes:
        max_file_bytes: largest file read at all (a path must also be a regular file, not a device).
        alloc_per_file_byte, alloc_slack_bytes: the tensors returned may occupy at most
            ``alloc_per_file_byte * file size + alloc_slack_bytes`` bytes in all. A real state dict
            needs about 1x (each storage copied out once; bfloat16 widened to float32 is 2x); the
            rest is room for tensors that share a storage or were saved ``expand()``ed.
        max_pickle_ops: pickle opcodes run, over all of the file's pickles (a state dict of 314
            tensors runs about 10 thousand; each opcode may create one Python object).
        max_depth: how deeply dicts, lists and tuples may nest around a tensor.
        max_seconds: wall-clock time for the whole load, checked between steps.
    """

    max_file_bytes: int = 1 << 36
    alloc_per_file_byte: float = 4.0
    alloc_slack_bytes: int = 64 << 20
    max_pickle_ops: int = 2_000_000
    max_depth: int = 64
    max_seconds: float = 60.0

    def alloc_bytes(self, file_bytes: int) -> int:
        """Bytes the tensors of a ``file_bytes``-long file may occupy."""
        return int(self.alloc_per_file_byte * file_bytes) + self.alloc_slack_bytes


DEFAULT_LIMITS = ReadLimits()


class _Budget:
    """What is left of the :class:`ReadLimits` during one load, and the checks that spend it."""

    def __init__(self, limits: ReadLimits, file_bytes: int, source: str) -> None:
        self.limits, self.source = limits, source
        self.deadline = time.monotonic() + limits.max_seconds
        self.ops = 0
        self.alloc_total = limits.alloc_bytes(file_bytes)
        self.alloc_left = self.alloc_total
        self.file_bytes = file_bytes

    def tick(self) -> None:
        """Count one pickle opcode; look at the clock every 1024."""
        self.ops += 1
        if self.ops > self.limits.max_pickle_ops:
            raise CheckpointLimitError(
                f"{self.source}: the pickle runs more than {self.limits.max_pickle_ops} opcodes "
                "(ReadLimits.max_pickle_ops); a tensor state dict needs far fewer"
            )
        if not self.ops & 0x3FF:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise CheckpointLimitError(
                f"{self.source}: reading took longer than {self.limits.max_seconds:g} s (ReadLimits.max_seconds)"
            )

    def allocate(self, nbytes: int, where: Any) -> None:
        """Spend ``nbytes`` of the allocation budget, or raise before anything is allocated.
        ``where`` is a zero-argument callable naming the tensor (only called for the message)."""
        if nbytes > self.alloc_left:
            raise CheckpointLimitError(
                f"{where()} needs {nbytes} bytes, but the load may allocate only {self.alloc_total} bytes "
                f"in all ({self.limits.alloc_per_file_byte:g} x the file's {self.file_bytes} bytes + "
                f"{self.limits.alloc_slack_bytes} bytes: ReadLimits.alloc_per_file_byte/alloc_slack_bytes), "
                f"of which {self.alloc_left} are left; refusing"
            )
        self.alloc_left -= nbytes


# ---------------------------------------------------------------------------------------------
# Stand-ins for the globals a state dict pickle names. They record, they never compute.
# ---------------------------------------------------------------------------------------------


class _Sealed:
    """Refuses pickle's BUILD opcode, so a file cannot overwrite a stand-in's attributes."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise CheckpointFormatError(f"pickle tried to set the state of a {type(self).__name__}")


class _StorageType(_Sealed):
    """Marker for ``torch.FloatStorage`` & co.: the on-disk element dtype of a storage.

    ``disk_dtype`` is little-endian; bfloat16 is read as ``<u2`` and widened to float32 later.
    """

    __slots__ = ("name", "disk_dtype", "is_bfloat16")

    def __init__(self, name: str, disk_dtype: str, is_bfloat16: bool = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "disk_dtype", np.dtype(disk_dtype))
        object.__setattr__(self, "is_bfloat16", is_bfloat16)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("storage type markers are immutable")

    @property
    def itemsize(self) -> int:
        return self.disk_dtype.itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


# Names from torch/storage.py `_dtype_to_storage_type_map`.
_STORAGE_TYPES = {
    st.name: st
    for st in (
        _StorageType("FloatStorage", "<f4"),
        _StorageType("DoubleStorage", "<f8"),
        _StorageType("HalfStorage", "<f2"),
        _StorageType("BFloat16Storage", "<u2", is_bfloat16=True),
        _StorageType("LongStorage", "<i8"),
        _StorageType("IntStorage", "<i4"),
        _StorageType("ShortStorage", "<i2"),
        _StorageType("CharStorage", "i1"),
        _StorageType("ByteStorage", "u1"),
        _StorageType("BoolStorage", "?"),
    )
}


@dataclass(frozen=True, slots=True)
class _StorageRef:
    """One persistent id: ``numel`` elements of ``storage_type`` under ``key``, seen through an
    optional legacy view starting ``view_offset`` elements in and ``view_numel`` long."""

    key: str
    storage_type: _StorageType
    numel: int
    view_offset: int
    view_numel: int

    def __setstate__(self, state: Any) -> None:
        raise CheckpointFormatError("pickle tried to set the state of a storage")


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor as the pickle describes it: a strided window onto a storage, not yet materialised."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def __setstate__(self, state: Any) -> None:
        raise CheckpointFormatError("pickle tried to set the state of a tensor")


class _Callable(_Sealed):
    """A sealed callable wrapper, so BUILD cannot touch the module-level functions behind it."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


def _brief(value: Any, depth: int = 3) -> str:
    """A short repr of a pickled value for an error message.

    ``repr`` itself is unsafe here: shared references make it exponential, and ints over 4300
    digits refuse to print. Containers show their first few items, ``depth`` levels deep.
    """
    if type(value) is int and value.bit_length() > 64:
        return f"<{value.bit_length()}-bit int>"
    if isinstance(value, str | bytes | int | float | type(None)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, tuple | list | dict):
        if depth == 0:
            return f"<{type(value).__name__}>"
        if isinstance(value, dict):
            items = [f"{_brief(k, depth - 1)}: {_brief(v, depth - 1)}" for k, v in list(dict.items(value))[:4]]
        else:
            items = [_brief(v, depth - 1) for v in value[:4]]
        shown = ", ".join(items) + (", ..." if len(value) > 4 else "")
        opening, closing = {tuple: "()", list: "[]"}.get(type(value), "{}")
        return f"{opening}{shown}{closing}"
    if isinstance(value, _StorageType):
        return repr(value)
    return f"<{type(value).__name__}>"


def _as_int(value: Any, what: str) -> int:
    if type(value) is not int:  # bool is an int subclass; neither it nor floats belong here
        raise CheckpointFormatError(f"{what} should be an int, got {type(value).__name__}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise CheckpointFormatError(f"{what} is {_brief(value)}, outside int64")
    return value


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise CheckpointFormatError(f"{what} should be a tuple of ints, got {type(value).__name__}")
    return tuple(_as_int(v, what) for v in value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` (and the first 4 args of ``_rebuild_tensor_v2``)."""
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError(
            f"a tensor's storage should be a persistent id, got {type(storage).__name__}"
        )
    size_t = _as_int_tuple(size, "tensor size")
    stride_t = _as_int_tuple(stride, "tensor stride")
    if len(size_t) != len(stride_t):
        raise CheckpointFormatError(f"tensor size {_brief(size_t)} and stride {_brief(stride_t)} differ in length")
    if len(size_t) > _MAX_NDIM:
        raise CheckpointFormatError(f"a tensor has {len(size_t)} dimensions; at most {_MAX_NDIM} are read")
    return _TensorRef(storage, _as_int(storage_offset, "tensor storage offset"), size_t, stride_t)


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; ``requires_grad``, hooks and metadata are ignored."""
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *_: Any) -> Any:
    """Stand-in for ``_rebuild_parameter``/``Parameter``: an ``nn.Parameter`` is just its tensor here."""
    if not isinstance(data, _TensorRef):
        raise CheckpointFormatError(f"a Parameter should wrap a tensor, got {type(data).__name__}")
    return data


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol 2 pickles ``bytes`` as ``encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointFormatError(
            f"_codecs.encode is only allowed as encode(str, 'latin1'), got {_brief(encoding)}"
        )
    return text.encode("latin1")


def _ordered_dict(items: Any = ()) -> collections.OrderedDict:
    """Stand-in for ``collections.OrderedDict``: torch pickles it empty and fills it by SETITEMS;
    Python 2 pickles passed a list of ``[key, value]`` pairs, whose keys are checked first."""
    if not isinstance(items, list | tuple) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in items):
        raise CheckpointFormatError(f"OrderedDict should be built from (key, value) pairs, got {_brief(items)}")
    for key, _ in items:
        _check_key(key)
    return collections.OrderedDict(items)


def _check_key(key: Any) -> None:
    """Refuse a dict or set key that is not a str, bytes, number, None, or a small tuple of those.

    Hashing a tuple visits every part, shared ones again each time; bounding the parts counted
    that way bounds the hash, whatever sharing the pickle set up.
    """
    todo, parts = [key], 0
    while todo:
        part = todo.pop()
        parts += 1
        if parts > _MAX_KEY_PARTS:
            raise CheckpointFormatError(f"a dict key is a tuple of more than {_MAX_KEY_PARTS} parts")
        if type(part) is tuple:
            todo.extend(part)
        elif type(part) not in (str, bytes, int, float, bool, type(None)):
            raise CheckpointFormatError(f"a dict key is a {type(part).__name__}, not a str, number or tuple")


_ALLOWED_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("_codecs", "encode"): _codecs_encode,
}


# ---------------------------------------------------------------------------------------------
# The restricted unpickler
# ---------------------------------------------------------------------------------------------


def _checking_keys(opcode: bytes, keys: Any) -> Any:
    """The base unpickler's handler for ``opcode``, run after ``_check_key`` on ``keys(stack)``."""
    base = pickle._Unpickler.dispatch[opcode[0]]

    def load(self: pickle._Unpickler) -> None:
        for key in keys(self.stack):
            _check_key(key)
        base(self)

    return load


def _load_build(self: pickle._Unpickler) -> None:
    """BUILD (set an object's state): the stand-ins refuse it in ``__setstate__``; on a dict it may
    only add plain attributes (torch sets ``_metadata`` on a state dict), never shadow a method
    such as ``items`` that the reader later calls."""
    inst, state = self.stack[-2], self.stack[-1]
    if isinstance(inst, dict) and not (
        isinstance(state, dict) and all(type(k) is str and not hasattr(type(inst), k) for k in state)
    ):
        raise CheckpointFormatError(
            f"pickle tried to set {_brief(state)} on a {type(inst).__name__} (only new attributes may be set)"
        )
    pickle._Unpickler.dispatch[pickle.BUILD[0]](self)


def _load_bytearray8(self: pickle._Unpickler) -> None:
    """BYTEARRAY8 (protocol 5): the base unpickler allocates the claimed length (up to 2**64) before
    reading a byte of it, so 200 bytes could ask for 16 GiB. A tensor state dict holds no bytearray."""
    raise CheckpointFormatError("the pickle holds a bytearray (BYTEARRAY8); a tensor checkpoint has none")


def _counted(handler: Any) -> Any:
    """``handler`` after one tick of the load's budget (opcode count and clock)."""

    def load(self: _RestrictedUnpickler) -> None:
        self._budget.tick()
        handler(self)

    return load


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only allow-listed globals and records storages instead of loading them.

    ``storage_check(key, storage_type, numel)`` is called for every new persistent id, so the
    caller can check the claimed size against the bytes present before any data is touched.

    It is the pure-Python unpickler so that the opcodes which hash keys can check them first
    (a state dict's pickle is a few kilobytes; the tensor bytes never pass through here).
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    # After a MARK the pure-Python unpickler's `stack` holds just the marked items.
    dispatch[pickle.SETITEM[0]] = _checking_keys(pickle.SETITEM, lambda stack: stack[-2:-1])
    dispatch[pickle.SETITEMS[0]] = _checking_keys(pickle.SETITEMS, lambda stack: stack[0::2])
    dispatch[pickle.DICT[0]] = _checking_keys(pickle.DICT, lambda stack: stack[0::2])
    dispatch[pickle.ADDITEMS[0]] = _checking_keys(pickle.ADDITEMS, lambda stack: stack)
    dispatch[pickle.FROZENSET[0]] = _checking_keys(pickle.FROZENSET, lambda stack: stack)
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
    # Every opcode is counted against ReadLimits.max_pickle_ops: each may create an object.
    dispatch = {code: _counted(handler) for code, handler in dispatch.items()}

    def __init__(
        self, file: BinaryIO, source: str, zip_format: bool, budget: _Budget, storage_check: Any = None
    ) -> None:
        super().__init__(file, encoding="utf-8")

        def whole_line() -> bytes:
            # GLOBAL and the text opcodes read up to a newline; one cut off by the file's end is truncation.
            line = file.readline()
            if not line.endswith(b"\n"):
                raise EOFError("pickle data was truncated")
            return line

        self._file_readline = whole_line
        self._source = source
        self._zip_format = zip_format
        self._storage_check = storage_check
        self._budget = budget
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        fn = _ALLOWED_FUNCTIONS.get((module, name))
        if fn is not None:
            return _Callable(fn)
        hint = ""
        if module.startswith("torch"):
            hint = " (for a whole-module or optimizer save, re-save with torch.save(model.state_dict()))"
        raise UnsafeCheckpointError(
            f"refused global {module}.{name} in {self._source}: this reader only loads tensors{hint}"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        src = self._source
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or type(pid[0]) is not str:
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise CheckpointFormatError(
                f"{src}: unsupported persistent id {_brief(kind)} (only 'storage' is allowed; "
                "whole-module saves are not supported)"
            )
        expected = 5 if self._zip_format else 6
        if len(pid) != expected:
            raise CheckpointFormatError(
                f"{src}: storage persistent id has {len(pid)} fields, expected {expected}"
            )
        storage_type, key, location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError(
                f"{src}: unknown storage type {_brief(storage_type)} for storage {_brief(key)}"
            )
        if not isinstance(key, str) or not isinstance(location, str):
            raise CheckpointFormatError(
                f"{src}: storage key and location should be strings, got {_brief(pid[2:4])}"
            )
        numel = _as_int(numel, f"{src}: element count of storage {key!r}")
        if numel < 0:
            raise CheckpointFormatError(f"{src}: storage {key!r} claims a negative element count {numel}")

        seen = self.storages.get(key)
        if seen is None:
            if self._storage_check is not None:
                self._storage_check(key, storage_type, numel)
        elif seen.storage_type is not storage_type or seen.numel != numel:
            raise CheckpointFormatError(
                f"{src}: storage {key!r} is described twice differently "
                f"({seen.storage_type!r} x {seen.numel} vs {storage_type!r} x {numel})"
            )

        view_offset, view_numel = 0, numel
        if view_metadata is not None:  # pre-1.0 legacy files: (view_key, offset, view_size)
            if not isinstance(view_metadata, tuple) or len(view_metadata) != 3:
                raise CheckpointFormatError(
                    f"{src}: malformed view metadata {_brief(view_metadata)} on storage {key!r}"
                )
            view_offset = _as_int(view_metadata[1], f"{src}: view offset")
            view_numel = _as_int(view_metadata[2], f"{src}: view size")
            if view_offset < 0 or view_numel < 0 or view_offset + view_numel > numel:
                raise CheckpointFormatError(
                    f"{src}: storage view [{view_offset}, {view_offset + view_numel}) lies outside "
                    f"storage {key!r} of {numel} elements"
                )
        root = _StorageRef(key, storage_type, numel, 0, numel)
        self.storages.setdefault(key, root)
        if view_metadata is None:
            return root
        return _StorageRef(key, storage_type, numel, view_offset, view_numel)


def _unpickle(
    buf: BinaryIO, source: str, what: str, budget: _Budget, zip_format: bool = False, storage_check: Any = None
):
    """Run one restricted unpickle, turning any parse failure into a CheckpointFormatError."""
    unpickler = _RestrictedUnpickler(buf, source, zip_format, budget, storage_check)
    try:
        obj = unpickler.load()
    except CheckpointError as exc:
        if source in str(exc):
            raise
        # The stand-ins and key checks do not know the file; name it here.
        raise type(exc)(f"{source}: {exc}") from None
    except MemoryError:  # not the file's format: a budget this reader lacks (the fuzz tests must see it)
        raise
    except Exception as exc:  # truncated or corrupt pickles fail in many ways (EOFError, ValueError, ...)
        raise CheckpointFormatError(
            f"{source}: could not read the {what} (file truncated or corrupt): {type(exc).__name__}: {exc}"
        ) from exc
    budget.check_time()
    return obj, unpickler.storages


# ---------------------------------------------------------------------------------------------
# The two container formats
# ---------------------------------------------------------------------------------------------


def _read_legacy(data: bytes, source: str, budget: _Budget) -> tuple[Any, dict[str, np.ndarray]]:
    """Parse a legacy stream; returns the object (with _TensorRefs inside) and each storage's elements
    (views of ``data``, nothing copied)."""
    buf = io.BytesIO(data)
    magic, _ = _unpickle(buf, source, "magic number", budget)
    if magic != MAGIC_NUMBER:
        raise CheckpointFormatError(f"{source}: invalid magic number {_brief(magic)}; not a PyTorch checkpoint")
    protocol, _ = _unpickle(buf, source, "protocol version", budget)
    if protocol != PROTOCOL_VERSION:
        raise CheckpointFormatError(
            f"{source}: unsupported protocol version {_brief(protocol)}, expected {PROTOCOL_VERSION}"
        )
    sys_info, _ = _unpickle(buf, source, "sys_info header", budget)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointFormatError(
            f"{source}: sys_info {_brief(sys_info)} does not say little_endian=True; "
            "only little-endian files are read"
        )

    def check_fits(key: str, storage_type: _StorageType, numel: int) -> None:
        # The data follows the pickle, so whatever is left of the file bounds every storage.
        remaining = len(data) - buf.tell()
        if numel * storage_type.itemsize > remaining:
            raise CheckpointFormatError(
                f"{source}: storage {key!r} claims {numel} x {storage_type!r} = "
                f"{numel * storage_type.itemsize} bytes but only {remaining} bytes remain in the file"
            )

    obj, storages = _unpickle(buf, source, "object pickle", budget, storage_check=check_fits)
    keys, _ = _unpickle(buf, source, "storage key list", budget)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointFormatError(f"{source}: the storage key list is not a list of strings")
    listed = set(keys)  # once: a set per key made this check quadratic (30k storages took > 20 s)
    if len(listed) != len(keys):
        raise CheckpointFormatError(f"{source}: the storage key list repeats a key")
    unknown = [k for k in keys if k not in storages]
    if unknown:
        raise CheckpointFormatError(f"{source}: storage key {unknown[0]!r} is listed but no tensor uses it")
    missing = [k for k in storages if k not in listed]
    if missing:
        raise CheckpointFormatError(f"{source}: storage {missing[0]!r} is used by a tensor but has no data")

    pos = buf.tell()
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        ref = storages[key]
        if pos + 8 > len(data):
            raise CheckpointFormatError(
                f"{source}: file ends at byte {len(data)} before the element count of storage {key!r} "
                "(file truncated)"
            )
        count = int.from_bytes(data[pos : pos + 8], "little", signed=True)
        pos += 8
        if count != ref.numel:
            raise CheckpointFormatError(
                f"{source}: storage {key!r} has element count {count} on disk but the pickle says {ref.numel}"
            )
        nbytes = count * ref.storage_type.itemsize
        if pos + nbytes > len(data):
            raise CheckpointFormatError(
                f"{source}: storage {key!r} is short: needs {nbytes} bytes at offset {pos}, "
                f"only {len(data) - pos} remain (file truncated)"
            )
        arrays[key] = np.frombuffer(data, dtype=ref.storage_type.disk_dtype, count=count, offset=pos)
        pos += nbytes
    if pos != len(data):
        raise CheckpointFormatError(f"{source}: {len(data) - pos} unexpected bytes after the last storage")
    return obj, arrays


def _check_zip_layout(archive: zipfile.ZipFile, data: bytes, source: str) -> None:
    """Refuse records whose bytes overlap one another or the central directory.

    Python 3.11's ``zipfile`` reads whatever span each directory entry names, so records nested
    inside one another make a 2.6 MB file read as ~1 GB. With disjoint records, everything read
    adds up to at most the file. A record spans its local header, name, extra field and data.
    """
    spans = []
    for info in archive.infolist():
        start = info.header_offset
        header = data[start : start + _ZIP_LOCAL_HEADER_BYTES]
        if len(header) < _ZIP_LOCAL_HEADER_BYTES or header[:4] != _ZIP_MAGIC:
            raise CheckpointFormatError(
                f"{source}: zip record {info.filename!r} has no local header at byte {start} (corrupt)"
            )
        name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
        spans.append((start, start + _ZIP_LOCAL_HEADER_BYTES + name_len + extra_len + info.compress_size,
                      info.filename))
    spans.sort()
    for (_, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if next_start < end:
            raise CheckpointFormatError(
                f"{source}: zip records {name!r} and {next_name!r} overlap (bytes {next_start}-{end}); "
                "torch never writes that"
            )
    if spans and spans[-1][1] > archive.start_dir:
        raise CheckpointFormatError(
            f"{source}: zip record {spans[-1][2]!r} runs into the central directory at byte {archive.start_dir}"
        )


def _read_zip(data: bytes, source: str, budget: _Budget) -> tuple[Any, dict[str, np.ndarray]]:
    """Parse the zip container; the record prefix comes from the first entry, as torch's C++ reader does."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = {info.filename: info for info in archive.infolist()}
    except Exception as exc:  # zipfile fails on bad bytes in many ways (NotImplementedError, OverflowError, ...)
        raise CheckpointFormatError(f"{source}: corrupt or truncated zip container: {exc}") from exc
    _check_zip_layout(archive, data, source)
    if not infos:
        raise CheckpointFormatError(f"{source}: empty zip container")
    first = next(iter(infos))
    if "/" not in first:
        raise CheckpointFormatError(f"{source}: zip entry {first!r} is not inside a top-level folder")
    prefix = first.split("/", 1)[0] + "/"
    if prefix + "data.pkl" not in infos:
        if prefix + "constants.pkl" in infos:
            raise CheckpointFormatError(f"{source}: this is a TorchScript archive; save a state_dict instead")
        raise CheckpointFormatError(f"{source}: no {prefix}data.pkl in the zip container")

    def read_record(name: str) -> bytes:
        info = infos[name]
        # torch stores records uncompressed; a compressed one could inflate ~1000x past the file.
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise CheckpointFormatError(
                f"{source}: zip record {name!r} is compressed or encrypted; torch writes them stored "
                "(re-save it with torch.save)"
            )
        try:
            return archive.read(info)
        except Exception as exc:  # as for ZipFile() above
            raise CheckpointFormatError(
                f"{source}: cannot read zip record {name!r} (corrupt): {exc}"
            ) from exc

    byteorder = "little"
    if prefix + "byteorder" in infos:
        byteorder = read_record(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointFormatError(f"{source}: unknown byteorder record {byteorder!r}")

    def check_record(key: str, storage_type: _StorageType, numel: int) -> None:
        info = infos.get(f"{prefix}data/{key}")
        if info is None:
            raise CheckpointFormatError(f"{source}: storage {key!r} has no record {prefix}data/{key}")
        if info.file_size != numel * storage_type.itemsize:
            raise CheckpointFormatError(
                f"{source}: storage {key!r} claims {numel} x {storage_type!r} = "
                f"{numel * storage_type.itemsize} bytes but its record holds {info.file_size} bytes"
            )

    obj, storages = _unpickle(
        io.BytesIO(read_record(prefix + "data.pkl")), source, "object pickle", budget, zip_format=True,
        storage_check=check_record,
    )
    arrays = {}
    for key, ref in storages.items():
        budget.check_time()
        raw = read_record(f"{prefix}data/{key}")
        if len(raw) != ref.numel * ref.storage_type.itemsize:  # the directory could lie about sizes
            raise CheckpointFormatError(f"{source}: storage {key!r} record is short ({len(raw)} bytes)")
        dtype = ref.storage_type.disk_dtype
        if byteorder == "big":
            dtype = dtype.newbyteorder(">")
        arrays[key] = np.frombuffer(raw, dtype=dtype, count=ref.numel)
    return obj, arrays


# ---------------------------------------------------------------------------------------------
# Materialising tensors
# ---------------------------------------------------------------------------------------------


class _Path:
    """Where a value sits in the checkpoint, as a chain of parents, so no name string is built unless
    an error message needs one (eager ``f"{name}.{key}"`` strings grow with depth squared: a 200 KB
    file of dicts keyed by one long shared string needed > 9 GB of names)."""

    __slots__ = ("parent", "part", "depth")

    def __init__(self, parent: _Path | None, part: Any) -> None:
        self.parent, self.part = parent, part
        self.depth = 0 if parent is None else parent.depth + 1

    def __str__(self) -> str:
        parts, node = [], self
        while node is not None and node.parent is not None:
            part = node.part
            if type(part) is int:
                parts.append(f"[{part}]")
            else:
                text = part if type(part) is str else _brief(part)
                parts.append("." + (text if len(text) <= 60 else text[:57] + "..."))
            node = node.parent
        if len(parts) > 8:  # a message shows the outermost and innermost few levels
            parts = parts[:4] + [f"...{len(parts) - 8} levels..."] + parts[-4:]
        return "".join(reversed(parts)).lstrip(".") or "<root>"


def _materialise(
    ref: _TensorRef, arrays: dict[str, np.ndarray], source: str, path: _Path, budget: _Budget
) -> np.ndarray:
    """Copy one tensor out of its storage after checking its window lies inside the storage and
    that the copy fits in what the load may still allocate (``budget``)."""
    storage = ref.storage
    elements = arrays[storage.key][storage.view_offset : storage.view_offset + storage.view_numel]

    def where() -> str:
        return f"{source}: tensor {str(path)!r} (shape {ref.size}, stride {ref.stride}, offset {ref.offset})"

    if ref.offset < 0 or any(s < 0 for s in ref.size) or any(st < 0 for st in ref.stride):
        raise CheckpointFormatError(f"{where()} has a negative offset, size or stride")
    # bfloat16 comes back widened to float32; other dtypes in native byte order.
    out_dtype = np.dtype(np.float32) if storage.storage_type.is_bfloat16 else elements.dtype.newbyteorder("=")
    if 0 in ref.size:
        if int(np.prod([s for s in ref.size if s], dtype=object)) * elements.itemsize > _INT64_MAX:
            raise CheckpointFormatError(f"{where()} is empty, but NumPy refuses a shape this large")
        return np.empty(ref.size, dtype=out_dtype)
    last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride))
    if last >= len(elements):
        raise CheckpointFormatError(f"{where()} reaches element {last} of a storage with only {len(elements)} elements")
    # Zero strides let a few stored bytes claim terabytes: the whole load's output is bounded by the
    # file's size, and this tensor's share is taken before anything is allocated.
    budget.allocate(int(np.prod(ref.size, dtype=object)) * out_dtype.itemsize, where)
    # Bounds were checked just above, so this view stays inside `elements`. A length-1
    # dimension's stride is never stepped and may be any int64: zero it so NumPy can take it.
    window = np.lib.stride_tricks.as_strided(
        elements[ref.offset :],
        shape=ref.size,
        strides=tuple(0 if s == 1 else st * elements.itemsize for s, st in zip(ref.size, ref.stride)),
        writeable=False,
    )
    if storage.storage_type.is_bfloat16:
        # bfloat16 is the top half of a float32: widen the 16 bits in place, shift them up, reinterpret.
        out = np.empty(ref.size, dtype=np.uint32)
        out[...] = window
        out <<= 16
        return out.view(np.float32)
    out = np.empty(ref.size, dtype=out_dtype)
    out[...] = window  # one copy, swapping bytes where the file is big-endian
    return out


class _Materialiser:
    """Swaps every _TensorRef in the unpickled object for its NumPy copy.

    A pickle can reference one container or tensor many times; each is converted once (memoised by
    identity), so shared references cost nothing and nested ``[x, x]`` lists cannot blow up the
    walk exponentially. Every copy is charged to the load's budget, so many zero-stride tensors
    cannot add up to an out-of-memory; containers may nest ``limits.max_depth`` deep.
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: str, budget: _Budget):
        self.arrays, self.source, self.budget = arrays, source, budget
        self.memo: dict[int, Any] = {}

    def convert(self, obj: Any, path: _Path | None = None) -> Any:
        path = path or _Path(None, None)
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        if path.depth > self.budget.limits.max_depth:
            raise CheckpointLimitError(
                f"{self.source}: containers nested more than {self.budget.limits.max_depth} deep at {path} "
                "(ReadLimits.max_depth)"
            )
        if isinstance(obj, _TensorRef):
            self.budget.check_time()
            out = _materialise(obj, self.arrays, self.source, path, self.budget)
        elif isinstance(obj, dict):
            out = {}
            self.memo[key] = out  # before the children: a cyclic container resolves to itself
            for k, v in obj.items():
                out[k] = self.convert(v, _Path(path, k))
            return out
        elif isinstance(obj, list):
            out = []
            self.memo[key] = out
            out.extend(self.convert(v, _Path(path, i)) for i, v in enumerate(obj))
            return out
        elif isinstance(obj, tuple):
            out = tuple(self.convert(v, _Path(path, i)) for i, v in enumerate(obj))
        elif isinstance(obj, _StorageRef):
            raise CheckpointFormatError(f"{self.source}: {path} is a bare storage, not a tensor")
        elif type(obj) in _PLAIN_TYPES or type(obj) in (set, frozenset):  # set items passed _check_key
            return obj
        else:  # a stand-in (a storage type, an allowed function) pickled as a value: nothing a caller can use
            raise CheckpointFormatError(
                f"{self.source}: {path} is {_brief(obj)}, not a tensor, container, number or string"
            )
        self.memo[key] = out
        return out


def _read_bytes(path_or_fileobj: str | os.PathLike | BinaryIO, limits: ReadLimits) -> tuple[bytes, str]:
    """The whole file, at most ``limits.max_file_bytes`` of it; a path must name a regular file
    (``/dev/zero`` would never end)."""
    too_big = f"is larger than {limits.max_file_bytes} bytes (ReadLimits.max_file_bytes)"
    if isinstance(path_or_fileobj, str | os.PathLike):
        path = Path(path_or_fileobj)
        try:
            with open(path, "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise CheckpointFormatError(f"cannot read checkpoint {path}: not a regular file")
                if info.st_size > limits.max_file_bytes:
                    raise CheckpointLimitError(f"checkpoint {path} {too_big}")
                data = f.read(info.st_size + 1)  # + 1: a file still growing shows up as too long
        except OSError as exc:
            raise CheckpointFormatError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
        if len(data) > limits.max_file_bytes:
            raise CheckpointLimitError(f"checkpoint {path} {too_big}")
        return data, str(path)
    source = str(getattr(path_or_fileobj, "name", "<stream>"))
    chunks, total = [], 0
    while total <= limits.max_file_bytes:  # in chunks: read(n) may reserve all n bytes up front
        chunk = path_or_fileobj.read(min(1 << 24, limits.max_file_bytes + 1 - total))
        if not isinstance(chunk, bytes | bytearray):
            raise TypeError(f"{source}: expected a binary file object, read() returned {type(chunk).__name__}")
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limits.max_file_bytes:
        raise CheckpointLimitError(f"{source} {too_big}")
    return b"".join(chunks), source


def load_checkpoint(path_or_fileobj: str | os.PathLike | BinaryIO, limits: ReadLimits = DEFAULT_LIMITS) -> Any:
    """Load any tensor-only PyTorch checkpoint; every tensor becomes a NumPy array (a copy).

    Dicts (including ``OrderedDict``), lists, tuples, numbers and strings come back as they were
    pickled; ``float16`` stays ``float16`` and ``bfloat16`` is widened to ``float32``.

    Args:
        path_or_fileobj: a path, or a binary file object positioned at the checkpoint's start.
        limits: the budgets this load may spend (see :class:`ReadLimits`; the defaults read any
            real state dict).

    Raises:
        UnsafeCheckpointError: the pickle names a global outside the allow-list.
        CheckpointLimitError: the file would take more memory, pickle work, nesting or time than
            ``limits`` allow (checked before allocating).
        CheckpointFormatError: the file is truncated, corrupt, or not a PyTorch checkpoint.
    """
    data, source = _read_bytes(path_or_fileobj, limits)
    budget = _Budget(limits, len(data), source)
    if data[:4] == _ZIP_MAGIC:
        obj, arrays = _read_zip(data, source, budget)
    elif data[:2] == _PICKLE_PROTO2:
        obj, arrays = _read_legacy(data, source, budget)
    else:
        raise CheckpointFormatError(
            f"{source}: not a PyTorch checkpoint (starts with {data[:4].hex() or 'nothing'}; expected a zip "
            "container 504b0304 or a legacy stream 8002)"
        )
    try:
        return _Materialiser(arrays, source, budget).convert(obj)
    except RecursionError:  # only where max_depth was raised beyond what Python's stack takes
        raise CheckpointLimitError(f"{source}: containers nested too deeply for Python's stack") from None


def load_state_dict(
    path_or_fileobj: str | os.PathLike | BinaryIO,
    float_dtype: np.dtype | type | str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> dict[str, np.ndarray]:
    """Load a ``state_dict`` checkpoint as ``{name: array}`` in file order.

    Args:
        path_or_fileobj: a path, or a binary file object positioned at the checkpoint's start.
        float_dtype: if given (e.g. ``np.float64``), floating tensors are cast to it; integer and
            bool tensors (``num_batches_tracked``) keep their dtype.
        limits: as :func:`load_checkpoint`.

    Returns:
        A dict mapping each key to a C-contiguous array with the tensor's shape (0-d tensors are
        0-d arrays). Nothing in it shares memory with the file.

    Raises:
        UnsafeCheckpointError, CheckpointLimitError, CheckpointFormatError: as :func:`load_checkpoint`; also a
        CheckpointFormatError when the top-level object is not a flat mapping of names to tensors.
    """
    obj = load_checkpoint(path_or_fileobj, limits)
    source = str(path_or_fileobj) if isinstance(path_or_fileobj, str | os.PathLike) else str(
        getattr(path_or_fileobj, "name", "<stream>")
    )
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{source}: top-level object is a {type(obj).__name__}, not a state_dict")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, np.ndarray):
            raise CheckpointFormatError(
                f"{source}: entry {_brief(key)} is a {type(value).__name__}, not a tensor; this is not a plain "
                "state_dict (use load_checkpoint for nested checkpoints)"
            )
        if float_dtype is not None and value.dtype.kind == "f":
            value = value.astype(float_dtype)
        out[str(key)] = value
    return out
