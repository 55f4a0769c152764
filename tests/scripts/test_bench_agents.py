"""bench_agents: SB3 gets the Zoo config's own settings, and the prose is derived from the configs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_agents  # noqa: E402


def test_sb3_settings_come_from_the_zoo_config():
    cfg = bench_agents.ppo_config("cartpole_ppo")
    missing = [k for k in bench_agents.SB3_KEYS if k not in cfg]
    assert missing == []  # every setting the peer takes is read from configs/cartpole_ppo.toml
    assert cfg["total_steps"] == 100_000


def test_settings_text_counts_the_updates_of_the_budget():
    cfg = {"num_envs": 8, "num_steps": 32, "batch_size": 256, "num_epochs": 20, "gamma": 0.98, "gae_lambda": 0.8,
           "lr": 1e-3, "anneal_lr": True, "clip_coef": 0.2, "anneal_clip": False, "activation": "tanh",
           "hidden": [64, 64], "total_steps": 100_000}
    text = bench_agents.ppo_settings_text(cfg)
    # ceil(100,000 / 256) = 391 rollouts x 20 epochs x 1 minibatch
    assert "(7,820 minibatch updates)" in text and "linear lr 0.001" in text and ", clip 0.2" in text
    cfg.update(num_envs=32, num_epochs=5)  # 98 rollouts of 1,024 x 5 epochs x 4 minibatches
    assert "(1,960 minibatch updates)" in bench_agents.ppo_settings_text(cfg)


def test_verdicts_are_computed_from_the_runs(monkeypatch, capsys):
    evals = {"cartpole_ppo": 500.0, "cartpole_ppo_fast": 300.0}  # the fast config fails its seed
    monkeypatch.setattr(bench_agents, "bench_ours_ppo", lambda s, c="cartpole_ppo": {
        "seed": s, "wall_s": 1.0, "eval_mean": evals[c]})
    monkeypatch.setattr(bench_agents, "bench_sb3", lambda python, s, cfg: {
        "seed": s, "wall_s": 100.0, "eval_mean": 500.0, "sb3": "x", "torch": "y"})
    monkeypatch.setattr(bench_agents, "bench_ours_reinforce", lambda s: {
        "seed": s, "wall_s": 0.5, "at_20": 400.0 if s else 460.0, "best_by_20": 500.0})
    assert bench_agents.main(["--seeds", "2", "--sb3-seeds", "1", "--sb3-python", "py", "--no-write"]) == 0
    out = capsys.readouterr().out
    # 1 s / 100 s is under the 0.1 bar, but an unsolved seed is no "time to solve"
    assert "**0.010**, target missed (2 fast-config seed(s) below 475)" in out
    assert "fast config 0/2 (target missed)" in out
    assert "**1/2**" in out and "(80%): missed." in out
