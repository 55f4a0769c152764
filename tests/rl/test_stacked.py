"""rl.stacked: each seed of a stack computes what it computes alone (randomized, seeded, against the
single-seed layers, losses and optimizer as oracles)."""

import contextlib
import functools

import numpy as np
import pytest

from rl import _fused, backend, losses
from rl import functional as F
from rl.optimizers import Adam
from rl.random import Generator
from rl.stacked import GeneratorStack, StackedAdam, seed_clipped_surrogates, seed_means, seed_mse, stacked_linear
from rl.tensor import Tensor

host = backend.to_numpy  # the tests compare on the host, whichever backend computed


@pytest.mark.parametrize("kernels", ["compiled", "numpy"])
@pytest.mark.parametrize("case", range(6))
def test_stacked_linear_equals_each_seeds_linear_bit_for_bit(case, kernels):
    # both paths: rl._fused's compiled bias add and backward pass (where numba is installed) and plain NumPy
    with contextlib.nullcontext() if kernels == "compiled" else _fused.disabled():
        _check_stacked_linear(case)


def _check_stacked_linear(case, padded=False):
    rng = np.random.default_rng(case)
    k, b, n_in, n_out = (int(v) for v in rng.integers(1, 9, size=4) * np.array([1, 37, 9, 9]))
    if padded and case % 2:
        n_out = int(rng.integers(1, 4))  # a narrow head, whose GEMM BLAS may round by its row count
    activation = [None, "tanh", "relu", "sigmoid"][case % 4]
    x = rng.standard_normal((k, b, n_in)).astype(np.float32)
    w = rng.standard_normal((k, n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal((k, n_out)).astype(np.float32)
    g = rng.standard_normal((k, b, n_out)).astype(np.float32)
    rows = rng.integers(0, b + 1, size=k) if padded else np.full(k, b)
    for s in range(k):
        g[s, rows[s]:] = 0  # the padding's gradient, as the seed losses give it
    xs, ws, bs = (Tensor(backend.to_device(a), requires_grad=True) for a in (x, w, bias))
    out = stacked_linear(xs, ws, bs, activation, rows if padded else None)
    (out * Tensor(backend.to_device(g))).sum().backward()
    exact = not padded or backend.current().name == "numpy"  # rows= computes each seed alone on the host only
    for s in range(k):
        n = int(rows[s])
        x1, w1, b1 = (Tensor(backend.to_device(a), requires_grad=True) for a in (x[s, :n], w[s], bias[s]))
        fused = activation if activation in F.LINEAR_FUSED_ACTIVATIONS else None
        y = F.linear(x1, w1, b1, activation=fused)
        if activation is not None and fused is None:
            y = F.get_activation(activation)(y)
        (y * Tensor(backend.to_device(g[s, :n]))).sum().backward()
        check = np.testing.assert_array_equal if exact else functools.partial(np.testing.assert_allclose, rtol=2e-5,
                                                                              atol=2e-5)
        check(host(out.data)[s, :n], host(y.data))
        np.testing.assert_allclose(host(xs.grad)[s, :n], host(x1.grad), rtol=1e-6, atol=1e-6)
        if padded:
            np.testing.assert_array_equal(host(xs.grad)[s, n:], 0)
            if exact:
                np.testing.assert_array_equal(host(xs.grad)[s, :n], host(x1.grad))
        if n:
            check(host(ws.grad)[s], host(w1.grad))
            check(host(bs.grad)[s], host(b1.grad))


@pytest.mark.parametrize("kernels", ["compiled", "numpy"])
@pytest.mark.parametrize("case", range(8))
def test_stacked_linear_over_each_seeds_real_rows_is_its_linear_bit_for_bit(case, kernels):
    # rows=: seeds whose minibatches hold fewer rows than the padded width (0 to all of them), narrow heads
    # included: on the host each seed's real rows give exactly rl.functional.linear's values and gradients
    # over those rows alone; the padding gets no gradient.
    with contextlib.nullcontext() if kernels == "compiled" else _fused.disabled():
        _check_stacked_linear(case, padded=True)


@pytest.mark.parametrize("kernels", ["compiled", "numpy"])
@pytest.mark.parametrize("case", range(8))
def test_seed_losses_are_each_seeds_single_seed_loss_bit_for_bit(case, kernels):
    # seed_clipped_surrogates, seed_mse and seed_means over (K, W) padded rows against rl.losses and Tensor.mean
    # on each seed's own first counts[k] entries: the same values and gradients, zero gradient on the padding
    # (a seed may have no entries at all, or all W).
    rng = np.random.default_rng(case)
    k, w = int(rng.integers(1, 6)), int(rng.integers(1, 300))
    counts = rng.integers(0, w + 1, size=k)
    counts[rng.integers(k)] = w
    logp, old, adv, pred, target, x = (rng.standard_normal((k, w)).astype(np.float32) * s
                                       for s in (0.3, 0.3, 2.0, 3.0, 3.0, 1.0))
    old = logp + old * 0.2  # ratios near 1, some beyond the clip
    clip, normalize = float(rng.uniform(0.05, 0.3)), bool(case % 2)
    with contextlib.nullcontext() if kernels == "compiled" else _fused.disabled():
        lp, pr, xs = (Tensor(backend.to_device(a), requires_grad=True) for a in (logp, pred, x))
        loss, kl, frac = seed_clipped_surrogates(lp, backend.to_device(old), backend.to_device(adv), counts, clip,
                                                 normalize)
        mse = seed_mse(pr, backend.to_device(target), counts)
        means = seed_means(xs, counts)
        (loss * 1.5 + mse * 0.5 + means * 2.0).sum().backward()
        for s in range(k):
            n = int(counts[s])
            np.testing.assert_array_equal(host(lp.grad)[s, n:], 0)
            np.testing.assert_array_equal(host(pr.grad)[s, n:], 0)
            np.testing.assert_array_equal(host(xs.grad)[s, n:], 0)
            if n == 0:
                assert host(loss.data)[s] == host(mse.data)[s] == host(means.data)[s] == 0
                continue
            lp1, pr1, x1 = (Tensor(backend.to_device(a[s, :n]), requires_grad=True) for a in (logp, pred, x))
            loss1, kl1, frac1 = losses.clipped_surrogate(lp1, backend.to_device(old[s, :n]),
                                                         backend.to_device(adv[s, :n]), clip, normalize)
            mse1 = losses.mse(pr1, backend.to_device(target[s, :n]))
            mean1 = x1.mean()
            (loss1 * 1.5 + mse1 * 0.5 + mean1 * 2.0).backward()
            for got, want in ((loss.data, loss1.data), (kl, kl1), (frac, frac1), (mse.data, mse1.data),
                              (means.data, mean1.data)):
                assert host(got)[s] == host(want), (s, n)
            np.testing.assert_array_equal(host(lp.grad)[s, :n], host(lp1.grad))
            np.testing.assert_array_equal(host(pr.grad)[s, :n], host(pr1.grad))
            np.testing.assert_array_equal(host(xs.grad)[s, :n], host(x1.grad))


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
