"""Helpers of the dashboard tests (a module with its own name: ``conftest`` is a name every test folder has)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/cartpole_ppo_fast.toml"
SHORT = ["--set", "experiment.total_steps=4000", "--set", "experiment.eval_episodes=2", "--no-progress"]


def train(runs_dir: Path, *args: str, seed: int = 0) -> Path:
    """Run scripts/train.py (a real, short CartPole PPO training) into ``runs_dir``; its run directory."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    before = set(runs_dir.iterdir())
    out = subprocess.run([sys.executable, "scripts/train.py", CONFIG, "--seed", str(seed), "--runs-dir", str(runs_dir),
                          *SHORT, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = set(runs_dir.iterdir()) - before
    return run
