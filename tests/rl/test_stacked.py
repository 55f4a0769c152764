"""rl.stacked: each seed of a stack computes what it computes alone (randomized, seeded, against the
single-seed layers, losses and optimizer as oracles)."""

import contextlib

import numpy as np
import pytest

from rl import _fused, backend
from rl import functional as F
from rl.optimizers import Adam
from rl.random import Generator
from rl.stacked import GeneratorStack, StackedAdam, masked_mean, stacked_linear
from rl.tensor import Tensor

host = backend.to_numpy  # the tests compare on the host, whichever backend computed


@pytest.mark.parametrize("kernels", ["compiled", "numpy"])
@pytest.mark.parametrize("case", range(6))
def test_stacked_linear_equals_each_seeds_linear_bit_for_bit(case, kernels):
    # both paths: rl._fused's compiled bias add and backward pass (where numba is installed) and plain NumPy
    with contextlib.nullcontext() if kernels == "compiled" else _fused.disabled():
        _check_stacked_linear(case)


def _check_stacked_linear(case):
    rng = np.random.default_rng(case)
    k, b, n_in, n_out = (int(v) for v in rng.integers(1, 9, size=4) * np.array([1, 37, 9, 9]))
    activation = [None, "tanh", "relu", "sigmoid"][case % 4]
    x = rng.standard_normal((k, b, n_in)).astype(np.float32)
    w = rng.standard_normal((k, n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal((k, n_out)).astype(np.float32)
    g = rng.standard_normal((k, b, n_out)).astype(np.float32)
    xs, ws, bs = (Tensor(a, requires_grad=True) for a in (x, w, bias))
    out = stacked_linear(xs, ws, bs, activation)
    (out * Tensor(g)).sum().backward()
    for s in range(k):
        x1, w1, b1 = (Tensor(a[s], requires_grad=True) for a in (x, w, bias))
        fused = activation if activation in F.LINEAR_FUSED_ACTIVATIONS else None
        y = F.linear(x1, w1, b1, activation=fused)
        if activation is not None and fused is None:
            y = F.get_activation(activation)(y)
        (y * Tensor(g[s])).sum().backward()
        np.testing.assert_array_equal(host(out.data)[s], host(y.data))
        np.testing.assert_allclose(host(xs.grad)[s], host(x1.grad), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(host(ws.grad)[s], host(w1.grad))
        np.testing.assert_array_equal(host(bs.grad)[s], host(b1.grad))


def test_masked_mean_averages_the_kept_entries_and_gives_the_rest_no_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    mask = rng.random((5, 40)) < 0.7
    mask[:, 0] = True
    counts = mask.sum(axis=1).astype(np.float32)
    t = Tensor(x, requires_grad=True)
    m = masked_mean(t, backend.to_device(mask), backend.to_device(counts))
    m.sum().backward()
    for s in range(5):
        np.testing.assert_allclose(host(m.data)[s], x[s][mask[s]].mean(), rtol=1e-6)
        np.testing.assert_array_equal(host(t.grad)[s][~mask[s]], 0)
        np.testing.assert_array_equal(host(t.grad)[s][mask[s]], np.float32(1) / counts[s])


def test_generator_stack_draws_each_seeds_own_stream():
    stack = GeneratorStack([Generator(3), Generator(7)])
    u = stack.random((2 * 5, 3))
    z = stack.normal((2 * 4,))
    a, b = Generator(3), Generator(7)
    np.testing.assert_array_equal(host(u), np.concatenate([host(a.random((5, 3))), host(b.random((5, 3)))]))
    np.testing.assert_array_equal(host(z), np.concatenate([host(a.normal((4,))), host(b.normal((4,)))]))
    with pytest.raises(ValueError, match="divisible by 2"):
        stack.random((5, 3))


@pytest.mark.parametrize("clipnorm", [None, 0.5, 50.0])
def test_stacked_adam_moves_each_seed_exactly_as_its_own_adam(clipnorm):
    rng = np.random.default_rng(1)
    shapes = [(4, 6), (6,), (6, 2), (2,)]
    seeds = 3
    singles = [[Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
               for _ in range(seeds)]
    stacked_params = [[Tensor(p.data.copy(), requires_grad=True) for p in ps] for ps in singles]
    adams = [Adam(ps, lr=2e-3, eps=1e-5, clipnorm=clipnorm) for ps in singles]
    stacked = StackedAdam(stacked_params, lr=2e-3, eps=1e-5, clipnorm=clipnorm)
    for _step in range(5):
        grads = [[rng.standard_normal(s).astype(np.float32) * rng.uniform(0.1, 3) for s in shapes]
                 for _ in range(seeds)]
        for k in range(seeds):
            for p, g in zip(singles[k], grads[k]):
                p.grad = backend.to_device(g)
            adams[k].step()
        for i, t in enumerate(stacked.tensors):
            t.grad = backend.to_device(np.stack([grads[k][i] for k in range(seeds)]))
        stacked.step()
    for k in range(seeds):
        for p, q, t in zip(singles[k], stacked_params[k], stacked.tensors):
            np.testing.assert_array_equal(host(q.data), host(p.data))  # each seed's own tensors are views of its row
            np.testing.assert_array_equal(host(t.data)[k], host(p.data))
        state, want = stacked.seed_state(k), adams[k].state_dict()
        assert sorted(state) == sorted(want)
        for name in want:
            np.testing.assert_array_equal(host(state[name]), host(want[name]), err_msg=name)
    # and back: a stack loaded from the single optimizers' states continues as they do
    again = StackedAdam([[Tensor(p.data.copy(), requires_grad=True) for p in ps] for ps in singles], lr=2e-3,
                        eps=1e-5, clipnorm=clipnorm)
    again.load_seed_states([a.state_dict() for a in adams])
    for k in range(seeds):
        for name, value in adams[k].state_dict().items():
            np.testing.assert_array_equal(host(again.seed_state(k)[name]), host(value), err_msg=name)


def test_keep_freed_memory_applies_with_glibc_and_once():
    import platform
    import sys

    from rl.stacked import keep_freed_memory

    first = keep_freed_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert first is True
    assert keep_freed_memory() is first  # a second call changes nothing
