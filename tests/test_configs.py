"""Every experiment file in configs/ is valid: its tables and keys are known and its agent builds."""

import importlib.util
import sys
from pathlib import Path

import pytest

from agents.runner import make_agent
from rl.experiment import ConfigError, apply_overrides, load_toml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
TRANSFER_SCRIPTS = {"digits_transfer", "mobilenet_fewshot", "gesture_control", "finetune_stream"}
SCRIPT_FOR = {"finetune_stream": "finetune"}  # configs read by a script of another name


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_there_are_configs_for_every_experiment_the_issues_name():
    names = {p.stem for p in CONFIGS}
    expected = {"cartpole_reinforce", "cartpole_ppo", "cartpole_dqn", "snake_dqn", "snake_dqn_small",
                "metacar_level0_qtable", "metacar_level1_ppo", "metacar_level2_ddpg", "metacar_level3_ddpg"}
    assert expected <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_validates(path):
    if path.stem in TRANSFER_SCRIPTS:
        config = _script(SCRIPT_FOR.get(path.stem, path.stem)).load_config(str(path), [])
        assert config
        return
    config = apply_overrides(load_toml(path), ['experiment.device="cpu"'])
    agent = make_agent(config, where=str(path))
    assert agent.experiment.name == path.stem  # run directories are named after the file


def test_a_typo_in_a_shipped_config_names_the_file_and_valid_keys(tmp_path):
    text = (ROOT / "configs" / "cartpole_ppo.toml").read_text().replace("num_epochs", "num_epoch")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"bad.toml \[agent\]: unknown key 'num_epoch'.*num_epochs"):
        make_agent(load_toml(bad), where=str(bad))
