"""Hostile and damaged checkpoint files: every one is a CheckpointError or loads exactly what was saved.

Real files (a compiled model saved with its optimizer by ``Model.save``, and an agent run checkpoint by
``agents.runner.save_checkpoint``) are damaged with seeded random byte changes, truncations and header
mutations. Each case must either raise :class:`rl.errors.CheckpointError` or load data bit-identical to
the original; any other exception, or different data, fails the test and prints the case's seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from agents.runner import load_checkpoint, save_checkpoint
from rl import backend, files, layers, models
from rl import random as rl_random
from rl.checkpoint import load_model, read_safetensors, write_safetensors
from rl.errors import CheckpointError

CASES = 150  # per file kind and mutation kind; each is a few milliseconds


def _model_file(tmp_path):
    rl_random.seed(0)
    model = models.Sequential(
        [layers.Input((4,)), layers.Dense(8, activation="relu"), layers.BatchNormalization(), layers.Dense(3)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    model.fit(x, x[:, :3], batch_size=8, epochs=1, verbose=0, seed=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    return path


def _model_summary(path):
    """Everything load_model restores, as comparable plain data."""
    model = load_model(path)
    arrays = {f"w/{k}": backend.to_numpy(v) for k, v in model.state_dict().items()}
    arrays.update({f"o/{k}": backend.to_numpy(v) for k, v in model.optimizer.state_dict().items()})
    config = json.dumps(
        [model.get_config(), model.optimizer.get_config(), model.loss_name, model.metric_names], sort_keys=True
    )
    return arrays, config


def _run_file(tmp_path):
    rng = np.random.default_rng(1)
    state = {
        "agent": {
            "policy": {"dense/kernel": rng.normal(size=(4, 3)).astype(np.float32), "dense/bias": np.zeros(3)},
            "steps": 1200,
            "rng": np.random.default_rng(5).bit_generator.state,
        },
        "runner": {"episodes": 7, "flags": np.array([True, False])},
    }
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, state)
    return path


def _flatten(tree, prefix=""):
    arrays, scalars = {}, {}
    for key, value in tree.items():
        if isinstance(value, dict):
            a, s = _flatten(value, f"{prefix}{key}.")
            arrays.update(a)
            scalars.update(s)
        elif isinstance(value, np.ndarray):
            arrays[prefix + key] = value
        else:
            scalars[prefix + key] = value
    return arrays, scalars


def _run_summary(path):
    arrays, scalars = _flatten(load_checkpoint(path))
    return arrays, json.dumps(scalars, sort_keys=True)


KINDS = {"model": (_model_file, _model_summary), "run": (_run_file, _run_summary)}


def _same(a, b):
    (arrays_a, rest_a), (arrays_b, rest_b) = a, b
    if rest_a != rest_b or arrays_a.keys() != arrays_b.keys():
        return False
    return all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in ((arrays_a[k], arrays_b[k]) for k in arrays_a)
    )


def _flip_bytes(raw: bytes, rng) -> bytes:
    out = bytearray(raw)
    position = int(rng.integers(len(out)))
    out[position] = int(rng.integers(256)) if rng.random() < 0.5 else out[position] ^ (1 << int(rng.integers(8)))
    return bytes(out)


def _truncate(raw: bytes, rng) -> bytes:
    return raw[: int(rng.integers(len(raw)))]


_HOSTILE_VALUES = [
    None, True, -1, 2**70, 1.5, float("inf"), "F32", "", [], [[[]]], {}, {"a": {"b": [1]}}, [1, 2, 3], [-5], [2**40],
]  # fmt: skip


def _mutate_header(raw: bytes, rng) -> bytes:
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    names = [k for k in header if k != "__metadata__"]
    choice = int(rng.integers(6))
    value = _HOSTILE_VALUES[int(rng.integers(len(_HOSTILE_VALUES)))]
    name = names[int(rng.integers(len(names)))]
    if choice == 0:  # one field of a tensor entry
        field = ["dtype", "shape", "data_offsets"][int(rng.integers(3))]
        header[name][field] = value
    elif choice == 1:  # a whole tensor entry
        header[name] = value
    elif choice == 2:  # a metadata value, JSON-encoded as the format requires strings
        meta = header.setdefault("__metadata__", {})
        key = sorted(meta)[int(rng.integers(len(meta)))] if meta else "crc32"
        meta[key] = json.dumps(value) if rng.random() < 0.8 else value
    elif choice == 3:  # the metadata object itself
        header["__metadata__"] = value
    elif choice == 4:  # a tensor renamed, or a second name for its bytes
        header[name + "x"] = header.pop(name) if rng.random() < 0.5 else dict(header[name])
    else:  # a dimension changed, keeping or not keeping the byte count
        shape = header[name]["shape"]
        header[name]["shape"] = [*shape, 1] if rng.random() < 0.5 else [int(rng.integers(0, 5)) for _ in shape]
    text = json.dumps(header).encode()  # Python writes inf as Infinity, as a hostile file would
    return len(text).to_bytes(8, "little") + text + raw[8 + header_len :]


MUTATIONS = {"flip": _flip_bytes, "truncate": _truncate, "header": _mutate_header}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_damaged_files_are_refused_or_load_identically(tmp_path, kind, mutation):
    make, summarise = KINDS[kind]
    path = make(tmp_path)
    original = summarise(path)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.safetensors"
    refused = 0
    for case in range(CASES):
        rng = np.random.default_rng([case, sorted(KINDS).index(kind), sorted(MUTATIONS).index(mutation)])
        damaged.write_bytes(MUTATIONS[mutation](raw, rng))
        replay = f"replay: kind={kind} mutation={mutation} case={case}, rng seed [case, kind index, mutation index]"
        try:
            loaded = summarise(damaged)
        except CheckpointError:
            refused += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test: nothing but CheckpointError
            pytest.fail(f"{type(exc).__name__}: {exc} ({replay})")
        assert _same(loaded, original), f"loaded different data without an error ({replay})"
    assert refused > CASES // 2  # the damage is real: most cases must be refused


# ------------------------------------------------------------------- the cases issue 11 names
def _raw_file(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"a": {"dtype": "F32", "shape": [[[[1]]]], "data_offsets": [0, 4]}}, b"\0" * 4, "malformed header entry"),
        ({"a": {"dtype": "F32", "shape": [float("inf")], "data_offsets": [0, 4]}}, b"\0" * 4, "malformed"),
        ({"__metadata__": {"crc32": "[1, 2]"}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0",
         "'crc32' metadata is not a map"),
        ({"__metadata__": {"x": {"nested": "object"}}}, b"", "not an object of strings"),
        ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}, b"\0" * 4, "needs"),
        ({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
          "b": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, "overlaps"),
        ({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0" * 9, "account for 1"),
        ({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0" * 2, "NumPy cannot hold"),
    ],
)  # fmt: skip
def test_hostile_headers_are_checkpoint_errors(tmp_path, header, data, message):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(_raw_file(header, data))
    with pytest.raises(CheckpointError, match=message) as err:
        read_safetensors(path)
    assert str(path) in str(err.value)


def test_deeply_nested_header_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "deep.safetensors"
    text = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(CheckpointError, match="nested too deeply|not an object"):
        read_safetensors(path)


def test_duplicate_tensor_names_are_refused(tmp_path):
    path = tmp_path / "dup.safetensors"
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    text = f'{{"a":{entry},"a":{entry}}}'.encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"\0")
    with pytest.raises(CheckpointError, match="'a' appears twice"):
        read_safetensors(path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("optimizer_config", "3"), ("optimizer_params", "3"), ("optimizer_params", "[1, 2]"),
     ("model_config", "[]"), ("compile_config", '"mse"'), ("compile_config", '{"loss": 3}')],
)  # fmt: skip
def test_model_metadata_of_the_wrong_type_is_a_checkpoint_error(tmp_path, key, value):
    path = _model_file(tmp_path)
    arrays, metadata = read_safetensors(path)
    write_safetensors(path, arrays, {**metadata, key: value})  # a valid file (CRCs agree) saying nonsense
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_model(path)


def test_run_checkpoint_with_a_flipped_bit_or_nan_is_refused(tmp_path):
    path = _run_file(tmp_path)
    arrays, metadata = read_safetensors(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x10  # inside the last tensor's bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt \\(its CRC-32 does not match\\)"):
        load_checkpoint(path)
    arrays["agent.policy.dense/kernel"][0, 0] = np.nan  # a file some other writer produced with a NaN
    write_safetensors(path, arrays, metadata)
    with pytest.raises(CheckpointError, match="'agent.policy.dense/kernel' holds NaN or inf"):
        load_checkpoint(path)


def test_reading_a_device_file_is_refused_before_reading(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this system")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_safetensors("/dev/zero")


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    stale = tmp_path / f".latest.safetensors.{dead_pid}.140000.abcd1234.tmp"
    live = tmp_path / f".latest.safetensors.{os.getpid()}.140000.abcd1234.tmp"  # a writer of this process
    unrelated = tmp_path / ".notes.tmp"
    for p in (stale, live, unrelated):
        p.write_bytes(b"partial")
    assert files.remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])
    assert files.remove_stale_temp_files(tmp_path / "missing") == []
