"""The one safe file layer: atomic writes, and safetensors files written and read with every check.

Everything that writes a file playgrad must not lose (checkpoints, configs, metrics, exported models)
goes through :func:`atomic_write_bytes`; every ``.safetensors`` file (model checkpoints of
:mod:`rl.checkpoint`, run checkpoints of ``agents.runner``) is written by :func:`write_safetensors` and
read by :func:`read_safetensors`. This module sits on the lowest floor of the package: it imports
nothing of playgrad but :mod:`rl.errors`, so anything may use it.

**Atomic writes.** The bytes go to a temporary file ``.<name>.<pid>.<thread>.<random>.tmp`` beside the
target, are fsync'ed, then ``os.replace``'d over it and the directory is fsync'ed: a reader sees the old
file or the complete new one, never a mix, and a crash mid-write leaves the old file intact. A process
killed (SIGKILL) inside a write leaves its temporary file behind; :func:`remove_stale_temp_files` removes
those whose writer is no longer running.

**The safetensors layout** (the format of the ``safetensors`` library, which can read our files and
whose files we read): an 8-byte little-endian header length ``N``; ``N`` bytes of UTF-8 JSON
``{name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``
padded with spaces; then the data section, tensors' C-order little-endian bytes at ``[begin, end)``
relative to its start, back to back, covering it exactly. We add metadata ``crc32``: the JSON map
``name -> CRC-32 of the tensor's bytes``, so flipped bits are caught and the damaged tensor named, and
under the key ``"__metadata__"`` (never a tensor's name) a CRC-32 of the rest of the header: every
tensor's name, dtype and shape and the other metadata, so a changed dtype, shape, name or setting
is caught too. Files without ``crc32`` (other writers) or without its ``"__metadata__"`` entry (older
playgrad files) are read without those checks.

**Reading a file from anywhere.** :func:`read_safetensors` checks, before it allocates anything: the
header's size (at most ``max_header_bytes`` and inside the file), the header is a flat JSON object
without duplicate names whose entries have exactly the three fields of the right types (integer, non-
negative shape dimensions, at most ``MAX_NDIM`` of them), known dtypes, offsets matching each shape,
the tensors tiling the data section with no gap or overlap (so the arrays built are never larger than
the file), the tensor count (at most ``max_tensors``), and truncation (naming the first short tensor).
Then the CRC-32 of every tensor, and optionally that float tensors are finite. Every problem raises
:class:`~rl.errors.CheckpointError` naming the file and, where there is one, the tensor.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rl.errors import CheckpointError

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_NDIM",
    "MAX_TENSORS",
    "atomic_write_bytes",
    "atomic_write_text",
    "decode_safetensors",
    "encode_safetensors",
    "read_safetensors",
    "remove_stale_temp_files",
    "tensor_crc32",
    "write_safetensors",
]

# The safetensors format's dtype names and the NumPy dtype each is read as (little-endian). BF16 and the
# 8-bit floats have no NumPy dtype: they are refused clearly rather than misread.
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "F64": np.dtype("<f8"),
}  # fmt: skip
_UNREADABLE_DTYPES = {"BF16": 2, "F8_E5M2": 1, "F8_E4M3": 1}
_NAME_OF_DTYPE = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
MAX_TENSORS = 100_000  # a MobileNetV2 checkpoint has ~300; an agent's run checkpoint a few hundred
MAX_NDIM = 32  # NumPy 1.x's limit
_TEMP_SUFFIX = ".tmp"


# ============================================================================ atomic writes
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems / platforms cannot open a directory; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    # A name no other writer uses (process, thread, random part: two threads saving one path never share
    # it). The pid lets remove_stale_temp_files tell a dead writer's leftover from a live writer's file.
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one.

    Parent folders are created. The file gets the umask's usual permissions (mkstemp would give 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb") as f:  # "x": always a new file, never someone else's
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _pid_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # exists but is not ours, or cannot be asked: leave its file alone
    return True


def remove_stale_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``directory``; return their paths.

    Only files named as :func:`atomic_write_bytes` names them (``.<name>.<pid>.<thread>.<hex>.tmp``)
    whose writing process is no longer running are removed, so a live writer (another thread of this
    process, or another process) is never disturbed. A missing directory removes nothing.
    """
    directory = Path(directory)
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(_TEMP_SUFFIX)):
            continue
        parts = name[: -len(_TEMP_SUFFIX)].rsplit(".", 3)  # [".<target name>", pid, thread, hex]
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            continue  # not one of ours
        if _pid_is_running(int(parts[1])) or not entry.is_file():
            continue
        try:
            entry.unlink()
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


# ============================================================================ safetensors: writing
def _dtype_name(name: str, a: np.ndarray) -> str:
    """The safetensors name of ``a``'s dtype ("F32", ...); TypeError for dtypes the format cannot hold."""
    try:
        return _NAME_OF_DTYPE[a.dtype.kind, a.dtype.itemsize]
    except KeyError:
        raise TypeError(f"tensor {name!r}: dtype {a.dtype} cannot be stored in a safetensors file") from None


def encode_safetensors(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file holding ``name -> host NumPy array`` and string ``metadata``.

    Tensors are laid out widest dtype first, then by name, so every tensor starts aligned to its
    element size (the header is padded to 8 bytes). ``metadata`` is stored as given (no CRC added).
    """
    host = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or name == _HEADER_CRC_KEY:
            raise TypeError(f"tensor names must be strings other than {_HEADER_CRC_KEY!r}, got {name!r}")
        a = np.asarray(a)
        _dtype_name(name, a)  # refuses dtypes the format cannot hold
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
        host[name] = np.require(a.astype(dtype, copy=False), requirements="C")
    header: dict[str, Any] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"safetensors metadata must map str to str, got {key!r}: {type(value).__name__}")
        header["__metadata__"] = dict(metadata)
    order = sorted(host, key=lambda n: (-host[n].dtype.itemsize, n))
    offset = 0
    for name in order:
        a = host[name]
        header[name] = {
            "dtype": _dtype_name(name, a),
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([len(text).to_bytes(8, "little"), text, *(host[n].tobytes() for n in order)])


def tensor_crc32(a: np.ndarray) -> int:
    """CRC-32 of an array's C-order bytes, as stored in the ``crc32`` metadata."""
    return zlib.crc32(np.require(a, requirements="C").tobytes())


_HEADER_CRC_KEY = "__metadata__"  # the crc32 map's entry for the header; a tensor cannot have this name


def _header_crc32(entries: Mapping[str, tuple[str, list[int]]], metadata: Mapping[str, str]) -> int:
    """CRC-32 of the header's meaning: ``name -> (dtype, shape)`` and the metadata other than ``crc32``."""
    canonical = {
        "tensors": {name: [dtype, list(shape)] for name, (dtype, shape) in entries.items()},
        "metadata": {k: v for k, v in metadata.items() if k != "crc32"},
    }
    return zlib.crc32(json.dumps(canonical, sort_keys=True).encode("utf-8"))


def write_safetensors(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> None:
    """Atomically write ``name -> host NumPy array`` (any shape) plus string ``metadata`` to ``path``.

    A ``crc32`` entry (JSON ``name -> CRC-32``, plus the header's CRC-32 under ``"__metadata__"``) is
    added to the metadata so corruption is caught on read; a ``crc32`` in ``metadata`` is replaced.
    """
    meta = {k: v for k, v in (metadata or {}).items() if k != "crc32"}
    host = {name: np.asarray(a) for name, a in arrays.items()}
    sums = {name: tensor_crc32(a) for name, a in host.items()}
    sums[_HEADER_CRC_KEY] = _header_crc32({n: (_dtype_name(n, a), list(a.shape)) for n, a in host.items()}, meta)
    meta["crc32"] = json.dumps(sums, sort_keys=True)
    atomic_write_bytes(path, encode_safetensors(host, meta))


# ============================================================================ safetensors: reading
def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"name {key!r} appears twice")
        out[key] = value
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_header(where: str, raw: bytes, max_header_bytes: int, max_tensors: int) -> tuple[dict, dict, int]:
    """Validate the header of safetensors bytes; return (tensor entries, metadata, data start offset)."""
    total = len(raw)
    if total < 8:
        raise CheckpointError(f"{where}: file is {total} bytes, too short for a safetensors header (truncated?)")
    header_len = int.from_bytes(raw[:8], "little")
    if header_len > max_header_bytes:
        raise CheckpointError(
            f"{where}: header length field says {header_len} bytes (limit {max_header_bytes}): not a safetensors file"
        )
    if 8 + header_len > total:
        raise CheckpointError(
            f"{where}: file is truncated inside its header ({total} bytes, the header alone needs {8 + header_len})"
        )
    try:
        header = json.loads(raw[8 : 8 + header_len].decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError, so is a duplicate name
        raise CheckpointError(f"{where}: header is not valid JSON ({exc}); the file is corrupt") from None
    except RecursionError:
        raise CheckpointError(f"{where}: header is JSON nested too deeply; the file is corrupt") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: header is JSON but not an object; the file is corrupt")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{where}: '__metadata__' in the header is not an object of strings; the file is corrupt")
    if len(header) > max_tensors:
        raise CheckpointError(f"{where}: header lists {len(header)} tensors (limit {max_tensors}); refusing to read")
    data_start = 8 + header_len
    data_len = total - data_start
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not (
            isinstance(info, dict)
            and set(info) == {"dtype", "shape", "data_offsets"}
            and isinstance(info["dtype"], str)
            and isinstance(info["shape"], list)
            and all(_is_int(n) and n >= 0 for n in info["shape"])
            and isinstance(info["data_offsets"], list)
            and len(info["data_offsets"]) == 2
            and all(_is_int(v) for v in info["data_offsets"])
        ):
            shown = repr(info) if len(repr(info)) < 200 else repr(info)[:200] + "..."
            raise CheckpointError(
                f"{where}: tensor {name!r} has a malformed header entry {shown} (needs a dtype name, a shape of "
                "non-negative integers and two integer data_offsets)"
            )
        dtype, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        if dtype in _UNREADABLE_DTYPES:
            raise CheckpointError(f"{where}: tensor {name!r} is {dtype}, which NumPy cannot hold")
        if dtype not in _DTYPES:
            raise CheckpointError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
        if len(shape) > MAX_NDIM:
            raise CheckpointError(f"{where}: tensor {name!r} has {len(shape)} dimensions (limit {MAX_NDIM})")
        need = math.prod(shape) * _DTYPES[dtype].itemsize
        if begin < 0 or end - begin != need:
            raise CheckpointError(
                f"{where}: tensor {name!r} ({dtype}, shape {tuple(shape)}) needs {need} bytes but its "
                f"data_offsets [{begin}, {end}) span {end - begin}; the header is corrupt"
            )
        spans.append((begin, end, name))
    short = sorted(s for s in spans if s[1] > data_len)
    if short:
        begin, end, name = short[0]
        others = f" (and {len(short) - 1} more tensor(s) after it)" if len(short) > 1 else ""
        raise CheckpointError(
            f"{where}: file is truncated: tensor {name!r} needs bytes [{begin}, {end}) of the data section "
            f"but only {max(data_len, 0)} are there{others}"
        )
    # The tensors must tile the data section: no overlap (one byte read as two tensors, or a small file
    # expanding into many large arrays) and no gap or tail (bytes nothing accounts for).
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps the tensor before it" if begin < position else f"leaves bytes [{position}, {begin}) unused"
            raise CheckpointError(f"{where}: tensor {name!r} at [{begin}, {end}) {what}; the header is corrupt")
        position = end
    if position != data_len:
        raise CheckpointError(
            f"{where}: the data section has {data_len} bytes but the tensors account for {position}; "
            "the file is corrupt"
        )
    return header, metadata, data_start


def _crc32_map(where: str, metadata: Mapping[str, str]) -> dict[str, int] | None:
    if "crc32" not in metadata:
        return None
    try:
        sums = json.loads(metadata["crc32"])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{where}: the 'crc32' metadata is not valid JSON") from None
    if not isinstance(sums, dict) or not all(_is_int(v) for v in sums.values()):
        raise CheckpointError(f"{where}: the 'crc32' metadata is not a map of tensor names to integers")
    return sums


def decode_safetensors(
    raw: bytes,
    where: str = "<bytes>",
    *,
    require_finite: bool = False,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_tensors: int = MAX_TENSORS,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Checked decoding of safetensors bytes into writable NumPy arrays and the string metadata.

    ``where`` (a file name) starts every error message. With ``require_finite``, a float tensor holding
    NaN or inf is a :class:`~rl.errors.CheckpointError` too. See the module docstring for every check.
    """
    header, metadata, data_start = _parse_header(where, raw, max_header_bytes, max_tensors)
    sums = _crc32_map(where, metadata)
    if sums is not None and _HEADER_CRC_KEY in sums:
        unsummed = sorted(set(header) - set(sums))
        if unsummed:  # a name changed in the header, or a tensor added after the file was written
            raise CheckpointError(f"{where}: tensor {unsummed[0]!r} has no CRC-32; the header is corrupt")
        entries = {name: (info["dtype"], info["shape"]) for name, info in header.items()}
        if _header_crc32(entries, metadata) != sums[_HEADER_CRC_KEY]:
            raise CheckpointError(
                f"{where}: the header (tensor names, dtypes, shapes or metadata) is corrupt (its CRC-32 does not match)"
            )
    view = memoryview(raw)
    arrays: dict[str, np.ndarray] = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        chunk = view[data_start + begin : data_start + end]
        if sums is not None and name in sums and zlib.crc32(chunk) != sums[name]:
            raise CheckpointError(f"{where}: tensor {name!r} is corrupt (its CRC-32 does not match)")
        dtype = _DTYPES[info["dtype"]]
        a = np.frombuffer(chunk, dtype=dtype).reshape(info["shape"]).astype(dtype.newbyteorder("="))
        if require_finite and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{where}: tensor {name!r} holds NaN or inf")
        arrays[name] = a
    return arrays, dict(metadata)


def read_safetensors(
    path: str | os.PathLike[str],
    *,
    require_finite: bool = False,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_tensors: int = MAX_TENSORS,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into host NumPy arrays and its metadata, checking it thoroughly.

    Raises :class:`~rl.errors.CheckpointError` (naming file and tensor) for a missing, unreadable,
    truncated, corrupt or hostile file; see :func:`decode_safetensors` for the options.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            # a device or pipe (/dev/zero) would be read until memory runs out
            raise CheckpointError(f"{path}: not a regular file, expected a .safetensors file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .safetensors file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return decode_safetensors(
        raw, str(path), require_finite=require_finite, max_header_bytes=max_header_bytes, max_tensors=max_tensors
    )
