"""What the dashboard knows about a folder of runs: which directories are runs, their status, and their
metrics read incrementally (by :class:`rl.summaries.MetricsFile`).

A *run* is a directory under the runs folder holding ``config.toml`` (``scripts/train.py``, the transfer
scripts, :class:`rl.vis.DashboardCallback`) or ``metrics.jsonl``. ``scripts/sweep.py`` nests runs one or
two levels deeper (``sweep-<config>-<time>/<grid point>/<run>``), so the scan goes up to
:data:`MAX_DEPTH` levels down. A run's *group* is its parent folder plus its experiment name: the seeds of
one experiment (or of one sweep grid point) share a group, which the page draws as a mean with a band.

Status, from the files alone (the server may not be the machine that trains):

* ``finished``: ``eval.json`` exists (train.py writes it after the budget is spent), or a fit run's
  ``metrics.jsonl`` ends with a ``{"event": "train_end"}`` record;
* ``running``: not finished, and ``status.json`` (written by the training runner, ``RunDir.write_status``)
  says so and names a process that is still alive on this machine (or one on another machine, which this
  server cannot look at, while that run's files keep changing);
* ``silent``: ``status.json`` names a process on another machine, but none of the run's files (metrics,
  histograms, checkpoints, status) changed for :data:`REMOTE_SILENCE_S` seconds: it may have died there
  without a word (killed, the machine gone), or be in a long quiet stretch; this server cannot tell which;
* ``interrupted``: ``status.json`` says Ctrl-C stopped it, or its process is gone, with
  ``checkpoints/latest.safetensors`` to ``--resume`` from;
* ``failed``: stopped or gone with nothing to resume (before its first checkpoint).

A run without ``status.json`` (written before the runner kept one, or by ``fit``'s DashboardCallback) is
taken as running while ``metrics.jsonl`` (or ``histograms.jsonl``) changed in the last
:data:`RUNNING_WINDOW_S` seconds.

Independently a run may be *damaged*: a file that should parse does not (a broken ``config.toml``, a
malformed line in the middle of ``metrics.jsonl``, an unreadable ``eval.json``). The reason is shown and
the rest of the run, and every other run, keeps being served. A half-written *last* line of
``metrics.jsonl`` is not damage: it is a line being written, read once its newline arrives.

A big ``metrics.jsonl`` (a million lines is 80 MB) is read :data:`READ_BUDGET` bytes per request, so the runs
table answers at once and the run's curves fill in over the next polls (its row says how much is read).
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl.experiment import process_alive, read_status
from rl.summaries import MetricsFile, layers_json_path

__all__ = ["MAX_DEPTH", "READ_BUDGET", "REMOTE_SILENCE_S", "RUNNING_WINDOW_S", "RunIndex"]

MAX_DEPTH = 4  # runs/sweep-x/p0-lr/run: three levels; one more for a user's own folder of sweeps
RUNNING_WINDOW_S = 60.0  # a run without status.json whose files changed this recently is shown as running
# Another machine's "running" is believed while its files move: the runner appends a metrics line per rollout or
# episode batch and checkpoints on schedule, so a quarter of an hour with no change at all is worth showing.
REMOTE_SILENCE_S = 900.0
READ_BUDGET = 8 * 1024 * 1024  # bytes of new metrics read per run per request: a 1M-line file arrives over polls
MEDIA_SUFFIXES = (".gif", ".webp", ".mp4", ".webm", ".png", ".jpg", ".jpeg")


@dataclass
class _Entry:
    path: Path
    metrics: MetricsFile
    histograms: dict[str, Any] = field(default_factory=dict)  # offset, lines parsed


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path.name}: {getattr(exc, 'msg', None) or exc}"


class RunIndex:
    """Every run under ``root``, with a :class:`MetricsFile` kept per run across requests."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    # ---- finding runs
    def scan(self) -> list[Path]:
        """Run directories under the root (sorted), at most :data:`MAX_DEPTH` levels down."""
        found: list[Path] = []

        def walk(folder: Path, depth: int) -> None:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                return
            for child in children:
                if child.is_symlink() and not child.resolve().is_relative_to(self.root):
                    continue  # a link out of the folder: its files are not served (resolve_file), so not listed
                if (child / "config.toml").is_file() or (child / "metrics.jsonl").is_file():
                    found.append(child)
                elif depth < MAX_DEPTH and child.name not in ("checkpoints", "tensorboard", "misclassified"):
                    walk(child, depth + 1)

        if self.root.is_dir():
            walk(self.root, 1)
        return found

    def run_id(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def resolve_run(self, run_id: str) -> Path:
        """The directory of ``run_id`` (a path relative to the root); KeyError unless it is a run under the root."""
        path = self.resolve_file(run_id)
        if path is None or not path.is_dir() or not (
            (path / "config.toml").is_file() or (path / "metrics.jsonl").is_file()
        ):
            raise KeyError(run_id)
        return path

    def resolve_file(self, relative: str) -> Path | None:
        """``root / relative`` if it stays under the root after resolving ``..`` and links, else None."""
        if not relative or "\x00" in relative or Path(relative).is_absolute():
            return None
        path = (self.root / relative).resolve()
        return path if path == self.root or path.is_relative_to(self.root) else None

    def entry(self, path: Path) -> _Entry:
        key = str(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(path, MetricsFile(path / "metrics.jsonl"))
        return entry

    # ---- what the runs table shows
    def summary(self, path: Path, now: float | None = None) -> dict[str, Any]:
        """One run's row: ids, group, status, damage, config highlights, progress and results."""
        now = time.time() if now is None else now
        entry = self.entry(path)
        metrics = entry.metrics
        complete = metrics.refresh(max_bytes=READ_BUDGET)
        problems = list(metrics.errors[:3])
        config: dict[str, Any] = {}
        if (path / "config.toml").is_file():
            try:
                config = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(f"config.toml: {exc}")
        experiment = config.get("experiment", {}) if isinstance(config.get("experiment"), dict) else {}
        info, err = _read_json(path / "info.json")
        if err:
            problems.append(err)
        evaluation, err = _read_json(path / "eval.json")
        if err:
            problems.append(err)
        run_id = self.run_id(path)
        parent = path.parent.relative_to(self.root).as_posix() if path.parent != self.root else ""
        name = str(experiment.get("name") or path.name.split("-s")[0])
        status = self._status(path, evaluation, err is not None, metrics, now)
        started = (info or {}).get("started") if isinstance(info, dict) else None
        wall = metrics.last.get("time_s")
        if wall is None and (path / "config.toml").exists() and (path / "metrics.jsonl").exists():
            wall = (path / "metrics.jsonl").stat().st_mtime - (path / "config.toml").stat().st_mtime
        return {
            "id": run_id,
            "name": path.name,
            "group": f"{parent}/{name}" if parent else name,
            "experiment": name,
            "sweep": parent,
            "status": status,
            "damaged": "; ".join(problems) or None,
            "agent": experiment.get("agent") or config.get("kind"),
            "env_id": experiment.get("env_id") or config.get("dataset"),
            "seed": experiment.get("seed"),
            "total_steps": experiment.get("total_steps"),
            "steps": int(metrics.last.get("env_steps", metrics.last.get("step", 0)) or 0),
            "last_mean": metrics.last_mean,
            "best_mean": metrics.best_mean,
            "eval": _eval_summary(evaluation),
            "wall_s": wall,
            "sps": metrics.last.get("sps"),
            "lines": metrics.lines,
            "reading": None if complete else metrics.offset / max(metrics.size, 1),  # a big file, read over polls
            "keys": metrics.keys(),
            "started": started or _mtime(path / "config.toml") or _mtime(path),
            "media": self._media(path),
            "histograms": (path / "histograms.jsonl").is_file(),
            "model": layers_json_path(path) is not None,
            "classification": (path / "classification.json").is_file(),
        }

    @staticmethod
    def _status(path: Path, evaluation: Any, eval_broken: bool, metrics: MetricsFile, now: float) -> str:
        if evaluation is not None or eval_broken or metrics.strings.get("event") == "train_end":
            return "finished"
        status = read_status(path)
        if status is None:
            changed = max(_mtime(path / name) or 0.0 for name in ("metrics.jsonl", "histograms.jsonl", "config.toml"))
            alive = now - changed < RUNNING_WINDOW_S
        elif status["state"] != "running":
            alive = False
        elif status.get("host") != platform.node():
            # Another machine's process cannot be looked at: its word holds while the run's files keep changing.
            changed = max(_mtime(path / name) or 0.0 for name in (
                "status.json", "metrics.jsonl", "histograms.jsonl", "checkpoints/latest.safetensors"))
            if now - changed >= REMOTE_SILENCE_S:
                return "silent"
            alive = True
        else:
            alive = process_alive(status.get("pid"), status.get("pid_started"))
        if alive:
            return "running"
        return "interrupted" if (path / "checkpoints" / "latest.safetensors").is_file() else "failed"

    def _media(self, path: Path) -> list[str]:
        out = []
        for folder in (path, path / "media"):
            if folder.is_dir():
                out += [self.run_id(p) for p in sorted(folder.iterdir())
                        if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file() and not p.name.startswith(".")]
        return out

    def runs(self) -> list[dict[str, Any]]:
        """Every run's :meth:`summary`, newest first within the scan order's groups."""
        now = time.time()
        return [self.summary(p, now) for p in self.scan()]

    # ---- histograms.jsonl
    def histograms(self, path: Path) -> dict[str, Any]:
        """``histograms.jsonl`` as ``{"steps": [...], "tensors": {name: [{"w": summary, "g": summary}, ...]}}``.

        Read incrementally like metrics; a malformed complete line is reported in ``"errors"`` and skipped.
        """
        entry = self.entry(path)
        state = entry.histograms
        file = path / "histograms.jsonl"
        try:
            st = os.stat(file)
        except FileNotFoundError:
            return {"steps": [], "tensors": {}, "errors": []}
        if state.get("identity") != (st.st_ino, st.st_dev) or st.st_size < state.get("offset", 0):
            state.clear()
            state.update(identity=(st.st_ino, st.st_dev), offset=0, steps=[], tensors={}, errors=[], lines=0)
        if st.st_size > state["offset"]:
            with open(file, "rb") as f:
                f.seek(state["offset"])
                chunk = f.read(st.st_size - state["offset"])
            end = chunk.rfind(b"\n")
            if end >= 0:
                state["offset"] += end + 1
                for raw in chunk[: end + 1].splitlines():
                    state["lines"] += 1
                    try:
                        record = json.loads(raw)
                        step, tensors = record["step"], record["tensors"]
                    except (ValueError, KeyError, TypeError) as exc:
                        state["errors"].append(f"histograms.jsonl:{state['lines']}: {exc}")
                        continue
                    index = len(state["steps"])
                    state["steps"].append(step)
                    for name, summary in tensors.items():
                        slot = state["tensors"].setdefault(name, [])
                        slot.extend([None] * (index - len(slot)))
                        slot.append(summary)
        return {"steps": state["steps"], "tensors": state["tensors"], "errors": state["errors"][:5]}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _eval_summary(evaluation: Any) -> dict[str, Any] | None:
    if not isinstance(evaluation, dict):
        return None
    keys = ("mean_return", "std_return", "min_return", "max_return", "episodes", "accuracy")
    return {k: evaluation[k] for k in keys if k in evaluation}
