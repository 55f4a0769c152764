"""rl._fused's compiled kernels load from numba's on-disk cache: a second process compiles nothing.

A kernel whose cache key changes from process to process (numba hashes a kernel's closure, and a closure
holding another kernel's dispatcher hashes differently in every process) is compiled again on every run:
half a second per kernel and process, silently. This runs PPO alone and as stacked seeds (the agents',
the stack's and CartPole's kernels) twice in fresh processes with an empty cache folder, and checks that
the second saved nothing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from playgrad.training import train, train_seeds
overrides = ["experiment.total_steps=1024", "agent.num_envs=8", "agent.num_steps=64", "agent.batch_size=128"]
train("configs/cartpole_ppo_fast.toml", overrides, seed=0, runs_dir=RUNS + "/one", progress=False)
train_seeds("configs/cartpole_ppo_fast.toml", overrides, [0, 1], runs_dir=RUNS + "/two", progress=False)
"""


def test_a_second_process_loads_every_kernel_from_the_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_DEBUG_CACHE": "1",
           "OPENBLAS_NUM_THREADS": "1", "PLAYGRAD_FUSED": "1"}
    outputs = []
    for attempt in range(2):
        code = f"RUNS = {str(tmp_path / f'runs{attempt}')!r}\n" + SCRIPT
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(done.stdout + done.stderr)
    assert "data saved" in outputs[0]  # the first process compiled into the empty cache
    saved = [line for line in outputs[1].splitlines() if "data saved" in line]
    assert not saved, "compiled again in a second process:\n" + "\n".join(saved)
    assert "data loaded" in outputs[1]
