"""Fuzz a run's ``metrics.jsonl`` where it is read back: ``RunDir.read_metrics`` (plot.py, the dashboard)
must return one dict per line or raise ``ConfigError``; resuming (``MetricsLogger(resume_lines=k)``,
what ``train.py --resume`` does) must keep exactly the first k lines of whatever is on disk, damaged or
not, and append after them. Within fuzzlib's time and memory caps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl.experiment import ConfigError, MetricsLogger, RunDir
from tests.fuzz import fuzzlib


def _metrics_file(run: RunDir) -> bytes:
    """A real metrics.jsonl, written by MetricsLogger as a run writes it: episode ends and update records."""
    rng = np.random.default_rng(0)
    with MetricsLogger(run.metrics_path) as log:
        for i in range(1, 31):
            if i % 3:
                log.log({"env_steps": 64 * i, "episode": i, "episode_return": float(rng.normal(100, 20)),
                         "episode_length": int(rng.integers(10, 200))})
            else:
                log.log({"env_steps": 64 * i, "loss": float(rng.normal()), "entropy": 0.6, "lr": 3e-4,
                         "sps": 1234.5, "time_s": 0.25 * i, "approx_kl": float("nan") if i == 9 else 0.01})
    return run.metrics_path.read_bytes()


def _mutated(raw: bytes, mutation: str, rng: np.random.Generator) -> bytes:
    if mutation == "bytes":
        return fuzzlib.mutate_bytes(raw, rng)
    lines = raw.split(b"\n")
    i = int(rng.integers(len(lines) - 1))
    if lines[i]:
        record = json.loads(lines[i])
        lines[i] = fuzzlib.dump_json(fuzzlib.mutate_json(record, rng) if rng.random() < 0.8 else
                                     fuzzlib.hostile_json_values(rng)[int(rng.integers(33))])
    return b"\n".join(lines)


@pytest.mark.parametrize("mutation", ["records", "bytes"])
def test_damaged_metrics_read_back_or_raise_config_error(tmp_path, mutation):
    run = RunDir(tmp_path / "run")
    raw = _metrics_file(run)

    def write(rng):
        run.metrics_path.write_bytes(_mutated(raw, mutation, rng))
        return run

    def load(r):
        records = r.read_metrics()
        with fuzzlib.after_load("checking the records"):
            bad = [type(x).__name__ for x in records if not isinstance(x, dict)]
            assert not bad, f"read_metrics returned records that are not objects: {bad[:3]}"

    fuzzlib.check(fuzzlib.run(f"metrics read {mutation}", write, load, ConfigError))


def test_resume_keeps_the_checkpoints_lines_of_a_damaged_file(tmp_path):
    run = RunDir(tmp_path / "run")
    raw = _metrics_file(run)
    state = {}

    def write(rng):
        data = _mutated(raw, "bytes" if rng.random() < 0.5 else "records", rng)
        run.metrics_path.write_bytes(data)
        state["data"], state["keep"] = data, int(rng.integers(0, 35))
        return run

    def resume(r):
        with MetricsLogger(r.metrics_path, resume_lines=state["keep"]) as log:
            log.log({"env_steps": 1, "resumed": True})
        kept = state["data"].splitlines(keepends=True)[: state["keep"]]
        assert r.metrics_path.read_bytes() == b"".join(kept) + b'{"env_steps": 1, "resumed": true}\n'

    outcome = fuzzlib.run("metrics resume", write, resume, ())  # no error is allowed: resume takes any file
    fuzzlib.check(outcome, min_refused=0)
