"""scripts/plot.py draws a PNG; scripts/sweep.py runs seeds in parallel and summarizes them; scripts/main_job.py
plots the run it trained."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from playgrad import curves
from playgrad.cli import main_job, sweep
from playgrad.cli import plot as plot_command
from rl.experiment import RunDir

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(tmp_path):
    """A copy of tests/data/tiny_reinforce.toml in ``tmp_path`` (seconds of training)."""
    path = tmp_path / "tiny.toml"
    shutil.copy(ROOT / "tests" / "data" / "tiny_reinforce.toml", path)
    return path


def test_sweep_runs_two_seeds_then_plot_draws_their_band(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/sweep.py", str(tiny_config(tmp_path)), "--seeds", "0-1",
                           "--workers", "2", "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # A line per job as it ends (the sweep was silent until its table); then the table.
    progress = [line for line in lines if line.startswith("[")]
    assert [p[:6] for p in progress] == ["[1/2] ", "[2/2] "] and all(": mean return " in p for p in progress)
    assert lines.index(progress[-1]) < next(i for i, line in enumerate(lines) if line.startswith("grid point"))
    row = next(line for line in lines if line.startswith("(config)"))
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


def test_plot_window_must_be_positive(tmp_path, capsys):
    # --window 0 used to end in a traceback from np.convolve ("v cannot be empty").
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[experiment]\nname = "x"\n')
    (run / "metrics.jsonl").write_text("".join(json.dumps({"env_steps": 10 * i, "episode_return": float(i)}) + "\n"
                                               for i in range(1, 4)))
    with pytest.raises(SystemExit) as exc:
        plot_command.main([str(run), "--window", "0", "--out", str(tmp_path / "c.png")])
    assert exc.value.code == 2 and "--window: must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="window must be at least 1"):
        curves.plot([str(run)], tmp_path / "c.png", window=0)
    steps, smooth = curves.episode_curve(RunDir(run), window=2)
    assert steps.tolist() == [10, 20, 30] and smooth.tolist() == [1.0, 1.5, 2.5]


@pytest.mark.parametrize("text", ["4-0", ",", ""])
def test_sweep_refuses_seeds_that_name_no_seed(text):
    # "4-0" used to start zero jobs and report success.
    with pytest.raises(SystemExit, match="runs backwards|is not a seed"):
        sweep.parse_seeds(text)
    assert sweep.parse_seeds("0-2,5") == [0, 1, 2, 5]


def test_main_job_plots_the_run_it_trained(tmp_path, monkeypatch, capsys):
    # The run used to be found by the config's file name: with another experiment.name it picked an older run
    # (here one without a config, so plotting it failed) or none at all.
    config = tiny_config(tmp_path)
    monkeypatch.setattr(main_job, "CONFIG", config)
    monkeypatch.setattr(main_job, "ROOT", tmp_path)
    runs = tmp_path / "runs"
    stale = runs / f"{config.stem}-s0-20000101-000000"
    stale.mkdir(parents=True)
    assert main_job.main(["--runs-dir", str(runs), "--set", 'experiment.name="renamed"']) == 0
    (new,) = [p for p in runs.iterdir() if p != stale]
    assert new.name.startswith("renamed-s0-") and (new / "curve.png").stat().st_size > 5000
    out = capsys.readouterr().out
    assert f"--agent {new}" in out and f"scripts/dashboard.py {runs}" in out  # watch it, and see inside it


def test_sweep_refuses_zero_workers(capsys):
    with pytest.raises(SystemExit):
        sweep.main(["configs/cartpole_ppo.toml", "--seeds", "0", "--workers", "0"])
    assert "--workers: must be at least 1, got 0" in capsys.readouterr().err


def test_sweep_checks_every_jobs_config_once_before_starting_any(tmp_path, capsys, monkeypatch):
    # A typo in a --grid (or --set) key ran every job and printed the same error for each.
    started = []
    monkeypatch.setattr(sweep, "run_jobs", lambda *jobs, **kw: started.append(jobs))
    runs = tmp_path / "runs"
    argv = [str(tiny_config(tmp_path)), "--seeds", "0-2", "--runs-dir", str(runs), "--workers", "1"]
    assert sweep.main([*argv, "--grid", "agent.gamess_per_iteration=2,3"]) == 2
    err = capsys.readouterr().err
    assert err.count("unknown key 'gamess_per_iteration' (did you mean 'games_per_iteration'?)") == 1
    assert "[agent]" in err and "no job was started" in err and "grid point" not in err  # every point has it
    assert err.startswith("error: ") and "error: error" not in err  # the prefix once
    assert sweep.main([*argv, "--set", "envv.variant=gym"]) == 2
    assert capsys.readouterr().err.count("unknown table(s) ['envv']") == 1
    # Errors of some grid points only: one line each, each said to be an error once.
    assert sweep.main([*argv, "--grid", "agent.games_per_iteration=2,-1,x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and [line.count("error: ") for line in lines[:2]] == [1, 1], lines
    assert lines[-1] == "no job was started"
    # An error only some grid points have names them.
    assert sweep.main([*argv, "--grid", "agent.games_per_iteration=2,\"x\""]) == 2
    err = capsys.readouterr().err
    assert err.count("expects int") == 1 and "(grid point agent.games_per_iteration=\"x\")" in err
    assert started == [] and not runs.exists()


def test_sweep_without_ray_says_so_before_announcing_jobs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, installed or not
    assert sweep.main([str(tiny_config(tmp_path)), "--seeds", "0-1", "--runs-dir", str(tmp_path / "r"), "--ray"]) == 2
    out, err = capsys.readouterr()
    assert "--ray needs Ray" in err and "jobs ->" not in out


def test_plot_counts_seeds_and_says_when_runs_repeat_one():
    # Two runs of seed 0 and two of seed 1 were labelled "mean of 4 seeds".
    assert curves.seeds_label([0, 1, 2]) == "mean of 3 seeds (0, 1, 2)"
    assert curves.seeds_label([0, 0, 1, 1]) == "mean of 4 runs of 2 seeds (0, 1); runs repeat a seed"
    assert curves.seeds_label([3, 3]) == "mean of 2 runs of 1 seed (3); runs repeat a seed"


def test_the_legend_sits_below_the_axes(tmp_path):
    # It was drawn inside the axes ("lower right") and covered a sweep's curves.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "config.toml").write_text(f'[experiment]\nname = "x"\nseed = {seed}\n')
        (run / "metrics.jsonl").write_text("".join(json.dumps({"env_steps": 10 * i, "episode_return": float(i + seed)})
                                                   + "\n" for i in range(1, 30)))
        runs.append(str(run))
    captured = {}
    real_savefig = plt.Figure.savefig

    def savefig(fig, *args, **kwargs):
        fig.canvas.draw()
        ax = fig.axes[0]
        captured["legend"] = ax.get_legend().get_window_extent()
        captured["axes"] = ax.get_window_extent()
        captured["text"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return real_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = savefig
    try:
        curves.plot(runs, tmp_path / "c.png", window=2)
    finally:
        plt.Figure.savefig = real_savefig
    assert captured["legend"].y1 <= captured["axes"].y0  # wholly under the axes (display y grows upwards)
    assert captured["text"] == ["x, mean of 2 seeds (0, 1); band: min..max"]
