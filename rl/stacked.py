"""Seed-stacked computation: K independent copies of one small network trained as one batched program.

Training several seeds of one experiment costs, per step, the same number of array calls as training
one when every array carries a leading seed axis ``K``: a dense layer becomes one batched matmul
``(K, B, in) @ (K, in, out)``, a loss one masked mean per seed, Adam one set of whole-buffer ops. This is
what PureJaxRL gets from ``jax.vmap`` over seeds, written out by hand for the few pieces an on-policy
agent needs:

* :class:`StackedAdam` packs K lists of parameters (one per seed, the same shapes) into one ``(K, P)``
  buffer whose row ``k`` is seed ``k``'s parameters flattened in their list order, exactly the layout
  of :class:`rl.optimizers.Adam`'s own flat buffer for that seed alone. Each seed's own tensors become
  views of its row (so each seed's model keeps working, e.g. to act or to be checkpointed), and the
  stacked tensors ``(K, *shape)`` are views across the rows. The global-norm clip is per seed.
* :class:`StackedMLP` runs K ``Sequential`` stacks of ``Dense`` layers as one: ``(K, B, in) -> (K, B, out)``.
* :func:`masked_mean` averages ``(K, B)`` rows over the entries a mask keeps, so seeds whose minibatches
  hold different numbers of rows share one padded array.
* :class:`GeneratorStack` draws ``(K * n, ...)`` random arrays as K blocks, block ``k`` from seed ``k``'s
  own :class:`rl.random.Generator`, so each seed sees the numbers its single-seed run would draw.

Bit-for-bit equality with K single-seed runs holds where the rows a seed computes do not depend on the
other seeds: elementwise ops, per-row reductions and matmuls over unpadded rows. It does not hold across
padding: OpenBLAS tiles a matmul by its number of rows, so a narrow output layer (1 or 2 columns) over
``B`` padded rows may round a real row differently from the same layer over that seed's ``B_k``
rows, and a mean over padded rows sums in another order (see ``agents/ppo_seeds.py`` for the bound).
Between stacks it does hold: with a padded width that does not depend on the other seeds, a seed's
numbers are the same in any stack.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl import _fused, backend
from rl import functional as F
from rl.layers import Dense
from rl.optimizers import Adam
from rl.random import Generator
from rl.tensor import Function, Tensor

__all__ = ["GeneratorStack", "StackedAdam", "StackedMLP", "keep_freed_memory", "masked_mean", "stacked_linear"]

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


class _StackedLinear(Function):
    """``act(x @ w + b)`` for K stacked layers: ``x (K, B, in)``, ``w (K, in, out)``, ``b (K, out)``; ``act``
    None, ``"tanh"`` or ``"relu"``, computed and differentiated as :func:`rl.functional.linear` does per seed."""

    def forward(self, x, w, b, act=None):
        self.x, self.w, self.act = x, w, act
        out = x @ w
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(out, b):
            for k in range(len(out)):  # seed by seed, the compiled bias add rl.functional.linear_array uses
                kern.add_row(out[k], b[k])
        else:
            out += b[:, None, :]
        xp = backend.get_array_module(out)
        if act == "tanh":
            xp.tanh(out, out=out)
        elif act == "relu":
            xp.maximum(out, 0, out=out)
        self.out = out
        return out

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
                for k in range(len(g)):
                    kern.act_grad_bias(self.out[k], g[k], self.act == "relu", d[k], gb[k])
                g = d
            else:
                for k in range(len(g)):
                    kern.column_sums(g[k], gb[k])
        # In place on one new array: a hidden layer's (K, B, out) is K times a single seed's and, past glibc's
        # mmap threshold (128 KiB), every temporary is a fresh mapping that page-faults on first touch.
        elif self.act == "tanh":
            d = self.out * self.out  # 1 - out^2, tanh's derivative from its output
            xp.subtract(1, d, out=d)
            d *= g
            g = d
        elif self.act == "relu":
            g = g * (self.out > 0)
        gx = None
        if self.inputs[0].requires_grad:
            if self.w.shape[-1] == 1:
                # one output column (a value head): the product is an outer product, exactly g * w (one
                # product per entry, no sum), which BLAS runs ~10x slower as a (B, 1) @ (1, in) GEMM
                gx = g * xp.swapaxes(self.w, -1, -2)
            else:
                gx = g @ xp.swapaxes(self.w, -1, -2)
        gw = xp.swapaxes(self.x, -1, -2) @ g
        if gb is None:
            gb = g.sum(axis=1)
        return gx, gw, gb


def stacked_linear(x: Tensor, w: Tensor, b: Tensor, activation: str | None = None) -> Tensor:
    """K dense layers at once: ``x (K, B, in) @ w (K, in, out) + b (K, out)`` -> ``(K, B, out)``, then
    ``activation`` (``"tanh"``, ``"relu"`` in the same node, or any other name of :mod:`rl.functional`)."""
    fused = activation if activation in F.LINEAR_FUSED_ACTIVATIONS else None
    out = _StackedLinear.apply(x, w, b, act=fused)
    if activation not in (None, "linear") and fused is None:
        out = F.get_activation(activation)(out)
    return out


class _MaskedMean(Function):
    def forward(self, x, mask, counts):
        self.mask, self.counts = mask, counts
        xp = backend.get_array_module(x)
        return xp.where(mask, x, 0).sum(axis=1) / counts

    def backward(self, g):
        xp = backend.get_array_module(g)
        # the gradient of a mean, g / count, on the kept entries (as rl.tensor.Mean gives each of its rows)
        return xp.where(self.mask, (g / self.counts)[:, None], 0).astype(g.dtype, copy=False)


def masked_mean(x: Tensor, mask: Any, counts: Any) -> Tensor:
    """Per-row means ``(K,)`` of ``x (K, B)`` over the entries where ``mask (K, B)`` is True; ``counts (K,)``
    (float, the same dtype as ``x``) is ``mask.sum(axis=1)``, at least 1. Masked entries get no gradient."""
    return _MaskedMean.apply(x, mask, counts)


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

    def __call__(self, x: Tensor) -> Tensor:
        """``x (K, B, in)`` -> ``(K, B, out)``."""
        for kernel, bias, activation in self.layers:
            x = stacked_linear(x, kernel, bias, activation)
        return x
