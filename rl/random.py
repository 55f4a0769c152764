"""Seeded random numbers on the active device: one :class:`Generator` per run.

Every source of randomness in playgrad (weight initializers, dropout masks, action sampling,
minibatch shuffles) draws from a :class:`Generator` passed in explicitly, or from the module's
default generator when none is passed. Seeding that default once (``rl.random.seed(n)``) makes a
whole run reproducible: on the CPU the same seed gives bit-identical numbers.

A Generator wraps NumPy's ``numpy.random.default_rng`` (PCG64) on the CPU and CuPy's
``cupy.random.default_rng`` (XORWOW) on the GPU, both seeded from one ``numpy.random.SeedSequence``.
It follows the backend that is active when a method is called, so the same code serves both; the
two devices give different (equally valid) streams for the same seed. Only the few primitive
draws both libraries share (``random``, ``standard_normal``, ``integers``) are used, and the rest
are built from them, so CuPy's smaller Generator API is enough.

The default generator starts from seed 0, so a script that never seeds is still reproducible;
call ``seed(None)`` for fresh OS entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rl import backend

__all__ = ["Generator", "default_generator", "seed"]


def _shape(shape: Any) -> tuple[int, ...]:
    if shape is None:
        return ()
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(n) for n in shape)


class Generator:
    """A seeded source of random arrays on the active device.

    Args:
        seed: an int, ``None`` (OS entropy) or a ``numpy.random.SeedSequence``.

    Every method returns an ``xp`` array on the backend active at the call (a 0-d array for
    ``shape=()``). ``shape`` may be an int or a tuple.
    """

    def __init__(self, seed: int | np.random.SeedSequence | None = None):
        if isinstance(seed, np.random.SeedSequence):
            self._seed_seq = seed
        else:
            if seed is not None and (not isinstance(seed, int | np.integer) or seed < 0):
                raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
            self._seed_seq = np.random.SeedSequence(None if seed is None else int(seed))
        self._rngs: dict[str, Any] = {}  # one underlying generator per array library, made on first use

    @property
    def seed_sequence(self) -> np.random.SeedSequence:
        """The ``SeedSequence`` this generator was built from (its ``entropy`` is the seed)."""
        return self._seed_seq

    def _rng(self) -> tuple[Any, Any]:
        xp = backend.current().xp
        rng = self._rngs.get(xp.__name__)
        if rng is None:
            rng = xp.random.default_rng(self._seed_seq)
            self._rngs[xp.__name__] = rng
        return xp, rng

    @property
    def numpy(self) -> np.random.Generator:
        """The host NumPy generator (the same stream the CPU backend draws from).

        For host-side work such as environment seeds or replay-buffer indices.
        """
        rng = self._rngs.get("numpy")
        if rng is None:
            rng = np.random.default_rng(self._seed_seq)
            self._rngs["numpy"] = rng
        return rng

    # ------------------------------------------------------------------------------- draws
    def random(self, shape: Any = (), dtype: Any = np.float32) -> Any:
        """Uniform floats in [0, 1) of ``shape``."""
        _, rng = self._rng()
        return rng.random(_shape(shape), dtype=dtype)

    def uniform(self, low: float = 0.0, high: float = 1.0, shape: Any = (), dtype: Any = np.float32) -> Any:
        """Uniform floats in [low, high) of ``shape``."""
        u = self.random(shape, dtype)
        return (u * (high - low) + low).astype(dtype, copy=False)

    def normal(self, shape: Any = (), dtype: Any = np.float32, mean: float = 0.0, std: float = 1.0) -> Any:
        """Gaussian floats N(mean, std**2) of ``shape``."""
        _, rng = self._rng()
        z = rng.standard_normal(_shape(shape), dtype=dtype)
        if std != 1.0:
            z *= std
        if mean != 0.0:
            z += mean
        return z

    def integers(self, low: int, high: int | None = None, shape: Any = (), dtype: Any = np.int64) -> Any:
        """Integers in [low, high) (or [0, low) when ``high`` is None) of ``shape``."""
        if high is None:
            low, high = 0, low
        if high <= low:
            raise ValueError(f"integers needs low < high, got low={low}, high={high}")
        _, rng = self._rng()
        return rng.integers(low, high, size=_shape(shape)).astype(dtype, copy=False)

    def bernoulli(self, p: Any, shape: Any = ()) -> Any:
        """Booleans that are True with probability ``p`` (a number or an array broadcast to ``shape``)."""
        return self.random(shape, np.float32) < p

    def choice(self, n: int, shape: Any = (), p: Any = None, replace: bool = True) -> Any:
        """Indices in [0, n): uniform, or with probabilities ``p`` (shape ``(n,)``, summing to 1).

        Without replacement (uniform only) the first ``prod(shape)`` entries of a permutation.
        """
        xp, _ = self._rng()
        shape = _shape(shape)
        if not replace:
            if p is not None:
                raise ValueError("choice without replacement supports uniform probabilities only")
            count = int(np.prod(shape)) if shape else 1
            if count > n:
                raise ValueError(f"cannot choose {count} of {n} without replacement")
            return self.permutation(n)[:count].reshape(shape)
        if p is None:
            return self.integers(0, n, shape)
        p = xp.asarray(p, dtype=xp.float64)
        if p.shape != (n,):
            raise ValueError(f"choice: p must have shape ({n},), got {tuple(p.shape)}")
        cdf = xp.cumsum(p)
        cdf /= cdf[-1]
        u = self.random(shape, np.float64)
        # searchsorted 'right' maps u in [cdf[k-1], cdf[k]) to k; the clip guards rounding at 1.0
        return xp.minimum(xp.searchsorted(cdf, u, side="right"), n - 1).astype(xp.int64)

    def permutation(self, n: int) -> Any:
        """A random ordering of ``arange(n)`` (int64)."""
        xp, rng = self._rng()
        if xp is np:
            return rng.permutation(n)
        return xp.argsort(rng.random((n,)))  # CuPy's Generator has no permutation

    # ------------------------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        """The position of the host stream as a JSON-able dict, for exact resume (see :meth:`set_state`).

        Only NumPy's stream can be saved: CuPy keeps its cuRAND states in device memory and has no API
        to read them back, so a run on the GPU resumes with the device stream started afresh from the
        seed (the resume is then correct but not bit-identical).
        """
        rng = self._rngs.get("numpy")
        return {"numpy": None if rng is None else rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        """Put back a position from :meth:`get_state` (a stream never drawn from stays unmade)."""
        host = state.get("numpy")
        if host is None:
            self._rngs.pop("numpy", None)
        else:
            self.numpy.bit_generator.state = host

    def spawn(self, n: int) -> list[Generator]:
        """``n`` independent child generators (per-env or per-worker streams), deterministic in the seed."""
        return [Generator(child) for child in self._seed_seq.spawn(n)]

    def __repr__(self) -> str:
        key = f", spawn_key={self._seed_seq.spawn_key}" if self._seed_seq.spawn_key else ""
        return f"Generator(entropy={self._seed_seq.entropy}{key})"


_default = Generator(0)


def seed(n: int | None) -> Generator:
    """Replace the module's default generator with a fresh ``Generator(n)`` and return it."""
    global _default
    _default = Generator(n)
    return _default


def default_generator() -> Generator:
    """The generator used by initializers, dropout and sampling when none is passed."""
    return _default
