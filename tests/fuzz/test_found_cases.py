"""Defects the fuzzers in this folder found, each reduced to the smallest input that shows it (so the
fix stays tested whatever seed the fuzzers run with)."""

from __future__ import annotations

import json

import pytest

from agents.runner import make_agent
from envs.metacar.level import LevelError, level_path, load_level
from rl.experiment import ConfigError, RunDir


def test_level_decoration_beyond_float_range_is_a_level_error(tmp_path):
    # test_fuzz_level level3-json case 369: math.isfinite(10**400) raised OverflowError from the loader.
    doc = json.loads(level_path("level3").read_text())
    doc["tree"][0]["x"] = 10**400
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LevelError, match="huge.json"):
        load_level(path)


@pytest.mark.parametrize("variant", [["book"], {"a": 1}])
def test_cartpole_variant_of_the_wrong_type_is_a_config_error(variant):
    # test_fuzz_config cartpole_ppo_fast-value case 210: `variant = [...]` gave TypeError: unhashable type.
    config = {"experiment": {"agent": "ppo", "env_id": "envs/CartPole-v1"}, "env": {"variant": variant}}
    with pytest.raises(ConfigError, match="variant"):
        make_agent(config, "cfg.toml")


@pytest.mark.parametrize(("line", "message"), [("3", "must be a JSON object, got int"), ('["x"]', "got list"),
                                               ("[" * 100_000 + "]" * 100_000, "RecursionError")])
def test_metrics_line_that_is_not_a_record_is_a_config_error(tmp_path, line, message):
    # test_fuzz_metrics records cases 3, 14 (a list, a number: plot.py then failed on `key in record`) and
    # 16 (deep nesting: RecursionError).
    run = RunDir(tmp_path / "run")
    run.metrics_path.write_text('{"env_steps": 1}\n' + line + "\n")
    with pytest.raises(ConfigError, match=rf"metrics.jsonl:2: .*{message}"):
        run.read_metrics()


@pytest.mark.parametrize(("part", "value"), [("optimizer", 7), ("rng", 1.5), ("tracker", [1, 2])])
def test_agent_state_part_of_the_wrong_kind_is_a_value_error(part, value):
    # test_fuzz_run_checkpoint cases (ppo 17, 37, 42): a well-formed checkpoint whose part held another kind of
    # value escaped load_agent as AttributeError/TypeError; load_state_dict promises KeyError or ValueError.
    agent = make_agent({"experiment": {"agent": "ppo", "env_id": "envs/CartPole-v1"},
                        "agent": {"num_envs": 2, "num_steps": 8}})
    state = agent.state_dict()
    state[part] = value
    with pytest.raises(ValueError, match=rf"the checkpoint's '{part}' does not fit this agent"):
        agent.load_state_dict(state)


def _tiny_tfjs(tmp_path):
    from rl import layers
    from rl.models import Sequential
    from rl.tfjs import save_tfjs

    save_tfjs(Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)]), tmp_path)
    return json.loads((tmp_path / "model.json").read_text())


def test_tfjs_layer_size_of_infinity_is_a_tfjs_format_error(tmp_path):
    # test_fuzz_tfjs cnn-json cases 431, 622: int(inf) in a layer constructor escaped as OverflowError.
    from rl.tfjs import TfjsFormatError, load_tfjs

    doc = _tiny_tfjs(tmp_path)
    doc["modelTopology"]["config"]["layers"][-1]["config"]["units"] = float("inf")
    (tmp_path / "model.json").write_text(json.dumps(doc))  # Python writes Infinity, as a hostile file may
    with pytest.raises(TfjsFormatError, match="cannot be rebuilt: OverflowError"):
        load_tfjs(tmp_path)


def test_tfjs_weights_path_too_long_for_the_file_system_is_a_tfjs_format_error(tmp_path):
    # test_fuzz_tfjs cnn-json case 850: a 10000-character shard name gave OSError (File name too long).
    from rl.tfjs import TfjsFormatError, load_tfjs

    doc = _tiny_tfjs(tmp_path)
    doc["weightsManifest"][0]["paths"][0] = "a" * 10_000
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(TfjsFormatError, match="cannot be a file here"):
        load_tfjs(tmp_path)


def _two_input_tfjs(tmp_path):
    """Inputs a, b (4,) -> one Dense 'shared' on each -> Concatenate 'join', saved as TF.js."""
    from rl import layers
    from rl.models import Input, Model
    from rl.tfjs import save_tfjs

    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = layers.Dense(3, name="shared")
    save_tfjs(Model([a, b], layers.Concatenate(name="join")([shared(a), shared(b)])), tmp_path)
    return json.loads((tmp_path / "model.json").read_text())


def _set_input_shape(doc, name, shape):
    entry = next(e for e in doc["modelTopology"]["config"]["layers"] if e["name"] == name)
    entry["config"]["batch_input_shape"] = shape


def _set_inbound(doc, name, index, node):
    entry = next(e for e in doc["modelTopology"]["config"]["layers"] if e["name"] == name)
    entry["inbound_nodes"][index] = node


# test_fuzz_tfjs functional-json cases (PLAYGRAD_FUZZ_CASES=1500): these files loaded, then predict on zeros of their
# declared input shapes raised from inside a layer. Each class of defect, reduced:
@pytest.mark.parametrize(("mutate", "message"), [
    # 451, 494: call arguments the layer does not take, in an inbound node's fourth item
    (lambda doc: _set_inbound(doc, "join", 0, [["shared", 0, 0, {"": 0}], ["shared", 1, 0, {}]]),
     r"layer 'join' \(Concatenate\) on input shape \[\[1, 3\], \[1, 3\]\] cannot run: TypeError: .*unexpected keyword"),
    # 202, 1219, 1427: merged inputs of different ranks (the shape formula only summed the last axis)
    (lambda doc: _set_input_shape(doc, "b", [None, 4, 4]),
     r"layer 'join' \(Concatenate\) on input shape \[\[1, 3\], \[1, 4, 3\]\] cannot run"),
    # a shared layer called again on inputs of another size than it was built for
    (lambda doc: _set_input_shape(doc, "b", [None, 5]), r"layer 'shared' \(Dense\) on input shape \[1, 5\] cannot run"),
    # 1171, 1457: a one-input layer called again, on a list of two
    (lambda doc: _set_inbound(doc, "shared", 1, [["a", 0, 0, {}], ["b", 0, 0, {}]]),
     r"layer 'shared' \(Dense\) on input shape \[\[1, 4\], \[1, 4\]\] cannot run"),
    # 231: an input size that is not a number (of an input only a layer built already reads)
    (lambda doc: _set_input_shape(doc, "b", [None, [["shared", 0, 0, {}]]]), r"input 'b' has shape .*positive integer"),
    (lambda doc: _set_input_shape(doc, "b", [None, 0]), r"input 'b' has shape \[None, 0\]"),
])  # fmt: skip
def test_tfjs_graph_that_cannot_run_is_refused_at_load_naming_the_layer(tmp_path, mutate, message):
    from rl.tfjs import TfjsFormatError, load_tfjs

    doc = _two_input_tfjs(tmp_path)
    mutate(doc)
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(TfjsFormatError, match=message):
        load_tfjs(tmp_path)


def test_tfjs_graph_with_free_input_sizes_still_loads_and_runs(tmp_path):
    # The load-time run of the graph probes a free (None) size at PROBE_FREE_SIZE; such models keep loading.
    import numpy as np

    from rl import layers
    from rl.models import Input, Model
    from rl.tfjs import load_tfjs, save_tfjs

    x = Input((None, None, 3))
    save_tfjs(Model(x, layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, strides=2)(x)))), tmp_path)
    assert load_tfjs(tmp_path).predict(np.zeros((2, 9, 13, 3), np.float32)).shape == (2, 2)


@pytest.mark.parametrize(("config", "override", "key"), [
    ("cartpole_ppo_fast", "agent.num_steps=10_000_000", r"agent\.num_steps x agent\.num_envs: a rollout of 10,000,000"),
    ("snake_dqn_small", "env.height=100_000_000", r"env\.height x env\.width x agent\.num_envs"),
    ("snake_dqn_small", "agent.buffer_size=1_000_000_000", r"agent\.buffer_size: a replay buffer of 1,000,000,000"),
    ("cartpole_reinforce", "agent.hidden=[1_000_000, 1_000_000]", r"agent\.hidden: a network of"),
    ("metacar_level2_ddpg", "agent.num_envs=60_000", r"agent\.num_envs x agent\.actor_hidden: 60,000 perturbed"),
])  # fmt: skip
def test_a_config_asking_for_absurd_memory_is_a_config_error_naming_the_key(monkeypatch, config, override, key):
    # test_fuzz_config numbers: these raised MemoryError from numpy (or, under the machine's memory, allocated
    # zeroed pages that swapped once touched); the budget is lowered so the DDPG case is over it too.
    from pathlib import Path

    from rl.experiment import apply_overrides, load_toml

    monkeypatch.setattr("rl.experiment.MEMORY_BUDGET_BYTES", 512 * 2**20)
    path = Path(__file__).resolve().parents[2] / "configs" / f"{config}.toml"
    with pytest.raises(ConfigError, match=rf"{config}\.toml: {key}.* GiB of memory, over the 0\.5 GiB"):
        make_agent(apply_overrides(load_toml(path), [override]), where=str(path.name))
