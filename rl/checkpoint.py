"""Checkpoints: models, weights and optimizer state as safetensors files, written atomically, no pickle.

Format (one file, chosen over a directory so that a single ``os.replace`` makes the whole
checkpoint appear at once: weights and optimizer state can never come from different saves):

* :func:`save_weights` writes a plain ``.safetensors`` file whose tensors are ``model.state_dict()``
  (``"dense/kernel"`` ...). Any safetensors reader can open it.
* :func:`save_model` writes the same kind of file with tensors ``"weights/<name>"`` and, when an
  optimizer is saved, ``"optimizer/<name>"`` (see :meth:`rl.optimizers.Optimizer.state_dict`), and
  string metadata: ``format`` (``"playgrad.model"``), ``format_version``, ``model_config`` (the JSON
  of ``model.get_config()``), ``optimizer_config`` and ``compile_config`` (loss and metric names).
* Both store ``crc32``: a JSON map ``tensor -> CRC-32 of its bytes``, so flipped bits are caught
  and the damaged tensor is named.

The safetensors layout is an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the data.
:func:`read_safetensors` checks the header itself before handing the bytes to ``safetensors``, so a
truncated file reports which tensor is short instead of a generic error. Every problem with a
file (truncated, garbage header, missing tensor, wrong shape, bad checksum) raises
:class:`CheckpointError` naming the file and, where there is one, the tensor.

Writes go to a temporary file in the same directory, are fsync'ed, then ``os.replace``'d over the
target, so a crash mid-write leaves the previous checkpoint intact. GPU arrays are copied to the
host for saving and back to the device of the model's parameters on load.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend
from rl.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "load_model",
    "load_weights",
    "read_safetensors",
    "save_model",
    "save_weights",
    "write_safetensors",
]

FORMAT = "playgrad.model"
FORMAT_VERSION = "1"

# Bytes per element of each safetensors dtype (the format's names).
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


# ============================================================================ raw safetensors I/O
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name no other writer uses (process, thread, random part: two threads saving one path never share
    # it), opened with "x" so it is a new file; unlike mkstemp's 0600 it gets the umask's usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_safetensors(
    path: str | os.PathLike[str], arrays: dict[str, Any], metadata: dict[str, str] | None = None
) -> None:
    """Atomically write ``name -> array`` (NumPy or CuPy, any shape) plus string ``metadata``.

    A ``crc32`` entry is added to the metadata so corruption is detected on read.
    """
    from safetensors.numpy import save  # noqa: PLC0415 - keep import time of rl light

    # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    host = {name: np.require(backend.to_numpy(a), requirements="C") for name, a in arrays.items()}
    meta = dict(metadata or {})
    meta["crc32"] = json.dumps({name: zlib.crc32(a.tobytes()) for name, a in host.items()}, sort_keys=True)
    atomic_write_bytes(path, save(host, metadata=meta))


def _parse_header(path: Path, raw: bytes) -> tuple[dict[str, Any], dict[str, str], int]:
    """Validate the header of safetensors bytes; return (tensor entries, metadata, data start offset)."""
    total = len(raw)
    if total < 8:
        raise CheckpointError(f"{path}: file is {total} bytes, too short for a safetensors header (truncated?)")
    header_len = int.from_bytes(raw[:8], "little")
    if header_len > _MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: header length field says {header_len} bytes: not a safetensors file")
    if 8 + header_len > total:
        raise CheckpointError(
            f"{path}: file is truncated inside its header ({total} bytes, the header alone needs {8 + header_len})"
        )
    try:
        header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: header is not valid JSON ({exc}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is JSON but not an object; the file is corrupt")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: '__metadata__' in the header is not an object")
    data_start = 8 + header_len
    data_len = total - data_start
    short: list[tuple[int, str, int, int]] = []
    for name, info in header.items():
        try:
            dtype, shape = info["dtype"], [int(n) for n in info["shape"]]
            begin, end = (int(v) for v in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(
                f"{path}: tensor {name!r} has a malformed header entry {info!r} (needs dtype, shape and data_offsets)"
            ) from None
        if dtype not in _DTYPE_BYTES:
            raise CheckpointError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
        need = math.prod(shape) * _DTYPE_BYTES[dtype]
        if begin < 0 or end - begin != need:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({dtype}, shape {tuple(shape)}) needs {need} bytes but its "
                f"data_offsets [{begin}, {end}) span {end - begin}; the header is corrupt"
            )
        if end > data_len:
            short.append((begin, name, end, data_len))
    if short:
        begin, name, end, have = min(short)
        others = f" (and {len(short) - 1} more tensor(s) after it)" if len(short) > 1 else ""
        raise CheckpointError(
            f"{path}: file is truncated: tensor {name!r} needs bytes [{begin}, {end}) of the data section "
            f"but only {max(have, 0)} are there{others}"
        )
    return header, metadata, data_start


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into host NumPy arrays and its metadata, checking it thoroughly.

    Raises :class:`CheckpointError` (naming file and tensor) for a missing, truncated or corrupt file.
    """
    from safetensors.numpy import load  # noqa: PLC0415

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a .safetensors file") from None
    _, metadata, _ = _parse_header(path, raw)
    try:
        arrays = load(raw)
    except Exception as exc:  # the library's own checks (overlapping offsets, ...) after ours passed
        raise CheckpointError(f"{path}: safetensors could not decode the file ({exc})") from None
    if "crc32" in metadata:
        try:
            sums = json.loads(metadata["crc32"])
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: the 'crc32' metadata is not valid JSON") from None
        for name, a in arrays.items():
            if name in sums and zlib.crc32(np.ascontiguousarray(a).tobytes()) != sums[name]:
                raise CheckpointError(f"{path}: tensor {name!r} is corrupt (its CRC-32 does not match)")
    return arrays, {k: str(v) for k, v in metadata.items()}


# ============================================================================ model weights
def _match_state(path: Path, expected: dict[str, Any], found: dict[str, np.ndarray], strict: bool) -> dict[str, Any]:
    """Check ``found`` against the model's ``expected`` state; return arrays on the model's devices."""
    missing = [k for k in expected if k not in found]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{path}: tensor {missing[0]!r}{more} missing from the file "
            f"(the file has {len(found)} tensors, e.g. {sorted(found)[:4]})"
        )
    extra = [k for k in found if k not in expected]
    if extra and strict:
        raise CheckpointError(
            f"{path}: tensor {extra[0]!r} in the file matches nothing in the model "
            f"({len(extra)} unexpected; load with strict=False to ignore them)"
        )
    out: dict[str, Any] = {}
    for name, want in expected.items():
        got = found[name]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(got.shape)} in the file "
                f"but the model expects {tuple(want.shape)}"
            )
        if got.dtype != want.dtype:
            if got.dtype.kind != np.dtype(want.dtype).kind:
                raise CheckpointError(f"{path}: tensor {name!r} is {got.dtype} in the file, the model has {want.dtype}")
            got = got.astype(want.dtype)
        xp = backend.get_array_module(want)
        out[name] = np.array(got) if xp is np else xp.asarray(got)  # a writable copy on the model's device
    return out


def _unprefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def save_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Write ``model.state_dict()`` (parameters and buffers) to ``path`` as safetensors, atomically."""
    write_safetensors(path, model.state_dict(), {"format": "playgrad.weights", "format_version": FORMAT_VERSION})


def load_weights(model: Any, path: str | os.PathLike[str], strict: bool = True) -> None:
    """Load weights written by :func:`save_weights` (or the ``weights/`` of :func:`save_model`) into ``model``.

    Every tensor of the model must be in the file with the same shape; with ``strict`` extra
    tensors in the file are an error too. Raises :class:`CheckpointError` naming file and tensor.
    """
    path = Path(path)
    arrays, metadata = read_safetensors(path)
    if metadata.get("format") == FORMAT:
        arrays = _unprefix(arrays, "weights/")
    model.load_state_dict(_match_state(path, model.state_dict(), arrays, strict), strict=strict)


# ============================================================================ whole models
def _compile_config(model: Any) -> dict[str, Any] | None:
    loss = getattr(model, "loss_name", None)
    if not isinstance(loss, str):
        return None
    return {
        "loss": loss,
        "loss_options": dict(getattr(model, "loss_options", {}) or {}),
        "metrics": list(getattr(model, "metric_names", []) or []),
    }


def save_model(model: Any, path: str | os.PathLike[str], optimizer: Any = None, include_optimizer: bool = True) -> None:
    """Save architecture, weights and optimizer state to one safetensors file at ``path``, atomically.

    ``optimizer`` defaults to the one ``compile`` attached (``model.optimizer``); pass
    ``include_optimizer=False`` to save weights and architecture only. The loss and metric names
    are saved when they are strings so :func:`load_model` can compile the model again.
    """
    arrays = {f"weights/{k}": v for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": json.dumps(model.get_config()),
    }
    if optimizer is None and include_optimizer:
        optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and include_optimizer:
        arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
        metadata["optimizer_config"] = json.dumps(optimizer.get_config())
        # Its state is positional: record which of the model's weights it holds, in order, so loading
        # rebuilds it over the same tensors (a layer frozen after compile is still among them).
        names = {id(t): name for name, t in model.named_weights()}
        held = [names.get(id(p)) for p in optimizer.params]
        if all(n is not None for n in held):
            metadata["optimizer_params"] = json.dumps(held)
    compile_cfg = _compile_config(model)
    if compile_cfg is not None:
        metadata["compile_config"] = json.dumps(compile_cfg)
    write_safetensors(path, arrays, metadata)


def _json_meta(path: Path, metadata: dict[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from None


def _recompile(path: Path, model: Any, optimizer: Any, cfg: Any) -> None:
    from rl import training  # noqa: PLC0415

    try:
        training.compile(
            model,
            optimizer=optimizer,
            loss=cfg["loss"],
            metrics=cfg.get("metrics", []),
            loss_options=cfg.get("loss_options") or None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the saved compile settings {cfg!r} cannot be used ({exc})") from None


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Rebuild a model saved by :func:`save_model`: architecture, weights, and (if saved) optimizer state.

    With ``compile`` (default) and a saved loss name, the model is compiled again with the restored
    optimizer, so ``fit`` continues exactly where it stopped; otherwise a saved optimizer is still
    rebuilt, restored and attached as ``model.optimizer``.
    """
    from rl import models  # noqa: PLC0415 - models import the checkpoint module
    from rl.optimizers import get_optimizer  # noqa: PLC0415

    path = Path(path)
    arrays, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a saved model (format {metadata.get('format')!r}); use load_weights for weight files"
        )
    if "model_config" not in metadata:
        raise CheckpointError(f"{path}: metadata 'model_config' (the architecture) is missing")
    try:
        model = models.model_from_config(_json_meta(path, metadata, "model_config"))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: the saved architecture cannot be rebuilt ({exc})") from exc
    weights = _match_state(path, model.state_dict(), _unprefix(arrays, "weights/"), strict=True)
    model.load_state_dict(weights, strict=True)

    if "optimizer_config" in metadata:
        opt_cfg = _json_meta(path, metadata, "optimizer_config")
        params = model.parameters()
        if "optimizer_params" in metadata:
            by_name = dict(model.named_weights())
            wanted = _json_meta(path, metadata, "optimizer_params")
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise CheckpointError(f"{path}: the optimizer holds weights the model does not have: {missing[:5]}")
            params = [by_name[n] for n in wanted]
        opt_state = _unprefix(arrays, "optimizer/")
        try:
            optimizer = get_optimizer(opt_cfg, params)
            optimizer.load_state_dict(opt_state)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(f"{path}: the saved optimizer cannot be restored: {exc}") from None
        compile_cfg = _json_meta(path, metadata, "compile_config") if "compile_config" in metadata else None
        if compile and compile_cfg is not None:
            _recompile(path, model, optimizer, compile_cfg)
        else:
            model.optimizer = optimizer
    elif compile and "compile_config" in metadata:
        compile_cfg = _json_meta(path, metadata, "compile_config")
        _recompile(path, model, "adam", compile_cfg)
    return model
