"""scripts/train.py and scripts/evaluate.py from the command line: run directory contents, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playgrad.cli.train import main as train_main

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


@pytest.mark.parametrize("args, message", [
    (["--seeds", "3-1"], "--seeds '3-1': the range 3-1 runs backwards (write 1-3)"),
    (["--seeds", "a"], "--seeds 'a': 'a' is not a seed or a range like 0-7"),
    (["--seeds", "0-2,2"], "--seeds '0-2,2' names a seed twice"),
    (["--seeds", "-1"], "is not a seed or a range"),
    (["--seeds", "0-1", "--seed", "1"], "give --seed or --seeds, not both"),
])
def test_bad_seeds_are_a_one_line_error(tmp_path, capsys, args, message):
    assert train_main(["configs/cartpole_ppo_fast.toml", *args, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}" or (message in err and len(err.strip().splitlines()) == 1)
    assert not any(tmp_path.iterdir())


def test_seeds_of_an_agent_without_a_batched_path_train_one_after_another(tmp_path, capsys):
    assert train_main(["tests/data/tiny_reinforce.toml", "--seeds", "0-1", "--runs-dir", str(tmp_path),
                       "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 seeds one after another: agent 'reinforce' has no batched multi-seed path (ppo has)" in out
    runs = sorted(p.name.split("-")[1] for p in tmp_path.iterdir())
    assert runs == ["s0", "s1"] and all((p / "eval.json").exists() for p in tmp_path.iterdir())
