"""scripts/sweep.py on a real two-node Ray cluster (both nodes on this machine, on loopback).

Each job trains in a scratch folder of whichever node runs it; the test checks that every run directory
comes home (or reaches --storage), that both nodes did work, that a failing grid point is retried and kept
marked as failed, that --resume runs only what did not finish, and that bad addresses and storage are one
line before any job starts. The local-process path is tested the same way without Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = (ROOT / "tests" / "data" / "tiny_reinforce.toml").read_text()
# lr=1e38 overflows the policy in its first update: a NaN loss, exit code 1, partial run directory left.
FAILING_POINT = "agent.lr=1e38"
# Ray binds its head to this machine's own address unless told it cannot form a multi-machine cluster; the
# tests keep every socket on loopback.
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def sweep(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **LOOPBACK_RAY, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep.py"), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def ray_cluster():
    ray_utils = pytest.importorskip("ray.cluster_utils", reason="the Ray sweep tests need Ray: pip install "
                                                                "'playgrad[ray]' (make test installs it)")
    saved = {k: os.environ.get(k) for k in LOOPBACK_RAY}
    os.environ.update(LOOPBACK_RAY)
    cluster = ray_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_on_two_ray_nodes_brings_every_run_home_and_retries_failures(ray_cluster, config, tmp_path):
    runs = tmp_path / "runs"
    proc = sweep(str(config), "--seeds", "0-1", "--grid", f"agent.lr=1e-2,{FAILING_POINT.split('=')[1]}",
                 "--ray", ray_cluster.address, "--runs-dir", str(runs), "--retries", "1")
    assert proc.returncode == 1, proc.stderr  # the failing grid point fails both of its attempts
    (sweep_dir,) = runs.iterdir()
    attempts = lines(sweep_dir / "jobs.jsonl")
    good = [a for a in attempts if a["point"].endswith("lr=1e-2")]
    bad = [a for a in attempts if a["point"].endswith("lr=1e38")]
    assert sorted(a["seed"] for a in good) == [0, 1] and all(a["status"] == "finished" for a in good)
    assert sorted((a["seed"], a["attempt"]) for a in bad) == [(0, 1), (0, 2), (1, 1), (1, 2)]  # retried once
    assert all(a["status"] == "failed" and "nan" in a["error"] for a in bad)
    assert len({a["node"] for a in attempts}) == 2, "both Ray nodes should have trained jobs"
    for a in attempts:  # every attempt's run directory came home, marked with what it is
        run = Path(a["location"])
        assert run.parent.parent == sweep_dir and (run / "config.toml").exists()
        assert json.loads((run / "job.json").read_text())["status"] == a["status"]
        assert (run / "eval.json").exists() == (a["status"] == "finished")
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [(r["seed"], r["status"]) for r in summary] == [(0, "finished"), (1, "finished"), (0, "failed"),
                                                          (1, "failed")]
    assert "1e38" in proc.stdout and "did not finish" in proc.stderr and "--resume" in proc.stderr

    # --resume runs only the two unfinished jobs (still failing: they keep their lr), retrying them again.
    again = sweep("--resume", str(sweep_dir), "--ray", ray_cluster.address, "--runs-dir", str(runs))
    assert again.returncode == 1
    assert "2 jobs (2 already finished)" in again.stdout
    rerun = lines(sweep_dir / "jobs.jsonl")[len(attempts):]
    assert sorted(a["seed"] for a in rerun) == [0, 0, 1, 1] and all(a["point"].endswith("lr=1e38") for a in rerun)


@pytest.mark.slow
@pytest.mark.ray
def test_storage_receives_the_runs_instead_of_the_head(ray_cluster, config, tmp_path):
    storage = tmp_path / "shared"
    proc = sweep(str(config), "--seeds", "0-1", "--ray", ray_cluster.address, "--runs-dir", str(tmp_path / "runs"),
                 "--storage", str(storage))
    assert proc.returncode == 0, proc.stderr
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    delivered = sorted(storage.glob(f"{sweep_dir.name}/config/*/eval.json"))
    assert len(delivered) == 2
    assert not list(sweep_dir.glob("config/*"))  # nothing duplicated on the head: only the sweep's records
    assert {r["location"] for r in lines(sweep_dir / "jobs.jsonl")} == {str(p.parent) for p in delivered}


def test_local_processes_deliver_and_resume_the_same_way(config, tmp_path):
    runs = tmp_path / "runs"
    proc = sweep(str(config), "--seeds", "0", "--grid", f"agent.lr=1e-2,{FAILING_POINT.split('=')[1]}",
                 "--runs-dir", str(runs), "--retries", "0")
    assert proc.returncode == 1
    (sweep_dir,) = runs.iterdir()
    assert [a["status"] for a in lines(sweep_dir / "jobs.jsonl")].count("failed") == 1
    again = sweep("--resume", str(sweep_dir), "--runs-dir", str(runs), "--retries", "0")
    assert "1 jobs (1 already finished)" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["--ray", "127.0.0.1:1"], "no Ray cluster answers there"),
    (["--storage", "/proc/forbidden"], "cannot be written"),
    (["--storage", "nosuchproto://x/y"], "--storage nosuchproto://x/y"),
    (["--retries", "-1"], "--retries must be >= 0"),
])
def test_bad_cluster_or_storage_is_one_line_before_any_job(config, tmp_path, args, message):
    if args[0] == "--ray":
        pytest.importorskip("ray", reason="needs Ray: pip install 'playgrad[ray]'")
    proc = sweep(str(config), "--seeds", "0", "--runs-dir", str(tmp_path / "runs"), *args, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr and "no job was started" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_that_is_not_a_sweep_says_so(tmp_path):
    proc = sweep("--resume", str(tmp_path))
    assert proc.returncode == 2 and "no sweep.json there" in proc.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_tune_on_the_cluster_keeps_the_study_here_and_brings_trials_home(ray_cluster, tmp_path):
    pytest.importorskip("optuna", reason="tune.py needs Optuna: pip install 'playgrad[tune]'")
    env = {**os.environ, **LOOPBACK_RAY, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tune.py"), "configs/cartpole_ppo_fast.toml", "--space",
         "agent.lr=loguniform(3e-4,3e-3)", "--trials", "4", "--workers", "2", "--ray", ray_cluster.address,
         "--set", "experiment.total_steps=6000", "--set", "experiment.eval_episodes=2", "--runs-dir",
         str(tmp_path / "runs")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (study,) = (tmp_path / "runs").iterdir()
    assert (study / "study.db").exists() and (study / "best.toml").exists()
    trials = json.loads((study / "trials.json").read_text())
    assert len(trials) == 4 and all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    jobs = [json.loads(p.read_text()) for p in study.glob("trials/trial*/*/job.json")]
    assert len(jobs) == 4 and len({j["node"] for j in jobs}) == 2, "both Ray nodes should have run trials"
