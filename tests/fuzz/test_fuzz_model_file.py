"""Fuzz ``rl.checkpoint.load_model`` on what a model file says, not on its bytes: tests/rl/test_checkpoint_fuzz.py
damages bytes and headers, which the CRCs catch; here a real ``Model.save`` file is re-written with
``write_safetensors`` (fresh CRCs, so every file-layer check passes) after changing its architecture,
optimizer or compile metadata (JSON values) or its arrays (shape, dtype, keys). Each case must give a
model that predicts on zeros, or a CheckpointError, within fuzzlib's time and memory caps."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rl import layers, models
from rl import random as rl_random
from rl.checkpoint import load_model, read_safetensors, write_safetensors
from rl.errors import CheckpointError
from tests.fuzz import fuzzlib
from tests.fuzz.test_fuzz_run_checkpoint import _changed_array


def _model_file(tmp_path):
    rl_random.seed(0)
    inp = layers.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    model = models.Model(inp, layers.Dense(2)(layers.Dropout(0.1)(x)))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    data = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype(np.float32)
    model.fit(data, data[:, 0, 0, :], batch_size=4, epochs=1, verbose=0, seed=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    return path


def _mutated(arrays: dict, metadata: dict, mutation: str, rng: np.random.Generator) -> tuple[dict, dict]:
    arrays, metadata = dict(arrays), {k: v for k, v in metadata.items() if k != "crc32"}
    if mutation == "metadata":
        key = sorted(metadata)[int(rng.integers(len(metadata)))]
        try:
            metadata[key] = fuzzlib.dump_json(fuzzlib.mutate_json(json.loads(metadata[key]), rng)).decode()
        except ValueError:  # a plain string value (a format version, say)
            metadata[key] = ["", "2", "x" * 300, "null", "[]"][int(rng.integers(5))]
    else:
        name = sorted(arrays)[int(rng.integers(len(arrays)))]
        choice = int(rng.integers(3))
        if choice == 0:
            arrays[name] = _changed_array(arrays[name], rng)
        elif choice == 1:
            del arrays[name]
        else:
            arrays[name + "_x"] = arrays.pop(name)
    return arrays, metadata


@pytest.mark.parametrize("mutation", ["metadata", "arrays"])
def test_model_file_with_changed_content_loads_and_predicts_or_raises(tmp_path, mutation):
    path = _model_file(tmp_path)
    arrays, metadata = read_safetensors(path)
    case_path = tmp_path / "case.safetensors"

    def write(rng):
        write_safetensors(case_path, *_mutated(arrays, metadata, mutation, rng))
        return case_path

    def load(p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_model(p)
        with np.errstate(all="ignore"), fuzzlib.after_load("predicting on zeros"):
            model.predict(np.zeros((1, *model.inputs[0].shape[1:]), np.float32))

    fuzzlib.check(fuzzlib.run(f"model file {mutation}", write, load, CheckpointError))
