"""``python -m rl info`` runs and reports the backend, the GPU verdict and the library versions."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rl import __main__ as cli

ROOT = Path(__file__).resolve().parents[2]


def test_info_lines_name_backend_and_versions():
    lines = cli.info_lines()
    text = "\n".join(lines)
    assert lines[0].startswith("backend: numpy (cpu)") or lines[0].startswith("backend: cupy (gpu)")
    assert f"numpy: {np.__version__}" in lines
    assert any(line.startswith("gpu: ") and " - " in line for line in lines)  # the verdict and its reason
    for name in ("cupy", "gymnasium", "pygame", "safetensors", "python", "OMP_NUM_THREADS"):
        assert f"\n{name}: " in "\n" + text


def test_python_dash_m_rl_info_runs():
    done = subprocess.run([sys.executable, "-m", "rl", "info"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "RL_DEVICE": "cpu"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backend: numpy (cpu)")


def test_unknown_command_fails():
    done = subprocess.run([sys.executable, "-m", "rl", "frobnicate"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 2 and "invalid choice" in done.stderr
