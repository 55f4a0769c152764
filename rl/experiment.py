"""Reproducible experiment runs: TOML configs checked against dataclasses, run directories,
metrics logs and resumable state.

Nothing here knows about a particular agent or environment. A config file is TOML with tables;
each table is validated against a dataclass the caller names, so a typo is caught before any
training starts and the error names the file, the table and the valid keys::

    [experiment]
    agent = "ppo"
    env_id = "envs/CartPole-v1"
    seed = 0

    [agent]
    lr = 1e-3

Overrides from the command line (``--set agent.lr=3e-4``) are parsed as TOML values, so numbers,
booleans, strings and lists all work.

A run directory holds everything needed to understand and continue a run: ``config.toml`` (the
resolved config), ``command.txt``, ``info.json`` (versions, backend, seed), ``metrics.jsonl`` (one
JSON object per logged event), ``checkpoints/`` and ``eval.json``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import platform
import shlex
import sys
import time
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl.errors import ConfigError
from rl.files import atomic_write_bytes, atomic_write_text  # the one atomic writer: temp file, fsync, rename

__all__ = [
    "ConfigError",
    "MetricsLogger",
    "RunDir",
    "RunNotFoundError",
    "apply_overrides",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_memory",
    "check_run_name",
    "dataclass_from_dict",
    "dump_toml",
    "keep_first_lines",
    "load_tables",
    "load_toml",
    "parse_override",
    "positive_int",
    "process_alive",
    "read_status",
    "versions",
]


class RunNotFoundError(ConfigError):
    """A path given as an existing run directory is missing or holds no ``config.toml``."""


# --------------------------------------------------------------------------------------- TOML
def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text, so not a TOML file ({exc.reason} at byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise ConfigError(f"{path}: values nested too deeply to read (arrays or inline tables)") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's too, but with ensure_ascii JSON writes characters beyond U+FFFF
        # as surrogate pairs, which TOML refuses; DEL is the one control character JSON leaves raw.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ConfigError("TOML has no null: leave the key out instead of setting it to None")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    bare = bool(key) and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)  # TOML's bare keys
    return key if bare else _toml_value(key)


def dump_toml(config: Mapping[str, Any]) -> str:
    """Write a config (scalars at the top, then one ``[table]`` per nested mapping) as TOML text.

    ``None`` values are left out (TOML has no null), so they read back as the dataclass default.
    """
    lines: list[str] = []
    tables = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_key(key)} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{_key(name)}]")
        for key, value in table.items():
            if value is not None:
                lines.append(f"{_key(key)} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``"table.key=value"`` into (``["table", "key"]``, value); the value is read as TOML.

    Bare words that are not valid TOML (``--set env.level=level1``) are taken as strings.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    keys = [k.strip() for k in dotted.strip().split(".") if k.strip()]
    if not keys:
        raise ConfigError(f"override {text!r} has no key before '='")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except RecursionError:
        raise ConfigError(f"override {dotted.strip()}=...: the value is nested too deeply to read") from None
    return keys, value


def positive_int(text: str) -> int:
    """An ``argparse`` type for counts: the int in ``text``, refused (with the value) when below 1."""
    import argparse  # noqa: PLC0415 - only the command-line scripts need it

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    """An ``argparse`` type for seeds: the int in ``text``, refused (with the value) when negative (Gymnasium and
    NumPy take seeds >= 0; a negative one ended in their traceback)."""
    import argparse  # noqa: PLC0415 - only the command-line scripts need it

    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


# The most memory one config may ask for in a single array group (a rollout, a replay buffer, the env's
# boards, a network with its optimizer state): a huge number in a config is refused up front, naming the key,
# instead of a MemoryError mid-build or a machine swapping once the zeroed pages are touched.
MEMORY_BUDGET_BYTES = 8 * 2**30


def memory_budget_bytes() -> int:
    """What one config may allocate: :data:`MEMORY_BUDGET_BYTES`, or this machine's physical memory if less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: only the fixed budget applies
        physical = MEMORY_BUDGET_BYTES
    return min(MEMORY_BUDGET_BYTES, physical)


def check_memory(key: str, nbytes: int, what: str) -> None:
    """Refuse, before allocating, a config value whose arrays would need more than :func:`memory_budget_bytes`.

    Args:
        key: the config key(s) that set the size, as a user writes them (``"agent.buffer_size"``).
        nbytes: the bytes the arrays would take.
        what: the arrays, in words (``"a replay buffer of 10,000,000 transitions"``).
    Raises:
        ConfigError: one line naming ``key``, the memory needed and the budget.
    """
    budget = memory_budget_bytes()
    if nbytes > budget:
        raise ConfigError(f"{key}: {what} would need {nbytes / 2**30:,.1f} GiB of memory, over the "
                          f"{budget / 2**30:,.1f} GiB a config may ask for; make it smaller")


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``table.key=value`` override applied (tables made as needed)."""
    try:
        result = json.loads(json.dumps(config))  # a deep copy that also proves the config is plain data
    except RecursionError:
        raise ConfigError("the config's values are nested too deeply") from None
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {k!r} is a value, not a table")
            node = child
        node[keys[-1]] = value
    return result


# --------------------------------------------------------------------------------------- validation
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_type(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, converted value) for a TOML value against a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return True, None
                continue
            ok, converted = _check_type(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in typing.get_args(tp), value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False, value
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, int]: one type per position
            if len(value) != len(args):
                return False, value
            item_types = list(args)
        else:  # list[int], tuple[int, ...]
            item_types = [args[0]] * len(value) if args else []
        if item_types:
            items = []
            for item, item_type in zip(value, item_types):
                ok, conv = _check_type(item, item_type)
                if not ok:
                    return False, value
                items.append(conv)
            value = items
        return True, list(value) if origin is list else tuple(value)
    if origin is dict or tp is dict:
        return isinstance(value, dict), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        return isinstance(value, int | float), float(value) if isinstance(value, int | float) else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def dataclass_from_dict(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and wrong types.

    Args:
        cls: a dataclass whose fields (with defaults) define the valid keys.
        data: the table read from TOML (plus overrides).
        where: how to name the place in errors, e.g. ``"configs/cartpole_ppo.toml [agent]"``.
    Raises:
        ConfigError: naming ``where``, the key, and the valid keys (with a close match if any),
            or the expected type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key {key!r}{hint}. Valid keys: {valid}")
        ok, converted = _check_type(value, hints[key])
        if not ok:
            raise ConfigError(
                f"{where}: key {key!r} expects {_type_name(hints[key])}, got {type(value).__name__} {value!r}"
            )
        kwargs[key] = converted
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a field without default was left out
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError as exc:  # __post_init__ range checks
        raise ConfigError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------------------- runs
MAX_RUN_NAME = 100  # characters; the directory adds "-s<seed>-<date>-<time>" and must stay under 255 bytes


def check_run_name(name: str) -> None:
    """Refuse an ``experiment.name`` that is not one plain directory name, with a one-line ``ConfigError``.

    A run directory is ``<runs-dir>/<name>-s<seed>-<time>``, so a name with a path separator, ``..``, an
    absolute path, a NUL or other control character, a leading dot (a hidden folder) or more than
    :data:`MAX_RUN_NAME` characters could write elsewhere or fail deep in the file system.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"experiment.name must be a non-empty string, got {name!r}")
    if len(name) > MAX_RUN_NAME:
        raise ConfigError(f"experiment.name is {len(name)} characters long; at most {MAX_RUN_NAME} make a run "
                          f"directory name")
    bad = sorted({c for c in name if c in '/\\:' or not c.isprintable()})
    if bad or name.startswith("."):
        what = f"contains {', '.join(repr(c) for c in bad)}" if bad else "starts with '.'"
        raise ConfigError(f"experiment.name {name!r} {what}: it names one run directory inside --runs-dir, so "
                          f"use letters, digits, '-', '_' and '.' (not first)")



def load_tables(path: str | os.PathLike | None, overrides: list[str], tables: Mapping[str, type]) -> dict[str, Any]:
    """A script's TOML config as one dataclass per table: read ``path`` (if any), apply ``--set`` overrides,
    refuse tables not in ``tables`` and validate each with :func:`dataclass_from_dict`.

    Args:
        path: the TOML file, or None for all defaults.
        overrides: ``table.key=value`` strings (values parsed as TOML).
        tables: table name -> dataclass, e.g. ``{"experiment": ExperimentConfig, "data": DataConfig}``.
    Returns:
        ``{name: dataclass instance}`` for every name in ``tables`` (a missing table takes its defaults).
    Raises:
        ConfigError: naming the file and the unknown table, or the table and key (see ``dataclass_from_dict``).
    """
    where = str(path) if path else "config"
    raw = apply_overrides(load_toml(path) if path else {}, overrides)
    unknown = sorted(set(raw) - set(tables))
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {unknown}; valid: {sorted(tables)}")
    return {name: dataclass_from_dict(cls, raw.get(name, {}), f"{where} [{name}]") for name, cls in tables.items()}

def versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on, for ``info.json``."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "gymnasium", "pygame", "safetensors", "cupy"):
        module = sys.modules.get(name)
        if module is None and name != "cupy":
            try:
                module = __import__(name)
            except Exception:
                module = None
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


def keep_first_lines(path: str | os.PathLike, count: int) -> int:
    """Cut the file at ``path`` back to its first ``count`` lines, atomically; returns how many it now has.

    Bytes, not text: the lines kept are a checkpoint's, whatever a crash or an editor left after them.
    """
    path = Path(path)
    kept = path.read_bytes().splitlines(keepends=True)[:count]
    atomic_write_bytes(path, b"".join(kept))
    return len(kept)


class MetricsLogger:
    """Appends one JSON object per line to ``metrics.jsonl``, flushed as it goes.

    On resume the file is cut back to the number of lines the checkpoint saw, so a resumed run
    ends with exactly the lines an uninterrupted run would have written.
    """

    def __init__(self, path: str | os.PathLike, resume_lines: int | None = None):
        self.path = Path(path)
        self.lines = 0
        if resume_lines is not None and self.path.exists():
            self.lines = keep_first_lines(self.path, resume_lines)
        elif resume_lines is None and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def log(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` (JSON-able scalars) as one line."""
        self._file.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux's /proc), or None where unknown.

    With the pid it identifies one process: a pid alone may have been reused by another one since.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            after_name = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
        return int(after_name[19])  # field 22 of stat; after_name starts at field 3
    except (OSError, IndexError, ValueError):
        return None


def read_status(run_path: str | os.PathLike) -> dict[str, Any] | None:
    """A run's ``status.json`` as :meth:`RunDir.write_status` wrote it; None if missing or unreadable (older runs)."""
    try:
        status = json.loads((Path(run_path) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and isinstance(status.get("state"), str) else None


def process_alive(pid: Any, started: Any) -> bool:
    """Whether the process :meth:`RunDir.write_status` recorded (``pid``, ``started``) still runs here."""
    if type(pid) is not int or pid <= 0:
        return False
    now_started = process_start_ticks(pid)
    if now_started is not None or started is not None:
        return now_started is not None and now_started == started
    try:  # no /proc: whether the pid exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class RunDir:
    """A run's directory: resolved config, command line, versions, metrics, checkpoints, evaluation.

    ``RunDir(path)`` is for writing a run and creates the directory; code that reads or continues a run
    opens it with :meth:`RunDir.open`, which creates nothing, so a mistyped path cannot leave an empty run.

    Args:
        path: the directory; created (with ``checkpoints/``) if missing.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.checkpoints.mkdir(exist_ok=True)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run directory (one holding ``config.toml``); nothing is created.

        Raises:
            RunNotFoundError: naming ``path`` and saying whether it is missing, a file, or a directory
                without ``config.toml``.
        """
        path = Path(path)
        if not (path / "config.toml").is_file():
            if not path.exists():
                what = "does not exist"
            elif not path.is_dir():
                what = "is a file, not a run directory"
            else:
                what = "is not a run directory (no config.toml)"
            raise RunNotFoundError(f"{path} {what}; train.py prints each run's directory (under runs/ unless "
                                   f"--runs-dir says otherwise)")
        run = cls.__new__(cls)  # not __init__: opening must not create checkpoints/ either
        run.path = path
        run.checkpoints = path / "checkpoints"
        return run

    @classmethod
    def create(cls, root: str | os.PathLike, name: str, seed: int) -> RunDir:
        """A new directory ``root/<name>-s<seed>-<YYYYmmdd-HHMMSS>`` (suffixed if it exists).

        Raises:
            ConfigError: ``name`` is not a plain name (:func:`check_run_name`: it would write outside
                ``root``), or ``root`` is a file or cannot be made.
        """
        check_run_name(name)
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"--runs-dir {root} is a file, not a directory")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = root / f"{name}-s{seed}-{stamp}"
        path, n = base, 1
        while path.exists():
            path, n = Path(f"{base}-{n}"), n + 1
        try:
            return cls(path)
        except OSError as exc:  # a file where a parent folder should be, no permission, a full disk
            raise ConfigError(f"cannot make the run directory {path}: {exc.strerror or exc}") from None

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    def write_status(self, state: str) -> None:
        """Record in ``status.json`` what the training process is doing: ``"running"`` or ``"interrupted"``.

        The file names this process (host, pid and its start time), so a reader can tell a run whose
        process died without a word (killed, the machine rebooted) from one that is still training.
        """
        self.write_json("status.json", {"state": state, "host": platform.node(), "pid": os.getpid(),
                                         "pid_started": process_start_ticks(os.getpid())})

    def write_start(self, config: Mapping[str, Any], argv: list[str], info: Mapping[str, Any]) -> None:
        """Record the resolved config, the command line and ``info`` (versions, backend, seed)."""
        atomic_write_text(self.config_path, dump_toml(config))
        atomic_write_text(self.path / "command.txt", shlex.join(argv) + "\n")
        atomic_write_text(self.path / "info.json", json.dumps({**versions(), **info}, indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        """The resolved config this run was started with."""
        return load_toml(self.config_path)

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as pretty JSON to ``name`` in the run directory, atomically."""
        target = self.path / name
        atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")
        return target

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of ``metrics.jsonl``; a malformed line names the file and line number."""
        records = []
        if not self.metrics_path.exists():
            return records
        for n, raw in enumerate(self.metrics_path.read_bytes().splitlines(), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{self.metrics_path}:{n}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
                    from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{self.metrics_path}:{n}: not valid JSON ({exc.msg})") from None
            except (RecursionError, ValueError) as exc:  # nested past the parser's stack; an over-long integer
                raise ConfigError(f"{self.metrics_path}:{n}: not a metrics record ({type(exc).__name__})") from None
            if not isinstance(record, dict):  # callers (plot.py, the dashboard) look keys up in each record
                raise ConfigError(f"{self.metrics_path}:{n}: a metrics record must be a JSON object, got "
                                  f"{type(record).__name__}")
            records.append(record)
        return records
