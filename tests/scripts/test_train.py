"""scripts/train.py and scripts/evaluate.py from the command line: run directory contents, errors."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_writes_a_complete_run_directory_and_evaluate_reads_it(tmp_path):
    proc = run("scripts/train.py", "configs/cartpole_reinforce.toml", "--set", "agent.iterations=2",
               "--set", "agent.games_per_iteration=3", "--seed", "4", "--runs-dir", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("cartpole_reinforce-s4-")
    for name in ("config.toml", "command.txt", "info.json", "metrics.jsonl", "eval.json",
                 "checkpoints/latest.safetensors", "checkpoints/best.safetensors"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "info.json").read_text())
    assert info["seed"] == 4 and "numpy" in info and "backend" in info
    config = (run_dir / "config.toml").read_text()
    assert "iterations = 2" in config and "seed = 4" in config and "lr = 0.05" in config  # defaults filled in
    assert "--set agent.iterations=2" in (run_dir / "command.txt").read_text()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum("episode_return" in r for r in records) == 6 and records[-1]["iteration"] == 2
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 20

    proc = run("scripts/evaluate.py", str(run_dir), "--episodes", "4")
    assert proc.returncode == 0, proc.stderr
    assert "over 4 episodes" in proc.stdout


def test_unknown_config_key_is_a_one_line_error(tmp_path):
    proc = run("scripts/train.py", "configs/cartpole_ppo.toml", "--set", "agent.n_steps=64",
               "--runs-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "configs/cartpole_ppo.toml [agent]: unknown key 'n_steps'" in proc.stderr
    assert "num_steps" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing is written before the config is valid
