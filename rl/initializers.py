"""Weight initializers with Keras' names, defaults and fan rules.

Every initializer is called as ``init(shape, dtype, rng)`` and returns an ``xp`` array of that
shape and dtype on the active device. ``rng`` is an :class:`rl.random.Generator` (``None`` means
:func:`rl.random.default_generator`), a ``numpy.random.Generator`` or an integer seed.

Fans follow Keras (``compute_fans``): a dense kernel ``(in, out)`` has ``fan_in = in`` and
``fan_out = out``; a convolution kernel ``(kh, kw, in, out)`` multiplies both by the receptive
field ``kh * kw``; a depthwise kernel ``(kh, kw, C, multiplier)`` gets ``fan_in = kh*kw*C`` and
``fan_out = kh*kw*multiplier``.

Look-up by name (:func:`get`) accepts Keras' snake-case names (``"glorot_uniform"``), class names
(``"GlorotUniform"``) and serialized dicts (``{"class_name": "GlorotUniform", "config": {}}``), so
layer configs round-trip through JSON and match what TF.js writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rl import backend
from rl import random as rl_random

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "Zeros",
    "compute_fans",
    "constant",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "serialize",
    "zeros",
]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' ``(fan_in, fan_out)`` for a weight of ``shape`` (see the module docstring)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


# ---------------------------------------------------------------------------------- random draws
def _resolve_rng(rng: Any) -> Any:
    if rng is None:
        return rl_random.default_generator()
    if isinstance(rng, int | np.integer):
        return np.random.default_rng(int(rng))
    return rng


def _standard_normal(rng: Any, shape: tuple[int, ...]) -> Any:
    rng = _resolve_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape)
    return rng.normal(shape, dtype=np.float64)


def _uniform(rng: Any, shape: tuple[int, ...], low: float, high: float) -> Any:
    rng = _resolve_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng.uniform(low, high, shape)
    return rng.uniform(low, high, shape, dtype=np.float64)


def _truncated_normal(rng: Any, shape: tuple[int, ...], stddev: float) -> Any:
    """Normal(0, stddev) redrawn outside two standard deviations (TensorFlow's truncated_normal)."""
    values = _standard_normal(rng, shape)
    xp = backend.get_array_module(values)
    for _ in range(100):  # each round keeps ~95%, so this ends after a handful of rounds
        outside = xp.abs(values) > 2.0
        n = int(outside.sum())
        if n == 0:
            break
        values[outside] = _standard_normal(rng, (n,))
    return values * stddev


def _finish(values: Any, dtype: Any) -> Any:
    return backend.to_device(values, dtype=np.dtype(dtype) if dtype is not None else np.float32)


# ---------------------------------------------------------------------------------- classes
class Initializer:
    """Base class: ``init(shape, dtype, rng) -> xp array``; ``get_config()`` gives its JSON-able settings."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, rng: Any = None) -> Any:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros (Keras' default for biases and BatchNormalization's beta / moving mean)."""

    def __call__(self, shape, dtype=np.float32, rng=None):
        return backend.current().xp.zeros(tuple(shape), dtype=dtype)


class Ones(Initializer):
    """All ones (BatchNormalization's gamma and moving variance)."""

    def __call__(self, shape, dtype=np.float32, rng=None):
        return backend.current().xp.ones(tuple(shape), dtype=dtype)


class Constant(Initializer):
    """Every element equal to ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=np.float32, rng=None):
        return backend.current().xp.full(tuple(shape), self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """Normal(mean, stddev); Keras' defaults 0 and 0.05."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def __call__(self, shape, dtype=np.float32, rng=None):
        rng = self.seed if self.seed is not None and rng is None else rng
        return _finish(_standard_normal(rng, tuple(shape)) * self.stddev + self.mean, dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)``; Keras' defaults -0.05 and 0.05."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = float(minval), float(maxval), seed

    def __call__(self, shape, dtype=np.float32, rng=None):
        rng = self.seed if self.seed is not None and rng is None else rng
        return _finish(_uniform(rng, tuple(shape), self.minval, self.maxval), dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance ``scale / n`` with ``n`` = fan_in, fan_out or their mean.

    ``distribution`` is ``"truncated_normal"`` (stddev corrected for the truncation at two
    standard deviations, as Keras does), ``"untruncated_normal"`` or ``"uniform"``
    (limit ``sqrt(3 * scale / n)``).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling mode {mode!r}; valid: 'fan_in', 'fan_out', 'fan_avg'")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                f"VarianceScaling distribution {distribution!r}; valid: 'truncated_normal', "
                "'untruncated_normal', 'uniform'"
            )
        self.scale, self.mode, self.distribution, self.seed = float(scale), mode, distribution, seed

    def __call__(self, shape, dtype=np.float32, rng=None):
        shape = tuple(shape)
        rng = self.seed if self.seed is not None and rng is None else rng
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return _finish(_uniform(rng, shape, -limit, limit), dtype)
        if self.distribution == "untruncated_normal":
            return _finish(_standard_normal(rng, shape) * math.sqrt(variance), dtype)
        # 0.8796... is the stddev of a unit normal truncated at +-2: dividing keeps the variance.
        return _finish(_truncated_normal(rng, shape, math.sqrt(variance) / 0.87962566103423978), dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed settings whose config is only its seed (as Keras serializes it)."""

    _preset: tuple[float, str, str] = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: int | None = None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """Uniform with limit ``sqrt(6 / (fan_in + fan_out))``: Keras' default for Dense and Conv kernels."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal with stddev ``sqrt(2 / (fan_in + fan_out))``."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    """Truncated normal with stddev ``sqrt(2 / fan_in)`` (for ReLU networks)."""

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    """Uniform with limit ``sqrt(6 / fan_in)``."""

    _preset = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal with stddev ``sqrt(1 / fan_in)``."""

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """Uniform with limit ``sqrt(3 / fan_in)``."""

    _preset = (1.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``: the standard choice for PPO/A2C policy heads.

    The weight is viewed as a matrix ``(prod(shape[:-1]), shape[-1])`` (Keras' convention), filled
    from the QR decomposition of a Gaussian matrix with the signs fixed so the result is uniform
    over orthogonal matrices.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain, self.seed = float(gain), seed

    def __call__(self, shape, dtype=np.float32, rng=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a weight of at least 2 dimensions, got shape {shape}")
        rng = self.seed if self.seed is not None and rng is None else rng
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = _standard_normal(rng, (max(rows, cols), min(rows, cols)))
        xp = backend.get_array_module(a)
        q, r = xp.linalg.qr(a)
        q = q * xp.sign(xp.diag(r))  # make the decomposition unique
        if rows < cols:
            q = q.T
        return _finish(self.gain * q.reshape(shape), dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


# ---------------------------------------------------------------------------------- functions
def _as_function(cls: type[Initializer], doc: str) -> Callable[..., Any]:
    instance = cls()

    def init(shape: tuple[int, ...], dtype: Any = np.float32, rng: Any = None) -> Any:
        return instance(shape, dtype, rng)

    init.__doc__ = doc
    return init


zeros = _as_function(Zeros, "Zeros of ``shape`` and ``dtype``.")
ones = _as_function(Ones, "Ones of ``shape`` and ``dtype``.")
glorot_uniform = _as_function(GlorotUniform, "Glorot/Xavier uniform (Keras' default kernel initializer).")
glorot_normal = _as_function(GlorotNormal, "Glorot/Xavier truncated normal.")
he_normal = _as_function(HeNormal, "He truncated normal, stddev sqrt(2 / fan_in).")
he_uniform = _as_function(HeUniform, "He uniform, limit sqrt(6 / fan_in).")
lecun_normal = _as_function(LecunNormal, "LeCun truncated normal, stddev sqrt(1 / fan_in).")
lecun_uniform = _as_function(LecunUniform, "LeCun uniform, limit sqrt(3 / fan_in).")
random_normal = _as_function(RandomNormal, "Normal(0, 0.05).")
random_uniform = _as_function(RandomUniform, "Uniform(-0.05, 0.05).")


def constant(shape: tuple[int, ...], dtype: Any = np.float32, rng: Any = None, value: float = 0.0) -> Any:
    """Every element equal to ``value``."""
    return Constant(value)(shape, dtype, rng)


def orthogonal(shape: tuple[int, ...], dtype: Any = np.float32, rng: Any = None, gain: float = 1.0) -> Any:
    """A (semi-)orthogonal weight scaled by ``gain`` (see :class:`Orthogonal`)."""
    return Orthogonal(gain)(shape, dtype, rng)


# ---------------------------------------------------------------------------------- look-up
_CLASSES: dict[str, type[Initializer]] = {
    cls.__name__: cls
    for cls in (Zeros, Ones, Constant, RandomNormal, RandomUniform, VarianceScaling, GlorotUniform,
                GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal)
}
_SNAKE = {
    "zeros": "Zeros", "ones": "Ones", "constant": "Constant", "random_normal": "RandomNormal",
    "random_uniform": "RandomUniform", "variance_scaling": "VarianceScaling",
    "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_normal": "HeNormal",
    "he_uniform": "HeUniform", "lecun_normal": "LecunNormal", "lecun_uniform": "LecunUniform",
    "orthogonal": "Orthogonal",
}


def get(identifier: Any) -> Callable[..., Any]:
    """Resolve an initializer from a name, a ``{"class_name", "config"}`` dict, or a callable.

    Raises ``ValueError`` listing the valid names for an unknown one.
    """
    if identifier is None:
        raise ValueError("an initializer is required (got None)")
    if isinstance(identifier, Initializer) or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        class_name, config = _SNAKE.get(identifier, identifier), {}
    elif isinstance(identifier, dict) and "class_name" in identifier:
        class_name, config = identifier["class_name"], dict(identifier.get("config") or {})
    else:
        raise ValueError(f"cannot interpret {identifier!r} as an initializer")
    cls = _CLASSES.get(class_name)
    if cls is None:
        valid = ", ".join(sorted(_SNAKE))
        raise ValueError(f"unknown initializer {identifier!r}; valid: {valid} (or their Keras class names)")
    try:
        return cls.from_config(config)
    except TypeError as exc:
        raise ValueError(f"bad config for initializer {class_name}: {config!r} ({exc})") from None


def serialize(init: Any) -> Any:
    """The JSON-able form of an initializer: ``{"class_name": ..., "config": {...}}``.

    Plain functions (custom initializers) serialize to their ``__name__``.
    """
    if isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    if isinstance(init, str):
        return serialize(get(init))
    for snake, class_name in _SNAKE.items():
        if globals().get(snake) is init:
            return {"class_name": class_name, "config": _CLASSES[class_name]().get_config()}
    return getattr(init, "__name__", repr(init))
