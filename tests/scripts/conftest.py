"""Fixtures shared by the script tests."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A run directory of PPO trained 512 steps on CartPole (seconds): what the scripts that load runs need."""
    runs = tmp_path_factory.mktemp("runs")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "configs/cartpole_ppo.toml",
         "--set", "experiment.total_steps=512", "--set", "experiment.eval_episodes=1", "--runs-dir", str(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (run,) = runs.iterdir()
    return run


@pytest.fixture(scope="session")
def metacar_sde_run(tmp_path_factory):
    """A run directory of metacar_level3_ppo (Box actions, gSDE: a 2-D log std; the two-picture observation)
    trained 256 steps: what exporting a Gaussian policy needs."""
    runs = tmp_path_factory.mktemp("runs")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "configs/metacar_level3_ppo.toml", "--no-progress",
         "--set", "experiment.total_steps=256", "--set", "experiment.eval_episodes=1",
         "--set", "experiment.checkpoint_every_steps=256", "--set", "agent.num_envs=2", "--set", "agent.num_steps=64",
         "--set", "agent.batch_size=64", "--runs-dir", str(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (run,) = runs.iterdir()
    return run
