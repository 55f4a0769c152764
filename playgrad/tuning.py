"""Hyperparameter search with Optuna (the RL Zoo's choice): search spaces, pruning on the runs' own curves.

A trial is one training job (:func:`playgrad.sweeps.run_job`: a ``train.py`` process in a scratch folder,
its run directory delivered home), with ``--set`` overrides sampled by Optuna's TPE. While it trains, the
mean return of its last 20 episodes (the number the progress bar and the dashboard show) is reported
every ``report_every`` env steps; the pruner compares it with the other trials at the same step and can
stop it early, the way Ctrl-C stops a run. A finished trial's value is its final deterministic evaluation
(``eval.json``'s mean return), the same number ``sweep.py`` tables.

The study lives on the machine that runs ``tune.py`` (SQLite by default, so a killed search resumes);
on Ray, trials run on any node and report to an actor on this machine that owns the study.
"""

from __future__ import annotations

import math
import re
import threading
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playgrad.sweeps import JobResult, JobSpec, SweepError, run_job

__all__ = ["Oracle", "SpaceError", "parse_space", "run_study"]

_FORMS = "loguniform(low,high), uniform(low,high), int(low,high), logint(low,high), categorical(v1,v2,...)"
_SPEC = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*([a-z]+)\s*\((.*)\)\s*$")


class SpaceError(SweepError):
    """A --space entry is malformed; the message names it and the valid forms."""


@dataclass(frozen=True)
class Dimension:
    """One searched config key and its distribution."""

    key: str  # "agent.lr"
    kind: str  # loguniform | uniform | int | logint | categorical
    args: tuple[Any, ...]

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        import optuna  # noqa: PLC0415 - optional extra

        d = optuna.distributions
        if self.kind in ("loguniform", "uniform"):
            return d.FloatDistribution(*self.args, log=self.kind == "loguniform")
        if self.kind in ("int", "logint"):
            return d.IntDistribution(*self.args, log=self.kind == "logint")
        return d.CategoricalDistribution(self.args)


def _value(text: str, spec: str) -> Any:
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if re.fullmatch(r"[\w.\-]+", text.strip()):
            return text.strip()  # a bare word, as --set takes it
        raise SpaceError(f"--space {spec!r}: {text.strip()!r} is not a value (quote strings)") from None


def parse_space(specs: list[str]) -> list[Dimension]:
    """``["agent.lr=loguniform(1e-4,3e-3)", "agent.num_epochs=int(3,20)"]`` -> dimensions, or SpaceError.

    Bounds must be numbers with low < high (low > 0 for the log forms, integers for int/logint); a
    categorical needs at least two values; each key appears once.
    """
    if not specs:
        raise SpaceError(f"give at least one --space KEY=FORM, e.g. 'agent.lr=loguniform(1e-4,3e-3)'; forms: {_FORMS}")
    dims: list[Dimension] = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            raise SpaceError(f"--space {spec!r} must look like table.key=form(...); forms: {_FORMS}")
        key, kind, inner = match.groups()
        if "." not in key:
            raise SpaceError(f"--space {spec!r}: name the table too, e.g. agent.{key}")
        values = [_value(part, spec) for part in inner.split(",")] if inner.strip() else []
        if kind == "categorical":
            if len(values) < 2:
                raise SpaceError(f"--space {spec!r}: a categorical needs at least two values")
        elif kind in ("loguniform", "uniform", "int", "logint"):
            if len(values) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise SpaceError(f"--space {spec!r}: {kind} takes two numbers, low and high")
            low, high = values
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise SpaceError(f"--space {spec!r}: needs finite low < high")
            if kind.startswith("log") and low <= 0:
                raise SpaceError(f"--space {spec!r}: a log scale needs low > 0")
            if kind in ("int", "logint"):
                if not all(isinstance(v, int) for v in values):
                    raise SpaceError(f"--space {spec!r}: {kind} bounds must be integers")
            else:
                values = [float(v) for v in values]
        else:
            raise SpaceError(f"--space {spec!r}: unknown form {kind!r}; forms: {_FORMS}")
        if any(d.key == key for d in dims):
            raise SpaceError(f"--space names {key} twice")
        dims.append(Dimension(key, kind, tuple(values)))
    return dims


def overrides_of(params: dict[str, Any]) -> list[str]:
    """Sampled parameters as train.py ``--set`` overrides (values written as TOML)."""
    def toml(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    return [f"{key}={toml(value)}" for key, value in params.items()]


class Oracle:
    """Owns the Optuna study: hands out trials, takes intermediate values and results.

    Used directly (with a lock) by local threads, and as a Ray actor on the head by trials on any node.
    ``startup_trials`` are sampled at random and never pruned; the median pruner judges no trial before
    ``warmup_steps`` env steps.
    """

    def __init__(self, storage: str, study_name: str, dims: list[Dimension], pruner: str, seed: int,
                 startup_trials: int, warmup_steps: int):
        import optuna  # noqa: PLC0415 - optional extra

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruners = {
            # no verdict on a trial's first reports: early curves of good settings are noisy
            "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                                          n_warmup_steps=warmup_steps),
            "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
            "none": lambda: optuna.pruners.NopPruner(),
        }
        self._optuna = optuna
        self._lock = threading.Lock()
        self._dims = {d.key: d.distribution() for d in dims}
        self.study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                         load_if_exists=True, pruner=pruners[pruner](),
                                         sampler=optuna.samplers.TPESampler(seed=seed,
                                                                            n_startup_trials=startup_trials))
        self._running: dict[int, Any] = {}

    def counts(self) -> dict[str, int]:
        """How many trials the study holds in each state (COMPLETE, PRUNED, FAIL, RUNNING)."""
        out: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            out[t.state.name] = out.get(t.state.name, 0) + 1
        return out

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial's number and sampled parameters."""
        with self._lock:
            trial = self.study.ask(self._dims)
            self._running[trial.number] = trial
            return trial.number, dict(trial.params)

    def report(self, number: int, step: int, value: float) -> bool:
        """Record an intermediate value; True when the pruner says the trial should stop."""
        with self._lock:
            trial = self._running[number]
            trial.report(value, step)
            return bool(trial.should_prune())

    def tell(self, number: int, state: str, value: float | None = None) -> None:
        """Close a trial as "complete" (with its value), "pruned" or "fail"."""
        states = {"complete": self._optuna.trial.TrialState.COMPLETE, "pruned": self._optuna.trial.TrialState.PRUNED,
                  "fail": self._optuna.trial.TrialState.FAIL}
        with self._lock:
            self.study.tell(self._running.pop(number), value if state == "complete" else None, state=states[state])

    def summary(self) -> list[dict[str, Any]]:
        """Every trial: number, state, value, parameters, last reported step and the value reported there."""
        return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                 "last_step": t.last_step,
                 "last_value": None if t.last_step is None else t.intermediate_values[t.last_step]}
                for t in self.study.get_trials(deepcopy=False)]


class _Reporter:
    """Turns a trial's metrics records into pruning reports every ``every`` env steps."""

    def __init__(self, report: Callable[[int, float], bool], every: int, window: int = 20):
        self.report, self.every = report, every
        self.returns: deque[float] = deque(maxlen=window)
        self.next_step = every

    def __call__(self, record: dict[str, Any]) -> bool:
        if "episode_return" in record:
            self.returns.append(float(record["episode_return"]))
        steps = int(record.get("env_steps", 0))
        if steps < self.next_step or not self.returns:
            return False
        # Reported at the boundary crossed, not at the record's own count: a rollout ends at 16,128 in one trial
        # and 16,000 in another, and the pruner compares trials only at equal steps.
        boundary = steps // self.every * self.every
        self.next_step = boundary + self.every
        return self.report(boundary, sum(self.returns) / len(self.returns))


def run_trial(oracle: Any, number: int, params: dict[str, Any], base: JobSpec, every: int, storage_url: str | None,
              study_dir_name: str, remote: bool) -> JobResult:
    """Train trial ``number`` with ``params``; report while it trains, then tell the oracle how it ended."""
    def report(step: int, value: float) -> bool:
        if remote:
            import ray  # noqa: PLC0415 - a Ray task talks to the oracle actor on the head

            return bool(ray.get(oracle.report.remote(number, step, value)))
        return oracle.report(number, step, value)

    spec = JobSpec(base.config_text, base.config_name, base.seed, (*base.overrides, *overrides_of(params)),
                   f"trial{number:04d}")
    result = run_job(spec, 1, storage_url, study_dir_name, watch=_Reporter(report, every))
    if result.status == "finished":
        outcome = ("complete", result.mean_return)
    elif result.status == "stopped":
        outcome = ("pruned", None)
    else:
        outcome = ("fail", None)
    if remote:
        import ray  # noqa: PLC0415

        ray.get(oracle.tell.remote(number, *outcome))
    else:
        oracle.tell(number, *outcome)
    return result


def run_study(oracle: Any, trials: int, base: JobSpec, every: int, *, parallel: int, storage_url: str | None,
              study_dir_name: str, ray_module: Any = None,
              on_result: Callable[[int, dict[str, Any], JobResult], None] = print) -> None:
    """Run trials until the study holds ``trials`` finished ones (complete, pruned or failed), ``parallel`` at once."""
    remote = ray_module is not None

    def call(method: str, *args: Any) -> Any:
        return ray_module.get(getattr(oracle, method).remote(*args)) if remote else getattr(oracle, method)(*args)

    done = sum(v for k, v in call("counts").items() if k in ("COMPLETE", "PRUNED", "FAIL"))
    todo = max(0, trials - done)
    if remote:
        task = ray_module.remote(num_cpus=1, max_retries=0)(run_trial)
        pending: dict[Any, tuple[int, dict[str, Any]]] = {}
        while todo or pending:
            while todo and len(pending) < parallel:
                number, params = call("ask")
                pending[task.remote(oracle, number, params, base, every, storage_url, study_dir_name, True)] = \
                    (number, params)
                todo -= 1
            (ready,), _ = ray_module.wait(list(pending), num_returns=1)
            number, params = pending.pop(ready)
            try:
                result = ray_module.get(ready)
            except Exception as exc:  # noqa: BLE001 - the worker or its node died: the trial failed, the study goes on
                call("tell", number, "fail")
                result = JobResult(key=f"trial{number:04d}", seed=base.seed, overrides=overrides_of(params),
                                   point=f"trial{number:04d}", attempt=1, status="lost", returncode=None,
                                   wall_s=0.0, node="?", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            on_result(number, params, result)
        return

    from concurrent.futures import ThreadPoolExecutor, as_completed  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures: dict[Any, tuple[int, dict[str, Any]]] = {}
        while todo or futures:
            while todo and len(futures) < parallel:
                number, params = oracle.ask()
                futures[pool.submit(run_trial, oracle, number, params, base, every, storage_url, study_dir_name,
                                    False)] = (number, params)
                todo -= 1
            ready = next(as_completed(futures))
            number, params = futures.pop(ready)
            on_result(number, params, ready.result())
