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

The bytes on disk are the job of :mod:`rl.files`, the one safe file layer under every checkpoint:
atomic writes (a crash mid-write leaves the previous checkpoint intact), and a safetensors reader that
checks the header, sizes, truncation and CRC before it builds an array. Every problem with a file
(truncated, garbage or hostile header, missing tensor, wrong shape, bad checksum, unusable metadata)
raises :class:`~rl.errors.CheckpointError` naming the file and, where there is one, the tensor. GPU
arrays are copied to the host for saving and back to the device of the model's parameters on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend, files
from rl.errors import CheckpointError
from rl.files import atomic_write_bytes  # re-exported: callers older than rl.files import it from here
from rl.layer_base import model_from_config
from rl.optimizers import get_optimizer

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "load_model",
    "load_weights",
    "read_safetensors",
    "save_model",
    "save_weights",
    "write_safetensors",
]

FORMAT = "playgrad.model"
FORMAT_VERSION = "1"


# ============================================================================ raw safetensors I/O
def write_safetensors(
    path: str | os.PathLike[str], arrays: dict[str, Any], metadata: dict[str, str] | None = None
) -> None:
    """Atomically write ``name -> array`` (NumPy or CuPy, any shape) plus string ``metadata``.

    A ``crc32`` entry is added to the metadata so corruption is detected on read
    (:func:`rl.files.write_safetensors`, after copying device arrays to the host).
    """
    files.write_safetensors(path, {name: backend.to_numpy(a) for name, a in arrays.items()}, metadata)


def read_safetensors(
    path: str | os.PathLike[str], *, require_finite: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into host NumPy arrays and its metadata, checking it thoroughly.

    Raises :class:`CheckpointError` (naming file and tensor) for a missing, truncated, corrupt or hostile
    file; see :func:`rl.files.read_safetensors`.
    """
    return files.read_safetensors(path, require_finite=require_finite)


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


def _json_meta(path: Path, metadata: dict[str, str], key: str, kind: type, what: str) -> Any:
    """Metadata ``key`` parsed as JSON; it must be a ``kind`` (``what`` names it in the error)."""
    try:
        value = json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: metadata {key!r} is JSON nested too deeply") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: metadata {key!r} should be {what}, found {type(value).__name__}")
    return value


def _compile_meta(path: Path, metadata: dict[str, str]) -> dict[str, Any] | None:
    if "compile_config" not in metadata:
        return None
    return _json_meta(path, metadata, "compile_config", dict, "an object")


def _recompile(path: Path, model: Any, optimizer: Any, cfg: Any) -> None:
    try:
        model.compile(  # rl.training.compile, through the model (this module sits below rl.training)
            optimizer=optimizer,
            loss=cfg["loss"],
            metrics=cfg.get("metrics", []),
            loss_options=cfg.get("loss_options") or None,
        )
    except Exception as exc:  # an unknown loss or metric name, options of the wrong type, ...
        raise CheckpointError(f"{path}: the saved compile settings {cfg!r} cannot be used ({exc})") from None


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Rebuild a model saved by :func:`save_model`: architecture, weights, and (if saved) optimizer state.

    With ``compile`` (default) and a saved loss name, the model is compiled again with the restored
    optimizer, so ``fit`` continues exactly where it stopped; otherwise a saved optimizer is still
    rebuilt, restored and attached as ``model.optimizer``.
    """
    path = Path(path)
    arrays, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a saved model (format {metadata.get('format')!r}); use load_weights for weight files"
        )
    if "model_config" not in metadata:
        raise CheckpointError(f"{path}: metadata 'model_config' (the architecture) is missing")
    try:
        model = model_from_config(_json_meta(path, metadata, "model_config", dict, "an object"))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: the saved architecture cannot be rebuilt ({exc})") from exc
    weights = _match_state(path, model.state_dict(), _unprefix(arrays, "weights/"), strict=True)
    model.load_state_dict(weights, strict=True)

    if "optimizer_config" in metadata:
        opt_cfg = _json_meta(path, metadata, "optimizer_config", dict, "an object")
        params = model.parameters()
        if "optimizer_params" in metadata:
            by_name = dict(model.named_weights())
            wanted = _json_meta(path, metadata, "optimizer_params", list, "a list of weight names")
            if not all(isinstance(n, str) for n in wanted):
                raise CheckpointError(f"{path}: metadata 'optimizer_params' should be a list of weight names")
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise CheckpointError(f"{path}: the optimizer holds weights the model does not have: {missing[:5]}")
            params = [by_name[n] for n in wanted]
        opt_state = _unprefix(arrays, "optimizer/")
        try:
            optimizer = get_optimizer(opt_cfg, params)
            optimizer.load_state_dict(opt_state)
        except Exception as exc:  # whatever the saved config or state makes the optimizer raise
            raise CheckpointError(f"{path}: the saved optimizer cannot be restored: {exc}") from None
        compile_cfg = _compile_meta(path, metadata)
        if compile and compile_cfg is not None:
            _recompile(path, model, optimizer, compile_cfg)
        else:
            model.optimizer = optimizer
    elif compile and "compile_config" in metadata:
        _recompile(path, model, "adam", _compile_meta(path, metadata))
    return model
