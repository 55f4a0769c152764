"""PPO seeds stacked in one process (agents/ppo_seeds.py, train.py --seeds): each seed against its single-seed
run, its run directory as a normal run's, and Ctrl-C + --resume of the stack."""

import json

import numpy as np
import pytest

import agents.runner as runner_module
from agents.ppo_seeds import PPOSeeds
from agents.runner import Runner, load_agent, load_checkpoint, make_agent, single_blas_thread, strip_wall_clock
from playgrad.training import train, train_seeds
from rl.experiment import RunDir, apply_overrides, load_toml


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with single_blas_thread():
        yield


class Hooks:
    def __init__(self):
        self.records = []
        self.stop_requested = False

    def log(self, record):
        self.records.append(dict(record))

    def checkpoint_due(self, env_steps):
        return False

    def save(self, agent, tag="latest"):
        pass


FAST = "configs/cartpole_ppo_fast.toml"


def _agent(seed, total_steps):
    return make_agent(apply_overrides(load_toml(FAST), [f"experiment.seed={seed}",
                                                        f"experiment.total_steps={total_steps}"]))


def test_each_stacked_seed_follows_its_single_seed_run():
    # 3 iterations of 1,024 steps. The first rollout comes before any update: bit-identical episodes. The updates
    # differ from the single-seed runs at float32 rounding only (minibatch padding, see agents/ppo_seeds.py).
    seeds, steps = [0, 1, 2], 3 * 1024
    stacked_hooks = [Hooks() for _ in seeds]
    PPOSeeds([_agent(s, steps) for s in seeds]).learn(steps, stacked_hooks)
    for seed, stacked in zip(seeds, stacked_hooks):
        alone = Hooks()
        _agent(seed, steps).learn(steps, alone)
        first = [r for r in alone.records if r["env_steps"] <= 1024 and "episode_return" in r]
        assert len(first) > 20
        assert [r for r in stacked.records if r["env_steps"] <= 1024 and "episode_return" in r] == first
        updates = [r for r in stacked.records if "iteration" in r]
        want = [r for r in alone.records if "iteration" in r]
        assert [r["iteration"] for r in updates] == [1, 2, 3] == [r["iteration"] for r in want]
        for got, ref in zip(updates, want):
            for key, value in ref.items():
                # relative, or absolute for the near-zero policy loss (a mean of terms that cancel)
                assert abs(got[key] - value) <= 1e-5 * abs(value) + 1e-6, (seed, ref["iteration"], key, got[key], value)


def test_stacked_runs_are_single_seed_run_directories(tmp_path):
    overrides = ["experiment.total_steps=2048", "agent.num_envs=4", "agent.num_steps=128", "agent.batch_size=128"]
    runs = train_seeds(FAST, overrides, [3, 5], runs_dir=str(tmp_path), progress=False)
    single = train(FAST, overrides, seed=3, runs_dir=str(tmp_path / "single"), progress=False)
    assert [RunDir.open(r).read_config()["experiment"]["seed"] for r in runs] == [3, 5]
    assert RunDir.open(runs[0]).read_config() == RunDir.open(single).read_config()
    want = load_checkpoint(single / "checkpoints" / "latest.safetensors")
    for run in runs:
        assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in single.iterdir())
        got = load_checkpoint(run / "checkpoints" / "latest.safetensors")
        assert _layout(got) == _layout(want)  # the same keys, shapes and dtypes as a single-seed checkpoint
        agent = load_agent(run, tag="latest")  # what evaluate and play load
        assert agent.iteration == 4 and agent.env_steps == 2048
        assert agent.act(np.zeros((2, 4), dtype=np.float32)).shape == (2,)


def _layout(state, prefix=""):
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_layout(value, f"{prefix}{key}."))
        elif isinstance(value, np.ndarray):
            out[prefix + key] = (value.shape, value.dtype.str)
        else:
            out[prefix + key] = type(value).__name__
    return out


def test_ctrl_c_then_resume_continues_every_seed_exactly(tmp_path, monkeypatch):
    overrides = ["experiment.total_steps=3072", "experiment.checkpoint_every_steps=1024", "agent.num_envs=8",
                 "agent.num_steps=64", "agent.batch_size=128"]
    full = train_seeds(FAST, overrides, [0, 1, 2], runs_dir=str(tmp_path / "full"), progress=False)
    original = Runner.log

    def log(self, record):
        original(self, record)
        if record.get("iteration") == 3 and "episode_return" not in record:
            self.request_stop()  # Ctrl-C, as a runner sees it (the first seed's runner holds the handler)

    with monkeypatch.context() as m:
        m.setattr(runner_module.Runner, "log", log)
        cut = train_seeds(FAST, overrides, [0, 1, 2], runs_dir=str(tmp_path / "cut"), progress=False)
    assert not any((run / "eval.json").exists() for run in cut)
    train_seeds(None, [], resume=[str(run) for run in cut], progress=False)
    before = [(run / "eval.json").read_text() for run in cut]
    assert train_seeds(None, [], resume=[str(run) for run in cut], progress=False) == cut  # finished: nothing to do
    assert [(run / "eval.json").read_text() for run in cut] == before
    for a, b in zip(full, cut):
        assert strip_wall_clock(RunDir(b).read_metrics()) == strip_wall_clock(RunDir(a).read_metrics())
        assert json.loads((b / "eval.json").read_text())["returns"] == json.loads((a / "eval.json").read_text())[
            "returns"]
