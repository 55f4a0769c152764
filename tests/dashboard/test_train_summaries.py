"""What train.py writes for the dashboard and TensorBoard: layers.json, histograms every N updates, and
TensorBoard scalars equal to metrics.jsonl, read back with TensorBoard's own event reader."""

from __future__ import annotations

import json

import pytest
from dashboard_support import train


def test_train_writes_histograms_model_and_tensorboard_equal_to_metrics(tmp_path):
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard not installed (pip install 'playgrad[tensorboard]')")
    pytest.importorskip("tensorboardX", reason="tensorboardX not installed (pip install 'playgrad[tensorboard]')")
    run = train(tmp_path, "--tensorboard", "--set", "experiment.histogram_every=2")
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    updates = [r for r in recs if any("loss" in k for k in r)]
    assert len(updates) >= 3
    # layers.json: PPO's two networks with their layer tables (not model.json, a TF.js export's topology)
    assert not (run / "model.json").exists()
    model = json.loads((run / "layers.json").read_text())
    assert [n["name"] for n in model["networks"]] == ["policy", "value"]
    assert model["networks"][0]["layers"][-1]["output_shape"] == "(None, 2)"  # CartPole's two actions
    assert model["networks"][1]["layers"][-1]["output_shape"] == "(None, 1)"
    # histograms.jsonl: at updates 1, 3, 5, ... with weights and the last minibatch's gradients
    snaps = [json.loads(line) for line in (run / "histograms.jsonl").read_text().splitlines()]
    assert [s["step"] for s in snaps] == [u["env_steps"] for u in updates[::2]]
    for snap in snaps:
        assert "policy/dense/kernel" in snap["tensors"] and "value/dense/kernel" in snap["tensors"]
        for name, entry in snap["tensors"].items():
            assert sum(entry["w"]["counts"]) == entry["w"]["count"] - entry["w"]["nans"] - entry["w"]["infs"], name
            assert "g" in entry and entry["g"]["count"] == entry["w"]["count"], name
    # TensorBoard: every numeric metric, at env_steps, equal to metrics.jsonl
    acc = tb.EventAccumulator(str(run / "tensorboard"), size_guidance={tb.SCALARS: 0, tb.HISTOGRAMS: 0})
    acc.Reload()
    keys = {k for r in recs for k, v in r.items() if k != "env_steps" and isinstance(v, int | float)}
    assert keys <= set(acc.Tags()["scalars"]), keys - set(acc.Tags()["scalars"])
    for key in sorted(keys):
        expect = [(r["env_steps"], float(r[key])) for r in recs if key in r]
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in expect], key
        assert [v for _, v in got] == pytest.approx([v for _, v in expect], rel=1e-6), key  # stored as float32
    assert [e.step for e in acc.Histograms("policy/dense/kernel")] == [s["step"] for s in snaps]


def test_bad_settings_are_one_line_errors(tmp_path):
    import subprocess
    import sys

    from dashboard_support import CONFIG, ROOT

    def run(*args):
        out = subprocess.run([sys.executable, "scripts/train.py", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        return out.returncode, out.stderr.strip()

    code, err = run(CONFIG, "--runs-dir", str(tmp_path), "--set", "experiment.histogram_every=-1")
    assert code == 2 and "histogram_every" in err and "Traceback" not in err, err
    code, err = run("--resume", str(tmp_path / "any"), "--tensorboard")
    assert code == 2 and err.count("\n") == 0 and "--tensorboard applies to a new run" in err, err
