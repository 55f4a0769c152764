"""Fuzz MetaCar's level reader (envs/metacar/level.py): the bundled level files, damaged. Each must
load or raise ``LevelError``; a level that loads must then make an env that resets, steps and renders
(within fuzzlib's time and memory caps)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from envs.metacar.env import MetaCarEnv
from envs.metacar.level import LEVEL_NAMES, LevelError, level_path, load_level
from tests.fuzz import fuzzlib

ROAD_CHARS = sorted({c for name in LEVEL_NAMES for row in json.loads(level_path(name).read_text())["map"]
                     for c in row if c != 0})


def _map_cell(doc: dict, rng: np.random.Generator) -> dict:
    """A structure-aware change: one map tile becomes another road char, grass, or a foreign value."""
    rows = doc["map"]
    row = rows[int(rng.integers(len(rows)))]
    pick = int(rng.integers(4))
    row[int(rng.integers(len(row)))] = (ROAD_CHARS[int(rng.integers(len(ROAD_CHARS)))] if pick < 2 else
                                        0 if pick == 2 else ["x", 1, -1, None, "↔↔", 0.5][int(rng.integers(6))])
    return doc


def _mutated(raw: bytes, mutation: str, rng: np.random.Generator) -> bytes:
    if mutation == "bytes":
        return fuzzlib.mutate_bytes(raw, rng)
    doc = json.loads(raw)
    if mutation == "map":
        for _ in range(int(rng.integers(1, 4))):
            doc = _map_cell(doc, rng)
        return json.dumps(doc, ensure_ascii=False).encode()
    return fuzzlib.dump_json(fuzzlib.mutate_json(doc, rng))


def _use(level) -> None:
    """Make an env of the level, reset it, take 5 seeded random steps, render one frame."""
    env = MetaCarEnv(level=level, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(5):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3
    finally:
        env.close()


@pytest.mark.parametrize("mutation", ["json", "map", "bytes"])
@pytest.mark.parametrize("name", ["level1", "level3"])
def test_damaged_level_loads_or_raises_level_error(tmp_path, name, mutation):
    raw = level_path(name).read_bytes()
    path = tmp_path / f"{name}.json"

    def write(rng):
        path.write_bytes(_mutated(raw, mutation, rng))
        return path

    def load(p):
        level = load_level(p)
        with warnings.catch_warnings(), fuzzlib.after_load("an env on it (reset, 5 steps, render)"):
            warnings.simplefilter("ignore")
            _use(level)

    fuzzlib.check(fuzzlib.run(f"level {name} {mutation}", write, load, LevelError))
