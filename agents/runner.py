"""Running an experiment: the :class:`~agents.base.Hooks` an agent learns under, checkpoints,
resume, the final evaluation, and loading a trained agent back.

One training run, as ``scripts/train.py`` drives it::

    config  = load_toml(path) + --set overrides      # [experiment], [env], [agent] tables
    agent   = make_agent(config, where=path)         # validated: unknown keys name the valid ones
    runner  = Runner(run_dir, agent.experiment)      # metrics.jsonl, progress bar, Ctrl-C, checkpoints
    agent.learn(total_steps, runner)                 # the algorithm; it calls runner.log / save
    runner.save(agent)                               # the final "latest" (and "best" if it improved)
    run_dir.write_json("eval.json", evaluate(agent)) # deterministic episodes on a fresh env

A checkpoint is one safetensors file per tag (``checkpoints/latest.safetensors``,
``checkpoints/best.safetensors``): the agent's ``state_dict()`` is flattened with ``.`` between
nested keys, its arrays become tensors and everything else (counters, RNG states, the runner's own
bookkeeping) is JSON in the file's metadata, so one atomic rename replaces the whole checkpoint.
A ``.json`` sidecar repeats the scalars for people to read.

Why resume is exact: agents save only at safe points (between iterations), and everything that
decides the future is in the checkpoint: weights, optimizer moments, RNG states (the agent's own
streams and the default generator that dropout masks draw from), the vector env's state
(``get_state()`` when the env offers it) and the number of metrics lines written so far, so
``metrics.jsonl`` is cut back to that line and continues as an uninterrupted run would have. On the
GPU the default generator's device stream cannot be read back (see ``rl.random.Generator.get_state``):
a resumed GPU run is correct but its dropout masks differ from an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import signal
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, ExperimentConfig, get_agent_module, make_vec_env
from agents.episodes import first_episodes
from rl import backend, files
from rl import random as rl_random
from rl.errors import CheckpointError, NonFiniteLossError
from rl.experiment import (
    ConfigError,
    MetricsLogger,
    RunDir,
    apply_overrides,
    atomic_write_text,
    check_memory,
    dataclass_from_dict,
)
from rl.summaries import RunSummaries, write_layers_json

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "Runner",
    "WALL_CLOCK_KEYS",
    "check_config",
    "evaluate",
    "load_agent",
    "load_checkpoint",
    "make_agent",
    "resume_checkpoint",
    "save_checkpoint",
]

# Metrics keys that depend on the machine's speed; everything else is a function of config and seed.
WALL_CLOCK_KEYS = ("sps", "time_s")
_TABLES = ("experiment", "env", "agent")


# ------------------------------------------------------------------------------------- configs
def check_config(config: Mapping[str, Any], where: str = "config") -> tuple[ExperimentConfig, Any]:
    """Validate a config's tables (``[experiment]``, ``[env]``, ``[agent]``) without building anything.

    No device is chosen and no env or network is made, so a sweep can check every job's config on a
    machine that will not run them. Returns ``(experiment, the agent's Config)``. Unknown tables, unknown
    keys and unknown env keyword arguments raise :class:`~rl.experiment.ConfigError` naming ``where``, the
    table and the valid keys.
    """
    unknown = sorted(set(config) - set(_TABLES))
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {unknown}. Valid tables: {', '.join(_TABLES)}")
    for name in _TABLES:
        if not isinstance(config.get(name, {}), Mapping):
            raise ConfigError(f"{where}: {name!r} must be a table ([{name}] with keys), got "
                              f"{type(config[name]).__name__} {config[name]!r}")
    env_kwargs = dict(config.get("env", {}))
    experiment = dataclass_from_dict(
        ExperimentConfig, {**config.get("experiment", {}), "env": env_kwargs}, where=f"{where} [experiment]"
    )
    vector_cls = check_env_kwargs(experiment.env_id, env_kwargs, where=f"{where} [env]")
    module = get_agent_module(experiment.agent)
    agent_config = dataclass_from_dict(module.Config, config.get("agent", {}), where=f"{where} [agent]")
    if hasattr(vector_cls, "memory"):  # an env whose settings size its arrays (Snake's boards)
        num_envs = getattr(agent_config, "num_envs", 1)
        keys, nbytes = vector_cls.memory(num_envs, **env_kwargs)
        try:
            check_memory(keys, nbytes, f"{num_envs:,} worlds of {experiment.env_id}")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return experiment, agent_config


def make_agent(config: Mapping[str, Any], where: str = "config") -> Agent:
    """Build the agent a config describes (tables ``[experiment]``, ``[env]``, ``[agent]``).

    Every table is validated (:func:`check_config`) before anything is built, then the config's device
    is chosen. A value the env or network refuses raises :class:`~rl.experiment.ConfigError` too.
    """
    experiment, agent_config = check_config(config, where)
    module = get_agent_module(experiment.agent)
    backend.use_device(experiment.device)
    try:
        return module.Agent(agent_config, experiment)
    except ValueError as exc:  # a value the env or the network refuses (a board too small, a bad variant, ...)
        raise ConfigError(f"{where}: {exc}") from None


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any], where: str) -> Any:
    """Refuse keyword arguments the env's vector class does not take, listing the ones it does.

    Returns the vector class (None where the env registers no vector entry point by name).
    """
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415 - registers the ids

    try:
        spec = gym.spec(env_id)
    except Exception:
        raise ConfigError(f"{where}: unknown env_id {env_id!r}; registered: {', '.join(envs.ENV_IDS)}") from None
    entry = spec.vector_entry_point or spec.entry_point
    if not isinstance(entry, str):
        return None
    try:
        module_name, cls_name = entry.split(":")
        cls = getattr(__import__(module_name, fromlist=[cls_name]), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: env {env_id!r} cannot be loaded ({exc})") from None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls
    valid = sorted(n for n in params if n not in ("self", "num_envs", "render_mode", "xp"))
    for key in kwargs:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r} for {env_id}. Valid keys: {', '.join(valid)}")
    return cls


# ------------------------------------------------------------------------------------- checkpoints
_SEP = "."  # joins nested state keys; model weight names ("dense/kernel") keep their slashes


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or backend.is_device_array(value)


def _flatten(state: Mapping[str, Any], prefix: str, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
    for key, value in state.items():
        if _SEP in str(key):
            raise CheckpointError(f"state key {key!r} may not contain {_SEP!r} (it separates nested keys)")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, name + _SEP, arrays, scalars)
            if not value:
                scalars[name] = {}
        elif _is_array(value):
            arrays[name] = np.ascontiguousarray(backend.to_numpy(value))
        else:
            scalars[name] = value


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(_SEP)
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write a nested ``state`` (arrays anywhere, JSON-able scalars) as one safetensors file, atomically.

    Raises :class:`NonFiniteLossError` if a float array holds NaN or inf, so a diverged model never
    replaces a good checkpoint.
    """
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    _flatten(state, "", arrays, scalars)
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise NonFiniteLossError(f"refusing to checkpoint {path}: array {name!r} holds NaN or inf")
    metadata = {"scalars": json.dumps(scalars, sort_keys=True)}
    files.write_safetensors(path, arrays, metadata)  # atomic, with a CRC-32 per tensor
    atomic_write_text(Path(path).with_suffix(".json"), json.dumps(scalars, indent=2, sort_keys=True) + "\n")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read what :func:`save_checkpoint` wrote, as the nested dict (arrays as NumPy).

    The one checked reader (:func:`rl.files.read_safetensors`): a truncated or corrupt file, a flipped
    bit (CRC-32) or a NaN/inf array raises :class:`CheckpointError` naming the file and the tensor.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        arrays, metadata = files.read_safetensors(path, require_finite=True)
    except CheckpointError as exc:  # the message names the file and the tensor
        raise CheckpointError(f"not a readable checkpoint: {exc}") from None
    try:
        scalars = json.loads(metadata["scalars"])  # every save_checkpoint writes it, even when empty
        if not isinstance(scalars, dict):
            raise ValueError("the 'scalars' metadata is not an object")
        return _unflatten({**scalars, **arrays})
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:  # JSONDecodeError: a ValueError
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------------- the hooks
class Runner:
    """The :class:`~agents.base.Hooks` of one run: metrics, progress bar, Ctrl-C, checkpoints.

    Args:
        run_dir: where ``metrics.jsonl`` and ``checkpoints/`` go.
        experiment: the ``[experiment]`` table (budget, checkpoint period, target return).
        resume: the ``"runner"`` part of a checkpoint to continue from, or None for a fresh run.
        progress: show a tqdm bar with the live mean return. Its total is ``experiment.total_steps`` until the
            count passes it (an agent's unit is a rollout or an episode, so its last one may overshoot the
            budget), then it follows the count: the bar never shows more steps than its total.
        mean_window: how many recent episodes the live mean return averages.
    """

    def __init__(self, run_dir: RunDir, experiment: ExperimentConfig, resume: Mapping[str, Any] | None = None,
                 progress: bool = True, mean_window: int = 20):
        self.run_dir = run_dir
        self.experiment = experiment
        for folder in (run_dir.path, run_dir.checkpoints):  # what a save killed mid-write left behind
            files.remove_stale_temp_files(folder)
        self.resumed = resume is not None
        resume = dict(resume or {})
        self.metrics = MetricsLogger(run_dir.metrics_path, resume_lines=resume.get("metrics_lines"))
        self.recent_returns: deque[float] = deque(resume.get("recent_returns", []), maxlen=mean_window)
        self.episodes = int(resume.get("episodes", 0))
        self.best_mean_return = resume.get("best_mean_return")
        self.last_save_steps = int(resume.get("last_save_steps", 0))
        self.env_steps = int(resume.get("env_steps", 0))
        if "default_rng" in resume:
            # Draws without an explicit generator (dropout masks, say) continue where they stopped.
            rl_random.default_generator().set_state(json.loads(resume["default_rng"]))
        self._stop = False
        self.interrupted = False
        run_dir.write_status("running")  # the dashboard's status: this process, checked alive while it says so
        self._watch = Stopwatch(self.env_steps)
        self.summaries: RunSummaries | None = None  # histograms / TensorBoard, set up by watch(agent)
        self._bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            self._bar = tqdm(total=max(experiment.total_steps, self.env_steps), initial=self.env_steps, unit="step",
                             dynamic_ncols=True, desc=experiment.name)

    # ---- Hooks
    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` to metrics.jsonl; raise :class:`NonFiniteLossError` on a NaN/inf loss.

        Every metrics record goes through here. Records that are not episode ends get ``sps`` (env steps
        per second since the previous such record) and ``time_s`` (seconds since the runner started).
        """
        if "env_steps" not in record:
            raise ValueError(f"a metrics record needs 'env_steps', got keys {sorted(record)}")
        for key, value in record.items():
            if "loss" in key and isinstance(value, float) and not math.isfinite(value):
                latest = self.run_dir.checkpoints / "latest.safetensors"
                kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
                raise NonFiniteLossError(
                    f"{key} became {value} at env step {record['env_steps']}; training stopped and {kept} "
                    f"(not overwritten). Try a smaller learning rate or gradient clipping."
                )
        steps = int(record["env_steps"])
        if "episode_return" not in record:  # progress records (updates, periodic logs) carry the speed
            record = {**record, "sps": self._watch.lap(steps), "time_s": self._watch.elapsed()}
        self.metrics.log(record)
        if self.summaries is not None:
            self.summaries.on_record(record)
        if "episode_return" in record:
            self.recent_returns.append(float(record["episode_return"]))
            self.episodes += 1
            target = self.experiment.target_return
            if target is not None and len(self.recent_returns) == self.recent_returns.maxlen \
                    and self.mean_return >= target:
                self._stop = True
        if self._bar is not None:
            if steps > self._bar.total:
                self._bar.total = steps  # the last rollout went past the budget: 1001472 of 1000000 read as a bug
            self._bar.update(max(0, steps - self.env_steps))
            if self.recent_returns:
                self._bar.set_postfix(mean_return=f"{self.mean_return:.1f}", episodes=self.episodes, refresh=False)
        self.env_steps = max(self.env_steps, steps)

    def checkpoint_due(self, env_steps: int) -> bool:
        """True once ``checkpoint_every_steps`` env steps have passed since the last save."""
        return env_steps - self.last_save_steps >= self.experiment.checkpoint_every_steps

    def save(self, agent: Agent, tag: str = "latest") -> None:
        """Checkpoint ``agent`` as ``tag``; a "latest" save also writes "best" when the mean return improved."""
        self.last_save_steps = agent.env_steps
        improved = tag == "latest" and bool(self.recent_returns) and (
            self.best_mean_return is None or self.mean_return > self.best_mean_return
        )
        if improved:
            self.best_mean_return = self.mean_return
        state = {"agent": agent.state_dict(), "runner": self.state_dict()}
        save_checkpoint(self.run_dir.checkpoints / f"{tag}.safetensors", state)
        if improved:
            save_checkpoint(self.run_dir.checkpoints / "best.safetensors", state)

    def finish(self, agent: Agent) -> None:
        """The save after ``learn`` returns: the final "latest" (and "best" if it improved), or, after a
        stop request (Ctrl-C), a "latest" to resume from that leaves the run's outputs as they would be.

        A Ctrl-C save comes at an arbitrary point, so it neither moves the checkpoint schedule
        (``last_save_steps``) nor judges "best" there: after ``--resume`` the run saves and judges at
        the same steps as an uninterrupted one, and ``best.safetensors`` comes out the same.
        """
        if not self.interrupted:
            self.save(agent)
            return
        save_checkpoint(self.run_dir.checkpoints / "latest.safetensors",
                        {"agent": agent.state_dict(), "runner": self.state_dict()})

    @property
    def stop_requested(self) -> bool:
        """True after Ctrl-C or once ``target_return`` is reached: the agent saves and returns."""
        return self._stop

    # ---- the rest
    @property
    def mean_return(self) -> float:
        """Mean return of the last ``mean_window`` episodes (NaN before the first)."""
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    def request_stop(self) -> None:
        """Ask the agent to stop at its next safe point (what Ctrl-C does)."""
        self._stop = True
        self.interrupted = True

    def state_dict(self) -> dict[str, Any]:
        """The runner's bookkeeping (JSON-able) that a checkpoint's ``"runner"`` part holds for ``resume``."""
        return {
            "metrics_lines": self.metrics.lines, "recent_returns": list(self.recent_returns),
            "episodes": self.episodes, "best_mean_return": self.best_mean_return,
            "last_save_steps": self.last_save_steps, "env_steps": self.env_steps,
            "default_rng": json.dumps(rl_random.default_generator().get_state()),
        }

    @contextlib.contextmanager
    def sigint_stops(self) -> Iterator[None]:
        """Inside this block the first Ctrl-C asks for a clean stop; a second one interrupts at once."""
        def handler(signum: int, frame: Any) -> None:
            if self._stop and self.interrupted:
                raise KeyboardInterrupt
            self.request_stop()
            if self._bar is not None:
                self._bar.write("Ctrl-C: saving at the next safe point (press again to abort)")

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no signal handling
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def watch(self, agent: Agent) -> None:
        """Write what the dashboard shows besides metrics: the networks' layer tables (``layers.json``) and, as
        the experiment asks, weight/gradient histograms every ``histogram_every`` updates and TensorBoard
        event files (:mod:`rl.summaries`)."""
        write_layers_json(self.run_dir.path, agent.networks())
        exp = self.experiment
        if exp.histogram_every > 0 or exp.tensorboard:
            # On resume the updates the kept metrics lines hold set where the histogram schedule goes on, and
            # TensorBoard drops what was written after the checkpoint's last step (the agents log every record
            # before a save at the same step, so all that follows a checkpoint has a later step).
            updates = sum(map(RunSummaries.is_update, self.run_dir.read_metrics())) if self.resumed else None
            self.summaries = RunSummaries(self.run_dir.path, agent.networks, exp.histogram_every, exp.tensorboard,
                                          resume_updates=updates, resume_step=self.env_steps if self.resumed else None)

    def close(self) -> None:
        """Close the progress bar, the metrics file and the summary writers; mark a Ctrl-C'd run interrupted."""
        if self.interrupted:
            self.run_dir.write_status("interrupted")
        if self._bar is not None:
            self._bar.close()
        self.metrics.close()
        if self.summaries is not None:
            self.summaries.close()


# ------------------------------------------------------------------------------------- evaluation
def evaluate(agent: Agent, episodes: int = 20, seed: int | None = None, max_steps: int = 100_000) -> dict[str, Any]:
    """Play ``episodes`` deterministic episodes on a fresh vector env (one world per episode).

    The env is seeded with ``seed`` (default: the experiment seed + 1,000,000, so evaluation starts
    differ from training). Returns ``{"episodes", "mean_return", "std_return", "min_return",
    "max_return", "mean_length", "returns", "lengths", "env_steps"}``.
    """
    experiment = agent.experiment
    env = make_vec_env(experiment, episodes)
    try:
        played = first_episodes(env, lambda obs: agent.act(obs, deterministic=True),
                                seed=experiment.seed + 1_000_000 if seed is None else seed, max_steps=max_steps)
    finally:
        env.close()
    returns, lengths = played.returns, played.lengths
    return {
        "episodes": episodes, "mean_return": float(returns.mean()), "std_return": float(returns.std()),
        "min_return": float(returns.min()), "max_return": float(returns.max()),
        "mean_length": float(lengths.mean()), "returns": returns.tolist(), "lengths": lengths.tolist(),
        "env_steps": int(agent.env_steps), "unfinished": int((~played.finished).sum()),
    }


def resume_checkpoint(run: RunDir) -> dict[str, Any]:
    """The checkpoint ``train.py --resume`` continues from: ``run``'s "latest".

    Raises :class:`CheckpointError`: unreadable, or missing because the run stopped before its first
    save, which the message says, with the command that starts it again.
    """
    latest = run.checkpoints / "latest.safetensors"
    if not latest.exists():
        raise CheckpointError(
            f"{run.path} has no checkpoint to resume from: it stopped before its first save (a run saves every "
            f"experiment.checkpoint_every_steps env steps, and on Ctrl-C). Start it again: "
            f"python scripts/train.py {run.config_path}")
    return load_checkpoint(latest)


def load_agent(run_dir: str | Path, tag: str = "best", device: str | None = None) -> Agent:
    """The agent of a run directory with the weights of checkpoint ``tag`` ("best" falls back to "latest").

    ``device`` ("cpu", "gpu", "auto") replaces the run's own ``experiment.device``, so a run trained on a
    GPU loads on a machine without one. Raises :class:`CheckpointError` (a checkpoint missing or not
    fitting), ``rl.experiment.RunNotFoundError`` (a ``ConfigError``: ``run_dir`` missing or without
    ``config.toml``; nothing is created), ``ConfigError``, or ``rl.backend.BackendError`` when the run's
    device cannot be used here.
    """
    run = RunDir.open(run_dir)
    config = apply_overrides(run.read_config(), [] if device is None else [f"experiment.device={json.dumps(device)}"])
    agent = make_agent(config, where=str(run.config_path))
    path = run.checkpoints / f"{tag}.safetensors"
    if not path.exists() and tag == "best":
        path = run.checkpoints / "latest.safetensors"
    state = load_checkpoint(path)
    try:
        agent.load_state_dict(state["agent"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} does not fit the agent in {run.config_path}: {exc}") from None
    return agent


def strip_wall_clock(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without the machine-speed keys, for comparing two runs of the same config and seed."""
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_KEYS} for r in records]


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread when ``threadpoolctl`` is installed (else unchanged).

    The agents' matrices are tiny (256 x 64): BLAS threads cost more in synchronisation than they
    save, and on a busy machine they wait on each other for milliseconds per matmul. Scripts set
    ``OPENBLAS_NUM_THREADS=1`` before NumPy loads; this is for code that cannot (tests, notebooks).
    """
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - optional
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class Stopwatch:
    """Steps per second since the last :meth:`lap` (the runner's ``sps`` metric)."""

    def __init__(self, steps: int = 0):
        self._t, self._steps, self.start = time.perf_counter(), steps, time.perf_counter()

    def lap(self, steps: int) -> float:
        """Steps per second between the previous lap and now, when ``steps`` have been taken in all."""
        now = time.perf_counter()
        sps = (steps - self._steps) / max(now - self._t, 1e-9)
        self._t, self._steps = now, steps
        return sps

    def elapsed(self) -> float:
        """Seconds since the stopwatch was made (the ``time_s`` metric)."""
        return time.perf_counter() - self.start
