"""Fuzz rl/tfjs.py's importer: TF.js layers models (``model.json`` + weight shards) written by
``save_tfjs``, damaged. Each must load (and then predict on zeros) or raise ``TfjsFormatError``,
within fuzzlib's time and memory caps."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rl import layers as L
from rl import tfjs
from rl.models import Input, Model, Sequential
from tests.fuzz import fuzzlib


def _cnn() -> Model:
    return Sequential([L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
                       L.BatchNormalization(), L.DepthwiseConv2D(3, padding="same"), L.MaxPooling2D(2),
                       L.Flatten(), L.Dropout(0.5), L.Dense(3, activation="softmax")])


def _functional() -> Model:
    inner = Sequential([L.Dense(6, activation="tanh", input_shape=(4,))], name="inner")
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = L.Dense(4, activation="relu", name="shared")
    merged = L.Concatenate()([shared(a), shared(b), inner(a)])
    return Model([a, b], L.Dense(2)(L.Reshape((-1, 2))(merged)))


MODELS = {"cnn": _cnn, "functional": _functional}


def _saved(tmp_path, kind: str) -> dict[str, bytes]:
    tfjs.save_tfjs(MODELS[kind](), tmp_path / "original", shard_size_bytes=256)
    return {p.name: p.read_bytes() for p in sorted((tmp_path / "original").iterdir())}


def _mutated(files: dict[str, bytes], mutation: str, rng: np.random.Generator) -> dict[str, bytes]:
    files = dict(files)
    if mutation == "json":
        files["model.json"] = fuzzlib.dump_json(fuzzlib.mutate_json(json.loads(files["model.json"]), rng))
    elif mutation == "json_bytes":
        files["model.json"] = fuzzlib.mutate_bytes(files["model.json"], rng)
    else:
        shards = sorted(n for n in files if n.endswith(".bin"))
        name = shards[int(rng.integers(len(shards)))]
        files[name] = fuzzlib.mutate_bytes(files[name], rng)
    return files


def _inputs(model: Model) -> list[np.ndarray]:
    """Zeros of each input's declared shape, a free size at the size the importer checked the graph with."""
    return [np.zeros((1, *(tfjs.PROBE_FREE_SIZE if d is None else d for d in t.shape[1:])), np.float32)
            for t in model.inputs]


@pytest.mark.parametrize("mutation", ["json", "json_bytes", "shard_bytes"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_damaged_tfjs_model_loads_or_raises_tfjs_format_error(tmp_path, kind, mutation):
    files = _saved(tmp_path, kind)
    case_dir = tmp_path / "case"
    case_dir.mkdir()

    def write(rng):
        for old in case_dir.iterdir():
            old.unlink()
        for name, data in _mutated(files, mutation, rng).items():
            (case_dir / name).write_bytes(data)
        return case_dir

    def load(directory):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ignored training-only settings are reported as warnings
            model = tfjs.load_tfjs(directory)
        with np.errstate(all="ignore"), fuzzlib.after_load("predicting on zeros"):  # NaN weights may be
            inputs = _inputs(model)  # allowed; a model that cannot run is not
            model(inputs if len(inputs) > 1 else inputs[0])

    fuzzlib.check(fuzzlib.run(f"tfjs {kind} {mutation}", write, load, tfjs.TfjsFormatError))
