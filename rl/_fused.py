"""Optional compiled (numba) kernels behind a few engine ops: one pass where NumPy makes several.

Where a small-batch training step spends its time (PPO on CartPole, ``docs/benchmarks.md``, section
``bench_purejaxrl``): the GEMMs are BLAS either way, but every elementwise step around them is one NumPy
call and one trip through memory, and on arrays of a few thousand floats the call costs as much as the
arithmetic. The kernels here fuse such chains:

* :func:`act_grad_bias` -- a dense layer's backward epilogue: the activation's derivative (tanh from its
  output, or ReLU's mask) times the upstream gradient, and the bias gradient (its column sums), in one
  pass instead of four NumPy calls (:class:`rl.functional._Linear`).
* :func:`outer` -- a product over an axis of length 1 (a one-output layer's input gradient): NumPy's matmul
  takes a slow non-BLAS loop for it (35 us for 256 x 64 here, against 2 us compiled).
* :func:`column_sums` -- the bias gradient of a dense layer without an activation; :func:`add_row` its
  forward bias add (NumPy broadcasts a bias row with one inner loop call per row). The ``*_stacked``
  variants run these passes over K seed-stacked layers in one call (:mod:`rl.stacked`).
* :func:`log_softmax_rows`, :func:`categorical_entropy`, :func:`categorical_log_prob_grad` -- a categorical
  policy's log-softmax, its entropy and its log-probability's gradient, each one pass over the ``(B, K)``
  logits instead of five or six NumPy calls (:class:`rl.distributions.Categorical`);
  :func:`categorical_sample` its Gumbel-max argmax and the sampled actions' log-probabilities (bit-equal).
* :func:`adam` -- Adam's moment and parameter update over the optimizer's flat buffers, one pass instead of
  twelve NumPy calls (:class:`rl.optimizers.Adam`; bit-equal).
* :func:`clipped_surrogate` -- PPO's clipped surrogate over a minibatch of log-probabilities: the
  (optionally normalized) advantages, the ratio, the clipped objective's mean, its gradient with respect
  to the log-probabilities, and the approximate KL and clip fraction that PPO logs -- about twenty NumPy
  calls and seven graph nodes as one loop (:func:`rl.losses.clipped_surrogate`).

Each kernel does the NumPy path's float32 arithmetic in the same order without fast-math, so
:func:`act_grad_bias` and :func:`column_sums` are bit-equal to it; :func:`clipped_surrogate`'s means
accumulate in float64 where NumPy sums float32 pairwise, so its loss and statistics differ from the NumPy
path by float32 rounding (about 1e-7 relative, ``tests/rl/test_fused.py``), and :func:`log_softmax_rows` calls
libm's ``expf``/``logf`` where NumPy has its own SIMD versions (results within an ulp or two; the other
categorical kernels take NumPy's ``exp`` as an input and are bit-equal).

``numba`` is optional (the ``accel`` extra). Without it, or with the environment variable
``PLAYGRAD_FUSED=0``, or inside :func:`disabled`, :func:`kernels` returns None and the callers run their
NumPy code, which also serves CuPy. numba is imported and the kernels loaded (from numba's on-disk cache
after the first run) on first use, so ``import rl`` does not pay for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["compiled", "disabled", "kernels"]

_F32 = np.dtype(np.float32)
_lock = threading.Lock()
_built: SimpleNamespace | None = None
_tried = False
_SWITCHED_OFF = os.environ.get("PLAYGRAD_FUSED", "1") == "0"  # read once: kernels() runs on every op
_off = threading.local()  # set by disabled(): per thread, so a test switching it off does not race others


def _build() -> SimpleNamespace | None:
    try:
        import numba
    except ImportError:
        return None
    one, zero = np.float32(1.0), np.float32(0.0)  # float32 constants keep float32 arithmetic float32
    jit = numba.njit(cache=True, nogil=True, fastmath=False)

    @jit
    def act_grad_bias(out, g, relu, d, gb):  # pragma: no cover - compiled
        """``d = g * act'(out)`` and ``gb = d.sum(0)`` for ``out``, ``g``, ``d`` ``(M, K)``, ``gb (K,)``.

        ``act'`` is tanh's ``1 - out**2`` or (``relu``) ReLU's ``out > 0``. Rows are summed in order,
        as NumPy reduces axis 0 of a C-contiguous matrix of two or more columns, so ``gb`` is NumPy's sum bit
        for bit there (one column NumPy sums pairwise: the caller sums it with NumPy).
        """
        m, k = out.shape
        for j in range(k):
            gb[j] = zero
        for i in range(m):
            for j in range(k):
                o = out[i, j]
                if relu:
                    v = g[i, j] * (one if o > zero else zero)
                else:
                    v = g[i, j] * (one - o * o)
                d[i, j] = v
                gb[j] += v

    @jit
    def add_row(out, b):  # pragma: no cover - compiled
        """``out += b`` for ``out (M, K)`` and a bias row ``b (K,)``."""
        m, k = out.shape
        for i in range(m):
            for j in range(k):
                out[i, j] += b[j]

    @jit
    def outer(a, b, out):  # pragma: no cover - compiled
        """``out = a[:, None] * b[None, :]`` for ``a (M,)``, ``b (K,)``, ``out (M, K)``."""
        for i in range(a.shape[0]):
            for j in range(b.shape[0]):
                out[i, j] = a[i] * b[j]

    @jit
    def column_sums(g, gb):  # pragma: no cover - compiled
        """``gb = g.sum(0)`` for ``g (M, K)``, rows in order (NumPy's order for axis 0)."""
        m, k = g.shape
        for j in range(k):
            gb[j] = zero
        for i in range(m):
            for j in range(k):
                gb[j] += g[i, j]

    # The same three passes over K stacked layers (rl.stacked: ``(K, M, N)`` arrays, ``(K, N)`` biases), one call
    # instead of K, each seed's slice in the 2-D kernel's loop order (so the results are its, bit for bit). The
    # loops are written out rather than calling the 2-D kernels: a kernel that calls another from its closure
    # gets a new on-disk cache key in every process (numba hashes the closure's dispatchers), so it would be
    # compiled again on every run.
    @jit
    def act_grad_bias_stacked(out, g, relu, d, gb):  # pragma: no cover - compiled
        """:func:`act_grad_bias` on each of the K slices of ``out``, ``g``, ``d`` ``(K, M, N)``, ``gb (K, N)``."""
        seeds, m, k = out.shape
        for s in range(seeds):
            for j in range(k):
                gb[s, j] = zero
            for i in range(m):
                for j in range(k):
                    o = out[s, i, j]
                    if relu:
                        v = g[s, i, j] * (one if o > zero else zero)
                    else:
                        v = g[s, i, j] * (one - o * o)
                    d[s, i, j] = v
                    gb[s, j] += v

    @jit
    def add_rows_stacked(out, b):  # pragma: no cover - compiled
        """:func:`add_row` on each of the K slices: ``out (K, M, N) += b (K, N)[:, None, :]``."""
        seeds, m, k = out.shape
        for s in range(seeds):
            for i in range(m):
                for j in range(k):
                    out[s, i, j] += b[s, j]

    @jit
    def column_sums_stacked(g, gb):  # pragma: no cover - compiled
        """:func:`column_sums` on each of the K slices: ``gb (K, N) = g (K, M, N).sum(1)``, rows in order."""
        seeds, m, k = g.shape
        for s in range(seeds):
            for j in range(k):
                gb[s, j] = zero
            for i in range(m):
                for j in range(k):
                    gb[s, j] += g[s, i, j]

    @jit
    def clipped_surrogate(logp, old_logp, adv, counts, clip, normalize, dlogp, out):  # pragma: no cover
        """PPO's clipped surrogate ``mean(max(-A r, -A clip(r, 1-c, 1+c)))`` for K seeds, each over its first
        ``B = counts[s]`` entries (one seed alone: K = 1 and all its entries).

        ``logp``, ``old_logp``, ``adv`` ``(K, W)``; ``r = exp(logp - old_logp)``; with ``normalize`` the
        advantages are first made zero-mean, unit-std (``(A - mean) / (std + 1e-8)``, population std).
        Writes ``dlogp (K, W)``: d loss / d logp (the max's gradient goes to the unclipped term on ties,
        the clip's only where it left ``r`` alone; 0 past ``B``), and ``out (K, 3)`` float64: each seed's
        ``(loss, approx_kl, clip_fraction)`` with ``approx_kl = mean((r - 1) - log r)`` and
        ``clip_fraction = mean(|r - 1| > c)`` (zeros for a seed with no entries).
        """
        lo, hi = np.float32(1.0 - clip), np.float32(1.0 + clip)
        c32 = np.float32(clip)
        for seed in range(logp.shape[0]):
            b = counts[seed]
            for i in range(b, logp.shape[1]):
                dlogp[seed, i] = zero
            if b == 0:
                out[seed, 0] = out[seed, 1] = out[seed, 2] = 0.0
                continue
            shift, scale = zero, one  # a = (adv - shift) / scale
            if normalize and b > 1:
                s = 0.0
                for i in range(b):
                    s += adv[seed, i]
                mean = s / b
                s2 = 0.0
                for i in range(b):
                    dv = adv[seed, i] - mean
                    s2 += dv * dv
                shift = np.float32(mean)
                scale = np.float32(np.float32(np.sqrt(s2 / b)) + np.float32(1e-8))
            inv_b = np.float32(1.0 / b)  # the mean's gradient, as Mean's backward computes it
            loss = 0.0
            kl = 0.0
            clipped_rows = 0
            for i in range(b):
                a = (adv[seed, i] - shift) / scale
                log_ratio = logp[seed, i] - old_logp[seed, i]
                ratio = np.exp(log_ratio)
                clamped = min(max(ratio, lo), hi)
                unclipped_term = ratio * -a
                clipped_term = clamped * -a
                if unclipped_term >= clipped_term:
                    loss += unclipped_term
                    dlogp[seed, i] = (inv_b * -a) * ratio  # the NumPy graph's order: mean, product, then exp
                else:
                    loss += clipped_term
                    dlogp[seed, i] = (inv_b * -a) * ratio if clamped == ratio else zero
                kl += (ratio - one) - log_ratio
                if abs(ratio - one) > c32:
                    clipped_rows += 1
            out[seed, 0], out[seed, 1], out[seed, 2] = loss / b, kl / b, clipped_rows / b

    @jit
    def log_softmax_rows(a, out):  # pragma: no cover - compiled
        """``out = log_softmax(a, axis=-1)`` for ``a``, ``out`` ``(B, K)``: max shift, exp-sum, log, per row."""
        b, k = a.shape
        for i in range(b):
            mx = a[i, 0]
            for j in range(1, k):
                if a[i, j] > mx or np.isnan(a[i, j]):
                    mx = a[i, j]
            s = zero
            for j in range(k):
                s += np.exp(a[i, j] - mx)
            log_s = np.log(s)
            for j in range(k):
                out[i, j] = (a[i, j] - mx) - log_s

    @jit
    def categorical_entropy(log_probs, probs, out):  # pragma: no cover - compiled
        """``out[b] = -sum_k p_k log p_k`` from ``log_probs`` and ``probs = exp(log_probs)`` ``(B, K)``; a
        ``-inf`` class adds 0. (NumPy's ``exp`` comes in: libm's would differ from it in the last bit.)"""
        b, k = log_probs.shape
        for i in range(b):
            s = zero
            for j in range(k):
                lp = log_probs[i, j]
                s += probs[i, j] * (lp if np.isfinite(lp) else zero)
            out[i] = -s

    @jit
    def categorical_sample(log_probs, noise, actions, logp):  # pragma: no cover - compiled
        """Gumbel-max over ``(B, K)`` rows: ``actions[b] = argmax_k(log_probs[b, k] - noise[b, k])`` (the first
        maximum, or the first NaN, as ``np.argmax``) and ``logp[b] = log_probs[b, actions[b]]``, ``(B,)`` each.

        ``noise`` is ``log(-log u)``, computed by the caller with NumPy: its SIMD ``log`` and libm's differ in
        the last bit for about 5% of float32 inputs, which could flip a near-tie and change a sample."""
        b, k = log_probs.shape
        for i in range(b):
            best = 0
            top = log_probs[i, 0] - noise[i, 0]
            if not np.isnan(top):
                for j in range(1, k):
                    v = log_probs[i, j] - noise[i, j]
                    if v > top or np.isnan(v):
                        best, top = j, v
                        if np.isnan(v):
                            break
            actions[i] = best
            logp[i] = log_probs[i, best]

    @jit
    def categorical_log_prob_grad(probs, actions, g, grad):  # pragma: no cover - compiled
        """``grad[b, k] = [k == actions[b]] g[b] - p_k g[b]``: the log-probability's gradient, ``(B, K)``."""
        b, k = probs.shape
        for i in range(b):
            gi = g[i]
            a = actions[i]
            for j in range(k):
                e = probs[i, j] * gi
                grad[i, j] = (gi - e) if j == a else -e

    # NumPy's error model: a float division by zero gives inf/nan as in NumPy instead of a check that raises
    # ZeroDivisionError, whose branch keeps LLVM from vectorizing the loop (7x slower for Adam's update).
    @numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
    def adam(p, g, m, v, coefs):  # pragma: no cover - compiled
        """Adam's update of ``p``, ``m``, ``v`` (all ``(N,)``) by the gradient ``g (N,)`` in one pass.

        ``coefs = [b1, 1 - b1, b2, 1 - b2, eps', step]`` (float32, as NumPy rounds the Python scalars):
        ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g*g``, ``p -= m / (sqrt(v) + eps') * step``, each
        product and sum rounded to float32 in the order of :meth:`rl.optimizers.Adam._update`'s NumPy
        calls (no fused multiply-add), so the result is theirs bit for bit.
        """
        b1, c1, b2, c2, eps, step = coefs[0], coefs[1], coefs[2], coefs[3], coefs[4], coefs[5]
        for i in range(p.shape[0]):
            gi = g[i]
            mi = m[i] * b1 + gi * c1
            vi = v[i] * b2 + (gi * gi) * c2
            m[i] = mi
            v[i] = vi
            p[i] = p[i] - mi / (np.sqrt(vi) + eps) * step

    return SimpleNamespace(adam=adam, act_grad_bias=act_grad_bias, add_row=add_row, column_sums=column_sums,
                           outer=outer, act_grad_bias_stacked=act_grad_bias_stacked,
                           add_rows_stacked=add_rows_stacked, column_sums_stacked=column_sums_stacked,
                           clipped_surrogate=clipped_surrogate, log_softmax_rows=log_softmax_rows,
                           categorical_entropy=categorical_entropy, categorical_sample=categorical_sample,
                           categorical_log_prob_grad=categorical_log_prob_grad)


_MISSING = object()
_outside: dict[str, Any] = {}  # name -> kernel built by compiled()


def compiled(name: str, build: Callable[[Any], Any]) -> Any:
    """A kernel kept outside this module (an env's or an agent's own), under this module's switch.

    ``build(numba)`` makes it on the first call for ``name`` (``numba.njit(cache=True)`` loads it from disk
    after the first run); returns None wherever :func:`kernels` does, so the caller runs its NumPy code.
    """
    if kernels() is None:
        return None
    kernel = _outside.get(name, _MISSING)
    if kernel is _MISSING:
        with _lock:
            if name not in _outside:
                import numba  # noqa: PLC0415 - kernels() found it

                _outside[name] = build(numba)
            kernel = _outside[name]
    return kernel


def kernels() -> SimpleNamespace | None:
    """The compiled kernels, or None where numba is missing or the kernels are switched off.

    Callers use them only for NumPy float32 arrays; everything else (CuPy, float64 gradient checks) takes
    the NumPy code beside each call.
    """
    global _built, _tried
    if _SWITCHED_OFF or getattr(_off, "depth", 0):
        return None
    if not _tried:
        with _lock:
            if not _tried:
                _built = _build()
                _tried = True
    return _built


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the NumPy paths inside the block (this thread only): for tests that compare both paths."""
    _off.depth = getattr(_off, "depth", 0) + 1
    try:
        yield
    finally:
        _off.depth -= 1


def is_host_float32(*arrays: Any) -> bool:
    """True when every array is a NumPy float32 ndarray (what the kernels are compiled for)."""
    for a in arrays:  # noqa: SIM110 - a plain loop: all() over a generator costs more on this hot path
        if type(a) is not np.ndarray or a.dtype != _F32:
            return False
    return True
