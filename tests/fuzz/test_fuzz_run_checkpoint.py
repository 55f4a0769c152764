"""Fuzz what a run checkpoint may hold, through ``agents.runner.load_agent`` (what evaluate.py, play.py,
record.py and export_tfjs.py call). tests/rl/test_checkpoint_fuzz.py damages the bytes, which the CRCs
catch; here the damage is to the content of a well-formed file (re-saved with save_checkpoint, so every
check of the file layer passes): arrays with another shape or dtype, keys dropped, renamed or added,
scalars replaced by hostile values. Each case must load an agent that then plays a short episode, or
raise CheckpointError, within fuzzlib's time and memory caps."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.runner import evaluate, load_agent, load_checkpoint, save_checkpoint
from rl.errors import CheckpointError
from tests.fuzz import fuzzlib

ROOT = Path(__file__).resolve().parents[2]
RUNS = {  # config, the few env steps that make a checkpoint
    "ppo": ("configs/cartpole_ppo.toml", 512),
    "dqn": ("configs/cartpole_dqn_fast.toml", 600),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run directories of a few hundred steps per agent (seconds each)."""
    runs = {}
    for agent, (config, steps) in RUNS.items():
        root = tmp_path_factory.mktemp(f"runs_{agent}")
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "train.py"), config, "--set", f"experiment.total_steps={steps}",
             "--set", "experiment.eval_episodes=1", "--runs-dir", str(root)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert out.returncode == 0, out.stderr
        (runs[agent],) = root.iterdir()
    return runs


def _leaves(tree: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in tree.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _leaves(value, (*prefix, key))
    return out


def _changed_array(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    choice = int(rng.integers(6))
    if choice == 0 and a.ndim >= 2:
        return np.ascontiguousarray(a.T)
    if choice == 1:
        return a[..., None] if rng.random() < 0.5 else a.reshape(-1)
    if choice == 2:
        return a.astype([np.float64, np.float16, np.int32, np.int64, np.bool_, np.uint8][int(rng.integers(6))])
    if choice == 3:
        return a.reshape(-1)[: int(rng.integers(max(a.size, 1)))]
    if choice == 4:
        return np.zeros((0,) + a.shape[1:], a.dtype)
    return np.full(a.shape, [1e30, -1e30, 0.0, 2**31][int(rng.integers(4))]).astype(a.dtype)


def _mutated_state(state: dict, rng: np.random.Generator) -> dict:
    for _ in range(int(rng.integers(1, 3))):
        path = _leaves(state)[int(rng.integers(len(_leaves(state))))]
        parent = state
        for part in path[:-1]:
            parent = parent[part]
        key, value = path[-1], parent[path[-1]]
        choice = int(rng.integers(5))
        if choice == 0:
            del parent[key]
        elif choice == 1:
            parent[f"{key}_x"] = parent.pop(key)
        elif choice == 2 and isinstance(value, np.ndarray):
            parent[key] = _changed_array(value, rng)
        elif choice == 3:
            values = [v for v in fuzzlib.hostile_json_values(rng) if v is not fuzzlib.DEEP] + [np.zeros(3)]
            parent[key] = values[int(rng.integers(len(values)))]
        else:
            parent[f"extra_{int(rng.integers(100))}"] = np.ones(2, np.float32) if rng.random() < 0.5 else 7
    return state


@pytest.mark.parametrize("agent", sorted(RUNS))
def test_checkpoint_with_changed_content_loads_and_plays_or_raises(trained, tmp_path, agent):
    run = tmp_path / "run"
    shutil.copytree(trained[agent], run)
    best = run / "checkpoints" / "best.safetensors"
    original = best.read_bytes()

    def write(rng):
        best.write_bytes(original)
        save_checkpoint(best, _mutated_state(load_checkpoint(best), rng))
        return run

    def load(r):
        loaded = load_agent(r)
        with np.errstate(all="ignore"), fuzzlib.after_load("playing an episode"):
            evaluate(loaded, episodes=1, max_steps=50)

    fuzzlib.check(fuzzlib.run(f"run checkpoint {agent}", write, load, CheckpointError))
