"""A small seeded mutation fuzzer for the project's file readers (tests/fuzz/).

Each fuzz test takes a real, valid file, damages it ``CASES`` times with seeded mutations (bit flips,
truncation, inserted and deleted bytes, "interesting" integers, and structure-aware changes to JSON,
TOML lines or pickle opcodes), and hands each damaged file to the reader. The property: the reader
either loads it or raises its documented error class, within a per-case time limit and a memory cap,
never any other exception. Failures are collected (not stopped at the first), and each prints how to
replay it alone.

Knobs (environment variables):
    PLAYGRAD_FUZZ_CASES  cases per test (default 60: seconds in CI; 5000 is a longer local hunt)
    PLAYGRAD_FUZZ_SEED   base seed (default 0); each case's RNG is ``default_rng([seed, case, test id])``
    PLAYGRAD_FUZZ_CASE   run only this case number (replay)
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CASES = int(os.environ.get("PLAYGRAD_FUZZ_CASES", "60"))
SEED = int(os.environ.get("PLAYGRAD_FUZZ_SEED", "0"))
ONLY_CASE = os.environ.get("PLAYGRAD_FUZZ_CASE")
CASE_SECONDS = 20.0  # far above any real case (milliseconds); a hang, not a slow machine
CASE_EXTRA_BYTES = 1 << 30  # address space one case may add: a reader asking for more has a budget hole


class CaseTimeout(BaseException):  # noqa: N818 - BaseException: a reader's `except Exception` must not eat it
    """Raised in the case that ran past CASE_SECONDS."""


@contextlib.contextmanager
def bounded(seconds: float = CASE_SECONDS, extra_bytes: int = CASE_EXTRA_BYTES) -> Iterator[None]:
    """Run the body with an alarm after ``seconds`` and an address-space cap ``extra_bytes`` above now.

    The cap is the soft RLIMIT_AS (restored after), so an allocation past it is a MemoryError inside the
    reader instead of a machine swapping; the process's current size is read from /proc.
    """

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"ran longer than {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    size = _address_space_bytes()
    if size is not None:
        cap = size + extra_bytes
        if old_limit[1] == resource.RLIM_INFINITY or cap < old_limit[1]:
            resource.setrlimit(resource.RLIMIT_AS, (cap, old_limit[1]))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def _address_space_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------------ byte mutations
INTERESTING = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1,
               2**32, 2**63 - 1, 2**64 - 1]  # fmt: skip


def flip_bit(raw: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(raw)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out)


def set_byte(raw: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(raw)
    out[int(rng.integers(len(out)))] = int(rng.integers(256))
    return bytes(out)


def truncate(raw: bytes, rng: np.random.Generator) -> bytes:
    return raw[: int(rng.integers(len(raw)))]


def insert_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(len(raw) + 1))
    filler = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    if rng.random() < 0.5:  # or repeat a piece of the file itself, which keeps it plausible
        j = int(rng.integers(len(raw)))
        filler = raw[j : j + int(rng.integers(1, 256))]
    return raw[:i] + filler + raw[i:]


def delete_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(len(raw)))
    return raw[:i] + raw[i + int(rng.integers(1, 64)) :]


def interesting_int(raw: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite 1, 2, 4 or 8 bytes with a boundary value (little-endian), where sizes and offsets live."""
    width = int(rng.choice([1, 2, 4, 8]))
    value = INTERESTING[int(rng.integers(len(INTERESTING)))] % (1 << (8 * width))
    i = int(rng.integers(max(1, len(raw) - width + 1)))
    return raw[:i] + value.to_bytes(width, "little") + raw[i + width :]


BYTE_MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "flip": flip_bit, "set": set_byte, "truncate": truncate, "insert": insert_bytes, "delete": delete_bytes,
    "int": interesting_int,
}  # fmt: skip


def mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    """One to three random byte-level mutations."""
    for _ in range(int(rng.integers(1, 4))):
        if not raw:
            break
        raw = BYTE_MUTATIONS[str(rng.choice(sorted(BYTE_MUTATIONS)))](raw, rng)
    return raw


# ------------------------------------------------------------------------------ JSON mutations
DEEP = "\x00deep\x00"  # stands for arrays nested 100000 deep: dump_json writes them (json.dumps cannot)


def hostile_json_values(rng: np.random.Generator) -> list[Any]:
    return [
        None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 1.5, 0.5,
        float("nan"), float("inf"), "", "x", "../../etc/passwd", "/dev/zero", "a" * 10_000, "\x00", "\ud800",
        [], [0], [-1], [2**40, 2**40], [1e308], [None], {}, {"": 0}, [[[[[]]]]], DEEP,
    ]  # fmt: skip


def _json_paths(doc: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every (container, key) location in a JSON document, depth first."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k)
            yield from _json_paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*path, i)
            yield from _json_paths(v, (*path, i))


def mutate_json(doc: Any, rng: np.random.Generator, rounds: int | None = None) -> Any:
    """A deep copy of ``doc`` with 1-3 structural changes: a value replaced by a hostile one or by
    another part of the document, a key deleted or renamed, a list item duplicated or dropped."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rounds or int(rng.integers(1, 4))):
        paths = list(_json_paths(doc))
        if not paths:
            return hostile_json_values(rng)[int(rng.integers(10))]
        path = paths[int(rng.integers(len(paths)))]
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        choice = int(rng.integers(6))
        if choice <= 1:
            values = hostile_json_values(rng)
            parent[key] = values[int(rng.integers(len(values)))]
        elif choice == 2:  # another part of the same document: right shape, wrong place
            donor = doc
            for part in paths[int(rng.integers(len(paths)))]:
                donor = donor[part]
            parent[key] = json.loads(json.dumps(donor))
        elif choice == 3:
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        elif choice == 4 and isinstance(parent, dict):
            parent[f"{key}_x" if rng.random() < 0.5 else ""] = parent.pop(key)
        elif isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        else:
            parent[key] = [parent[key]]
    return doc


def dump_json(doc: Any) -> bytes:
    """JSON as a hostile writer would: NaN/Infinity allowed, lone surrogates escaped, DEEP expanded."""
    return json.dumps(doc, allow_nan=True).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000).encode()


# ------------------------------------------------------------------------------ the loop
@dataclass
class Outcome:
    loaded: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.loaded} loaded, {self.refused} refused, {len(self.failures)} failed"


def test_id(name: str) -> int:
    """A stable number for a test's name, so its cases' seeds do not depend on the test order."""
    return zlib.crc32(name.encode())


def cases(name: str) -> Iterator[tuple[int, np.random.Generator]]:
    """(case number, its RNG) for every case of test ``name``, or just PLAYGRAD_FUZZ_CASE's."""
    numbers = [int(ONLY_CASE)] if ONLY_CASE is not None else range(CASES)
    for case in numbers:
        yield case, np.random.default_rng([SEED, case, test_id(name)])


def run(
    name: str,
    make_case: Callable[[np.random.Generator], Any],
    load: Callable[[Any], Any],
    allowed: type[BaseException] | tuple[type[BaseException], ...],
) -> Outcome:
    """Fuzz one reader: ``make_case(rng)`` builds a damaged input, ``load(input)`` reads it.

    Any exception other than ``allowed`` (and any timeout or MemoryError) is a failure, recorded with
    a replay line. Returns the counts; the caller asserts there are no failures.
    """
    outcome = Outcome()
    nodeid = os.environ.get("PYTEST_CURRENT_TEST", name).rsplit(" (", 1)[0]
    for case, rng in cases(name):
        replay = (f"replay: PLAYGRAD_FUZZ_SEED={SEED} PLAYGRAD_FUZZ_CASE={case} "
                  f"python -m pytest -p no:cacheprovider '{nodeid}'")
        data = make_case(rng)
        start = time.perf_counter()
        try:
            with bounded():
                load(data)
            outcome.loaded += 1
        except allowed as exc:
            if not str(exc).strip():
                outcome.failures.append(f"{name} case {case}: {type(exc).__name__} with an empty message ({replay})")
            outcome.refused += 1
        except (Exception, CaseTimeout) as exc:  # noqa: BLE001 - the point: anything else is a defect
            text = str(exc)
            text = text if len(text) < 300 else text[:297] + "..."
            outcome.failures.append(
                f"{name} case {case}: {type(exc).__name__}: {text} at {_where(exc)} after "
                f"{time.perf_counter() - start:.1f} s ({replay})"
            )
    return outcome


def _where(exc: BaseException) -> str:
    """The innermost frame of the project's own code that the exception passed through."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename.startswith(root) and "/.venv/" not in f.filename and "/tests/fuzz/" not in f.filename]
    return f"{os.path.relpath(frames[-1].filename, root)}:{frames[-1].lineno}" if frames else "?"


class AfterLoad(Exception):  # noqa: N818 - names the phase, not an error kind
    """Using a file that loaded failed: the reader let through something its users cannot take."""


@contextlib.contextmanager
def after_load(what: str) -> Iterator[None]:
    """Wrap the use of a loaded object, so a failure there is reported as such (with its location)."""
    try:
        yield
    except Exception as exc:
        raise AfterLoad(f"loaded, then {what} failed: {type(exc).__name__}: {exc}").with_traceback(
            exc.__traceback__) from exc


def check(outcome: Outcome, min_refused: int = 1) -> None:
    """Fail with every failing case listed (at most 20), or when the mutations never reached an error."""
    print(outcome.summary())  # shown with -s or -rP: how much of each reader the damage reached
    if outcome.failures:
        shown = "\n".join(outcome.failures[:20])
        raise AssertionError(f"{outcome.summary()}:\n{shown}")
    if ONLY_CASE is None:
        assert outcome.refused >= min(min_refused, CASES), f"the mutations never reached an error: {outcome.summary()}"

