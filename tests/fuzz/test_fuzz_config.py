"""Fuzz the training configs' reader: ``rl.experiment.load_toml`` then ``agents.runner.make_agent``
(which validates every table with ``check_config`` before building the env and networks), on the
bundled RL configs, damaged. Each must build an agent or raise ``ConfigError``, within fuzzlib's time
and memory caps: what train.py, sweep.py and --resume do with a config.toml."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from agents.runner import make_agent
from rl.experiment import ConfigError, dump_toml, load_toml
from tests.fuzz import fuzzlib

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"
NAMES = ["cartpole_ppo_fast", "snake_dqn_small", "metacar_level0_qtable", "metacar_level2_ddpg", "cartpole_reinforce"]

HOSTILE_TOML = [
    "3", "-1", "0", "1", "2147483648", "9223372036854775807", "-9223372036854775808", "1e308", "-1e308", "5e-324",
    "inf", "-inf", "nan", "true", "false", '"x"', '""', '"../../escape"', '"/tmp/abs"', '"a\\u0000b"',
    '"' + "a" * 300 + '"',
    "[]", "[1, 2]", '["a"]', "{}", "{ a = 1 }", "[[[[1]]]]", "[" * 2000 + "]" * 2000, "1979-05-27T07:32:00Z",
    "07:32:00", "0.5", "1_000_000_000", '"level9"', '"envs/Nope-v0"', '"gpu"', '"ppo"', '"dqn"',
]  # fmt: skip
_ASSIGNMENT = re.compile(rb"^(\s*[A-Za-z0-9_.\"-]+\s*=\s*)(.*?)(\s*#.*)?$")


def _value(raw: bytes, rng: np.random.Generator) -> bytes:
    """One ``key = value`` line gets a hostile TOML value (the line's comment kept)."""
    lines = raw.split(b"\n")
    spots = [i for i, line in enumerate(lines) if _ASSIGNMENT.match(line)]
    i = spots[int(rng.integers(len(spots)))]
    m = _ASSIGNMENT.match(lines[i])
    lines[i] = m.group(1) + HOSTILE_TOML[int(rng.integers(len(HOSTILE_TOML)))].encode() + (m.group(3) or b"")
    return b"\n".join(lines)


def _lines(raw: bytes, rng: np.random.Generator) -> bytes:
    """A line deleted, repeated, moved to another table, or a key renamed / a table header changed."""
    lines = raw.split(b"\n")
    i, j = (int(x) for x in rng.integers(len(lines), size=2))
    choice = int(rng.integers(4))
    if choice == 0:
        del lines[i]
    elif choice == 1:
        lines.insert(j, lines[i])
    elif choice == 2:
        lines[i] = re.sub(rb"^(\s*)([A-Za-z_]+)", lambda m: m.group(1) + m.group(2) + b"_x", lines[i], count=1)
    else:
        lines[i] = [b"[experiment]", b"[env]", b"[agent]", b"[agent.x]", b"[[agent]]", b"[nope]"][int(rng.integers(6))]
    return b"\n".join(lines)


MUTATIONS = {"value": _value, "lines": _lines, "bytes": fuzzlib.mutate_bytes}


def _build_agent(path):
    """Build the agent a config file describes (warnings silenced), then close its envs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = make_agent(load_toml(path), where=str(path))
    close = getattr(getattr(agent, "envs", None), "close", None)
    if close is not None:
        close()


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("name", NAMES)
def test_damaged_config_builds_an_agent_or_raises_config_error(tmp_path, name, mutation):
    raw = (CONFIGS / f"{name}.toml").read_bytes()
    path = tmp_path / "config.toml"

    def write(rng):
        data = raw
        for _ in range(int(rng.integers(1, 3))):
            data = MUTATIONS[mutation](data, rng)
        path.write_bytes(data)
        return path

    fuzzlib.check(fuzzlib.run(f"config {name} {mutation}", write, _build_agent, ConfigError))


# Every bundled RL config (not the transfer-learning ones, which make_agent does not read)
NUMERIC_NAMES = sorted(p.stem for p in CONFIGS.glob("*.toml") if load_toml(p).get("experiment", {}).get("agent"))
# The budget is per array group (a rollout, a network, ...): a few groups at this size stay under fuzzlib's 1 GiB
# cap, so a size the budget misses is a MemoryError there.
SMALL_BUDGET_BYTES = 128 * 2**20


def _numeric_spots(config: dict) -> list[tuple]:
    """(table, key) or (table, key, index) of every number in a config, list items included (bools are not)."""
    spots = []
    for table, values in config.items():
        for key, value in (values.items() if isinstance(values, dict) else []):
            if isinstance(value, int | float) and not isinstance(value, bool):
                spots.append((table, key))
            elif isinstance(value, list):
                spots.extend((table, key, i) for i, v in enumerate(value)
                             if isinstance(v, int | float) and not isinstance(v, bool))
    return spots


def _random_number(like: int | float, rng: np.random.Generator) -> int | float:
    """A number of ``like``'s type, anywhere from 0 to 10**15 (log-uniform), sometimes negative."""
    magnitude = 10 ** rng.uniform(0, 15) - 1
    sign = -1 if rng.random() < 0.1 else 1
    return sign * (int(magnitude) if isinstance(like, int) else float(magnitude))


@pytest.mark.parametrize("name", NUMERIC_NAMES)
def test_random_numbers_in_a_config_build_an_agent_or_raise_config_error(tmp_path, monkeypatch, name):
    # Every numeric key (list items too) gets random values, up to absurd sizes: each config must build or
    # be refused with a ConfigError, before anything past the memory budget is allocated.
    monkeypatch.setattr("rl.experiment.MEMORY_BUDGET_BYTES", SMALL_BUDGET_BYTES)
    config = load_toml(CONFIGS / f"{name}.toml")
    spots = _numeric_spots(config)
    path = tmp_path / "config.toml"

    def write(rng):
        changed = json.loads(json.dumps(config))
        for _ in range(int(rng.integers(1, 4))):
            table, key, *index = spots[int(rng.integers(len(spots)))]
            if index:
                changed[table][key][index[0]] = _random_number(changed[table][key][index[0]], rng)
            else:
                changed[table][key] = _random_number(changed[table][key], rng)
        path.write_text(dump_toml(changed))
        return path

    fuzzlib.check(fuzzlib.run(f"config {name} numbers", write, _build_agent, ConfigError))
