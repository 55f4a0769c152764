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
