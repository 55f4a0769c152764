"""scripts/export_tfjs.py: which network each agent exports, run directories end to end, MobileNetV2, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from playgrad import sources
from playgrad.cli import export_tfjs
from rl import tfjs

ROOT = Path(__file__).resolve().parents[2]


def _same_predictions(model, out_dir: Path, x: np.ndarray) -> None:
    back = tfjs.load_tfjs(out_dir)
    np.testing.assert_allclose(np.asarray(back.predict(x)), np.asarray(model.predict(x)), atol=1e-6)


def test_ppo_run_directory_exports_its_policy(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), str(ROOT / "configs" / "cartpole_ppo.toml"),
           "--set", "experiment.total_steps=256", "--set", "experiment.eval_episodes=1",
           "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert export_tfjs.main([str(run), str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "model.json").read_text())
    meta = doc["userDefinedMetadata"]
    assert meta["agent"] == "ppo" and meta["network"] == "policy" and meta["env_id"] == "envs/CartPole-v1"
    from agents.runner import load_agent

    agent = load_agent(run)
    _same_predictions(agent.policy, tmp_path / "out", np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))


def _agent(agent_name: str, env_id: str, agent_table: dict, env_table: dict | None = None):
    from agents.runner import make_agent

    return make_agent({"experiment": {"agent": agent_name, "env_id": env_id, "total_steps": 100},
                       "env": env_table or {}, "agent": agent_table})


def test_snake_dqn_exports_its_online_q_network(tmp_path):
    agent = _agent("dqn", "envs/Snake-v0", {"conv_filters": [8, 16], "hidden_sizes": [16], "buffer_size": 100,
                                             "learning_starts": 10, "batch_size": 8})
    model, meta = sources.network_of_agent(agent, "dqn")
    assert model is agent.q_net and meta["network"] == "q_net"
    tfjs.save_tfjs(model, tmp_path, metadata=meta)
    _same_predictions(model, tmp_path, np.random.default_rng(1).integers(0, 3, (4, 9, 9, 2)).astype(np.float32))


def test_metacar_ddpg_exports_its_actor(tmp_path):
    agent = _agent("ddpg", "envs/MetaCar-v0", {}, {"motion": "control"})
    model, meta = sources.network_of_agent(agent, "ddpg")
    assert model is agent.actor
    tfjs.save_tfjs(model, tmp_path, metadata=meta)
    obs_dim = model.inputs[0].shape[-1]
    _same_predictions(model, tmp_path, np.random.default_rng(2).normal(size=(3, obs_dim)).astype(np.float32))


def test_a_gsde_gaussian_policy_exports_with_its_2d_log_std(metacar_sde_run, tmp_path):
    # gSDE's log std is (last hidden features, actions); the export once crashed turning it into floats.
    from agents.runner import load_agent

    assert export_tfjs.main([str(metacar_sde_run), str(tmp_path / "out")]) == 0
    meta = json.loads((tmp_path / "out" / "model.json").read_text())["userDefinedMetadata"]
    agent = load_agent(metacar_sde_run)
    assert np.asarray(meta["log_std"]).shape == (128, 2) and "gSDE" in meta["log_std_of"]
    np.testing.assert_array_equal(np.asarray(meta["log_std"], dtype=np.float32), agent.log_std.data)
    _same_predictions(agent.policy, tmp_path / "out", np.random.default_rng(3).normal(size=(5, 99)).astype(np.float32))


def test_mobilenet_v2_export_pads_explicitly_and_shards_at_4_mib(tmp_path):
    assert export_tfjs.main(["mobilenet_v2", str(tmp_path), "--random-init"]) == 0
    doc = json.loads((tmp_path / "model.json").read_text())
    layers = {e["name"]: e for e in doc["modelTopology"]["config"]["layers"]}
    assert layers["features.0.0_pad"]["class_name"] == "ZeroPadding2D"
    stem = layers["features.0.0"]["config"]
    assert stem["padding"] == "valid" and stem["strides"] == [2, 2]
    assert layers["features.2.conv.1.0_pad"]["config"]["padding"] == [[1, 1], [1, 1]]
    sizes = [(tmp_path / p).stat().st_size for p in doc["weightsManifest"][0]["paths"]]
    assert doc["weightsManifest"][0]["paths"][0] == f"group1-shard1of{len(sizes)}.bin"
    assert all(s == tfjs.SHARD_SIZE_BYTES for s in sizes[:-1]) and 0 < sizes[-1] <= tfjs.SHARD_SIZE_BYTES
    # 3,504,872 parameters plus BN moving statistics (34,112 floats), float32.
    assert sum(sizes) == 4 * (3_504_872 + 34_112)


def test_errors_name_the_problem(tmp_path, capsys, monkeypatch):
    assert export_tfjs.main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[experiment]\nagent = "qtable"\nenv_id = "envs/MetaCar-v0"\n')
    assert export_tfjs.main([str(run), str(tmp_path / "out")]) == 2
    assert "'qtable' has no network to export" in capsys.readouterr().err
    # An agent type whose module is not written yet.
    from agents import base

    monkeypatch.setitem(base.AGENTS, "future", "agents.future")
    monkeypatch.setitem(sources.NETWORKS, "future", ("actor", "actions"))
    (run / "config.toml").write_text('[experiment]\nagent = "future"\nenv_id = "envs/MetaCar-v0"\n')
    assert export_tfjs.main([str(run), str(tmp_path / "out")]) == 2
    assert "'future' is not available yet (future.py is missing)" in capsys.readouterr().err


def test_out_dir_that_is_a_file_is_one_error_line(tmp_path, capsys):
    from rl import layers as L
    from rl.models import Sequential

    saved = tmp_path / "model.safetensors"
    Sequential([L.Dense(2, input_shape=(3,))]).save(str(saved))
    not_a_dir = tmp_path / "taken.txt"
    not_a_dir.write_text("")
    assert export_tfjs.main([str(saved), str(not_a_dir)]) == 2  # was a FileExistsError traceback
    assert "export_tfjs:" in capsys.readouterr().err and not_a_dir.read_text() == ""
