"""What a run writes for the dashboard and for TensorBoard besides ``metrics.jsonl``: weight and gradient
histograms, the networks' layer tables, and TensorBoard event files; and :class:`MetricsFile`, the
incremental reader of ``metrics.jsonl`` that the dashboard (``playgrad.dashboard``) and ``rl.vis`` share.

Files in the run directory:

* ``histograms.jsonl``: one line per snapshot, ``{"step": env_steps, "tensors": {"<network>/<layer>/<weight>":
  {"w": summary, "g": summary}}}`` where a summary is :func:`summarize`'s dict (30 equal-width bins between
  the tensor's min and max plus min, max, mean, std, count, zeros, NaNs: a few hundred bytes per tensor, so
  a snapshot of a 10k-parameter agent is ~5 KB). Each line is written with one ``write`` and flushed, so a
  reader sees whole lines or a half line it waits on (the dashboard reads it incrementally).
* ``layers.json``: ``{"networks": [model_table(net), ...]}``, the layer tables (name, type, output shape,
  parameter count) the dashboard shows. Runs written before it had this name call it ``model.json``, the
  name a TF.js export's topology has too; :func:`layers_json_path` finds either.
* ``tensorboard/events.out.tfevents.*``: every numeric metric as a TensorBoard scalar at ``env_steps`` (or
  the fit step), and the histograms, through tensorboardX (``pip install playgrad[tensorboard]``). A resumed
  run adds a file that opens with TensorBoard's purge mark (a ``SessionLog.START`` at the first step after the
  checkpoint): TensorBoard drops the earlier files' events from that step on, which the killed run had written
  past its checkpoint and the resumed run writes again.

Gradients: an optimizer's ``zero_grad`` runs *before* each backward pass (rl/optimizers.py), so after an
update every parameter's ``.grad`` still holds the last minibatch's gradient: that is what "g" shows.
"""

from __future__ import annotations

import json
import math
import os
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend
from rl.experiment import ConfigError, atomic_write_text, keep_first_lines

__all__ = [
    "HISTOGRAM_BINS",
    "HistogramWriter",
    "MetricsFile",
    "RunSummaries",
    "TensorBoardWriter",
    "agent_networks",
    "downsample",
    "model_table",
    "named_tensors",
    "summarize",
    "layers_json_path",
    "write_layers_json",
    "x_of",
]

HISTOGRAM_BINS = 30
MEAN_WINDOW = 20  # the "20-episode mean" (the runner's own window)
X_KEYS = ("env_steps", "step", "epoch")  # the x-axis of a record: the first of these it has


def summarize(values: Any, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """A compact histogram of ``values`` (any shape): ``{"count", "min", "max", "mean", "std", "zeros", "nans",
    "lo", "hi", "counts"}``; ``counts`` has ``bins`` entries over ``[lo, hi]`` (the finite min and max).

    NaN and infinities are counted in ``nans`` (and ``infs``) and left out of the bins and moments.
    """
    a = np.asarray(backend.to_numpy(values), dtype=np.float64).ravel()
    finite = a[np.isfinite(a)]
    out: dict[str, Any] = {"count": int(a.size), "zeros": int(np.count_nonzero(a == 0)),
                           "nans": int(np.isnan(a).sum()), "infs": int(np.isinf(a).sum())}
    if finite.size == 0:
        return {**out, "min": None, "max": None, "mean": None, "std": None, "lo": 0.0, "hi": 0.0, "counts": []}
    lo, hi = float(finite.min()), float(finite.max())
    counts, _ = np.histogram(finite, bins=bins, range=(lo, hi) if hi > lo else (lo - 0.5, hi + 0.5))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return {**out, "min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean()),
            "std": float(finite.std()), "lo": lo, "hi": hi, "counts": counts.tolist()}


def agent_networks(agent: Any) -> dict[str, Any]:
    """The trainable networks of an agent by name: ``agent.networks()`` where the agent defines it, else its
    attributes that are :class:`rl.models.Model` objects with trainable weights (target copies, which no
    optimizer steps, are left out by their ``_target`` suffix)."""
    if callable(getattr(agent, "networks", None)):
        return dict(agent.networks())
    from rl.models import Model  # noqa: PLC0415

    return {name: value for name, value in sorted(vars(agent).items())
            if isinstance(value, Model) and not name.endswith("_target") and value.trainable_weights}


def named_tensors(networks: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """``("<network>/<layer>/<weight>", tensor)`` for every trainable weight of ``networks``."""
    for net_name, net in networks.items():
        trainable = {id(t) for t in net.trainable_weights}
        for name, tensor in net.named_weights():
            if id(tensor) in trainable:
                yield f"{net_name}/{name}", tensor


def model_table(model: Any, name: str | None = None) -> dict[str, Any]:
    """A model's layer table: ``{"name", "layers": [{"name", "type", "output_shape", "params"}], "total_params",
    "trainable_params"}``, the rows of ``Model.summary()`` as data (a model not built yet has no rows)."""
    layers = []
    if getattr(model, "built", False) and hasattr(model, "_summary_rows"):
        for label, shape, params, _ in model._summary_rows():
            layer_name, _, layer_type = label.rpartition(" (")
            layers.append({"name": layer_name, "type": layer_type.rstrip(")"), "output_shape": shape,
                           "params": int(params)})
    total = sum(int(np.prod(t.shape)) for t in model.weights)
    trainable = sum(int(np.prod(t.shape)) for t in model.trainable_weights)
    return {"name": name or model.name, "layers": layers, "total_params": total, "trainable_params": trainable}


LAYERS_FILE = "layers.json"
OLD_LAYERS_FILE = "model.json"  # what runs written before LAYERS_FILE call it


def layers_json_path(run_dir: str | Path) -> Path | None:
    """A run's layer-table file: ``layers.json``, else an older run's ``model.json``; None when it has neither."""
    for name in (LAYERS_FILE, OLD_LAYERS_FILE):
        path = Path(run_dir) / name
        if path.is_file():
            return path
    return None


def write_layers_json(run_dir: str | Path, networks: Mapping[str, Any]) -> Path:
    """Write ``run_dir/layers.json``: the layer table of each network (see :func:`model_table`), atomically."""
    path = Path(run_dir) / LAYERS_FILE
    tables = [model_table(net, name) for name, net in networks.items()]
    atomic_write_text(path, json.dumps({"networks": tables}, indent=1) + "\n")
    return path


class HistogramWriter:
    """Appends weight (and gradient) histogram snapshots to ``histograms.jsonl``.

    Args:
        path: the file (appended to; created if missing).
        bins: histogram bins per tensor.
        resume_lines: on resume, the snapshots the checkpoint had seen: the file is cut back to that many lines
            first, so the snapshots redone after the checkpoint are not there twice.
    """

    def __init__(self, path: str | Path, bins: int = HISTOGRAM_BINS, resume_lines: int | None = None):
        self.path = Path(path)
        self.bins = bins
        if resume_lines is not None and self.path.exists():
            keep_first_lines(self.path, resume_lines)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def snapshot(self, networks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """``{tensor name: {"w": summary, "g": summary}}`` of every trainable weight ("g" where it holds a gradient)."""
        out = {}
        for name, tensor in named_tensors(networks):
            entry = {"w": summarize(tensor.data, self.bins)}
            if tensor.grad is not None:
                entry["g"] = summarize(tensor.grad, self.bins)
            out[name] = entry
        return out

    def write(self, step: int, networks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Append one snapshot at ``step`` as one line; returns it."""
        tensors = self.snapshot(networks)
        self._file.write(json.dumps({"step": int(step), "tensors": tensors}, allow_nan=False) + "\n")
        self._file.flush()
        return tensors

    def close(self) -> None:
        self._file.close()


class TensorBoardWriter:
    """TensorBoard event files in ``logdir`` through tensorboardX: scalars and histograms.

    Args:
        logdir: the folder of the event files.
        purge_step: on resume, the first step the resumed run writes: the new file opens with a purge mark
            there, so TensorBoard hides the events at that step and after from the files written before
            (a killed run's events past its checkpoint, which the resumed run writes again).

    Raises:
        ConfigError: tensorboardX is not installed (the message says how to install it).
    """

    def __init__(self, logdir: str | Path, purge_step: int | None = None):
        SummaryWriter = self.check_installed()  # noqa: N806 - tensorboardX's class
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(logdir=str(self.logdir), flush_secs=10, purge_step=purge_step,
                                     filename_suffix=self.next_file_suffix(self.logdir))

    @staticmethod
    def next_file_suffix(logdir: Path) -> str:
        """The end of the next event file's name in ``logdir``: tensorboardX names a file by the second and the
        host and truncates one of that name, so a second writer within that second (a resume, a second
        ``fit``) would wipe the first one's file. The n-th file gets ``.000n``: a name of its own that sorts
        after the earlier ones, the order TensorBoard reads them (and applies a purge mark) in."""
        earlier = len(list(logdir.glob("*tfevents*"))) if logdir.is_dir() else 0
        return f".{earlier:04d}" if earlier else ""

    @staticmethod
    def check_installed() -> Any:
        """tensorboardX's ``SummaryWriter`` class; :class:`ConfigError` saying how to install it when absent."""
        try:
            from tensorboardX import SummaryWriter  # noqa: PLC0415 - optional extra
        except ImportError:
            raise ConfigError("TensorBoard logging needs tensorboardX: pip install 'playgrad[tensorboard]' "
                              "(or pip install tensorboardX)") from None
        return SummaryWriter

    def scalars(self, record: Mapping[str, Any], step: int) -> None:
        """Every finite numeric value of ``record`` as a scalar named by its key, at ``step``."""
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            self._writer.add_scalar(key, float(value), global_step=int(step))

    def histograms(self, step: int, networks: Mapping[str, Any]) -> None:
        """Each trainable weight (and its gradient, under ``grad/``) as a TensorBoard histogram at ``step``."""
        for name, tensor in named_tensors(networks):
            self._writer.add_histogram(name, np.asarray(backend.to_numpy(tensor.data)), global_step=int(step))
            if tensor.grad is not None:
                self._writer.add_histogram(f"grad/{name}", np.asarray(backend.to_numpy(tensor.grad)),
                                           global_step=int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class RunSummaries:
    """The runner's side: histograms every ``histogram_every`` updates and TensorBoard scalars for every record.

    An *update* is a metrics record with a loss in it (each agent logs one per optimisation round); its
    ``env_steps`` is the snapshot's step. The first update is always captured, then every
    ``histogram_every``-th.

    Args:
        run_dir: the run directory.
        networks: a function returning the networks by name (called at each snapshot, so a network an agent
            rebuilds is seen as it is now).
        histogram_every: 0 for no histograms.
        tensorboard: write TensorBoard event files to ``run_dir/tensorboard``.
        step_key: the record key that is the x-axis.
        resume_updates: on ``--resume``, the updates among the metrics records the checkpoint kept
            (:meth:`is_update`): the schedule goes on from there, and ``histograms.jsonl`` is cut back to
            the snapshots taken by then, as ``metrics.jsonl`` is cut back to the checkpoint's lines.
        resume_step: on ``--resume``, the last step of the records the checkpoint kept (every record written
            after it has a later step): TensorBoard drops the events written after it before the resume
            (:class:`TensorBoardWriter`'s ``purge_step``).
    """

    def __init__(self, run_dir: str | Path, networks: Callable[[], Mapping[str, Any]], histogram_every: int = 0,
                 tensorboard: bool = False, step_key: str = "env_steps", resume_updates: int | None = None,
                 resume_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.networks = networks
        self.histogram_every = histogram_every
        self.step_key = step_key
        self.updates = resume_updates or 0
        self.histograms = None
        if histogram_every > 0:
            snapshots = None if resume_updates is None else -(-resume_updates // histogram_every)  # updates 1, 1+N..
            self.histograms = HistogramWriter(self.run_dir / "histograms.jsonl", resume_lines=snapshots)
        self.tensorboard = None
        if tensorboard:
            purge_step = None if resume_step is None else resume_step + 1
            self.tensorboard = TensorBoardWriter(self.run_dir / "tensorboard", purge_step=purge_step)

    def on_record(self, record: Mapping[str, Any]) -> None:
        """Called with every metrics record after it was written to ``metrics.jsonl``."""
        step = int(record.get(self.step_key, 0))
        if self.tensorboard is not None:
            self.tensorboard.scalars({k: v for k, v in record.items() if k != self.step_key}, step)
        if not self.is_update(record):
            return
        self.updates += 1
        if self.histogram_every > 0 and (self.updates - 1) % self.histogram_every == 0:
            self.snapshot(step)

    @staticmethod
    def is_update(record: Mapping[str, Any]) -> bool:
        """Whether a metrics record is an update (an optimisation round: it holds a loss)."""
        return any("loss" in key for key in record)

    def snapshot(self, step: int) -> None:
        """Write the histograms of every network now, at ``step``."""
        networks = self.networks()
        if self.histograms is not None:
            self.histograms.write(step, networks)
        if self.tensorboard is not None:
            self.tensorboard.histograms(step, networks)

    def close(self) -> None:
        if self.histograms is not None:
            self.histograms.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


# ------------------------------------------------------------------------------ reading metrics back
def x_of(record: dict[str, Any], line: int) -> float:
    """A record's position on the x-axis: env steps (agents), step (fit batches), epoch, else its line number."""
    for key in X_KEYS:
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return float(line)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> dict[str, list[float]]:
    """At most ``max_points`` points of the curve ``(x, y)`` (both ``(N,)``), for drawing.

    Short curves come back as they are. Longer ones are cut into ``max_points`` consecutive buckets of
    equal count; each bucket gives its mean x and mean y plus the min and max y, so a spike survives as the
    band's edge even though the line is averaged. Returns ``{"x", "y"}`` and, when downsampled, ``"lo"``, ``"hi"``.
    """
    n = len(x)
    if n <= max_points:
        return {"x": x.tolist(), "y": y.tolist()}
    edges = np.linspace(0, n, max_points + 1).astype(np.int64)
    starts = edges[:-1]
    counts = np.diff(edges)
    finite = np.where(np.isfinite(y), y, 0.0)
    return {
        "x": (np.add.reduceat(x, starts) / counts).tolist(),
        "y": (np.add.reduceat(finite, starts) / counts).tolist(),
        "lo": np.minimum.reduceat(y, starts).tolist(),
        "hi": np.maximum.reduceat(y, starts).tolist(),
    }


class MetricsFile:
    """``metrics.jsonl`` of one run, parsed once and then only its new bytes.

    Each numeric key becomes a column of ``(x, value)`` pairs (``array('d')``, 16 bytes a point, so a
    1M-line file is tens of MB, not a list of a million dicts). :meth:`refresh` reads from the last offset to
    the last complete line; a file that shrank or was replaced (a resumed run cuts its metrics back) is read
    again from the start. Thread-safe: the server's request threads share one instance per file.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.size = 0  # the file's size at the last refresh (offset < size: more to read)
        self.lines = 0
        self.identity: tuple[int, int] | None = None
        self.columns: dict[str, tuple[array, array]] = {}
        self.strings: dict[str, str] = {}  # last value of each text key ("event": "train_end")
        self.errors: list[str] = []  # malformed complete lines, "metrics.jsonl:LINE: reason"
        self.recent: deque[float] = deque(maxlen=MEAN_WINDOW)
        self.last_mean: float | None = None
        self.best_mean: float | None = None
        self.last: dict[str, Any] = {}  # the last value of every key

    def refresh(self, max_bytes: int | None = None) -> bool:
        """Read the complete lines appended since the last call: all of them, or about ``max_bytes`` of them (a
        caller that must answer quickly reads a big file over several calls). True once everything is read."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._reset()
                return True
            identity = (st.st_ino, st.st_dev)
            if identity != self.identity or st.st_size < self.offset:
                self._reset()
                self.identity = identity
            self.size = st.st_size
            if st.st_size == self.offset:
                return True
            want = st.st_size - self.offset
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(want if max_bytes is None else min(want, max_bytes))
                if b"\n" not in chunk and len(chunk) < want:  # one line longer than the budget: read to its end
                    chunk += f.readline()
            end = chunk.rfind(b"\n")
            if end >= 0:  # else only a half-written line so far
                self.offset += end + 1
                for raw in chunk[: end + 1].splitlines():
                    self.lines += 1
                    self._add(raw)
            return len(chunk) >= want  # all read but, at most, a half-written last line

    def _add(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            if len(self.errors) < 20:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                self.errors.append(f"{self.path.name}:{self.lines}: not a JSON record ({reason})")
            return
        x = x_of(record, self.lines)
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                if isinstance(value, str):
                    self.strings[key] = value
                continue
            col = self.columns.get(key)
            if col is None:
                col = self.columns[key] = (array("d"), array("d"))
            col[0].append(x)
            col[1].append(float(value))
            self.last[key] = value
        ret = record.get("episode_return")
        if isinstance(ret, int | float) and math.isfinite(ret):
            self.recent.append(float(ret))
            self.last_mean = sum(self.recent) / len(self.recent)
            if len(self.recent) == MEAN_WINDOW and (self.best_mean is None or self.last_mean > self.best_mean):
                self.best_mean = self.last_mean  # as the runner's "best": full windows only

    def series(self, key: str, max_points: int = 2000) -> dict[str, Any]:
        """The column ``key`` as ``{"x", "y", ["lo", "hi"], "points", "lines"}`` (see :func:`downsample`)."""
        with self._lock:
            col = self.columns.get(key)
            if col is None:
                return {"x": [], "y": [], "points": 0, "lines": self.lines}
            x = np.frombuffer(col[0], dtype=np.float64).copy()
            y = np.frombuffer(col[1], dtype=np.float64).copy()
            lines = self.lines
        out = downsample(x, y, max_points)
        out["y"] = [v if math.isfinite(v) else None for v in out["y"]]
        out.update(points=len(x), lines=lines)
        return out

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self.columns)
