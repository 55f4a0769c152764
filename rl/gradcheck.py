"""Finite-difference gradient checks (Chainer's ``check_backward``), used by the test suite.

``check_grad(fn, *inputs)`` compares the gradients autograd gives for ``sum(fn(*inputs) * w)``
(``w`` a fixed random weighting, so every output element matters) with central differences.
Run it in float64: float32 rounding swamps a finite difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rl import backend
from rl.tensor import Tensor


def numerical_grad(fn: Callable[[], Any], x: Any, eps: float = 1e-6) -> Any:
    """Central-difference gradient of the scalar ``fn()`` with respect to array ``x`` (changed in place)."""
    xp = backend.get_array_module(x)
    grad = xp.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + eps
        up = float(fn())
        flat[i] = old - eps
        down = float(fn())
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_grad(
    fn: Callable[..., Tensor],
    *inputs: Any,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    eps: float = 1e-6,
    seed: int = 0,
) -> None:
    """Assert autograd's gradient of ``fn(*inputs)`` matches finite differences for every float input.

    Args:
        fn: maps tensors to one output tensor of any shape.
        inputs: float64 arrays (the inputs to differentiate) or other values passed through as is.
    Raises:
        AssertionError naming the input index and the worst element.
    """
    tensors = [Tensor(a, requires_grad=True) if _is_float_array(a) else a for a in inputs]
    out = fn(*tensors)
    xp = backend.get_array_module(out.data)
    rng = np.random.default_rng(seed)
    weight = xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)
    (out * Tensor(weight)).sum().backward()

    def scalar() -> float:
        fresh = [Tensor(t.data) if isinstance(t, Tensor) else t for t in tensors]
        return float((fn(*fresh).data * weight).sum())

    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            continue
        expected = numerical_grad(scalar, t.data, eps)
        got = t.grad if t.grad is not None else xp.zeros_like(t.data)
        got_np, exp_np = backend.to_numpy(got), backend.to_numpy(expected)
        if not np.allclose(got_np, exp_np, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(got_np - exp_np)), exp_np.shape)
            raise AssertionError(
                f"gradient of input {i} differs at {worst}: autograd {got_np[worst]:.6g}, "
                f"finite difference {exp_np[worst]:.6g} (max abs diff {np.abs(got_np - exp_np).max():.3g})"
            )


def _is_float_array(a: Any) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and a.dtype.kind == "f"
