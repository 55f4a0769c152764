"""Checkpoint files: round trips, every kind of damage named by file and tensor, atomic replacement."""

import json
import os
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from rl import backend, checkpoint, files
from rl.checkpoint import CheckpointError, load_weights, read_safetensors, save_weights, write_safetensors
from rl.optimizers import Adam
from rl.tensor import Tensor


class _TinyModel:
    """Just enough of the model contract (state_dict / load_state_dict / parameters) for file I/O tests."""

    def __init__(self, seed=0, hidden=4):
        rng = np.random.default_rng(seed)
        self.tensors = {
            "dense/kernel": Tensor(rng.normal(size=(3, hidden)).astype(np.float32), requires_grad=True),
            "dense/bias": Tensor(rng.normal(size=(hidden,)).astype(np.float32), requires_grad=True),
            "bn/moving_mean": Tensor(rng.normal(size=(hidden,)).astype(np.float32)),
        }

    def parameters(self):
        return [t for t in self.tensors.values() if t.requires_grad]

    def state_dict(self):
        return {k: t.data for k, t in self.tensors.items()}

    def load_state_dict(self, state, strict=True):
        for k, t in self.tensors.items():
            t.data = state[k]


@pytest.fixture
def weights_file(tmp_path):
    model = _TinyModel()
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    return model, path


def test_weights_round_trip_on_device(device, tmp_path):
    model = _TinyModel(seed=1)
    for t in model.tensors.values():
        t.data = device.asarray(t.data)
    path = tmp_path / "sub" / "w.safetensors"
    save_weights(model, path)
    other = _TinyModel(seed=2)
    for t in other.tensors.values():
        t.data = device.asarray(t.data)
    load_weights(other, path)
    for k in model.tensors:
        assert backend.get_array_module(other.tensors[k].data) is device  # back on the model's device
        np.testing.assert_array_equal(backend.to_numpy(other.tensors[k].data), backend.to_numpy(model.tensors[k].data))


def test_raw_round_trip_keeps_metadata_and_dtypes(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.ones((), dtype=np.float64)}
    path = tmp_path / "x.safetensors"
    write_safetensors(path, arrays, {"note": "hi"})
    back, meta = read_safetensors(path)
    # the CRC-32 of each tensor's little-endian C-order bytes, as the format describes
    sums = json.loads(meta["crc32"])
    assert meta["note"] == "hi"
    assert {k: sums[k] for k in arrays} == {k: zlib.crc32(a.tobytes()) for k, a in arrays.items()}
    assert set(sums) == {*arrays, "__metadata__"}  # and one for the header's names, dtypes, shapes, metadata
    np.testing.assert_array_equal(back["a"], arrays["a"])
    assert back["a"].dtype == np.int64 and back["b"].shape == () and back["b"].dtype == np.float64
    assert back["b"] == 1.0


def _data_start(raw: bytes) -> int:
    return 8 + int.from_bytes(raw[:8], "little")


@pytest.mark.parametrize("where", ["len_field", "header", "first_tensor", "last_byte"])
def test_truncated_file_names_file_and_tensor(weights_file, tmp_path, where):
    _, path = weights_file
    raw = path.read_bytes()
    start = _data_start(raw)
    header = json.loads(raw[8:start])
    first = min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    cut = {"len_field": 5, "header": start - 10, "first_tensor": start + 3, "last_byte": len(raw) - 1}[where]
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError) as err:
        load_weights(_TinyModel(), bad)
    msg = str(err.value)
    assert str(bad) in msg and "truncated" in msg
    if where == "first_tensor":
        assert repr(first) in msg and "more tensor" in msg
    if where == "last_byte":
        assert repr(last) in msg


def test_garbage_header_is_reported(weights_file, tmp_path):
    _, path = weights_file
    raw = bytearray(path.read_bytes())
    raw[8:20] = b"\x00garbage!!\xff\xfe"
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="not valid JSON") as err:
        read_safetensors(bad)
    assert str(bad) in str(err.value)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_safetensors(huge)


def test_header_with_inconsistent_offsets_names_tensor(weights_file, tmp_path):
    _, path = weights_file
    raw = path.read_bytes()
    start = _data_start(raw)
    header = json.loads(raw[8:start])
    header["dense/bias"]["shape"] = [5]  # 5 floats do not fit the 4 floats' byte span
    text = json.dumps(header).encode()
    bad = tmp_path / "offsets.safetensors"
    bad.write_bytes(len(text).to_bytes(8, "little") + text + raw[start:])
    with pytest.raises(CheckpointError, match="'dense/bias'") as err:
        read_safetensors(bad)
    assert str(bad) in str(err.value)


def test_flipped_bits_are_caught_by_the_checksum(weights_file, tmp_path):
    _, path = weights_file
    raw = bytearray(path.read_bytes())
    start = _data_start(raw)
    header = json.loads(raw[8:start])
    begin = header["dense/kernel"]["data_offsets"][0]
    raw[start + begin + 2] ^= 0xFF
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="'dense/kernel' is corrupt") as err:
        load_weights(_TinyModel(), bad)
    assert str(bad) in str(err.value)


def test_missing_tensor_and_shape_mismatch_name_file_and_tensor(tmp_path):
    model = _TinyModel()
    partial = tmp_path / "partial.safetensors"
    write_safetensors(partial, {k: v for k, v in model.state_dict().items() if k != "dense/bias"})
    with pytest.raises(CheckpointError, match="'dense/bias'") as err:
        load_weights(_TinyModel(), partial)
    assert str(partial) in str(err.value) and "missing" in str(err.value)

    wider = tmp_path / "wider.safetensors"
    save_weights(_TinyModel(hidden=5), wider)
    with pytest.raises(CheckpointError, match=r"'dense/\w+' has shape \((3, )?5,?\) in the file") as err:
        load_weights(_TinyModel(hidden=4), wider)
    assert str(wider) in str(err.value)

    extra = tmp_path / "extra.safetensors"
    write_safetensors(extra, {**model.state_dict(), "head/kernel": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match="'head/kernel'"):
        load_weights(_TinyModel(), extra)
    load_weights(_TinyModel(), extra, strict=False)  # extra tensors are fine when not strict


def test_missing_file_and_directory_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_safetensors(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        read_safetensors(tmp_path)


def test_crash_mid_write_keeps_the_old_file(weights_file, monkeypatch):
    model, path = weights_file
    before = path.read_bytes()

    def crash(fd):
        raise OSError("simulated power cut during fsync")

    monkeypatch.setattr(checkpoint.os, "fsync", crash)
    changed = _TinyModel(seed=9)
    with pytest.raises(OSError, match="simulated"):
        save_weights(changed, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    load_weights(changed, path)  # still a valid checkpoint of the old weights
    np.testing.assert_array_equal(
        backend.to_numpy(changed.tensors["dense/kernel"].data), backend.to_numpy(model.tensors["dense/kernel"].data)
    )


def test_crash_before_replace_keeps_the_old_file(weights_file, monkeypatch):
    _, path = weights_file
    before = path.read_bytes()
    real_write = os.write

    class HalfWriter:
        """A file object whose write stores half the bytes and then dies."""

        def __init__(self, target):
            self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            os.close(self.fd)

        def write(self, data):
            real_write(self.fd, data[: len(data) // 2])
            raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(files, "open", lambda target, mode: HalfWriter(target), raising=False)
    with pytest.raises(KeyboardInterrupt):
        save_weights(_TinyModel(seed=5), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in Path(path.parent).iterdir()) == [path.name]


def test_optimizer_state_survives_a_file_round_trip(tmp_path):
    model = _TinyModel()
    opt = Adam(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    path = tmp_path / "opt.safetensors"
    write_safetensors(path, opt.state_dict())
    state, _ = read_safetensors(path)
    model2 = _TinyModel()
    opt2 = Adam(model2.parameters(), lr=0.1)
    opt2.load_state_dict(state)
    assert opt2.iterations == 1
    np.testing.assert_array_equal(backend.to_numpy(opt2.state_dict()["v/1"]), backend.to_numpy(opt.state_dict()["v/1"]))


# ---------------------------------------------------------------------------------- whole models
def _small_net(seed):
    from rl import layers, models
    from rl import random as rl_random

    rl_random.seed(seed)
    return models.Sequential(
        [
            layers.Input((4,)),
            layers.Dense(16, activation="relu"),
            layers.BatchNormalization(),
            layers.Dense(3, activation="softmax"),
        ]
    )


def test_model_round_trip_gives_same_predictions_and_same_next_step(tmp_path):
    from rl.models import load_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model = _small_net(seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=0.01)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    path = tmp_path / "model.safetensors"
    model.save(path)

    restored = load_model(path)
    assert restored.loss_name == "sparse_categorical_crossentropy" and restored.metric_names == ["accuracy"]
    assert restored.optimizer.iterations == model.optimizer.iterations == 8
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    a = model.train_on_batch(x[:16], y[:16])
    b = restored.train_on_batch(x[:16], y[:16])
    assert a == b
    for (k, va), vb in zip(model.state_dict().items(), restored.state_dict().values()):
        np.testing.assert_array_equal(backend.to_numpy(va), backend.to_numpy(vb), err_msg=k)


def test_load_model_rejects_weight_files_and_mismatched_architectures(tmp_path):
    from rl.models import load_model

    model = _small_net(seed=0)
    weights = tmp_path / "w.safetensors"
    model.save_weights(weights)
    with pytest.raises(CheckpointError, match="not a saved model"):
        load_model(weights)
    other = tmp_path / "m.safetensors"
    model.save(other)
    raw, meta = read_safetensors(other)
    cfg = json.loads(meta["model_config"])
    cfg_text = json.dumps(cfg).replace('"units": 16', '"units": 17')
    write_safetensors(other, raw, {**meta, "model_config": cfg_text})
    with pytest.raises(CheckpointError, match=r"'dense/kernel' has shape \(4, 16\) in the file") as err:
        load_model(other)
    assert str(other) in str(err.value)


def test_model_frozen_after_compile_saves_and_loads_with_its_optimizer(tmp_path):
    from rl.models import load_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    model = _small_net(seed=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", lr=0.01)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=0)
    model.layers[0].trainable = False  # the optimizer still holds the frozen layer's weights
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=1)
    path = tmp_path / "frozen.safetensors"
    model.save(path)
    restored = load_model(path)
    assert restored.layers[0].trainable is False  # the flag is part of the saved architecture
    assert restored.train_on_batch(x[:16], y[:16]) == model.train_on_batch(x[:16], y[:16])
    for (k, va), vb in zip(model.state_dict().items(), restored.state_dict().values()):
        np.testing.assert_array_equal(backend.to_numpy(va), backend.to_numpy(vb), err_msg=k)


def test_a_damaged_optimizer_config_is_a_checkpoint_error(tmp_path):
    from rl.models import load_model

    model = _small_net(seed=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path / "m.safetensors"
    model.save(path)
    arrays, metadata = read_safetensors(path)
    metadata["optimizer_config"] = json.dumps({"name": "adamx"})
    write_safetensors(path, arrays, metadata)
    with pytest.raises(CheckpointError, match="m.safetensors: the saved optimizer cannot be restored"):
        load_model(path)


def test_threads_saving_the_same_path_never_share_a_temporary_file(tmp_path):
    path = tmp_path / "shared.bin"
    payloads = [bytes([k]) * 200_000 for k in range(8)]
    errors = []

    def write(data):
        try:
            for _ in range(5):
                checkpoint.atomic_write_bytes(path, data)
        except Exception as exc:  # a shared temp name shows up as a missing file at rename time
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads  # one writer's complete file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]  # no temporary files left


def test_checkpoints_get_the_usual_file_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        checkpoint.atomic_write_bytes(tmp_path / "c.bin", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.bin").stat().st_mode & 0o777 == 0o644  # what open() gives; mkstemp would give 0600
