"""rl/console.py: one number format for people, and train.py --no-progress's periodic table."""

import io

import pytest

from rl.console import ProgressTable, format_number


@pytest.mark.parametrize("value,text", [
    (250.0, "250"), (-1.2, "-1.2"), (96.25, "96.25"), (-10.8222, "-10.82"), (0.0003, "0.0003"),
    (-0.000123456, "-0.000123"), (0.0, "0"), (-0.001 / 1e9, "-1e-12"), (1.5e7, "1.5e+07"), (float("nan"), "nan"),
])
def test_format_number_one_way(value, text):
    assert format_number(value) == text


def test_format_number_columns_and_signs():
    assert format_number(0.7, 2) == "0.70" and format_number(-0.004, 2) == "0.00"  # no "-0.00"
    assert format_number(0.5, signed=True) == "+0.5" and format_number(-0.5, signed=True) == "-0.5"


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_table_prints_periodically_with_steps_episodes_returns_losses_and_speed():
    out, clock = io.StringIO(), FakeClock()
    table = ProgressTable(every_s=10, window=2, out=out, clock=clock)
    table.update({"env_steps": 100, "episode_return": 1.0})
    table.update({"env_steps": 200, "episode_return": 3.0})
    table.update({"env_steps": 300, "episode_return": 5.0})
    clock.t = 5.0
    table.update({"env_steps": 500, "policy_loss": 0.0123456, "sps": 99.0})
    assert out.getvalue() == ""  # not yet 10 s
    clock.t = 10.0
    table.update({"env_steps": 1000, "value_loss": 2.5})
    text = out.getvalue()
    rows = dict(line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("|"))
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows == {"env_steps": "1000", "episodes": "3", "mean_return": "4", "policy_loss": "0.01235",
                    "value_loss": "2.5", "sps": "100", "time_s": "10"}
    assert list(rows)[:3] == ["env_steps", "episodes", "mean_return"] and list(rows)[-2:] == ["sps", "time_s"]
    table.flush()  # nothing new since: no second table
    assert out.getvalue() == text
    clock.t = 12.0
    table.update({"env_steps": 1400})
    table.flush()  # the end of the run prints the last state
    assert out.getvalue().count("| env_steps") == 2 and "| sps         | 200" in out.getvalue()


def test_train_says_where_the_run_goes_and_prints_a_table_without_a_progress_bar(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "scripts/train.py", "configs/cartpole_ppo.toml", "--no-progress",
                          "--set", "experiment.total_steps=512", "--set", "experiment.eval_episodes=1",
                          "--set", "agent.lr=0.001", "--runs-dir", str(tmp_path)],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = tmp_path.iterdir()
    lines = out.stdout.splitlines()
    assert lines[0] == f"run directory: {run}"  # first, before training: where to look while it runs
    assert "agent.lr=0.001" in out.stdout and "experiment.eval_episodes=1" in out.stdout  # the settings given
    table = [line for line in lines if line.startswith("| ")]
    keys = [line.split("|")[1].strip() for line in table]
    assert keys[:3] == ["env_steps", "episodes", "mean_return"] and "sps" in keys and "value_loss" in keys
    assert "it/s" not in out.stderr and "step/s" not in out.stderr  # and no progress bar


def test_the_start_summary_shows_float_settings_exactly():
    # Rounded for display, gamma 0.995 read "agent.gamma=0.99": a different setting. Settings are shown as given.
    from types import SimpleNamespace

    from agents.ppo import Config as PPOConfig
    from playgrad.training import start_summary

    config = {"experiment": {"name": "x", "agent": "ppo", "env_id": "CartPole-v1", "seed": 0, "total_steps": 10},
              "agent": {"gamma": 0.995, "lr": 2.5e-4, "clip_coef": 0.2, "ent_coef": 1e-5}, "env": {"tau": 0.0125}}
    run = SimpleNamespace(path="runs/x", config_path="runs/x/config.toml")
    text = start_summary(run, config, SimpleNamespace(config=PPOConfig()))
    for shown in ("agent.gamma=0.995", "agent.lr=0.00025", "agent.ent_coef=1e-05", "env.tau=0.0125"):
        assert shown in text, (shown, text)
    assert "clip_coef" not in text  # PPO's default: not a change
