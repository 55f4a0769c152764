"""bench_dqn: ours and SB3 alternate seed by seed, SB3 gets the config's settings, verdicts are computed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_dqn  # noqa: E402

from rl.experiment import load_toml  # noqa: E402


def test_sb3_settings_are_read_from_the_zoo_config():
    agent = load_toml(bench_dqn.ROOT / "configs" / "cartpole_dqn.toml")["agent"]
    assert [k for k in bench_dqn.SB3_KEYS if k not in agent] == []


def test_runs_interleave_and_verdicts_follow_the_numbers(monkeypatch, capsys):
    calls = []

    def ours(seeds, episodes, config="cartpole_dqn"):
        calls.append((config, seeds[0]))
        ret = 500.0 if config == "cartpole_dqn" or seeds[0] == 0 else 100.0  # fast config: seed 1 fails
        return [{"seed": seeds[0], "train_s": 10.0 if config == "cartpole_dqn" else 1.0, "returns": [ret],
                 "updates": 5}]

    def sb3(python, seeds, episodes):
        calls.append(("sb3", seeds[0]))
        return [{"seed": seeds[0], "train_s": 20.0, "returns": [500.0], "sb3": "x", "torch": "y"}], None

    monkeypatch.setattr(bench_dqn, "bench_cartpole", ours)
    monkeypatch.setattr(bench_dqn, "bench_sb3", sb3)
    monkeypatch.setattr(bench_dqn, "bench_qtable", lambda seeds, episodes: [
        {"seed": 0, "train_s": 1.0, "frames": 3_200_000, "crash_free": 85, "episodes": 100, "rate": 0.85}])
    monkeypatch.setattr(bench_dqn, "matmul_floor_s", lambda updates: 0.1)
    bench_dqn.main(["--seeds", "0", "1", "--sb3-seeds", "0", "1", "--skip-snake", "--no-write"])
    assert calls == [("cartpole_dqn", 0), ("cartpole_dqn_fast", 0), ("sb3", 0),
                     ("cartpole_dqn", 1), ("cartpole_dqn_fast", 1), ("sb3", 1)]
    out = capsys.readouterr().out
    assert "2 of 2 seeds evaluate >= 475; target 4 of 5 (80%): met" in out
    # 1 s / 20 s = 0.05 is under the 0.20 bar, but half the fast seeds failed: no "time to solve"
    assert "**0.05**, target missed (the fast config solved < 80% of its seeds)" in out
    assert "except the loss: mse here, SB3's Huber" in out
    assert "on every seed: missed." in out  # the Q-table's 85% is under 90%
    assert "### MetaCar level0, tabular Q-learning (3.2 M frames)" in out
    assert "Command: `python benchmarks/bench_dqn.py --seeds 0 1 --sb3-seeds 0 1 --skip-snake --no-write`" in out
