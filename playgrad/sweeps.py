"""Sweeps: many training jobs (grid points x seeds) on local processes or a Ray cluster, results gathered home.

One job is one ``python -m playgrad.cli.train`` process (what ``scripts/train.py`` runs). Wherever it runs,
it trains in a scratch folder of its own node, then its run directory is **delivered**: copied to
``--storage`` (a shared folder or any URI fsspec can write: ``s3://``, ``gs://``, ``file://``...) or, by
default, packed and sent back to the head, which unpacks it into the sweep directory. So the head sees every run
whichever node trained it, and the same code serves a laptop (processes) and a cluster (Ray tasks).

The sweep directory on the head::

    runs/sweep-<config>-<time>/
        sweep.json          what was asked: config text, seeds, grid points, overrides, storage, retries
        jobs.jsonl          one line per finished attempt (status, seed, grid point, node, wall time, where)
        summary.json        the last attempt of every job, for plot.py and people
        <grid point>/<run>/ the run directories (unless --storage put them elsewhere)

Failures: a job whose process fails (or whose node dies) is retried up to ``retries`` times; each failed
attempt's partial run directory is still delivered, with ``job.json`` saying ``"status": "failed"`` and
why, so nothing is lost. ``sweep.py --resume SWEEP_DIR`` reads ``sweep.json`` and ``jobs.jsonl`` and runs
only the jobs with no finished attempt.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.runner import check_config
from rl.experiment import ConfigError, apply_overrides, atomic_write_text, load_toml

__all__ = ["JobResult", "JobSpec", "Storage", "SweepError", "config_errors", "connect_ray", "deliver_archive",
           "finished_jobs", "group_jobs", "run_job", "run_jobs", "run_unit", "stackable"]

ROOT = Path(__file__).resolve().parent.parent
# `python scripts/train.py`, as a module: it runs wherever playgrad is installed (a Ray node, a wheel), not only
# beside this checkout's scripts/ folder.
TRAIN = [sys.executable, "-m", "playgrad.cli.train"]
STDERR_TAIL_CHARS = 2000  # what job.json keeps of a failed job's error output


class SweepError(RuntimeError):
    """A sweep cannot start or continue (unwritable storage, unreachable cluster, a broken sweep folder)."""


@dataclass(frozen=True)
class JobSpec:
    """One training job: everything a node needs, with no file of the head's (the config travels as text)."""

    config_text: str  # the experiment TOML, as the user's file had it
    config_name: str  # its file name, for messages and the scratch copy
    seed: int
    overrides: tuple[str, ...]  # --set overrides: the sweep's fixed ones, then the grid point's
    point: str  # the grid point's folder name ("config" when there is no grid)

    @property
    def key(self) -> str:
        """Identifies the job across attempts and resumes: grid point and seed."""
        return f"{self.point}/s{self.seed}"


@dataclass
class JobResult:
    """What one attempt of a job reports back (``archive`` only when the head stores the runs)."""

    key: str
    seed: int
    overrides: list[str]
    point: str
    attempt: int
    status: str  # "finished" (evaluated), "stopped" (asked to stop early), "failed" (an error) or "lost" (node died)
    returncode: int | None
    wall_s: float
    node: str
    run_name: str | None = None
    mean_return: float | None = None
    error: str | None = None
    location: str | None = None  # where the run directory now is (a path under storage, or the head's)
    archive: bytes | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The JSON-able line for ``jobs.jsonl`` / ``summary.json`` (without the archive)."""
        out = asdict(self)
        out.pop("archive")
        return out


def config_errors(config: str, overrides: list[str], points: list[list[str]]) -> list[str]:
    """The config errors of the sweep's jobs, each once: ``config`` with ``overrides`` and each grid point,
    checked as train.py will (unknown tables and keys, wrong types, env options), before any job starts.

    A typo in a ``--grid`` or ``--set`` key used to run every job and print the same error for each. An error
    that only some grid points have names them. The seed is left out: ``--seeds`` are always valid ints.
    """
    try:
        base = load_toml(config)
    except ConfigError as exc:
        return [str(exc)]
    failing: dict[str, list[str]] = {}
    for point in points:
        try:
            check_config(apply_overrides(base, [*overrides, *point]), where=config)
        except ConfigError as exc:
            failing.setdefault(str(exc), []).append(" ".join(point))
    lines = []
    for message, where in failing.items():
        only = f" (grid point{'s' if len(where) > 1 else ''} {'; '.join(where)})" if len(where) < len(points) else ""
        lines.append(f"{message}{only}")
    return lines


# ------------------------------------------------------------------------------------------------ storage
class Storage:
    """Where run directories are delivered: a local folder or an fsspec URI (``s3://bucket/sweeps``...).

    Checked before any job starts (:meth:`check`): a folder that cannot be made or written, an unknown
    protocol or an unreachable bucket is one :class:`SweepError`, not a sweep that fails job by job.
    """

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.is_local = "://" not in url or url.startswith("file://")

    def _fs(self) -> tuple[Any, str]:
        try:
            import fsspec  # noqa: PLC0415 - optional: only --storage URIs need it
        except ImportError:
            raise SweepError("--storage with a URI needs fsspec: pip install 'playgrad[ray]'") from None
        try:
            return fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:  # unknown protocol, or its driver (s3fs, gcsfs) missing
            raise SweepError(f"--storage {self.url}: {exc}") from None

    def check(self) -> None:
        """Write and delete a probe file under the storage root, or raise SweepError saying why not."""
        probe = f"{self.url}/.playgrad-probe-{uuid.uuid4().hex}"
        try:
            if self.is_local:
                root = Path(self.url.removeprefix("file://"))
                root.mkdir(parents=True, exist_ok=True)
                path = root / Path(probe).name
                path.write_text("ok")
                path.unlink()
            else:
                fs, path = self._fs()
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                fs.pipe_file(path, b"ok")
                fs.rm_file(path)
        except SweepError:
            raise
        except Exception as exc:  # noqa: BLE001 - any filesystem's refusal: say which and why, start nothing
            raise SweepError(f"--storage {self.url} cannot be written: {type(exc).__name__}: {exc}") from None

    def put(self, run_dir: Path, dest: str) -> str:
        """Copy ``run_dir`` to ``<storage>/<dest>``; returns where it went."""
        target = f"{self.url}/{dest}"
        if self.is_local:
            path = Path(target.removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(run_dir, path, dirs_exist_ok=True)
            return str(path)
        fs, path = self._fs()
        fs.put(str(run_dir), path, recursive=True)
        return target


def _pack(run_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name)
    return buffer.getvalue()


def deliver_archive(archive: bytes, into: Path) -> Path:
    """Unpack a job's archived run directory into ``into`` (the head's grid-point folder); returns the run path.

    Only plain files and folders inside ``into`` are accepted (``tarfile``'s "data" filter), so an archive
    cannot write elsewhere or leave links behind.
    """
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        if len(names) != 1:
            raise SweepError(f"a job's archive holds {sorted(names)}, not one run directory")
        tar.extractall(into, filter="data")
    return into / names.pop()


# ------------------------------------------------------------------------------------------------ one job
def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-5:])[-STDERR_TAIL_CHARS:]


def _train(cmd: list[str], runs_dir: Path, watch: Callable[[dict[str, Any]], bool] | None,
           timeout_s: float | None) -> tuple[int | None, str, bool]:
    """Run train.py; feed ``watch`` each new metrics record as it is written. Returns (exit code, stderr,
    whether ``watch`` asked it to stop).

    ``watch`` returning True stops the run the way Ctrl-C does (it saves a checkpoint and exits without an
    evaluation), which is how a tuner prunes a trial. The signal may land after training ended (the watcher
    reads the metrics a moment late): the run then exits 130 during its evaluation, still a requested stop.
    """
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=ROOT)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        offset, pending, stopping = 0, "", False
        while proc.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                err.seek(0)
                return None, f"timed out after {timeout_s} s\n{err.read()}", stopping
            time.sleep(0.2)
            if watch is None or stopping:
                continue
            metrics = next(runs_dir.glob("*/metrics.jsonl"), None) if runs_dir.exists() else None
            if metrics is None:
                continue
            with metrics.open("rb") as f:  # only what was appended since the last look; a torn line waits
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            pending += chunk.decode(errors="replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                with contextlib.suppress(json.JSONDecodeError):
                    if watch(json.loads(line)):
                        proc.send_signal(signal.SIGINT)
                        stopping = True
                        break
        err.seek(0)
        return proc.returncode, err.read(), stopping


def run_job(spec: JobSpec, attempt: int, storage_url: str | None, sweep_name: str,
            watch: Callable[[dict[str, Any]], bool] | None = None, timeout_s: float | None = None) -> JobResult:
    """Run one attempt of ``spec`` in a scratch folder of this node and deliver its run directory.

    Delivery: to ``<storage_url>/<sweep_name>/<point>/<run>`` when a storage is given, else packed into the
    result's ``archive`` for the head. The run directory gets ``job.json`` (status, attempt, node, exit code,
    the error's last lines) before it leaves, so a failed attempt's partial results say what they are.
    ``watch`` (see :func:`_train`) sees each metrics record while the job runs and may stop it: the attempt
    is then "stopped" (a tuner's pruned trial), with its partial run delivered all the same.
    """
    node = _node_name()
    scratch = Path(tempfile.mkdtemp(prefix="playgrad-job-"))
    try:
        returncode, stderr, asked_to_stop, wall_s, runs = _train_in(scratch, spec, ["--seed", str(spec.seed)],
                                                                     watch, timeout_s)
        return _deliver(spec, attempt, runs[-1] if runs else None, returncode, stderr, asked_to_stop, wall_s, node,
                        storage_url, sweep_name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_in(scratch: Path, spec: JobSpec, seed_args: list[str], watch: Callable[[dict[str, Any]], bool] | None,
              timeout_s: float | None) -> tuple[int | None, str, bool, float, list[Path]]:
    """Write ``spec``'s config into ``scratch`` and train it there with ``seed_args`` (``--seed S`` or
    ``--seeds A,B``): (returncode, stderr, asked_to_stop, wall seconds, the run directories written, sorted)."""
    config_path = scratch / Path(spec.config_name).name
    config_path.write_text(spec.config_text)
    cmd = [*TRAIN, str(config_path), *seed_args, "--runs-dir", str(scratch / "runs"), "--no-progress"]
    for override in spec.overrides:
        cmd += ["--set", override]
    start = time.perf_counter()
    returncode, stderr, asked_to_stop = _train(cmd, scratch / "runs", watch, timeout_s)
    wall_s = time.perf_counter() - start
    runs = sorted((scratch / "runs").glob("*")) if (scratch / "runs").exists() else []
    return returncode, stderr, asked_to_stop, wall_s, runs


def _node_name() -> str:
    node = socket.gethostname()
    with contextlib.suppress(ImportError):  # a job runs the same without Ray installed
        import ray  # noqa: PLC0415 - only to name the Ray node when running as a Ray task

        if ray.is_initialized():
            node = f"{node}/{ray.get_runtime_context().get_node_id()[:12]}"
    return node


def _deliver(spec: JobSpec, attempt: int, run_dir: Path | None, returncode: int | None, stderr: str,
             asked_to_stop: bool, wall_s: float, node: str, storage_url: str | None, sweep_name: str) -> JobResult:
    """The result of one attempt of ``spec`` whose run directory (if any) is ``run_dir``: its status, and the run
    delivered (``job.json`` written into it first)."""
    eval_path = run_dir / "eval.json" if run_dir else None
    finished = returncode == 0 and eval_path is not None and eval_path.exists()
    stopped = asked_to_stop and not finished  # stopped on request (a pruned trial), whenever the signal landed
    status = "finished" if finished else "stopped" if stopped else "failed"
    result = JobResult(key=spec.key, seed=spec.seed, overrides=list(spec.overrides), point=spec.point,
                       attempt=attempt, status=status, returncode=returncode, wall_s=wall_s, node=node,
                       run_name=run_dir.name if run_dir else None)
    if finished:
        result.mean_return = float(json.loads(eval_path.read_text())["mean_return"])
    elif not stopped:
        result.error = _tail(stderr) or f"exit code {returncode} and no evaluation"
    if run_dir is not None:
        atomic_write_text(run_dir / "job.json", json.dumps(result.record(), indent=2) + "\n")
        if storage_url:
            result.location = Storage(storage_url).put(run_dir, f"{sweep_name}/{spec.point}/{run_dir.name}")
        else:
            result.archive = _pack(run_dir)
    return result


def _run_seed(run_dir: Path) -> int | None:
    """The seed a run directory's config.toml names (None if it has none yet)."""
    import tomllib  # noqa: PLC0415

    try:
        return int(tomllib.loads((run_dir / "config.toml").read_text())["experiment"]["seed"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None


def stackable(spec: JobSpec) -> bool:
    """Whether ``spec``'s config has a batched multi-seed path (``train.py --seeds``, :mod:`agents.ppo_seeds`):
    PPO without ``target_kl``, judged from the config alone (an unstackable env then trains seed after seed
    in the job's one process, which is still correct)."""
    import tomllib  # noqa: PLC0415

    try:
        config = apply_overrides(tomllib.loads(spec.config_text), list(spec.overrides))
    except (tomllib.TOMLDecodeError, ConfigError):
        return False
    return config.get("experiment", {}).get("agent", "ppo") == "ppo" and \
        config.get("agent", {}).get("target_kl") is None


def group_jobs(specs: Iterable[JobSpec], stack_seeds: bool = True, workers: int = 1) -> list[list[JobSpec]]:
    """The units the sweep runs: with ``stack_seeds``, the seeds of one grid point whose config is
    :func:`stackable` form one unit (one ``train.py --seeds`` process); every other job is a unit of its own.

    With fewer units than ``workers`` (one grid point's 8 seeds on 2 processes), each such unit is split into
    nearly equal runs of consecutive seeds, as few per point as give every worker a unit, so that the seeds
    use every worker and still train as stacks. This changes no seed's numbers: a seed trains the same in
    any stack (:mod:`agents.ppo_seeds`).
    """
    units: list[list[JobSpec]] = []
    by_point: dict[tuple[str, tuple[str, ...]], list[JobSpec]] = {}
    for spec in specs:
        if stack_seeds and stackable(spec):
            unit = by_point.get((spec.point, spec.overrides))
            if unit is None:
                unit = by_point[(spec.point, spec.overrides)] = []
                units.append(unit)
            unit.append(spec)
        else:
            units.append([spec])
    stacks = sum(len(unit) > 1 for unit in units)
    if not stacks or len(units) >= workers:
        return units
    parts = -(-(workers - (len(units) - stacks)) // stacks)  # per stack, so that the units fill the workers
    split: list[list[JobSpec]] = []
    for unit in units:
        count = min(parts, len(unit))
        size, extra = divmod(len(unit), count)
        start = 0
        for i in range(count):
            end = start + size + (i < extra)
            split.append(unit[start:end])
            start = end
    return split


def run_unit(unit: list[JobSpec], attempt: int, storage_url: str | None, sweep_name: str) -> list[JobResult]:
    """Run one unit of :func:`group_jobs`: one job as :func:`run_job`, or the seeds of one grid point in one
    ``train.py --seeds`` process (they share its wall time), each seed's run delivered as its own job's."""
    if len(unit) == 1:
        return [run_job(unit[0], attempt, storage_url, sweep_name)]
    node = _node_name()
    scratch = Path(tempfile.mkdtemp(prefix="playgrad-job-"))
    try:
        seeds = ["--seeds", ",".join(str(s.seed) for s in unit)]
        returncode, stderr, _, wall_s, runs = _train_in(scratch, unit[0], seeds, None, None)
        results = []
        by_seed = {_run_seed(run): run for run in runs}
        for spec in unit:
            results.append(_deliver(spec, attempt, by_seed.get(spec.seed), returncode, stderr, False, wall_s,
                                    node, storage_url, sweep_name))
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ executors
def connect_ray(address: str) -> Any:
    """``ray.init`` on ``address`` ("auto", "local" for a fresh one-machine instance, or HOST:PORT).

    An address that does not answer is one :class:`SweepError` after a 5-second TCP check, instead of
    Ray's minute of retries.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a user's sweep
    try:
        import ray  # noqa: PLC0415 - optional extra
    except ImportError:
        raise SweepError("--ray needs Ray: pip install 'playgrad[ray]'") from None
    if address not in ("auto", "local"):
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as exc:
            raise SweepError(f"--ray {address}: no Ray cluster answers there ({exc}); start one with "
                             "`ray start --head` and pass the address it prints") from None
    try:
        ray.init(address=None if address == "local" else address, log_to_driver=False,
                 ignore_reinit_error=True, **({"include_dashboard": False} if address == "local" else {}))
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SweepError(f"--ray {address}: {exc}".splitlines()[0]) from None
    return ray


def run_jobs(specs: Iterable[JobSpec], *, storage_url: str | None, sweep_name: str, retries: int, workers: int = 2,
             ray_module: Any = None, on_result: Callable[[JobResult], None] = print,
             stack_seeds: bool = True) -> list[JobResult]:
    """Run every job (with up to ``retries`` extra attempts each) and call ``on_result`` on every attempt.

    With ``stack_seeds`` the seeds of one grid point run as one batched process where the agent has that path,
    or as a few such processes when there are more workers than grid points (:func:`group_jobs`; Ray: the
    cluster's CPUs); their results still come one per seed, and a retry reruns the seeds that failed.
    Local: ``workers`` threads each wait on one training process. Ray: one task per attempt (a CPU each);
    a task whose node died comes back as a "lost" attempt and is retried like a failed one. Returns the
    last attempt of every job.
    """
    specs = list(specs)
    last: dict[str, JobResult] = {}

    def settle(unit: list[JobSpec], results: list[JobResult]) -> list[JobSpec]:
        """Record a unit's attempt; returns its jobs that should run again."""
        again = []
        for spec, result in zip(unit, results):
            on_result(result)
            last[spec.key] = result
            if result.status in ("failed", "lost") and result.attempt <= retries:
                again.append(spec)
        return again

    if ray_module is not None:
        ray = ray_module
        units = group_jobs(specs, stack_seeds, workers=int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=0)(run_unit)
        pending = {task.remote(u, 1, storage_url, sweep_name): (u, 1) for u in units}
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            unit, attempt = pending.pop(done)
            try:
                results = ray.get(done)
            except Exception as exc:  # noqa: BLE001 - a worker or node died: record it and retry the jobs
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                results = [JobResult(key=s.key, seed=s.seed, overrides=list(s.overrides), point=s.point,
                                     attempt=attempt, status="lost", returncode=None, wall_s=0.0, node="?",
                                     error=error) for s in unit]
            again = settle(unit, results)
            if again:
                pending[task.remote(again, attempt + 1, storage_url, sweep_name)] = (again, attempt + 1)
        return [last[s.key] for s in specs]

    units = group_jobs(specs, stack_seeds, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads only wait on training processes
        futures = {pool.submit(run_unit, u, 1, storage_url, sweep_name): (u, 1) for u in units}
        while futures:
            future = next(as_completed(futures))
            unit, attempt = futures.pop(future)
            again = settle(unit, future.result())
            if again:
                futures[pool.submit(run_unit, again, attempt + 1, storage_url, sweep_name)] = (again, attempt + 1)
    return [last[s.key] for s in specs]


def finished_jobs(jobs_log: Path) -> set[str]:
    """The keys of jobs with a finished attempt in a sweep's ``jobs.jsonl`` (a torn last line is ignored)."""
    done: set[str] = set()
    if not jobs_log.exists():
        return done
    for line in jobs_log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the head was killed while appending: that attempt counts as not recorded
        if isinstance(record, dict) and record.get("status") == "finished":
            done.add(str(record.get("key")))
    return done
