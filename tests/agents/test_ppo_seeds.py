"""PPO seeds stacked in one process (agents/ppo_seeds.py, train.py --seeds): each seed against its single-seed
run, its run directory as a normal run's, and Ctrl-C + --resume of the stack."""

import json

import numpy as np
import pytest

import agents.runner as runner_module
from agents.ppo_seeds import PPOSeeds
from agents.runner import Runner, load_agent, load_checkpoint, make_agent, single_blas_thread, strip_wall_clock
from playgrad.training import train, train_seeds
from rl.experiment import ConfigError, RunDir, apply_overrides, load_toml


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


@pytest.mark.parametrize("variant", [
    [],  # configs/cartpole_ppo_fast.toml as it is
    ["agent.clip_value_loss=true", "agent.ent_coef=0.01", "agent.normalize_advantages=false",
     "agent.activation='relu'", "agent.hidden=[32, 100]", "agent.batch_size=200"],
])
def test_each_stacked_seed_is_its_single_seed_run_bit_for_bit(variant):
    # Every record (episodes, losses, statistics) and the final weights and optimizer state of each stacked seed
    # are its single-seed run's: the rollouts are, and each seed's minibatch rows are computed as alone
    # (rl.stacked: rows=..., the seed losses). 6 iterations, so that seeds drop different autoreset rows
    # (different padding); the second variant takes the other loss terms, ReLU, odd widths and uneven batches.
    seeds, steps = [0, 1, 2], 6 * 1024
    agents = [make_agent(apply_overrides(load_toml(FAST), [f"experiment.seed={s}", f"experiment.total_steps={steps}",
                                                           *variant])) for s in seeds]
    stacked_hooks = [Hooks() for _ in seeds]
    stack = PPOSeeds(agents)
    stack.learn(steps, stacked_hooks)
    for seed, agent, stacked in zip(seeds, agents, stacked_hooks):
        alone, alone_hooks = make_agent(apply_overrides(load_toml(FAST), [
            f"experiment.seed={seed}", f"experiment.total_steps={steps}", *variant])), Hooks()
        alone.learn(steps, alone_hooks)
        assert sum("episode_return" in r for r in alone_hooks.records) > 40
        assert [r["iteration"] for r in stacked.records if "iteration" in r] == [1, 2, 3, 4, 5, 6]
        assert stacked.records == alone_hooks.records, seed
        for got, want in zip([*agent.policy.parameters(), *agent.value.parameters()],
                             [*alone.policy.parameters(), *alone.value.parameters()]):
            np.testing.assert_array_equal(got.data, want.data)
        for name, value in alone.optimizer.state_dict().items():
            np.testing.assert_array_equal(agent.optimizer.state_dict()[name], value, err_msg=name)


def test_a_seed_trains_the_same_in_any_stack():
    # The stack a seed shares does not change its numbers (agents/ppo_seeds.py): 4 seeds as one stack, as two
    # stacks of 2 and (seed 3) alone give every seed the same records and weights, bit for bit. 6 iterations,
    # so that the seeds' minibatches have dropped different numbers of autoreset rows (the padding differs).
    steps = 6 * 1024

    def trained(seeds):
        hooks = [Hooks() for _ in seeds]
        agents = [_agent(s, steps) for s in seeds]
        PPOSeeds(agents).learn(steps, hooks)
        return {s: (h.records, [p.data.copy() for p in [*a.policy.parameters(), *a.value.parameters()]])
                for s, h, a in zip(seeds, hooks, agents)}

    whole = trained([0, 1, 2, 3])
    for part in ([0, 1], [2, 3], [3]):
        for seed, (records, weights) in trained(part).items():
            assert records == whole[seed][0], (part, seed)
            assert all(np.array_equal(a, b) for a, b in zip(weights, whole[seed][1])), (part, seed)
    episodes = [sum("episode_return" in r for r in records) for records, _ in whole.values()]
    assert len(set(episodes)) > 1  # the seeds dropped different numbers of autoreset rows


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
    # and seed 3's run directory is its single-seed run's: metrics, evaluation and checkpoint, bit for bit
    assert strip_wall_clock(RunDir(runs[0]).read_metrics()) == strip_wall_clock(RunDir(single).read_metrics())
    assert json.loads((runs[0] / "eval.json").read_text()) == json.loads((single / "eval.json").read_text())
    got = _flat(load_checkpoint(runs[0] / "checkpoints" / "latest.safetensors"))
    for key, value in _flat(want).items():
        assert np.array_equal(got[key], value) if isinstance(value, np.ndarray) else got[key] == value, key
        agent = load_agent(run, tag="latest")  # what evaluate and play load
        assert agent.iteration == 4 and agent.env_steps == 2048
        assert agent.act(np.zeros((2, 4), dtype=np.float32)).shape == (2,)


def _flat(state, prefix=""):
    out = {}
    for key, value in state.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


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
    with pytest.raises(ConfigError, match="names .* twice"):  # one run directory for two seeds of one stack
        train_seeds(None, [], resume=[str(cut[0]), str(cut[1]), str(cut[0]) + "/"], progress=False)
    assert [(run / "eval.json").read_text() for run in cut] == before
    for a, b in zip(full, cut):
        assert strip_wall_clock(RunDir(b).read_metrics()) == strip_wall_clock(RunDir(a).read_metrics())
        assert json.loads((b / "eval.json").read_text())["returns"] == json.loads((a / "eval.json").read_text())[
            "returns"]


def test_runs_stopped_at_different_iterations_resume_together_exactly(tmp_path, monkeypatch, capsys):
    # Three single-seed runs stopped (Ctrl-C) at iterations 1, 3 and 3, and a fourth that finished, resumed with one
    # --resume: the finished one is skipped, the others continue as one stack per iteration, and each ends as its
    # uninterrupted run (a seed's run is the same in any stack).
    overrides = ["experiment.total_steps=4096", "experiment.checkpoint_every_steps=1024", "agent.num_envs=8",
                 "agent.num_steps=64", "agent.batch_size=128"]
    full = {s: train(FAST, overrides, seed=s, runs_dir=str(tmp_path / "full"), progress=False) for s in (0, 1, 2)}
    original = Runner.log
    cut = []
    for seed, stop_at in ((0, 1), (1, 3), (2, 3)):
        def log(self, record, stop_at=stop_at):
            original(self, record)
            if record.get("iteration") == stop_at and "episode_return" not in record:
                self.request_stop()

        with monkeypatch.context() as m:
            m.setattr(runner_module.Runner, "log", log)
            cut.append(train(FAST, overrides, seed=seed, runs_dir=str(tmp_path / "cut"), progress=False))
    done = train(FAST, overrides, seed=3, runs_dir=str(tmp_path / "cut"), progress=False)
    before = (done / "eval.json").read_text()
    assert not any((run / "eval.json").exists() for run in cut)
    capsys.readouterr()
    train_seeds(None, [], resume=[str(run) for run in [*cut, done]], progress=False)
    out = capsys.readouterr().out
    assert "1 of these runs already finished" in out and "2 different iterations (1, 3)" in out
    assert (done / "eval.json").read_text() == before
    for seed, run in zip((0, 1, 2), cut):
        assert strip_wall_clock(RunDir(run).read_metrics()) == strip_wall_clock(RunDir(full[seed]).read_metrics())
        assert json.loads((run / "eval.json").read_text()) == json.loads((full[seed] / "eval.json").read_text())


def test_resuming_several_runs_of_an_agent_without_a_stack_continues_them_one_by_one(tmp_path, capsys):
    # REINFORCE has no batched multi-seed path: --resume of several of its runs trains them one after another, as
    # --seeds does (it raised ValueError from PPOSeeds before)
    from pathlib import Path

    tiny = str(Path(__file__).resolve().parents[1] / "data" / "tiny_reinforce.toml")
    runs = train_seeds(tiny, [], [0, 1], runs_dir=str(tmp_path), progress=False)
    for run in runs:
        (run / "eval.json").unlink()  # as if stopped before the end
    capsys.readouterr()
    assert train_seeds(None, [], resume=[str(run) for run in runs], progress=False) == runs
    assert "2 runs one after another: agent 'reinforce' has no batched multi-seed path" in capsys.readouterr().out
    assert all((run / "eval.json").exists() for run in runs)


def test_merged_env_steps_each_seeds_worlds_as_its_own_env():
    # The K seeds' cart-pole envs as one env of K * N worlds (agents/ppo_seeds.py): every world steps, ends and
    # autoresets bit for bit as in its own seed's env, and splitting the merged snapshot gives each env's own.
    from agents.base import make_vec_env
    from agents.ppo_seeds import _world_axes, merge_env_states, split_env_state

    agents = [_agent(seed, 1024) for seed in (0, 1, 2)]
    for agent in agents:
        agent.start_envs()
    envs = [agent.envs for agent in agents]
    axes = _world_axes(envs[0])
    assert axes == {"state": 1}
    merged = make_vec_env(agents[0].experiment, 3 * 32)
    merged.set_state(merge_env_states([env.get_state() for env in envs], axes))
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(300):
        actions = rng.integers(0, 2, size=3 * 32)
        got = merged.step(actions)[:4]
        want = [env.step(actions[k * 32:(k + 1) * 32])[:4] for k, env in enumerate(envs)]
        for g, w in zip(got, zip(*want)):
            np.testing.assert_array_equal(g, np.concatenate(w))
        ended += int(got[2].sum() + got[3].sum())
    assert ended > 50  # the episodes ended and autoreset (each world from its own random stream)
    for piece, env in zip(split_env_state(merged.get_state(), 3, axes), envs):
        own = env.get_state()
        np.testing.assert_array_equal(piece["core"]["state"], own["core"]["state"])
        np.testing.assert_array_equal(piece["rng"], own["rng"])
        for name in ("_steps", "_prev_done"):
            np.testing.assert_array_equal(piece["env"][name], own["env"][name])


def test_merge_refuses_envs_that_differ_in_a_shared_field():
    from agents.ppo_seeds import merge_env_states

    agents = [_agent(seed, 1024) for seed in (0, 1)]
    for agent in agents:
        agent.start_envs()
    states = [agent.envs.get_state() for agent in agents]
    states[1]["core"]["low"] = states[1]["core"]["low"] * 2  # another start distribution
    with pytest.raises(ValueError, match="differ in 'low'"):
        merge_env_states(states, {"state": 1})


def test_envs_without_declared_world_axes_step_seed_by_seed(monkeypatch):
    # A core that does not declare its per-world arrays is not merged: the seeds' own envs step, with the
    # same per-seed records as the merged path gives.
    from envs.cartpole.core import CartPoleCore

    seeds, steps = [0, 1], 2 * 1024
    merged_hooks = [Hooks() for _ in seeds]
    PPOSeeds([_agent(s, steps) for s in seeds]).learn(steps, merged_hooks)
    monkeypatch.delattr(CartPoleCore, "WORLD_AXES")
    stack = PPOSeeds([_agent(s, steps) for s in seeds])
    own_hooks = [Hooks() for _ in seeds]
    stack.learn(steps, own_hooks)
    assert stack.envs is None
    for a, b in zip(merged_hooks, own_hooks):
        assert a.records == b.records


def test_stacked_evaluation_is_each_seeds_evaluate():
    # PPOSeeds.evaluate plays the K seeds' evaluation episodes in one merged env: each seed's dict is exactly what
    # agents.runner.evaluate gives for its agent (after some training, so that episodes differ in length).
    from agents.runner import evaluate

    seeds, steps = [0, 1, 2], 6 * 1024
    agents = [_agent(s, steps) for s in seeds]
    stack = PPOSeeds(agents)
    stack.learn(steps, [Hooks() for _ in seeds])
    got = stack.evaluate(episodes=10)
    want = [evaluate(agent, episodes=10) for agent in agents]
    assert got == want
    assert len({tuple(r["lengths"]) for r in want}) > 1 and any(min(r["lengths"]) < max(r["lengths"]) for r in want)


def test_seeds_with_other_env_settings_are_not_merged():
    # agents built by hand with different env settings (max_steps) keep their own envs: the merged env would be
    # made from the first seed's settings
    agents = [_agent(0, 1024), make_agent(apply_overrides(load_toml(FAST), [
        "experiment.seed=1", "experiment.total_steps=1024", "env.max_steps=100"]))]
    stack = PPOSeeds(agents)
    stack.learn(1024, [Hooks(), Hooks()])
    assert stack.envs is None and agents[1].envs.max_episode_steps == 100
