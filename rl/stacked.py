"""Seed-stacked computation: K independent copies of one small network trained as one batched program.

Training several seeds of one experiment costs, per step, the same number of array calls as training
one when every array carries a leading seed axis ``K``: a dense layer becomes one batched matmul
``(K, B, in) @ (K, in, out)``, a loss one node for all seeds, Adam one set of whole-buffer ops. This is
what PureJaxRL gets from ``jax.vmap`` over seeds, written out by hand for the few pieces an on-policy
agent needs:

* :class:`StackedAdam` packs K lists of parameters (one per seed, the same shapes) into one ``(K, P)``
  buffer whose row ``k`` is seed ``k``'s parameters flattened in their list order, exactly the layout
  of :class:`rl.optimizers.Adam`'s own flat buffer for that seed alone. Each seed's own tensors become
  views of its row (so each seed's model keeps working, e.g. to act or to be checkpointed), and the
  stacked tensors ``(K, *shape)`` are views across the rows. The global-norm clip is per seed.
* :class:`StackedMLP` runs K ``Sequential`` stacks of ``Dense`` layers as one: ``(K, B, in) -> (K, B, out)``.
* :func:`seed_means`, :func:`seed_mse` and :func:`seed_clipped_surrogates` reduce ``(K, W)`` rows over the
  first ``counts[k]`` entries of each (the rest is padding), so seeds whose minibatches hold different
  numbers of rows share one padded array, and each seed's loss is the single-seed loss over its own rows,
  bit for bit (the same reductions, in the same order, and PPO's same compiled surrogate).
* :class:`GeneratorStack` draws ``(K * n, ...)`` random arrays as K blocks, block ``k`` from seed ``k``'s
  own :class:`rl.random.Generator`, so each seed sees the numbers its single-seed run would draw.

Bit-for-bit equality with K single-seed runs holds where each seed's arithmetic is its single run's on
the same arrays: elementwise ops, per-row reductions, batched products whose per-seed matrices have the
single run's row count (one GEMM per seed, the same call). A padded minibatch is the exception: BLAS may
round a row differently with the matrix's row count (OpenBLAS's kernels for narrow outputs do), so
:func:`stacked_linear` with ``rows=`` computes each seed's real rows alone on the host, and the seed losses
reduce over those rows alone. Padding widths fixed by the config also make a seed's numbers independent of
which seeds share its stack.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl import _fused, backend, losses
from rl import functional as F
from rl.layers import Dense
from rl.optimizers import Adam
from rl.random import Generator
from rl.tensor import Function, Tensor, _reduce_sum, as_tensor, no_grad

__all__ = ["GeneratorStack", "StackedAdam", "StackedMLP", "keep_freed_memory", "seed_clipped_surrogates", "seed_means",
           "seed_mse", "stacked_linear"]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_heap_kept = False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next arrays instead of handing it back to the system.

    A stacked seed program allocates K times a single seed's arrays, a hidden layer's ``(K, B, 64)`` float32
    of 8 seeds x 256 rows being 512 KiB, past malloc's 128 KiB mmap threshold: each such temporary is then a
    fresh mapping (or the heap's top is trimmed and regrown), and its pages fault in on first touch, which
    cost more than the arithmetic (a tanh with its bias add: ~290 us instead of ~90 us per (8, 256, 64) on
    the bench machine). Serving them from a heap that keeps 64 MiB of slack cut the stacked update's CPU time
    by about a quarter (``docs/benchmarks.md``, bench_seeds). Process-wide and permanent: the price is that
    up to ~128 MiB of freed memory stays with the process. Returns False where it does not apply (not
    glibc); calling it again does nothing.
    """
    global _heap_kept
    if _heap_kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl) or no symbol table
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, 32 << 20), (_M_TOP_PAD, 64 << 20), (_M_TRIM_THRESHOLD, 128 << 20)))
    _heap_kept = ok
    return ok


class GeneratorStack:
    """K random streams drawn as one: ``random((K * n, ...))`` is seed ``k``'s ``random((n, ...))`` in rows
    ``k*n:(k+1)*n``. Duck-types the draws :mod:`rl.distributions` makes (``random``, ``normal``)."""

    def __init__(self, generators: Sequence[Generator]):
        self.generators = list(generators)

    def _blocks(self, shape: Any) -> tuple[int, tuple[int, ...]]:
        shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
        k = len(self.generators)
        if not shape or shape[0] % k:
            raise ValueError(f"a draw for {k} stacked seeds needs a leading axis divisible by {k}, got {shape}")
        return shape[0] // k, shape[1:]

    def random(self, shape: Any, dtype: Any = np.float32) -> Any:
        """Uniform floats in [0, 1) of ``shape`` (``shape[0] = K * n``)."""
        n, rest = self._blocks(shape)
        xp = backend.current().xp
        return xp.concatenate([g.random((n, *rest), dtype) for g in self.generators])

    def normal(self, shape: Any, dtype: Any = np.float32) -> Any:
        """Standard normal floats of ``shape`` (``shape[0] = K * n``)."""
        n, rest = self._blocks(shape)
        xp = backend.current().xp
        return xp.concatenate([g.normal((n, *rest), dtype) for g in self.generators])


def _linear_array(x: Any, w: Any, b: Any, act: str | None, rows: Any = None) -> Any:
    """``act(x @ w + b)`` on raw arrays: ``x (K, B, in)``, ``w (K, in, out)``, ``b (K, out)`` -> ``(K, B, out)``;
    ``act`` None, ``"tanh"`` or ``"relu"``. With ``rows`` (host, NumPy arrays) the product is taken seed by seed
    over each seed's first ``rows[k]`` rows (see :class:`_StackedLinear`); the other rows' products are 0."""
    if rows is None:
        out = x @ w
    else:
        out = np.empty((x.shape[0], x.shape[1], w.shape[2]), dtype=np.result_type(x, w))
        for k, n in enumerate(rows):
            np.matmul(x[k, :n], w[k], out=out[k, :n])
            out[k, n:] = 0
    kern = _fused.kernels()
    if kern is not None and _fused.is_host_float32(out, b):
        # seed by seed, the compiled bias add rl.functional.linear_array uses; the biases are views across the
        # optimizer's rows, copied to one small contiguous block so that the compiled loop vectorizes (3x here)
        kern.add_rows_stacked(out, np.ascontiguousarray(b))
    else:
        out += b[:, None, :]
    xp = backend.get_array_module(out)
    if act == "tanh":
        xp.tanh(out, out=out)
    elif act == "relu":
        xp.maximum(out, 0, out=out)
    return out


class _StackedLinear(Function):
    """``act(x @ w + b)`` for K stacked layers: ``x (K, B, in)``, ``w (K, in, out)``, ``b (K, out)``; ``act``
    None, ``"tanh"`` or ``"relu"``, computed and differentiated as :func:`rl.functional.linear` does per seed.

    ``rows`` (host ints ``(K,)``; NumPy only): seed ``k``'s first ``rows[k]`` rows are real, the rest padding,
    whose output gradient must be 0 (the seed losses give it so). Then every matrix product is taken seed by
    seed over exactly the real rows, as the single-seed run's ``rl.functional._linear_backward`` takes it
    (BLAS may round a row differently with the matrix's row count: OpenBLAS's kernels for narrow outputs do),
    and so is a one-column bias gradient (NumPy sums a column pairwise); the elementwise passes stay batched
    (per row, and adding the padding's zeros changes no row-ordered sum). Each seed's values and gradients
    are then :func:`rl.functional.linear`'s over its real rows, bit for bit (``tests/rl/test_stacked.py``).
    """

    def forward(self, x, w, b, act=None, rows=None):
        self.x, self.w, self.act = x, w, act
        self.rows = rows if rows is not None and type(x) is np.ndarray else None
        self.out = _linear_array(x, w, b, act, self.rows)
        return self.out

    def backward(self, g):
        xp = backend.get_array_module(g)
        kern = _fused.kernels()
        gb = None
        if kern is not None and _fused.is_host_float32(g, self.out):
            # Seed by seed, rl.functional.linear's compiled pass: the activation's derivative and the bias
            # gradient (rows summed in NumPy's order) in one loop instead of four NumPy passes over (K, B, out).
            g = np.ascontiguousarray(g)
            gb = np.empty((g.shape[0], g.shape[2]), dtype=np.float32)
            if self.act is not None:
                d = np.empty(g.shape, dtype=np.float32)
                kern.act_grad_bias_stacked(self.out, g, self.act == "relu", d, gb)
                g = d
            else:
                kern.column_sums_stacked(g, gb)
        # In place on one new array: a hidden layer's (K, B, out) is K times a single seed's and, past glibc's
        # mmap threshold (128 KiB), every temporary is a fresh mapping that page-faults on first touch.
        elif self.act == "tanh":
            d = self.out * self.out  # 1 - out^2, tanh's derivative from its output
            xp.subtract(1, d, out=d)
            d *= g
            g = d
        elif self.act == "relu":
            g = g * (self.out > 0)
        if gb is None:
            gb = g.sum(axis=1)
        need_gx = self.inputs[0].requires_grad
        if self.rows is not None:
            return self._products_by_rows(np.ascontiguousarray(g), gb, need_gx)
        gx = None
        if need_gx:
            if self.w.shape[-1] == 1:
                # one output column (a value head): the product is an outer product, exactly g * w (one
                # product per entry, no sum), which BLAS runs ~10x slower as a (B, 1) @ (1, in) GEMM
                gx = g * xp.swapaxes(self.w, -1, -2)
            else:
                gx = g @ xp.swapaxes(self.w, -1, -2)
        gw = xp.swapaxes(self.x, -1, -2) @ g
        return gx, gw, gb

    def _products_by_rows(self, g, gb, need_gx):
        """The gradients' products seed by seed over the real rows, each as ``_linear_backward`` takes it for one
        seed: ``g`` is the output gradient after the activation's derivative, ``gb`` its row sums."""
        one_column = g.shape[2] == 1
        gx = None
        if need_gx and one_column:
            gx = g * np.swapaxes(self.w, -1, -2)  # an outer product: one product per entry, as alone
        elif need_gx:
            gx = np.empty_like(self.x)
        gw = np.empty_like(self.w)
        for k, n in enumerate(self.rows):
            if need_gx and not one_column:
                np.matmul(g[k, :n], self.w[k].T, out=gx[k, :n])
                gx[k, n:] = 0
            if n == 1:  # one row: an outer product, as alone
                np.multiply(self.x[k, 0][:, None], g[k, 0][None, :], out=gw[k])
            else:
                np.matmul(self.x[k, :n].T, g[k, :n], out=gw[k])
            if one_column:
                gb[k] = _reduce_sum(g[k, :n], 0, False)
        return gx, gw, gb


def stacked_linear(x: Tensor, w: Tensor, b: Tensor, activation: str | None = None, rows: Any = None) -> Tensor:
    """K dense layers at once: ``x (K, B, in) @ w (K, in, out) + b (K, out)`` -> ``(K, B, out)``, then
    ``activation`` (``"tanh"``, ``"relu"`` in the same node, or any other name of :mod:`rl.functional`).

    ``rows`` (host ints ``(K,)``, optional): only the first ``rows[k]`` rows of seed ``k`` are real, the rest
    padding. On the host each seed's real rows are then computed (and differentiated) alone, as its
    single-seed run computes them, bit for bit; padding rows give 0 and get no gradient. Other backends run
    the batched product over all ``B`` rows (the padding's gradient must then be 0, as the seed losses give).
    """
    fused = activation if activation in F.LINEAR_FUSED_ACTIVATIONS else None
    out = _StackedLinear.apply(x, w, b, act=fused, rows=None if rows is None else np.asarray(rows))
    if activation not in (None, "linear") and fused is None:
        out = F.get_activation(activation)(out)
    return out


class _SeedMeans(Function):
    def forward(self, x, counts):
        self.counts, self.shape = counts, x.shape
        out = backend.get_array_module(x).zeros(len(counts), dtype=x.dtype)
        for k, n in enumerate(counts):
            if n:  # Tensor.mean's arithmetic on the seed's entries: NumPy's sum, then one division by the count
                out[k] = _reduce_sum(x[k, :n], None, False) / int(n)
        return out

    def backward(self, g):
        grad = backend.get_array_module(g).zeros(self.shape, dtype=g.dtype)
        for k, n in enumerate(self.counts):
            if n:
                grad[k, :n] = g[k] / int(n)  # what Mean hands each entry
        return grad


def seed_means(x: Tensor, counts: Any) -> Tensor:
    """Per-seed means ``(K,)`` of ``x (K, W)`` over the first ``counts[k]`` entries of row ``k`` (a host int
    array ``(K,)``; the rest of a row is padding and gets no gradient). Each equals ``x[k, :counts[k]].mean()``
    bit for bit, the mean a single-seed run takes over its minibatch; a seed with no entries gets 0."""
    return _SeedMeans.apply(x, counts=np.asarray(counts))


class _SeedSurrogates(Function):
    def forward(self, logp, old_logp, adv, counts, clip, normalize, stats):
        # rl.losses.clipped_surrogate's own arithmetic seed by seed: the single-seed numbers, in the dtypes the
        # single-seed path gives them. On the host its compiled kernel takes all seeds in one call.
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(logp, old_logp, adv):
            self.dlogp, out = np.empty_like(logp), np.empty((logp.shape[0], 3))
            kern.clipped_surrogate(logp, old_logp, adv, counts, float(clip), bool(normalize), self.dlogp, out)
            stats[:] = [out[:, 1].astype(np.float32), out[:, 2].astype(np.float32)]
            return out[:, 0].astype(logp.dtype)
        xp = backend.get_array_module(logp)
        self.dlogp = xp.zeros_like(logp)
        zero = xp.zeros((), dtype=logp.dtype)
        values = []  # each seed's (loss, approx_kl, clip_fraction)
        for k, n in enumerate(counts):
            if n:
                loss, self.dlogp[k, :n], kl, frac = losses.clipped_surrogate_arrays(
                    logp[k, :n], old_logp[k, :n], adv[k, :n], clip, normalize)
                values.append((loss, kl, frac))
            else:
                values.append((zero, zero, zero))
        loss, kl, frac = (xp.stack(column) for column in zip(*values))
        stats[:] = [kl, frac]
        return loss.astype(logp.dtype, copy=False)

    def backward(self, g):
        return g[:, None] * self.dlogp, None, None


def seed_clipped_surrogates(logp: Tensor, old_logp: Any, adv: Any, counts: Any, clip: float,
                            normalize: bool = False) -> tuple[Tensor, Any, Any]:
    """:func:`rl.losses.clipped_surrogate` for each seed of a stack, as one graph node: seed ``k`` over the first
    ``counts[k]`` entries of its row of ``logp``, ``old_logp`` and ``adv`` ``(K, W)`` (advantages normalised
    over those entries with ``normalize``), the same arithmetic and so the same numbers as its single-seed
    run's. Returns ``(losses (K,), approx_kl (K,), clip_fraction (K,))``; padding gets no gradient."""
    stats: list[Any] = []
    loss = _SeedSurrogates.apply(logp, old_logp, adv, counts=np.asarray(counts, dtype=np.int64), clip=clip,
                                 normalize=normalize, stats=stats)
    return loss, stats[0], stats[1]


class _SeedMSE(Function):
    def forward(self, pred, target, counts):
        self.counts, self.diff = counts, pred - target
        out = backend.get_array_module(pred).zeros(len(counts), dtype=pred.dtype)
        for k, n in enumerate(counts):
            if n:  # rl.losses.mse's arithmetic on the seed's entries
                d = self.diff[k, :n]
                out[k] = _reduce_sum(d * d, None, False) / int(n)
        return out

    def backward(self, g):
        grad = backend.get_array_module(g).zeros(self.diff.shape, dtype=g.dtype)
        for k, n in enumerate(self.counts):
            if n:
                grad[k, :n] = (g[k] / int(n)) * self.diff[k, :n]
        grad = grad + grad
        return grad, (-grad if self.inputs[1].requires_grad else None)


def seed_mse(pred: Tensor, target: Any, counts: Any) -> Tensor:
    """:func:`rl.losses.mse` for each seed of a stack: ``(K,)`` means of ``(pred - target)**2`` over the first
    ``counts[k]`` entries of row ``k`` of ``pred``, ``target`` ``(K, W)``, bit for bit the single-seed loss."""
    return _SeedMSE.apply(pred, as_tensor(target), counts=np.asarray(counts))


class StackedAdam:
    """Adam over K seeds' parameters packed as one ``(K, P)`` buffer, the gradient norm clipped per seed.

    Args:
        params_per_seed: K lists of Tensors, list ``k`` seed ``k``'s parameters in its optimizer's order;
            the lists hold the same shapes. Each tensor's ``.data`` becomes a view of the buffer's row.
        lr, betas, eps: Adam's (one learning rate for all seeds; ``lr`` may be set between steps).
        clipnorm: each seed's gradients are scaled so that their global L2 norm is at most this.

    ``tensors`` are the stacked parameters, ``(K, *shape)`` views across the rows, what a stacked model
    computes with; :meth:`step` applies their ``.grad``. The update is :class:`rl.optimizers.Adam`'s own
    (one Adam whose one parameter is the buffer), so each row moves exactly as that seed's Adam would.
    """

    def __init__(self, params_per_seed: Sequence[Sequence[Tensor]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, clipnorm: float | None = None):
        seeds = [list(ps) for ps in params_per_seed]
        shapes = [tuple(p.shape) for p in seeds[0]]
        for k, ps in enumerate(seeds):
            if [tuple(p.shape) for p in ps] != shapes:
                raise ValueError(f"seed {k}'s parameters have other shapes than seed 0's: {shapes}")
        self.num_seeds, self.shapes = len(seeds), shapes
        sizes = [math.prod(s) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.slices = [slice(int(offsets[i]), int(offsets[i + 1])) for i in range(len(shapes))]
        xp = backend.get_array_module(seeds[0][0].data)
        rows = xp.stack([xp.concatenate([p.data.reshape(-1) for p in ps]) for ps in seeds])
        self.buffer = Tensor(rows, requires_grad=True)
        self.adam = Adam([self.buffer], lr=lr, betas=betas, eps=eps)  # buffer.data is now Adam's (K, P) view
        data = self.buffer.data
        for k, ps in enumerate(seeds):
            for p, s, shape in zip(ps, self.slices, shapes):
                p.data = data[k, s].reshape(shape)
        # Views, never copies: each row's slice is contiguous, so splitting its axis into the shape needs no copy.
        self.tensors = [Tensor(data[:, s].reshape(self.num_seeds, *shape), requires_grad=True)
                        for s, shape in zip(self.slices, shapes)]
        self._grad = xp.zeros_like(data)
        self.clipnorm = clipnorm
        self.last_grad_norms: np.ndarray | None = None

    @property
    def lr(self) -> float:
        return self.adam.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.adam.lr = value

    def zero_grad(self) -> None:
        """Drop the stacked parameters' gradients."""
        for t in self.tensors:
            t.grad = None

    def step(self) -> None:
        """One Adam step for every seed from the stacked gradients (missing ones count as zeros)."""
        grad = self._grad
        for t, s in zip(self.tensors, self.slices):
            if t.grad is None:
                grad[:, s] = 0
            else:
                grad[:, s] = t.grad.reshape(self.num_seeds, -1)
        if self.clipnorm is not None:
            # Row by row, as rl.optimizers.Adam clips one seed's flat gradient: the same dot product on the
            # same P values, so the same norm, and a Python float coefficient as there.
            norms = np.empty(self.num_seeds)
            for k in range(self.num_seeds):
                norms[k] = norm = math.sqrt(float(grad[k] @ grad[k]))
                coef = self.clipnorm / (norm + 1e-6)
                if coef < 1.0:
                    grad[k] *= coef
            self.last_grad_norms = norms
        self.buffer.grad = grad
        self.adam.step()

    # ---- one seed's optimizer state, in rl.optimizers.Adam's own format
    def seed_state(self, k: int) -> dict[str, Any]:
        """Seed ``k``'s Adam state as its single-seed ``Adam.state_dict()`` would hold it."""
        state = self.adam.state_dict()
        out: dict[str, Any] = {"iterations": state["iterations"].copy(),
                               "steps": np.full(len(self.shapes), int(state["steps"][0]), dtype=np.int64)}
        for name in ("m", "v"):
            row = state[f"{name}/0"][k]
            for i, (s, shape) in enumerate(zip(self.slices, self.shapes)):
                out[f"{name}/{i}"] = row[s].reshape(shape).copy()
        return out

    def load_seed_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Set every seed's Adam state from its single-seed ``Adam.state_dict()`` (the steps must agree)."""
        steps = {int(np.asarray(backend.to_numpy(s["steps"])).reshape(-1)[0]) for s in states}
        iterations = {int(np.asarray(backend.to_numpy(s["iterations"])).reshape(-1)[0]) for s in states}
        if len(steps) > 1 or len(iterations) > 1:
            raise ValueError(f"the seeds' optimizers are at different steps ({sorted(steps)}): they cannot be stacked")
        stacked = {"iterations": np.array([iterations.pop()], dtype=np.int64),
                   "steps": np.array([steps.pop()], dtype=np.int64)}
        for name in ("m", "v"):
            stacked[f"{name}/0"] = np.stack([np.concatenate(
                [np.asarray(backend.to_numpy(s[f"{name}/{i}"])).reshape(-1) for i in range(len(self.shapes))])
                for s in states])
        self.adam.load_state_dict(stacked)


class StackedMLP:
    """K ``Sequential`` stacks of ``Dense`` layers (one per seed, the same architecture) run as one network.

    Args:
        model: seed 0's model: its layers give the activations.
        weights: the stacked parameters in ``model.parameters()`` order (kernel ``(K, in, out)``, bias
            ``(K, out)`` per layer), e.g. a slice of :attr:`StackedAdam.tensors`.
    """

    def __init__(self, model: Any, weights: Sequence[Tensor]):
        self.layers: list[tuple[Tensor, Tensor, str | None]] = []
        weights = list(weights)
        for layer in model.layers:
            if not isinstance(layer, Dense) or not layer.use_bias:
                raise ValueError(f"StackedMLP stacks Dense layers with biases only, got {type(layer).__name__} "
                                 f"{layer.name!r}")
            kernel, bias = weights.pop(0), weights.pop(0)
            self.layers.append((kernel, bias, layer.activation))
        if weights:
            raise ValueError(f"{len(weights)} stacked weights left over after the model's layers")

    def __call__(self, x: Tensor, rows: Any = None) -> Tensor:
        """``x (K, B, in)`` -> ``(K, B, out)``; ``rows``: each seed's count of real rows (:func:`stacked_linear`)."""
        for kernel, bias, activation in self.layers:
            x = stacked_linear(x, kernel, bias, activation, rows)
        return x

    def forward_array(self, x: Any) -> Any:
        """:meth:`__call__` for inference on a raw array ``x (K, B, in)`` -> ``(K, B, out)``: the same values,
        bit for bit, without Tensors or a graph (a rollout step's batches are small enough for their cost to
        matter, as :func:`rl.layers.forward_array` finds for one seed)."""
        for kernel, bias, activation in self.layers:
            fused = activation if activation in F.LINEAR_FUSED_ACTIVATIONS else None
            x = _linear_array(x, kernel.data, bias.data, fused)
            if activation not in (None, "linear") and fused is None:
                with no_grad():
                    x = F.get_activation(activation)(Tensor(x)).data
        return x
