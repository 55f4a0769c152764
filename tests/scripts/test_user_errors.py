"""User mistakes on the command line end in one clear line and a non-zero exit, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"OPENBLAS_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(
    "override, message",
    [
        ("env.variant=foo", "unknown cart-pole variant 'foo'"),
        ("env.max_steps=0", "max_steps must be a positive int"),
        ("experiment.eval_episodes=0", "eval_episodes must be at least 1"),
        ("experiment.checkpoint_every_steps=-1", "checkpoint_every_steps must be at least 1"),
    ],
)
def test_bad_values_in_a_config(tmp_path, override, message):
    out = _run("scripts/train.py", "configs/cartpole_ppo.toml", "--set", override, "--runs-dir", str(tmp_path),
               tmp_path=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "cartpole_ppo.toml" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_board_too_small_for_the_network(tmp_path):
    out = _run("scripts/train.py", "configs/snake_dqn.toml", "--set", "env.height=2", "--runs-dir", str(tmp_path),
               tmp_path=tmp_path)
    assert out.returncode == 2 and "too small for 3 valid 3x3 convolutions" in out.stderr
    assert "Traceback" not in out.stderr


def test_evaluate_needs_at_least_one_episode(tmp_path):
    out = _run("scripts/evaluate.py", str(tmp_path), "--episodes", "0", tmp_path=tmp_path)
    assert out.returncode == 2 and "must be at least 1" in out.stderr and "Traceback" not in out.stderr
