"""Tests for transfer/torch_reader.py against checkpoints real torch wrote (tests/data/torch/) and
hand-crafted hostile or broken ones. torch itself is never imported."""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transfer import torch_reader
from transfer.torch_reader import (
    CheckpointFormatError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state_dict,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "torch"
FIXTURES = [(name, fmt) for name in ("tensors", "convbn") for fmt in ("legacy", "zip")]


# --- a tiny pickle writer, so tests can craft streams torch would never write -----------------

def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _int(value: int) -> bytes:
    raw = value.to_bytes(8, "little", signed=True)
    return b"\x8a\x08" + raw  # LONG1


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor(key: str, numel: int, offset: int, size: tuple, stride: tuple, storage="FloatStorage") -> bytes:
    pid = _tuple(_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel), b"N")
    args = _tuple(
        pid + b"Q",  # BINPERSID
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        b"\x89",  # NEWFALSE
        _global("collections", "OrderedDict") + b")R",
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _object_pickle(entries: dict[str, bytes]) -> bytes:
    body = b"".join(_str(k) + v for k, v in entries.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."


def _legacy(obj_pickle: bytes, storages: dict[str, np.ndarray], counts: dict | None = None) -> bytes:
    header = b"".join(
        pickle.dumps(v, protocol=2)
        for v in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    keys = sorted(storages)
    data = b"".join(
        (counts or {}).get(k, storages[k].size).to_bytes(8, "little") + storages[k].astype("<f4").tobytes()
        for k in keys
    )
    return header + obj_pickle + pickle.dumps(keys, protocol=2) + data


def _crafted(size=(2, 3), stride=(3, 1), offset=0, numel=6) -> bytes:
    storage = np.arange(numel, dtype=np.float32)
    return _legacy(_object_pickle({"w": _tensor("k0", numel, offset, size, stride)}), {"k0": storage})


def _write(tmp_path: Path, name: str, blob: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


# --- values ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt"), FIXTURES)
def test_values_equal_torch_written_expected(name, fmt):
    expected = np.load(DATA / f"{name}_expected.npz")
    state = load_state_dict(DATA / f"{name}_{fmt}.pth")
    assert list(state) == list(expected.files)  # file order is kept
    for key in expected.files:
        assert state[key].dtype == expected[key].dtype, key
        assert state[key].shape == expected[key].shape, key
        np.testing.assert_array_equal(state[key], expected[key], err_msg=key)


def test_special_tensors_in_detail():
    state = load_state_dict(DATA / "tensors_legacy.pth")
    base = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(state["view_offset"], base[1:, 2:])
    np.testing.assert_array_equal(state["view_transposed"], base.T[1:3])
    assert state["scalar_int64"].shape == () and state["scalar_int64"].dtype == np.int64
    assert int(state["scalar_int64"]) == 7
    assert state["bf16"].dtype == np.float32
    np.testing.assert_array_equal(state["bf16"][0], [1.0, -3.140625])
    assert state["half"].dtype == np.float16 and state["half"][2] == 65504.0
    assert state["empty"].shape == (0, 3)
    # Copies, not views of the file buffer: writable and independent.
    state["view_offset"][0, 0] = -1.0
    assert state["base"][1, 2] == 7.0


def test_zip_prefix_comes_from_first_entry():
    # Saved to a path, so the records live under "tensors_zip/", not "archive/".
    with zipfile.ZipFile(DATA / "tensors_zip.pth") as z:
        assert z.namelist()[0].startswith("tensors_zip/")
    buf = io.BytesIO()
    with zipfile.ZipFile(DATA / "tensors_zip.pth") as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace("tensors_zip/", "renamed/", 1), src.read(info))
    buf.seek(0)
    state = load_state_dict(buf)
    np.testing.assert_array_equal(state["base"], np.arange(20, dtype=np.float32).reshape(4, 5))


def test_file_object_and_float_dtype():
    with open(DATA / "convbn_legacy.pth", "rb") as f:
        state = load_state_dict(f, float_dtype=np.float64)
    assert state["0.weight"].dtype == np.float64 and state["0.weight"].shape == (4, 3, 3, 3)
    assert state["1.num_batches_tracked"].dtype == np.int64


def test_load_checkpoint_keeps_nested_containers():
    inner = _object_pickle({"w": _tensor("k0", 6, 0, (6,), (1,))})[2:-1]  # drop PROTO and STOP
    blob = b"\x80\x02}(" + _str("model") + inner + _str("epoch") + _int(5) + b"u."
    obj = load_checkpoint(io.BytesIO(_legacy(blob, {"k0": np.arange(6, dtype=np.float32)})))
    assert obj["epoch"] == 5
    np.testing.assert_array_equal(obj["model"]["w"], np.arange(6))
    with pytest.raises(CheckpointFormatError, match="entry 'model' is a dict, not a tensor"):
        load_state_dict(io.BytesIO(_legacy(blob, {"k0": np.arange(6, dtype=np.float32)})))


# --- hostile files -------------------------------------------------------------------------

def test_evil_os_system_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the payload would `touch playgrad_evil_sentinel` in the cwd
    with pytest.raises(UnsafeCheckpointError, match=r"refused global os\.system in .*evil_legacy\.pth"):
        load_state_dict(DATA / "evil_legacy.pth")
    assert not (tmp_path / "playgrad_evil_sentinel").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("os", "system"), ("subprocess", "Popen"), ("torch", "load"),
     ("collections", "OrderedDict.fromkeys"), ("torch._utils", "_rebuild_tensor_v3")],
)
def test_other_globals_refused_in_both_formats(tmp_path, module, name):
    call = _global(module, name) + _tuple(_str("1+1")) + b"R"
    obj = _object_pickle({"w": call})
    with pytest.raises(UnsafeCheckpointError, match=rf"refused global {module}\.{name} in .*evil\.pth"):
        load_state_dict(_write(tmp_path, "evil.pth", _legacy(obj, {})))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("evil/data.pkl", obj)
        z.writestr("evil/byteorder", "little")
    with pytest.raises(UnsafeCheckpointError, match="this reader only loads tensors"):
        load_state_dict(_write(tmp_path, "evil_zip.pth", buf.getvalue()))


def test_build_cannot_tamper_with_stand_ins(tmp_path):
    # BUILD on the rebuild function's stand-in would overwrite module-level state if it were allowed.
    tampered = _global("torch._utils", "_rebuild_tensor_v2") + b"}" + _str("x") + _int(1) + b"sb"
    obj = _object_pickle({"w": tampered})
    with pytest.raises(CheckpointFormatError, match=r"build\.pth: pickle tried to set the state"):
        load_state_dict(_write(tmp_path, "build.pth", _legacy(obj, {})))


def test_module_persistent_id_refused(tmp_path):
    pid = _tuple(_str("module"), _str("Net"), _str("net.py"), _str("source")) + b"Q"
    with pytest.raises(CheckpointFormatError, match="unsupported persistent id 'module'"):
        load_state_dict(_write(tmp_path, "module.pth", _legacy(_object_pickle({"w": pid}), {})))


# --- out-of-bounds views --------------------------------------------------------------------

def test_crafted_in_bounds_view_reads_right_values(tmp_path):
    state = load_state_dict(_write(tmp_path, "ok.pth", _crafted(size=(2, 2), stride=(1, 2), offset=1)))
    np.testing.assert_array_equal(state["w"], [[1, 3], [2, 4]])


@pytest.mark.parametrize(
    ("size", "stride", "offset", "match"),
    [
        ((2, 3), (3, 1), 1, "reaches element 6 of a storage with only 6 elements"),
        ((4, 3), (3, 1), 0, "reaches element 11"),
        ((2,), (1000000,), 0, "reaches element 1000000"),
        ((2, 3), (-3, 1), 3, "negative offset, size or stride"),
        ((6,), (1,), -1, "negative offset, size or stride"),
    ],
)
def test_out_of_bounds_view_refused(tmp_path, size, stride, offset, match):
    path = _write(tmp_path, "oob.pth", _crafted(size=size, stride=stride, offset=offset))
    with pytest.raises(CheckpointFormatError, match=match) as err:
        load_state_dict(path)
    assert "oob.pth" in str(err.value) and "'w'" in str(err.value)


def test_zero_stride_expansion_bomb_refused(tmp_path):
    path = _write(tmp_path, "bomb.pth", _crafted(size=(10**6, 10**6), stride=(0, 0)))
    with pytest.raises(CheckpointFormatError, match="would expand 24 stored bytes to 4000000000000 bytes"):
        load_state_dict(path)
    small = load_state_dict(_write(tmp_path, "expand.pth", _crafted(size=(3, 2), stride=(0, 1))))
    np.testing.assert_array_equal(small["w"], [[0, 1]] * 3)


def test_many_small_expansions_cannot_add_up_to_an_out_of_memory(tmp_path, monkeypatch):
    # Each zero-stride tensor is under the per-tensor limit; together they exceed what the file justifies.
    monkeypatch.setattr(torch_reader, "_MAX_BROADCAST_BYTES", 1 << 20)
    entries = {f"w{i}": _tensor("k0", 1, 0, (2**17,), (0,)) for i in range(10)}  # 512 KiB each
    blob = _legacy(_object_pickle(entries), {"k0": np.ones(1, np.float32)})
    with pytest.raises(CheckpointFormatError, match="beyond what this file's storages can justify"):
        load_state_dict(_write(tmp_path, "many.pth", blob))
    two = {f"w{i}": _tensor("k0", 1, 0, (2**17,), (0,)) for i in range(2)}  # 1 MiB in all: allowed
    out = load_state_dict(_write(tmp_path, "two.pth", _legacy(_object_pickle(two), {"k0": np.ones(1, np.float32)})))
    assert out["w1"].shape == (2**17,)


def test_shared_references_are_converted_once(tmp_path):
    # [x, x] nested 40 deep would take 2**40 visits without memoisation.
    x = _tensor("k0", 2, 0, (2,), (1,))
    body = b"\x80\x02" + x + b"q\x00"  # BINPUT 0
    for level in range(1, 41):
        body += b"h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"\x86q" + bytes([level])  # TUPLE2, BINPUT
    blob = _legacy(body + b".", {"k0": np.array([1.0, 2.0], np.float32)})
    out = torch_reader.load_checkpoint(_write(tmp_path, "nest.pth", blob))
    for _ in range(40):
        assert out[0] is out[1]
        out = out[0]
    np.testing.assert_array_equal(out, [1.0, 2.0])


def _long(value: int) -> bytes:
    """LONG4 of any width, for ints beyond int64."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8b" + len(raw).to_bytes(4, "little") + raw


def _shared_tuple(depth: int) -> bytes:
    """Pickle ops leaving one tuple on the stack: t = (t', t') nested ``depth`` deep, all shared."""
    ops = _str("x") + b"q\x00"
    for level in range(1, depth + 1):
        get = b"h" + bytes([level - 1])  # BINGET the previous level
        ops += get + get + b"\x86q" + bytes([level]) + b"0"  # TUPLE2, BINPUT, POP
    return ops + b"0h" + bytes([depth])  # POP the first "x", GET the last tuple


def test_shared_tuple_key_refused_before_hashing_it():
    # A few hundred bytes whose dict key takes 2**40 steps to hash: refused, not hashed (which hangs).
    for build in (b"}" + _shared_tuple(40) + _int(1) + b"s",  # SETITEM
                  b"(" + _shared_tuple(40) + _int(1) + b"d",  # DICT
                  _global("collections", "OrderedDict") + b"((" + _shared_tuple(40) + _int(1) + b"tl\x85R"):
        with pytest.raises(CheckpointFormatError, match=r"<stream>: a dict key is a tuple of more than 64 parts"):
            load_checkpoint(io.BytesIO(_legacy(b"\x80\x02" + build + b".", {})))
    small = load_checkpoint(io.BytesIO(_legacy(b"\x80\x02}" + _shared_tuple(2) + _int(1) + b"s.", {})))
    assert small == {(("x", "x"), ("x", "x")): 1}


def test_error_messages_print_pickled_values_briefly():
    # repr() of the shared tuple would be 2**40 items long; the message shows a few levels.
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001))
    with pytest.raises(CheckpointFormatError, match=r"sys_info \(\(\(<tuple>, <tuple>\)") as err:
        load_checkpoint(io.BytesIO(header + b"\x80\x02" + _shared_tuple(40) + b"."))
    assert len(str(err.value)) < 300
    with pytest.raises(CheckpointFormatError, match=r"invalid magic number <16391-bit int>"):
        load_checkpoint(io.BytesIO(b"\x80\x02" + _long(1 << 16390) + b"."))  # repr() refuses > 4300 digits


def test_build_cannot_shadow_ordered_dict_methods(tmp_path):
    # BUILD on the state dict may add _metadata (torch does) but not replace .items, which the reader calls.
    shadow = _global("collections", "OrderedDict") + b")R}" + _str("items") + _global("_codecs", "encode") + b"sb"
    body = b"\x80\x02" + shadow + b"(" + _str("w") + _tensor("k0", 6, 0, (6,), (1,)) + b"u."
    with pytest.raises(CheckpointFormatError, match=r"shadow\.pth: pickle tried to set \{'items': <_Callable>\}"):
        load_state_dict(_write(tmp_path, "shadow.pth", _legacy(body, {"k0": np.zeros(6, np.float32)})))
    metadata = _global("collections", "OrderedDict") + b")R}" + _str("_metadata") + _int(1) + b"sb"
    body = b"\x80\x02" + metadata + b"(" + _str("w") + _tensor("k0", 6, 0, (6,), (1,)) + b"u."
    assert list(load_state_dict(io.BytesIO(_legacy(body, {"k0": np.zeros(6, np.float32)})))) == ["w"]


@pytest.mark.parametrize(
    ("size", "stride", "match"),
    [
        ((1, 6), (1 << 70, 1), r"tensor stride is <71-bit int>, outside int64"),
        ((0, 1 << 70), (1, 1), r"tensor size is <71-bit int>, outside int64"),
        ((0, 1 << 40, 1 << 40), (1, 1, 1), r"is empty, but NumPy refuses a shape this large"),
        ((1,) * 70, (1,) * 70, r"a tensor has 70 dimensions; at most 32 are read"),
    ],
)
def test_shapes_numpy_cannot_take_refused(size, stride, match):
    obj = _object_pickle({"w": _global("torch._utils", "_rebuild_tensor") + _tuple(
        _tuple(_str("storage"), _global("torch", "FloatStorage"), _str("k0"), _str("cpu"), _int(6), b"N") + b"Q",
        _int(0), _tuple(*map(_long, size)), _tuple(*map(_long, stride))) + b"R"})
    with pytest.raises(CheckpointFormatError, match=match):
        load_state_dict(io.BytesIO(_legacy(obj, {"k0": np.arange(6, dtype=np.float32)})))


def test_length_one_dimension_may_have_any_stride():
    # torch never steps a length-1 dimension, so its stride can be anything up to int64.
    state = load_state_dict(io.BytesIO(_crafted(size=(1, 6), stride=(2**62, 1))))
    np.testing.assert_array_equal(state["w"], [np.arange(6)])


def test_size_stride_length_mismatch_refused(tmp_path):
    with pytest.raises(CheckpointFormatError, match="differ in length"):
        load_state_dict(_write(tmp_path, "bad.pth", _crafted(size=(2, 3), stride=(1,))))


# --- truncated and corrupt files ------------------------------------------------------------

def _data_start(blob: bytes) -> int:
    """Offset of the first storage's 8-byte count: after the 5 pickles of a legacy stream."""
    buf = io.BytesIO(blob)
    for _ in range(5):
        for _op in pickletools.genops(buf):
            pass
    return buf.tell()


def test_legacy_truncated_at_many_points(tmp_path):
    blob = (DATA / "convbn_legacy.pth").read_bytes()
    start = _data_start(blob)
    cuts = [1, 5, 30, 120, 300, start - 3, start, start + 4, start + 8, start + 20, len(blob) - 1]
    for cut in cuts:
        path = _write(tmp_path, f"cut_{cut}.pth", blob[:cut])
        with pytest.raises(CheckpointFormatError) as err:
            load_state_dict(path)
        assert f"cut_{cut}.pth" in str(err.value), (cut, str(err.value))
    # Cuts inside the data name the storage that is short.
    with pytest.raises(CheckpointFormatError, match=r"storage '\d+' is short"):
        load_state_dict(_write(tmp_path, "short.pth", blob[:-1]))


def test_legacy_every_prefix_fails_cleanly(tmp_path):
    blob = (DATA / "tensors_legacy.pth").read_bytes()
    for cut in range(0, len(blob), 7):
        with pytest.raises(CheckpointFormatError):
            load_state_dict(io.BytesIO(blob[:cut]))


def test_legacy_corrupted_count(tmp_path):
    blob = bytearray((DATA / "convbn_legacy.pth").read_bytes())
    start = _data_start(bytes(blob))
    count = int.from_bytes(blob[start : start + 8], "little")
    blob[start : start + 8] = (count + 1).to_bytes(8, "little")
    message = f"element count {count + 1} on disk but the pickle says {count}"
    with pytest.raises(CheckpointFormatError, match=message):
        load_state_dict(_write(tmp_path, "count.pth", bytes(blob)))
    blob[start : start + 8] = (2**62).to_bytes(8, "little")
    with pytest.raises(CheckpointFormatError, match="count.pth"):
        load_state_dict(_write(tmp_path, "count.pth", bytes(blob)))


def test_pickled_numel_larger_than_file(tmp_path):
    obj = _object_pickle({"w": _tensor("k0", 10**12, 0, (2,), (1,))})
    with pytest.raises(CheckpointFormatError, match=r"'k0' claims 1000000000000 x torch.FloatStorage"):
        load_state_dict(_write(tmp_path, "huge.pth", _legacy(obj, {"k0": np.zeros(2, np.float32)})))


def test_key_list_must_match_pickle(tmp_path):
    blob = _legacy(_object_pickle({"w": _tensor("k0", 2, 0, (2,), (1,))}), {"k1": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointFormatError, match="'k1' is listed but no tensor uses it"):
        load_state_dict(_write(tmp_path, "keys.pth", blob))


def test_bad_magic_protocol_and_endianness(tmp_path):
    blob = (DATA / "tensors_legacy.pth").read_bytes()
    magic_len = len(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    bad_magic = pickle.dumps(12345, protocol=2) + blob[magic_len:]
    with pytest.raises(CheckpointFormatError, match="invalid magic number"):
        load_state_dict(_write(tmp_path, "magic.pth", bad_magic))
    header = (0x1950A86A20F9469CFC6C, 1001, {"little_endian": False})
    big = b"".join(pickle.dumps(v, protocol=2) for v in header)
    with pytest.raises(CheckpointFormatError, match="little_endian"):
        load_state_dict(_write(tmp_path, "big.pth", big))
    proto = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1000))
    with pytest.raises(CheckpointFormatError, match="protocol version 1000"):
        load_state_dict(_write(tmp_path, "proto.pth", proto))
    with pytest.raises(CheckpointFormatError, match=r"text\.pth: not a PyTorch checkpoint"):
        load_state_dict(_write(tmp_path, "text.pth", b"hello"))


def test_zip_truncated_and_short_record(tmp_path):
    blob = (DATA / "tensors_zip.pth").read_bytes()
    for cut in (10, 200, len(blob) // 2, len(blob) - 30):
        with pytest.raises(CheckpointFormatError, match=f"zcut_{cut}.pth"):
            load_state_dict(_write(tmp_path, f"zcut_{cut}.pth", blob[:cut]))
    buf = io.BytesIO()
    with zipfile.ZipFile(DATA / "tensors_zip.pth") as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "tensors_zip/data/0":
                payload = payload[:-4]
            dst.writestr(info.filename, payload)
    with pytest.raises(CheckpointFormatError, match=r"storage '0' claims .* but its record holds"):
        load_state_dict(_write(tmp_path, "zshort.pth", buf.getvalue()))


def _rezipped(compression: int = zipfile.ZIP_STORED) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(DATA / "tensors_zip.pth") as src, zipfile.ZipFile(buf, "w", compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return bytearray(buf.getvalue())


def test_zip_records_must_be_stored_uncompressed():
    # A deflated record can claim ~1000x the file's size; torch never writes one.
    with pytest.raises(CheckpointFormatError, match=r"zip record 'tensors_zip/.*' is compressed or encrypted"):
        load_state_dict(io.BytesIO(bytes(_rezipped(zipfile.ZIP_DEFLATED))))
    encrypted = _rezipped()
    start = encrypted.find(b"PK\x01\x02")  # the first central directory entry
    encrypted[start + 8] |= 0x1  # its "encrypted" flag bit
    with pytest.raises(CheckpointFormatError, match="is compressed or encrypted"):
        load_state_dict(io.BytesIO(bytes(encrypted)))


def test_corrupt_zip_header_fields_fail_cleanly():
    # zipfile raises NotImplementedError for an unknown "version needed" (and OverflowError for
    # some sizes); both mean a corrupt file.
    blob = _rezipped()
    start = blob.find(b"PK\x01\x02")
    blob[start + 6] = 99  # version needed to extract: 9.9
    with pytest.raises(CheckpointFormatError, match="corrupt"):
        load_state_dict(io.BytesIO(bytes(blob)))


def test_missing_file_names_path(tmp_path):
    with pytest.raises(CheckpointFormatError, match="nope.pth"):
        load_state_dict(tmp_path / "nope.pth")
