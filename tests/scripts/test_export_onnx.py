"""scripts/export_onnx.py: a trained run's policy as ONNX, run in ONNX Runtime; bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.runner import load_agent

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need the 'onnx' extra: pip install 'playgrad[onnx]'")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need the 'onnx' extra: pip install 'playgrad[onnx]'")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "export_onnx.py"


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_run_directory_exports_a_policy_onnx_runtime_agrees_with(cartpole_run, tmp_path):
    proc = _export(str(cartpole_run), str(tmp_path / "policy.onnx"))
    assert proc.returncode == 0, proc.stderr
    assert "ONNX Runtime agrees" in proc.stdout
    proto = onnx.load(str(tmp_path / "policy.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["network"] == "policy" and json.loads(meta["env"]) is not None
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    (logits,) = session.run(None, {session.get_inputs()[0].name: obs})
    agent = load_agent(cartpole_run)
    np.testing.assert_allclose(logits, np.asarray(agent.policy.predict(obs)), rtol=1e-5, atol=1e-6)


def test_a_gsde_gaussian_policy_exports_and_onnx_runtime_agrees(metacar_sde_run, tmp_path):
    proc = _export(str(metacar_sde_run), str(tmp_path / "policy.onnx"))
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(1).normal(size=(5, 99)).astype("float32")  # lidar, speed, previous lidar
    (means,) = session.run(None, {session.get_inputs()[0].name: obs})
    agent = load_agent(metacar_sde_run)
    np.testing.assert_allclose(means, np.asarray(agent.policy.predict(obs)), rtol=1e-5, atol=1e-6)


def test_an_original_tfjs_agent_converts_to_onnx(tmp_path):
    # TF.js -> ONNX through the core: the original MetaCar demo's level3 actor, read as play.py reads it.
    from agents.originals import load_original

    proc = _export("original:ddpg-traffic", str(tmp_path / "actor.onnx"))
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(tmp_path / "actor.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(2).uniform(-1, 1, size=(6, 50)).astype("float32")  # 49 lidar cells + speed
    (actions,) = session.run(None, {session.get_inputs()[0].name: obs})
    np.testing.assert_allclose(actions, np.asarray(load_original("original:ddpg-traffic").model.predict(obs)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["original:qtable", "x.onnx"], "is a Q-table, not a network: nothing to export"),
    (["original:nope", "x.onnx"], "the bundled originals are original:qtable, original:policy"),
    (["nowhere", "x.onnx"], "no such run directory or model file"),
    (["mobilenet_v2", "."], "is a folder; give the file to write"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    proc = _export(*[str(tmp_path / a) if a == "x.onnx" else a for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
