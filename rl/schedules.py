"""Schedules: a value as a function of a step (or epoch) counter.

Each schedule is a small callable object ``schedule(step) -> float`` with a ``get_config()`` so it
can be saved as JSON in a checkpoint and rebuilt with :func:`from_config`. They serve as:

* a learning rate: ``Adam(params, lr=LinearDecay(3e-4, 0.0, 1_000_000))`` is evaluated at
  ``optimizer.iterations`` (PPO's learning-rate annealing);
* an exploration rate: ``eps = LinearDecay(1.0, 0.05, 50_000)(global_step)`` (DQN's epsilon);
* a per-epoch learning rate through the :class:`~rl.callbacks.LearningRateScheduler` callback.

Steps before 0 are treated as 0; schedules with a length hold their end value afterwards.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "LinearDecay",
    "PiecewiseConstant",
    "Schedule",
    "from_config",
]


class Schedule:
    """Base class: ``schedule(step) -> float``; subclasses implement ``value(step)``."""

    def __call__(self, step: int | float) -> float:
        return float(self.value(max(float(step), 0.0)))

    def value(self, step: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """JSON-able description; :func:`from_config` rebuilds the schedule."""
        return {"class": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class")
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """Always ``value``."""

    def __init__(self, value: float):
        self.constant = float(value)

    def value(self, step: float) -> float:
        return self.constant


class LinearDecay(Schedule):
    """From ``start`` to ``end`` linearly over ``duration_steps`` steps, then ``end``.

    ``LinearDecay(2.5e-4, 0.0, total_updates)`` is PPO's annealed learning rate;
    ``LinearDecay(1.0, 0.05, 0.5 * total_steps)`` a DQN epsilon.
    """

    def __init__(self, start: float, end: float, duration_steps: float):
        if duration_steps <= 0:
            raise ValueError(f"duration_steps must be positive, got {duration_steps}")
        self.start, self.end, self.duration_steps = float(start), float(end), float(duration_steps)

    def value(self, step: float) -> float:
        frac = min(step / self.duration_steps, 1.0)
        # Weighted form: exactly ``start`` at 0 and ``end`` at the end, and ``start * (1 - frac)`` when
        # decaying to 0 (PPO's annealing, bit for bit as it was written before it used this class).
        return self.start * (1.0 - frac) + self.end * frac


class ExponentialDecay(Schedule):
    """``initial * decay_rate ** (step / decay_steps)`` (Keras' ExponentialDecay), floored at ``minimum``.

    With ``staircase=True`` the exponent is rounded down, so the value drops every ``decay_steps``.
    """

    def __init__(
        self, initial: float, decay_steps: float, decay_rate: float, staircase: bool = False, minimum: float = 0.0
    ):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.initial, self.decay_steps, self.decay_rate = float(initial), float(decay_steps), float(decay_rate)
        self.staircase, self.minimum = bool(staircase), float(minimum)

    def value(self, step: float) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return max(self.initial * self.decay_rate**p, self.minimum)


class CosineDecay(Schedule):
    """Half a cosine from ``initial`` down to ``initial * alpha`` over ``decay_steps``, optional linear warmup.

    During the first ``warmup_steps`` the value rises linearly from 0 to ``initial``; the cosine
    then runs over the following ``decay_steps`` (Keras' CosineDecay with ``alpha``).
    """

    def __init__(self, initial: float, decay_steps: float, alpha: float = 0.0, warmup_steps: float = 0.0):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.initial, self.decay_steps = float(initial), float(decay_steps)
        self.alpha, self.warmup_steps = float(alpha), float(warmup_steps)

    def value(self, step: float) -> float:
        if step < self.warmup_steps:
            return self.initial * step / self.warmup_steps
        frac = min((step - self.warmup_steps) / self.decay_steps, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * frac))
        return self.initial * ((1.0 - self.alpha) * cosine + self.alpha)


class PiecewiseConstant(Schedule):
    """``values[i]`` while ``boundaries[i-1] <= step < boundaries[i]`` (one more value than boundaries).

    ``PiecewiseConstant([1000, 5000], [1e-3, 5e-4, 1e-4])``: 1e-3 before step 1000, 5e-4 until 5000,
    then 1e-4.
    """

    def __init__(self, boundaries: Sequence[float], values: Sequence[float]):
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"need len(values) == len(boundaries) + 1, got {len(values)} and {len(boundaries)}")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries must increase, got {list(boundaries)}")
        self.boundaries = [float(b) for b in boundaries]
        self.values = [float(v) for v in values]

    def value(self, step: float) -> float:
        return self.values[bisect.bisect_right(self.boundaries, step)]


_SCHEDULES: dict[str, type[Schedule]] = {
    cls.__name__: cls for cls in (Constant, LinearDecay, ExponentialDecay, CosineDecay, PiecewiseConstant)
}


def from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from ``schedule.get_config()``; unknown classes list the valid ones."""
    cfg = dict(config)
    name = cfg.pop("class", None)
    if name not in _SCHEDULES:
        raise ValueError(f"unknown schedule class {name!r}; valid: {', '.join(sorted(_SCHEDULES))}")
    if name == "Constant":
        return Constant(cfg["constant"])
    return _SCHEDULES[name](**cfg)
