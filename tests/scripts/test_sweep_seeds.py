"""sweep.py runs a grid point's seeds as one batched train.py --seeds process where the agent can (PPO)."""

import json
from pathlib import Path

from playgrad.cli import sweep
from playgrad.sweeps import JobSpec, group_jobs

ROOT = Path(__file__).resolve().parents[2]
TINY_PPO = """
[experiment]
name = "tinyppo"
agent = "ppo"
total_steps = 512
eval_episodes = 2
device = "cpu"

[agent]
num_envs = 4
num_steps = 64
batch_size = 64
num_epochs = 1
"""


def test_the_seeds_of_a_grid_point_form_one_unit_where_the_agent_stacks_them():
    reinforce = (ROOT / "tests/data/tiny_reinforce.toml").read_text()
    specs = [JobSpec(TINY_PPO, "p.toml", seed, (f"agent.lr={lr}",), f"p{i}") for i, lr in enumerate([1e-3, 2e-3])
             for seed in (0, 1, 2)]
    specs += [JobSpec(reinforce, "r.toml", seed, (), "config") for seed in (0, 1)]
    specs += [JobSpec(TINY_PPO, "p.toml", 5, ("agent.target_kl=0.01",), "kl")]
    units = group_jobs(specs)
    assert [[s.key for s in u] for u in units] == [["p0/s0", "p0/s1", "p0/s2"], ["p1/s0", "p1/s1", "p1/s2"],
                                                   ["config/s0"], ["config/s1"], ["kl/s5"]]
    assert all(len(u) == 1 for u in group_jobs(specs, stack_seeds=False))


def test_a_stacked_sweep_delivers_one_run_per_seed(tmp_path, capsys):
    config = tmp_path / "tiny_ppo.toml"
    config.write_text(TINY_PPO)
    assert sweep.main([str(config), "--seeds", "0-1", "--runs-dir", str(tmp_path / "runs"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs on 1 local processes" in out
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    jobs = [json.loads(line) for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]
    assert sorted(j["seed"] for j in jobs) == [0, 1] and all(j["status"] == "finished" for j in jobs)
    assert jobs[0]["wall_s"] == jobs[1]["wall_s"]  # one process trained both
    runs = sorted((sweep_dir / "config").iterdir())
    assert [r.name.split("-")[1] for r in runs] == ["s0", "s1"]
    assert all((r / "eval.json").exists() and (r / "job.json").exists() for r in runs)


def test_with_more_workers_than_grid_points_the_seeds_split_into_stacks():
    # One grid point's 8 seeds on 2 workers: two stacks of 4 consecutive seeds; on 3 workers 3+3+2. With as many
    # grid points as workers (or more) nothing is split; a job that does not stack counts as a unit of its own.
    point = [JobSpec(TINY_PPO, "p.toml", seed, (), "config") for seed in range(8)]

    def shape(units):
        return [[s.seed for s in u] for u in units]

    assert shape(group_jobs(point, workers=1)) == [list(range(8))]
    assert shape(group_jobs(point, workers=2)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert shape(group_jobs(point, workers=3)) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert shape(group_jobs(point[:2], workers=4)) == [[0], [1]]
    two_points = point[:3] + [JobSpec(TINY_PPO, "p.toml", s, ("agent.lr=0.01",), "lr") for s in range(3)]
    assert shape(group_jobs(two_points, workers=2)) == [[0, 1, 2], [0, 1, 2]]
    assert shape(group_jobs(two_points, workers=4)) == [[0, 1], [2], [0, 1], [2]]
    single = [JobSpec(TINY_PPO, "p.toml", 9, ("agent.target_kl=0.01",), "kl")]
    assert shape(group_jobs(point[:4] + single, workers=3)) == [[0, 1], [2, 3], [9]]
    assert shape(group_jobs(point, stack_seeds=False, workers=2)) == [[s] for s in range(8)]


def test_seeds_split_over_workers_train_as_one_stack_would(tmp_path):
    # sweep.py --workers 2 trains seeds 0-3 as two train.py --seeds processes (0-1 and 2-3): each seed's metrics
    # and evaluation are those of train.py --seeds 0-3 in one process, bit for bit (agents/ppo_seeds.py).
    from agents.runner import strip_wall_clock
    from playgrad.training import train_seeds
    from rl.experiment import RunDir

    config = tmp_path / "tiny_ppo.toml"
    config.write_text(TINY_PPO.replace("total_steps = 512", "total_steps = 1024"))
    assert sweep.main([str(config), "--seeds", "0-3", "--runs-dir", str(tmp_path / "runs"), "--workers", "2"]) == 0
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    jobs = [json.loads(line) for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]
    assert len({j["wall_s"] for j in jobs}) == 2  # two processes, two seeds each
    split = {int(r.name.split("-")[1][1:]): r for r in (sweep_dir / "config").iterdir()}
    whole = train_seeds(str(config), [], [0, 1, 2, 3], runs_dir=str(tmp_path / "one"), progress=False)
    for seed, run in enumerate(whole):
        assert strip_wall_clock(RunDir(split[seed]).read_metrics()) == strip_wall_clock(RunDir(run).read_metrics())
        assert json.loads((split[seed] / "eval.json").read_text())["returns"] == \
            json.loads((run / "eval.json").read_text())["returns"]
