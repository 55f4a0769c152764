"""Regenerate the PyTorch checkpoint fixtures under ``tests/data/torch/`` (needs torch; the tests do not).

The reader in ``transfer/torch_reader.py`` never imports torch, so its tests run on small files that
real ``torch.save`` wrote, committed next to this script. Run it with a torch-enabled interpreter
(a separate venv, not the project's)::

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0
    /tmp/torchvenv/bin/python tests/data/make_torch_fixtures.py

It writes, for each state dict ``NAME`` in {``tensors``, ``convbn``}:

* ``NAME_legacy.pth`` — ``torch.save(..., _use_new_zipfile_serialization=False)`` (the pre-1.6 stream);
* ``NAME_zip.pth``    — the default zip container (saved to a path, so its record prefix is ``NAME_zip/``);
* ``NAME_expected.npz`` — the same tensors as NumPy arrays (bfloat16 widened to float32);

plus ``evil_legacy.pth``: a legacy-looking stream (valid magic, protocol and sys_info) whose object
pickle calls ``os.system("touch playgrad_evil_sentinel")``. A safe reader must refuse it; a test runs
the reader in an empty directory and checks the sentinel file never appears.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT_DIR = Path(__file__).resolve().parent / "torch"
EVIL_SENTINEL = "playgrad_evil_sentinel"


def tensors_state() -> dict[str, torch.Tensor]:
    """Every storage type the reader supports, plus views that share a storage."""
    torch.manual_seed(0)
    base = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    return {
        "matrix": torch.randn(2, 3),
        "base": base,
        "view_offset": base[1:, 2:],          # storage offset 7, non-contiguous rows
        "view_transposed": base.t()[1:3],     # offset 5, strides (1, 5)
        "scalar_int64": torch.tensor(7, dtype=torch.int64),
        "half": torch.tensor([1.5, -2.25, 65504.0, 6.1e-5], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -3.140625], [1e30, 2.0**-10]], dtype=torch.bfloat16),
        "float64": torch.tensor([0.1, 1e-300], dtype=torch.float64),
        "int32": torch.tensor([-(2**31), 2**31 - 1, 3], dtype=torch.int32),
        "int16": torch.tensor([-300, 300], dtype=torch.int16),
        "int8": torch.tensor([-128, 127], dtype=torch.int8),
        "uint8": torch.tensor([[0, 255], [1, 2]], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "param": nn.Parameter(torch.tensor([0.5, -0.5])),   # pickled via _rebuild_parameter
    }


def convbn_state() -> dict[str, torch.Tensor]:
    """A conv + BatchNorm module's state dict, with running stats moved off their defaults."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU6())
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 6, 6))
    return model.state_dict()


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def _binunicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + len(raw).to_bytes(4, "little") + raw


def evil_stream() -> bytes:
    """Legacy header pickles, then an object pickle that would run a shell command if loaded naively.

    Written opcode by opcode so the global is spelled ``os system`` (pickling ``os.system`` itself
    would record ``posix system`` on Linux): ``{"weight": os.system("touch ...")}``.
    """
    header = b"".join(
        pickle.dumps(v, protocol=2)
        for v in (
            0x1950A86A20F9469CFC6C,
            1001,
            {
                "protocol_version": 1001,
                "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4},
            },
        )
    )
    payload = (
        b"\x80\x02"                                    # PROTO 2
        + b"}"                                          # EMPTY_DICT
        + _binunicode("weight")
        + b"cos\nsystem\n"                              # GLOBAL os.system
        + _binunicode(f"touch {EVIL_SENTINEL}")
        + b"\x85"                                       # TUPLE1
        + b"R"                                          # REDUCE: os.system(cmd)
        + b"s"                                          # SETITEM
        + b"."                                          # STOP
    )
    return header + payload + pickle.dumps([], protocol=2)


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, state in (("tensors", tensors_state()), ("convbn", convbn_state())):
        torch.save(state, OUT_DIR / f"{name}_legacy.pth", _use_new_zipfile_serialization=False)
        torch.save(state, OUT_DIR / f"{name}_zip.pth")
        np.savez(OUT_DIR / f"{name}_expected.npz", **{k: to_numpy(v) for k, v in state.items()})
        # Sanity: torch reads back what it wrote.
        for fmt in ("legacy", "zip"):
            back = torch.load(OUT_DIR / f"{name}_{fmt}.pth", weights_only=True)
            assert list(back) == list(state), (name, fmt)
    blob = evil_stream()
    assert b"cos\nsystem\n" in blob, "the evil pickle should name os.system"
    (OUT_DIR / "evil_legacy.pth").write_bytes(blob)
    for path in sorted(OUT_DIR.iterdir()):
        print(f"{path.name:24s} {path.stat().st_size:7d} bytes")


if __name__ == "__main__":
    main()
