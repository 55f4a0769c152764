"""Numbers and tables for people reading a terminal or a window title: one way to format a number, and
the plain-text progress table ``scripts/train.py --no-progress`` prints (as Stable-Baselines3's logger does).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["ProgressTable", "format_number"]


def format_number(value: float, decimals: int | None = None, signed: bool = False) -> str:
    """``value`` rounded to 2 decimals with trailing zeros dropped (250, -1.2, 96.25), or with exactly
    ``decimals`` decimals (for columns); ``signed`` puts a "+" on positive numbers (signed quantities only:
    never on probabilities). Without ``decimals``, magnitudes under 0.01 keep 3 significant digits (0.0003);
    large ones (>= 1e6) and non-finite values use the ``g`` form."""
    value = float(value)
    if decimals is None and 0 < abs(value) < 0.01:  # a learning rate of 3e-4 is not "0"
        return f"{value:{'+' if signed else ''}.3g}"
    if not math.isfinite(value) or abs(value) >= 1e6:
        return f"{value:{'+' if signed else ''}.4g}"
    text = f"{value:{'+' if signed else ''}.{2 if decimals is None else decimals}f}"
    if decimals is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    if float(text) == 0:
        text = text.lstrip("+-")  # no "-0" for a value that rounds to zero
    return text


class ProgressTable:
    """A periodic plain-text table of a run's progress, for logs and terminals without a progress bar::

        --------------------------------------
        | env_steps          | 20480         |
        | episodes           | 312           |
        | mean_return        | 48.3          |
        | policy_loss        | -0.0123       |
        | sps                | 5210          |
        | time_s             | 3.9           |
        --------------------------------------

    :meth:`update` takes every metrics record (as ``Runner.log`` gets them) and prints a table at most every
    ``every_s`` seconds, with the latest value of each key; :meth:`flush` prints the last one at the end.
    ``mean_return`` is the mean of the last ``window`` episode returns; ``clock`` (seconds) is for tests.
    """

    def __init__(self, every_s: float = 10.0, window: int = 20, out: TextIO | None = None,
                 clock: Any = time.monotonic, start_steps: int = 0):
        self.every_s, self.window, self.out, self.clock = every_s, window, out, clock
        self._latest: dict[str, Any] = {}
        self._returns: list[float] = []
        self.episodes = 0
        self._start = self._last_print = clock()
        self._steps_at_print = start_steps  # a resumed run starts counting where it stopped
        self._pending = False

    def update(self, record: Mapping[str, Any]) -> None:
        """Take one metrics record; print the table when ``every_s`` seconds have passed since the last."""
        if "episode_return" in record:
            self.episodes += 1
            self._returns = (self._returns + [float(record["episode_return"])])[-self.window:]
        for key, value in record.items():
            # Speed and time are the table's own (since its last print); per-episode keys are summarised.
            if key not in ("episode_return", "episode_length", "sps", "time_s") \
                    and isinstance(value, int | float) and not isinstance(value, bool):
                self._latest[key] = value
        self._pending = True
        if self.clock() - self._last_print >= self.every_s:
            self.flush()

    def rows(self) -> list[tuple[str, str]]:
        """The table's (key, value) rows: steps, episodes and mean return first, the other keys by name, then
        ``sps`` (env steps per second since the previous table) and ``time_s`` (since the table was made)."""
        latest = dict(self._latest)
        now, steps = self.clock(), latest.pop("env_steps", None)
        sps = None
        if steps is not None and now > self._last_print:
            sps = round((steps - self._steps_at_print) / (now - self._last_print))
        first = [("env_steps", steps), ("episodes", self.episodes),
                 ("mean_return", sum(self._returns) / len(self._returns) if self._returns else None)]
        last = [("sps", sps), ("time_s", now - self._start)]
        return [(k, _cell(v)) for k, v in first + sorted(latest.items()) + last if v is not None]

    def flush(self) -> None:
        """Print the table now if anything arrived since the last one."""
        if not self._pending:
            return
        rows = self.rows()
        kw = max(len(k) for k, _ in rows)
        vw = max(len(v) for _, v in rows)
        rule = "-" * (kw + vw + 7)
        lines = [rule, *(f"| {k:<{kw}} | {v:<{vw}} |" for k, v in rows), rule]
        print("\n".join(lines), file=self.out or sys.stdout, flush=True)
        self._last_print = self.clock()
        self._steps_at_print = self._latest.get("env_steps", self._steps_at_print)
        self._pending = False


def _cell(value: Any) -> str:
    """A table cell: integers as they are, floats under 100 with 4 significant digits (losses are small),
    larger ones as :func:`format_number` writes them."""
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return f"{value:.4g}" if abs(value) < 100 else format_number(value)
