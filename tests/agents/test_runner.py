"""The runner: checkpoints, the NaN guard, config errors, identical metrics per seed, exact resume."""

import json
from pathlib import Path

import numpy as np
import pytest

import agents.runner as runner_module
from agents.runner import (
    CheckpointError,
    NonFiniteLossError,
    Runner,
    check_config,
    load_agent,
    load_checkpoint,
    make_agent,
    save_checkpoint,
    single_blas_thread,
    strip_wall_clock,
)
from playgrad.training import train
from rl import backend
from rl.experiment import ConfigError, RunDir, RunNotFoundError, apply_overrides, load_toml
from rl.summaries import RunSummaries


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with single_blas_thread():
        yield


def reinforce_config(tmp_path, iterations=4, seed=0):
    path = tmp_path / "reinforce.toml"
    path.write_text(f"""
[experiment]
name = "rf"
agent = "reinforce"
seed = {seed}
total_steps = 1000000
eval_episodes = 3
checkpoint_every_steps = 1
device = "cpu"

[env]
variant = "book"

[agent]
iterations = {iterations}
games_per_iteration = 4
""")
    return str(path)


def ppo_config(tmp_path):
    path = tmp_path / "ppo.toml"
    path.write_text("""
[experiment]
name = "ppo"
agent = "ppo"
seed = 3
total_steps = 1280
eval_episodes = 3
checkpoint_every_steps = 1
device = "cpu"

[agent]
num_envs = 4
num_steps = 64
batch_size = 64
num_epochs = 2
anneal_lr = true
""")
    return str(path)


def dqn_config(tmp_path):
    """A tiny book-style snake DQN (conv net with dropout): its masks come from the default generator."""
    path = tmp_path / "dqn.toml"
    path.write_text("""
[experiment]
name = "dqn"
agent = "dqn"
env_id = "envs/Snake-v0"
seed = 5
total_steps = 600
eval_episodes = 2
checkpoint_every_steps = 100_000
device = "cpu"

[env]
height = 5
width = 5

[agent]
conv_filters = [4]
hidden_sizes = [16]
dropout = 0.25
batch_size = 16
buffer_size = 1000
learning_starts = 100
target_update_interval = 50
epsilon_decay_steps = 300
log_every_steps = 50
""")
    return str(path)


def test_checkpoint_round_trip_keeps_nested_arrays_and_scalars(tmp_path):
    rng_state = np.random.default_rng(5).bit_generator.state  # 128-bit integers inside
    state = {"net": {"dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "steps": 7,
             "rng": rng_state, "names": ["a", "b"], "empty": {}}
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    np.testing.assert_array_equal(back["net"]["dense/kernel"], state["net"]["dense/kernel"])
    assert back["steps"] == 7 and back["rng"] == rng_state and back["names"] == ["a", "b"] and back["empty"] == {}
    assert json.loads((tmp_path / "c.json").read_text())["steps"] == 7
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_progress_bar_ends_at_the_steps_taken_not_past_its_total(tmp_path):
    # PPO's unit is a rollout (4 x 64 steps here), so a 1000-step budget takes 1024 steps; the bar showed
    # "1024/1000" (on metacar level1, 1001472 of 1000000 steps).
    config = load_toml(ppo_config(tmp_path))
    config["experiment"]["total_steps"] = 1000
    agent = make_agent(config, where="t")
    runner = Runner(RunDir(tmp_path / "run"), agent.experiment, progress=True)
    agent.learn(agent.experiment.total_steps, runner)
    runner.close()
    assert agent.env_steps == 1024
    assert (runner._bar.n, runner._bar.total) == (1024, 1024)
    # A budget the agent meets exactly keeps its total.
    config["experiment"]["total_steps"] = 512
    agent = make_agent(config, where="t")
    runner = Runner(RunDir(tmp_path / "run2"), agent.experiment, progress=True)
    agent.learn(agent.experiment.total_steps, runner)
    runner.close()
    assert (runner._bar.n, runner._bar.total) == (512, 512)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    agent = make_agent({"experiment": {"agent": "reinforce", "device": "cpu"}, "env": {"variant": "book"},
                        "agent": {"games_per_iteration": 2}}, where="t")
    run = RunDir(tmp_path / "run")
    runner = Runner(run, agent.experiment, progress=False)
    runner.save(agent)
    good = (run.checkpoints / "latest.safetensors").read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"policy_loss became nan at env step 12.*latest.safetensors"):
        runner.log({"env_steps": 12, "policy_loss": float("nan")})
    agent.policy.parameters()[0].data[0, 0] = np.nan  # a diverged model is never written over a good one
    with pytest.raises(NonFiniteLossError, match="holds NaN"):
        runner.save(agent)
    assert (run.checkpoints / "latest.safetensors").read_bytes() == good
    runner.close()


def test_unknown_keys_name_the_file_table_and_valid_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[experiment]\nagent = "ppo"\n[agent]\nlearning_rate = 0.1\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[agent\]: unknown key 'learning_rate'.*Valid keys:.*clip_coef"):
        train(str(path), [], runs_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match=r"\[env\]: unknown key 'gravity' for envs/CartPole-v1. Valid keys: "
                                          r"device, max_steps, variant"):
        train(str(path), ["agent.learning_rate=1", "env.gravity=3"][1:], runs_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match=r"\[experiment\]: unknown key 'seeds' \(did you mean 'seed'\?\)"):
        train(str(path), ["experiment.seeds=1"], runs_dir=str(tmp_path), progress=False)


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    config = reinforce_config(tmp_path, iterations=3)
    a = RunDir(train(config, [], runs_dir=str(tmp_path / "a"), progress=False)).read_metrics()
    b = RunDir(train(config, [], runs_dir=str(tmp_path / "b"), progress=False)).read_metrics()
    assert len(a) > 3 and strip_wall_clock(a) == strip_wall_clock(b)
    assert "sps" in a[-1] and "time_s" in a[-1]
    c = RunDir(train(config, [], seed=1, runs_dir=str(tmp_path / "c"), progress=False)).read_metrics()
    assert strip_wall_clock(c) != strip_wall_clock(a)


def _interrupt_after(monkeypatch, key, value):
    """Make the runner behave as if Ctrl-C came when a metrics record has ``record[key] == value``."""
    original = Runner.log

    def log(self, record):
        original(self, record)
        if record.get(key) == value and "episode_return" not in record:
            self.request_stop()

    monkeypatch.setattr(runner_module.Runner, "log", log)


@pytest.mark.parametrize("which", ["reinforce", "ppo", "dqn"])
def test_interrupted_and_resumed_run_ends_with_the_same_metrics(tmp_path, monkeypatch, which):
    config = {"reinforce": reinforce_config, "ppo": ppo_config, "dqn": dqn_config}[which](tmp_path)
    # DQN is cut after its updates (and dropout draws) began; the others after their second iteration.
    key, value = ("env_steps", 300) if which == "dqn" else ("iteration", 2)
    full = RunDir(train(config, [], runs_dir=str(tmp_path / "full"), progress=False))
    with monkeypatch.context() as m:
        _interrupt_after(m, key, value)
        cut = train(config, [], runs_dir=str(tmp_path / "cut"), progress=False)
    assert not (cut / "eval.json").exists()  # stopped early: no evaluation yet
    partial = RunDir(cut).read_metrics()
    assert partial[-1][key] == value
    train(None, [], resume=str(cut), progress=False)
    resumed = RunDir(cut).read_metrics()
    assert strip_wall_clock(resumed) == strip_wall_clock(full.read_metrics())
    assert json.loads((cut / "eval.json").read_text())["returns"] == json.loads(
        (full.path / "eval.json").read_text())["returns"]


def test_load_agent_plays_with_the_saved_weights(tmp_path):
    run = train(reinforce_config(tmp_path, iterations=2), [], runs_dir=str(tmp_path), progress=False)
    agent = load_agent(run, tag="latest")
    assert agent.iteration == 2
    saved = load_checkpoint(run / "checkpoints" / "latest.safetensors")["agent"]["policy"]
    loaded = agent.policy.state_dict()
    assert set(loaded) == set(saved)
    for name, value in loaded.items():
        np.testing.assert_array_equal(backend.to_numpy(value), saved[name], err_msg=name)
    fresh = make_agent(load_toml(run / "config.toml"), where="fresh").policy.state_dict()  # the seed's initial weights
    assert not all(np.array_equal(backend.to_numpy(fresh[k]), saved[k]) for k in saved)  # so training changed them
    obs = np.zeros((3, 4), dtype=np.float32)
    assert agent.act(obs).shape == (3,)
    with pytest.raises(RunNotFoundError, match="not a run directory"):
        load_agent(tmp_path)
    with pytest.raises(RunNotFoundError, match="does not exist"):  # and the typo is not created as a run
        load_agent(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def _files(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctrl_c_anywhere_then_resume_writes_the_files_of_an_uninterrupted_run(tmp_path, monkeypatch, seed):
    # Checkpoints every 2 iterations (512 steps of 4 x 64); the Ctrl-C save, at a random record, must neither
    # move that schedule nor judge "best" there (it did: best.safetensors differed after --resume).
    config = ppo_config(tmp_path)
    overrides = ["experiment.checkpoint_every_steps=512", "experiment.total_steps=2560"]
    saves = []  # (file name, env steps) of every checkpoint written
    original_save = runner_module.save_checkpoint

    def save_checkpoint(path, state):
        saves.append((Path(path).name, state["runner"]["env_steps"]))
        original_save(path, state)

    monkeypatch.setattr(runner_module, "save_checkpoint", save_checkpoint)
    full = train(config, overrides, runs_dir=str(tmp_path / "full"), progress=False)
    full_saves, saves[:] = list(saves), []
    records = len(RunDir(full).read_metrics())
    stop_at = int(np.random.default_rng(seed).integers(1, records - 1))
    original = Runner.log

    def log(self, record):
        original(self, record)
        if self.metrics.lines == stop_at:
            self.request_stop()

    with monkeypatch.context() as m:
        m.setattr(runner_module.Runner, "log", log)
        cut = train(config, overrides, runs_dir=str(tmp_path / "cut"), progress=False)
    where = f"seed {seed}: Ctrl-C at record {stop_at} of {records}"
    assert not (cut / "eval.json").exists(), where
    ctrl_c_save = saves.pop()
    train(None, [], resume=str(cut), progress=False)
    # The same saves at the same steps ("best" judged only on schedule), plus the one Ctrl-C "latest".
    assert ctrl_c_save[0] == "latest.safetensors" and saves == full_saves, where
    want, got = _files(full), _files(cut)
    assert sorted(got) == sorted(want)
    assert "checkpoints/best.safetensors" in got
    assert strip_wall_clock(RunDir(cut).read_metrics()) == strip_wall_clock(RunDir(full).read_metrics())
    for name in want:
        if name != "metrics.jsonl":  # its sps and time_s are the machine's speed
            assert got[name] == want[name], f"{name} differs ({where})"


@pytest.mark.parametrize("which", ["reinforce", "ppo", "dqn", "ddpg", "qtable"])
def test_the_runner_stamps_every_progress_record_with_the_wall_clock(tmp_path, which):
    configs = {
        "reinforce": {"experiment": {"agent": "reinforce", "total_steps": 10**6}, "env": {"variant": "book"},
                      "agent": {"iterations": 2, "games_per_iteration": 2}},
        "ppo": {"experiment": {"agent": "ppo", "total_steps": 256}, "agent": {"num_envs": 2, "num_steps": 64}},
        "dqn": {"experiment": {"agent": "dqn", "total_steps": 300},
                "agent": {"network": "mlp", "log_every_steps": 100}},
        "ddpg": {"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0", "total_steps": 300},
                 "env": {"motion": "control", "max_steps": 50}, "agent": {"log_every_steps": 100}},
        "qtable": {"experiment": {"agent": "qtable", "env_id": "envs/MetaCar-v0", "total_steps": 300},
                   "env": {"level": "level0", "lidar": {"pts": 2, "width": 1, "height": 1, "pos": 1}, "max_steps": 40},
                   "agent": {"log_every_steps": 100}},
    }
    config = configs[which]
    config["experiment"]["device"] = "cpu"
    agent = make_agent(config, where=which)
    runner = Runner(RunDir(tmp_path / "run"), agent.experiment, progress=False)
    agent.learn(agent.experiment.total_steps, runner)
    runner.close()
    records = RunDir(tmp_path / "run").read_metrics()
    progress = [r for r in records if "episode_return" not in r]
    assert progress and all(r["sps"] > 0 and r["time_s"] > 0 for r in progress)
    assert [r["time_s"] for r in progress] == sorted(r["time_s"] for r in progress)
    assert not any("sps" in r for r in records if "episode_return" in r)


# ------------------------------------------------------------------------------------- hostile runs and configs
@pytest.mark.parametrize("name", ["../../escape", "/tmp/playgrad-absolute", "nul\x00byte", "n" * 300])
def test_a_run_name_cannot_write_outside_the_runs_dir(tmp_path, capsys, name):
    from playgrad.cli.train import main

    runs = tmp_path / "deep" / "er" / "runs"
    runs.mkdir(parents=True)
    assert main([ppo_config(tmp_path), "--set", f"experiment.name={json.dumps(name)}", "--runs-dir", str(runs),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "experiment.name" in err and err.count("\n") == 1, err
    assert not any(p.name.startswith(("escape", "playgrad-absolute")) for p in tmp_path.rglob("*"))
    assert list(runs.iterdir()) == []


def test_a_file_given_as_runs_dir_is_one_line(tmp_path, capsys):
    from playgrad.cli.train import main

    (tmp_path / "runs").write_text("not a folder")
    assert main([ppo_config(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("text, says", [
    ("experiment = 3\n", r"'experiment' must be a table .*got int 3"),
    ('env = "x"\n', r"'env' must be a table .*got str 'x'"),
    ('agent = [1]\n', r"'agent' must be a table"),
])
def test_config_tables_that_are_values_are_clear_errors(tmp_path, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        train(str(path), [], runs_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError):  # --seed and --device go in as overrides (a TypeError before)
        train(str(path), [], seed=1, device="cpu", runs_dir=str(tmp_path), progress=False)
    run = RunDir(tmp_path / "run")  # a run's own config.toml edited by hand
    run.config_path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        train(None, [], resume=str(run.path), progress=False)
    with pytest.raises(ConfigError, match=r"must be a table|'experiment' is a value, not a table"):
        load_agent(run.path, device="cpu")


@pytest.mark.parametrize("override, says", [
    ("agent.lr=nan", "lr must be a finite number > 0, got nan"),
    ("agent.lr=inf", "lr must be a finite number > 0, got inf"),
    ("agent.lr=-0.001", "lr must be a finite number > 0, got -0.001"),
    ("agent.max_grad_norm=nan", "max_grad_norm must be a finite number > 0"),
    ("agent.num_envs=100000000", "num_envs must be between 1 and 65,536 worlds, got 100,000,000"),
])
def test_learning_rates_clipping_and_world_counts_are_range_checked(tmp_path, override, says):
    with pytest.raises(ConfigError, match=rf"\[agent\]: {says}"):
        train(ppo_config(tmp_path), [override], runs_dir=str(tmp_path), progress=False)
    assert not list(tmp_path.glob("ppo-*"))  # refused before any run directory was made


@pytest.mark.parametrize("agent, keys", [
    ("dqn", {"lr": "nan", "max_grad_norm": "nan", "num_envs": "0"}),
    ("ddpg", {"actor_lr": "-1.0", "critic_lr": "inf", "max_grad_norm": "nan", "num_envs": "70000"}),
    ("reinforce", {"lr": "nan", "value_lr": "-inf", "games_per_iteration": "100000000"}),
    ("qtable", {"num_envs": "100000000"}),
])
def test_every_agent_range_checks_its_rates_and_worlds(agent, keys):
    for key, value in keys.items():
        config = apply_overrides({"experiment": {"agent": agent}}, [f"agent.{key}={value}"])
        with pytest.raises(ConfigError, match=rf"\[agent\]: {key} must be"):
            check_config(config, where="t")


def test_ddpg_stops_on_non_finite_actions_before_stepping_the_env():
    from agents.ddpg import DDPG

    config = {"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0", "device": "cpu"},
              "env": {"motion": "control"}, "agent": {"exploration": "gaussian", "num_envs": 2}}
    agent = make_agent(config, where="t")
    agent.actor.parameters()[0].data[...] = np.nan  # a diverged actor
    steps = []
    agent.envs.step = lambda actions: steps.append(actions)  # never reached
    with pytest.raises(NonFiniteLossError, match="the actions became NaN or inf at env step 0.*kept"):
        agent.learn(100, _NullHooks())
    assert steps == [] and isinstance(agent, DDPG)


def test_ddpg_stops_on_a_non_finite_loss_right_after_the_update():
    config = {"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0", "device": "cpu"},
              "env": {"motion": "control"},
              "agent": {"exploration": "gaussian", "num_envs": 2, "learning_starts": 64, "batch_size": 32,
                        "train_every_steps": 1000, "gradient_steps": 1}}
    agent = make_agent(config, where="t")
    agent._update_round = lambda: {"critic_loss": float("nan"), "actor_loss": 0.0}
    steps_before_update = []
    original_step = agent.envs.step

    def step(actions):
        steps_before_update.append(agent.tracker.transitions)
        return original_step(actions)

    agent.envs.step = step
    with pytest.raises(NonFiniteLossError, match=r"critic_loss \(nan\) became NaN or inf"):
        agent.learn(1000, _NullHooks())
    assert max(steps_before_update) < 64  # the env was not stepped after the diverged update


class _NullHooks:
    stop_requested = False

    def log(self, record):
        pass

    def checkpoint_due(self, env_steps):
        return False


def test_stale_temp_files_are_removed_when_a_run_starts_or_resumes(tmp_path):
    config = reinforce_config(tmp_path, iterations=2)
    run = train(config, [], runs_dir=str(tmp_path / "runs"), progress=False)
    # What a save killed mid-write leaves: a writer's temp file, named with a pid that is no longer running.
    dead_pid = 2**22 + 12345
    stale = [run / "checkpoints" / f".latest.safetensors.{dead_pid}.1.abcd1234.tmp",
             run / f".metrics.jsonl.{dead_pid}.1.abcd1234.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (run / "eval.json").unlink()  # pretend it was interrupted, so that --resume continues it
    train(None, [], resume=str(run), progress=False)
    assert not any(path.exists() for path in stale)


def test_a_run_killed_before_its_first_checkpoint_says_to_start_again(tmp_path, capsys):
    from playgrad.cli.train import main

    run = RunDir(tmp_path / "killed")
    run.config_path.write_text(load_toml_text(reinforce_config(tmp_path)))
    assert main(["--resume", str(run.path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "stopped before its first save" in err and f"python scripts/train.py {run.config_path}" in err, err
    assert err.count("\n") == 1


def load_toml_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("which, networks", [
    ({"experiment": {"agent": "ppo"}}, ["policy", "value"]),
    ({"experiment": {"agent": "reinforce"}, "env": {"variant": "book"}}, ["policy"]),
    ({"experiment": {"agent": "reinforce"}, "agent": {"baseline": True, "policy_head": "softmax"}},
     ["policy", "value"]),
    ({"experiment": {"agent": "dqn"}, "agent": {"network": "mlp"}}, ["q_net"]),
    ({"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0"}, "env": {"motion": "control"}},
     ["actor", "critic"]),
    ({"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0"}, "env": {"motion": "control"},
      "agent": {"twin_critics": True}}, ["actor", "critic", "critic2"]),
    ({"experiment": {"agent": "qtable", "env_id": "envs/MetaCar-v0"},
      "env": {"lidar": {"pts": 2, "width": 1, "height": 1, "pos": 1}}}, []),
])
def test_networks_are_the_trained_models_and_the_state_is_declared_once(which, networks):
    from rl.models import Model

    which["experiment"]["device"] = "cpu"
    agent = make_agent(which, where="t")
    nets = agent.networks()
    assert list(nets) == networks and all(isinstance(net, Model) for net in nets.values())
    state = agent.state_dict()
    # The same thing has the same key in every agent: the tracker, the generators, each network by name.
    assert "tracker" in state and "env_steps" in state["tracker"] and set(networks) <= set(state)
    assert not {"env_state", "rng_state", "episode_returns", "prev_done"} & set(state)
    for name in [*networks, "tracker"]:
        partial = {k: v for k, v in state.items() if k != name}
        with pytest.raises(KeyError, match=repr(name)):
            make_agent(which, where="t").load_state_dict(partial)


class _Killed(BaseException):  # noqa: N818 - stands for SIGKILL: nothing in the runner may catch it
    """The process dying between two checkpoints."""


def _train_killed_after_second_checkpoint(config, overrides, runs_dir, monkeypatch):
    """Train until the first update after the second checkpoint, then die there (:class:`_Killed`): the run's
    files hold records past its checkpoint, which ``--resume`` redoes. Returns the run folder and the metrics
    lines each checkpoint kept."""
    saved_lines = []  # metrics lines at each checkpoint
    original_save, original_log = runner_module.save_checkpoint, Runner.log

    def save_checkpoint(path, state):
        saved_lines.append(state["runner"]["metrics_lines"])
        original_save(path, state)

    def log(self, record):
        original_log(self, record)
        if len(saved_lines) >= 2 and RunSummaries.is_update(record):
            raise _Killed

    with monkeypatch.context() as m:
        m.setattr(runner_module, "save_checkpoint", save_checkpoint)
        m.setattr(runner_module.Runner, "log", log)
        with pytest.raises(_Killed):
            train(config, overrides, runs_dir=str(runs_dir), progress=False)
    (cut,) = Path(runs_dir).iterdir()
    assert len(RunDir(cut).read_metrics()) > saved_lines[-1]  # lines past the last checkpoint, to be redone
    return cut, saved_lines


@pytest.mark.parametrize("every", [2, 3])
def test_a_run_killed_between_checkpoints_then_resumed_writes_the_files_of_an_uninterrupted_run(
        tmp_path, monkeypatch, every):
    # Killed at the first update after its second checkpoint: metrics.jsonl and histograms.jsonl hold records past
    # the checkpoint, which --resume redoes. histograms.jsonl used to be appended to (those snapshots twice, and
    # the every-N schedule restarted at the resume point); now it is cut back as metrics.jsonl is.
    config = ppo_config(tmp_path)
    overrides = ["experiment.checkpoint_every_steps=512", "experiment.total_steps=2560",
                 f"experiment.histogram_every={every}"]
    full = train(config, overrides, runs_dir=str(tmp_path / "full"), progress=False)
    cut, _ = _train_killed_after_second_checkpoint(config, overrides, tmp_path / "cut", monkeypatch)
    killed_at = len(RunDir(cut).read_metrics())
    train(None, [], resume=str(cut), progress=False)
    want, got = _files(full), _files(cut)
    assert sorted(got) == sorted(want) and "histograms.jsonl" in got
    assert strip_wall_clock(RunDir(cut).read_metrics()) == strip_wall_clock(RunDir(full).read_metrics())
    for name in want:
        if name != "metrics.jsonl":  # its sps and time_s are the machine's speed
            assert got[name] == want[name], f"{name} differs (histograms every {every}: killed at record {killed_at})"


def _tensorboard_events(run):
    """What TensorBoard shows of a run: ``{tag: [(step, value)]}`` of its scalars and ``{tag: [(step, bucket
    counts)]}`` of its histograms, read by TensorBoard's own reader (which applies the purge marks)."""
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard not installed (pip install 'playgrad[tensorboard]')")
    acc = tb.EventAccumulator(str(run / "tensorboard"), size_guidance={tb.SCALARS: 0, tb.HISTOGRAMS: 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    histograms = {tag: [(e.step, list(e.histogram_value.bucket)) for e in acc.Histograms(tag)]
                  for tag in acc.Tags()["histograms"]}
    return scalars, histograms


def test_a_run_killed_between_checkpoints_then_resumed_shows_tensorboard_the_events_of_an_uninterrupted_run(
        tmp_path, monkeypatch):
    # The killed run's event file holds the scalars and histograms past its checkpoint; the resumed run writes
    # them again in a file of its own. Without the purge mark it opens with, TensorBoard showed both copies.
    pytest.importorskip("tensorboardX", reason="tensorboardX not installed (pip install 'playgrad[tensorboard]')")
    config = ppo_config(tmp_path)
    overrides = ["experiment.checkpoint_every_steps=512", "experiment.total_steps=2560",
                 "experiment.histogram_every=2", "experiment.tensorboard=true"]
    full = train(config, overrides, runs_dir=str(tmp_path / "full"), progress=False)
    cut, saved_lines = _train_killed_after_second_checkpoint(config, overrides, tmp_path / "cut", monkeypatch)
    checkpoint_step = RunDir(cut).read_metrics()[saved_lines[-1] - 1]["env_steps"]
    killed_scalars, killed_histograms = _tensorboard_events(cut)
    assert max(step for events in killed_scalars.values() for step, _ in events) > checkpoint_step
    assert max(step for events in killed_histograms.values() for step, _ in events) > checkpoint_step
    train(None, [], resume=str(cut), progress=False)
    assert len(list((cut / "tensorboard").iterdir())) == 2  # the killed run's file kept, the resumed run's beside
    (want_scalars, want_histograms), (got_scalars, got_histograms) = _tensorboard_events(full), _tensorboard_events(cut)
    assert sorted(got_scalars) == sorted(want_scalars) and sorted(got_histograms) == sorted(want_histograms)
    for tag in want_scalars:
        if tag in ("sps", "time_s"):  # the machine's speed: only the steps are the same
            assert [s for s, _ in got_scalars[tag]] == [s for s, _ in want_scalars[tag]], tag
        else:
            assert got_scalars[tag] == want_scalars[tag], tag
    for tag in want_histograms:
        assert got_histograms[tag] == want_histograms[tag], tag
