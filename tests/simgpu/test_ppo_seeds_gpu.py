"""Stacked PPO seeds (train.py --seeds) on the GPU path: trains, checkpoints, reloads and evaluates with
``device = "gpu"``. Skipped unless CuPy is usable (the simulated one in ``make test-simgpu``, or a real GPU)."""

import json
import math

import pytest

from agents.runner import load_agent, single_blas_thread
from playgrad.training import train_seeds
from rl import backend

GPU, WHY = backend.gpu_status()
pytestmark = pytest.mark.skipif(not GPU, reason=f"no usable CuPy: {WHY}")


@pytest.fixture(autouse=True)
def _gpu_then_back():
    previous = backend.current().device
    with single_blas_thread():
        yield
    backend.use_device(previous)


def test_stacked_seeds_train_checkpoint_and_reload_on_the_gpu(tmp_path):
    overrides = ["experiment.total_steps=512", "experiment.eval_episodes=1", "experiment.checkpoint_every_steps=256",
                 "agent.num_envs=4", "agent.num_steps=64", "agent.batch_size=64"]
    runs = train_seeds("configs/cartpole_ppo_fast.toml", overrides, [0, 1], device="gpu", runs_dir=str(tmp_path),
                       progress=False)
    for run in runs:
        assert json.loads((run / "info.json").read_text())["device"] == "gpu"
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in records if "iteration" in r] == [1, 2]
        assert all(math.isfinite(r["value_loss"]) for r in records if "value_loss" in r)
        agent = load_agent(run, tag="latest", device="cpu")  # a GPU run evaluates anywhere
        assert agent.iteration == 2
