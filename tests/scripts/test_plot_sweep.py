"""scripts/plot.py draws a PNG; scripts/sweep.py runs seeds in parallel and summarizes them."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text("""
[experiment]
name = "tiny"
agent = "reinforce"
eval_episodes = 2
device = "cpu"

[env]
variant = "book"

[agent]
iterations = 2
games_per_iteration = 3
""")
    return path


def test_sweep_runs_two_seeds_then_plot_draws_their_band(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/sweep.py", str(tiny_config(tmp_path)), "--seeds", "0-1",
                           "--workers", "2", "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("(config)"))
    assert row.split()[1:2] == ["2"] and row.split()[-1] == "0"  # one grid point, two seeds, none failed
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert sorted(r["seed"] for r in summary) == [0, 1]
    assert all(r["returncode"] == 0 and "mean_return" in r for r in summary)

    out = tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, "scripts/plot.py", *(r["run_dir"] for r in summary), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_refuses_a_directory_that_is_not_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/plot.py", str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "not a run directory" in proc.stderr
