"""scripts/tune.py: Optuna search spaces, a real small study with pruning, resuming it, the best config, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from playgrad.tuning import SpaceError, parse_space

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("optuna", reason="tune.py needs Optuna: pip install 'playgrad[tune]' (make test installs it)")


def tune(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "tune.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def test_space_forms_become_optuna_distributions():
    dims = parse_space(["agent.lr=loguniform(1e-4,3e-3)", "agent.num_epochs=int(3, 20)", "agent.gamma=uniform(0.9,1)",
                        "agent.batch=logint(16,256)", 'env.variant=categorical("gym", book)'])
    assert [(d.key, d.kind) for d in dims] == [("agent.lr", "loguniform"), ("agent.num_epochs", "int"),
                                               ("agent.gamma", "uniform"), ("agent.batch", "logint"),
                                               ("env.variant", "categorical")]
    lr = dims[0].distribution()
    assert (lr.low, lr.high, lr.log) == (1e-4, 3e-3, True)
    assert dims[4].distribution().choices == ("gym", "book")


@pytest.mark.parametrize("spec, message", [
    ("agent.lr", "must look like table.key=form(...)"),
    ("lr=loguniform(1e-4,1e-3)", "name the table too"),
    ("agent.lr=loguniform(0,1e-3)", "a log scale needs low > 0"),
    ("agent.lr=uniform(3,1)", "finite low < high"),
    ("agent.lr=uniform(1,inf)", "finite low < high"),
    ("agent.n=int(1.5,4)", "bounds must be integers"),
    ("agent.n=int(1)", "takes two numbers"),
    ("agent.x=categorical(1)", "at least two values"),
    ("agent.x=normal(0,1)", "unknown form 'normal'"),
])
def test_malformed_spaces_are_named(spec, message):
    with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_space([spec])


@pytest.mark.parametrize("args, message", [
    (["configs/cartpole_ppo_fast.toml", "--space", "agent.lr=loguniform(1e-4"], "must look like table.key=form"),
    (["configs/cartpole_ppo_fast.toml", "--space", "agent.lrr=loguniform(1e-4,1e-3)"], "lrr"),
    (["configs/cartpole_ppo_fast.toml"], "give at least one --space"),
    (["nope.toml", "--space", "agent.lr=uniform(0,1)"], "config file not found"),
    (["configs/cartpole_ppo_fast.toml", "--space", "agent.lr=uniform(1e-4,1e-3)", "--ray", "127.0.0.1:1"],
     "no Ray cluster answers there"),
])
def test_bad_input_is_one_clear_line_before_any_trial(args, message, tmp_path):
    proc = tune(*args, "--runs-dir", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "Traceback" not in proc.stderr and "no trial was started" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_small_study_prunes_resumes_and_writes_a_best_config_train_accepts(tmp_path):
    # lr=1e-9 cannot learn; the median pruner may judge a trial from its fourth report (16k of 40k steps), which
    # leaves the watcher, polling the metrics every 0.2 s, the rest of the run to stop it.
    args = ["configs/cartpole_ppo_fast.toml", "--space", "agent.lr=categorical(1e-9,3e-3)", "--trials", "4",
            "--workers", "1", "--startup-trials", "1", "--report-every", "4000", "--set",
            "experiment.total_steps=40000", "--set", "experiment.eval_episodes=3", "--runs-dir", str(tmp_path / "runs")]
    proc = tune(*args)
    assert proc.returncode == 0, proc.stderr
    (study,) = (tmp_path / "runs").iterdir()
    trials = json.loads((study / "trials.json").read_text())
    assert len(trials) == 4
    states = {t["number"]: t["state"] for t in trials}
    assert "COMPLETE" in states.values() and "PRUNED" in states.values(), states
    assert all(t["params"]["agent.lr"] == 1e-9 for t in trials if t["state"] == "PRUNED")
    assert len(list((study / "trials").glob("trial*/*/config.toml"))) == 4  # pruned runs are kept too
    best = tomllib.loads((study / "best.toml").read_text())
    assert best["agent"]["lr"] == 3e-3 and best["experiment"]["total_steps"] == 40000
    assert (study / "history.png").stat().st_size > 5000

    again = tune("--resume", str(study), "--trials", "5", "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert len(json.loads((study / "trials.json").read_text())) == 5  # exactly one more trial

    train = subprocess.run([sys.executable, "scripts/train.py", str(study / "best.toml"), "--set",
                            "experiment.total_steps=256", "--set", "experiment.eval_episodes=1", "--runs-dir",
                            str(tmp_path / "from_best")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert train.returncode == 0, train.stderr
