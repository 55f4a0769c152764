"""Fuzz transfer/torch_reader.py: torch-written .pth files (legacy stream and zip container), damaged.

Every damaged file must load or raise torch_reader.CheckpointError (within fuzzlib's time and memory
caps). Besides byte-level damage, the pickles are damaged opcode by opcode (arguments set to boundary
integers: sizes, strides, offsets, element counts), and the zip container's header fields likewise;
the zip variant of the pickle damage re-zips the file so the CRCs still match and the damage reaches
the unpickler.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz import fuzzlib
from transfer import torch_reader

DATA = Path(__file__).resolve().parent.parent / "data" / "torch"
FILES = ["tensors_legacy", "convbn_legacy", "tensors_zip", "convbn_zip"]


def _op_spans(pkl: bytes, count: int = 1) -> list[tuple[int, int]]:
    """(start, end) of every opcode with its argument in the first ``count`` pickles of ``pkl``
    (as far as they parse: a second mutation may meet the first's damage)."""
    buf, starts = io.BytesIO(pkl), []
    try:
        for _ in range(count):
            starts += [pos for _, _, pos in pickletools.genops(buf)]
    except ValueError:
        pass
    ends = [*starts[1:], buf.tell()]
    return [(a, b) for a, b in zip(starts, ends) if b > a] or [(0, min(1, len(pkl)))]


def _mutate_pickle(pkl: bytes, rng: np.random.Generator, count: int = 1) -> bytes:
    """Damage one opcode: its argument set to a boundary int, the opcode byte changed, the op deleted
    or repeated, or any opcode (protocols 0-5) inserted before it with a boundary int as argument."""
    spans = _op_spans(pkl, count)
    start, end = spans[int(rng.integers(len(spans)))]
    choice = int(rng.integers(5))
    if choice == 4:
        code = pickletools.opcodes[int(rng.integers(len(pickletools.opcodes)))].code.encode("latin-1")
        argument = fuzzlib.INTERESTING[int(rng.integers(len(fuzzlib.INTERESTING)))].to_bytes(8, "little")
        return pkl[:start] + code + argument + pkl[start:]
    if choice == 0 and end - start > 1:
        return pkl[: start + 1] + fuzzlib.interesting_int(pkl[start + 1 : end], rng) + pkl[end:]
    if choice == 1:
        return pkl[:start] + bytes([int(rng.integers(256))]) + pkl[start + 1 :]
    if choice == 2:
        return pkl[:start] + pkl[end:]
    return pkl[:end] + pkl[start:end] + pkl[end:]


def _legacy_pickles(raw: bytes, rng: np.random.Generator) -> bytes:
    # The stream holds 5 pickles (magic, protocol, sys_info, object, key list), then the storages.
    return _mutate_pickle(raw, rng, count=5)


def _rezip(raw: bytes, change: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, change.get(info.filename, src.read(info)))
    return buf.getvalue()


def _zip_pickle(raw: bytes, rng: np.random.Generator) -> bytes:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        pkl = z.read(name)
    for _ in range(int(rng.integers(1, 3))):
        pkl = _mutate_pickle(pkl, rng)
    return _rezip(raw, {name: pkl})


# Zip header fields (offset, width) that hold sizes, offsets and counts.
_ZIP_FIELDS = {
    b"PK\x03\x04": [(4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
    b"PK\x01\x02": [(6, 2), (8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)],
    b"PK\x05\x06": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
}


def _zip_fields(raw: bytes, rng: np.random.Generator) -> bytes:
    """Set one header field of a local header, a directory entry or the end record to a boundary int."""
    starts = [(i, sig) for sig in _ZIP_FIELDS for i in range(len(raw)) if raw.startswith(sig, i)]
    at, sig = starts[int(rng.integers(len(starts)))]
    offset, width = _ZIP_FIELDS[sig][int(rng.integers(len(_ZIP_FIELDS[sig])))]
    value = fuzzlib.INTERESTING[int(rng.integers(len(fuzzlib.INTERESTING)))] % (1 << (8 * width))
    return raw[: at + offset] + value.to_bytes(width, "little") + raw[at + offset + width :]


def _load(blob: bytes) -> None:
    out = torch_reader.load_checkpoint(io.BytesIO(blob))
    with fuzzlib.after_load("checking that only plain values came back"):
        todo, seen = [out], set()
        while todo:  # shared and cyclic containers are visited once
            value = todo.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, dict):
                todo += [*value.keys(), *value.values()]
            elif isinstance(value, list | tuple | set | frozenset):
                todo += list(value)
            else:
                assert isinstance(value, np.ndarray | str | bytes | int | float | type(None)), type(value)


MUTATIONS = {"bytes": fuzzlib.mutate_bytes, "legacy_pickles": _legacy_pickles, "zip_pickle": _zip_pickle,
             "zip_fields": _zip_fields}  # fmt: skip
CASES = [(f, m) for f in FILES for m in MUTATIONS if m == "bytes" or m.startswith(f.split("_")[1])]


@pytest.mark.parametrize(("name", "mutation"), CASES)
def test_damaged_pth_loads_or_raises_checkpoint_error(name, mutation):
    raw = (DATA / f"{name}.pth").read_bytes()
    outcome = fuzzlib.run(f"torch_reader {name} {mutation}", lambda rng: MUTATIONS[mutation](raw, rng), _load,
                          torch_reader.CheckpointError)
    fuzzlib.check(outcome)


def test_structure_aware_mutations_keep_some_files_valid():
    # A sanity check of the mutators themselves: an argument-preserving rezip loads unchanged.
    raw = (DATA / "convbn_zip.pth").read_bytes()
    same = torch_reader.load_state_dict(io.BytesIO(_rezip(raw, {})))
    expected = np.load(DATA / "convbn_expected.npz")
    assert all(np.array_equal(same[k], expected[k]) for k in expected.files)
    assert len(_op_spans((DATA / "convbn_legacy.pth").read_bytes(), count=5)) > 100
