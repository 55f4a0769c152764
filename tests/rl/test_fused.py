"""The optional compiled kernels (rl/_fused.py) against the NumPy paths beside them, and the fused graph nodes
(rl.losses.clipped_surrogate, the one-node mse) against the composed ops they replace, on seeded random shapes."""

from __future__ import annotations

import numpy as np
import pytest

from rl import _fused, backend, losses
from rl import functional as F
from rl.gradcheck import check_grad
from rl.optimizers import Adam, AdamW
from rl.tensor import Tensor, no_grad


@pytest.fixture(autouse=True)
def _on_the_host():
    """The kernels are host-only by design (CuPy arrays take the NumPy/CuPy code beside them), and these tests
    compare them with that NumPy code on host arrays: they run on the CPU backend also in make test's GPU passes,
    which check the device path with the suite's other tests."""
    previous = backend.current().device
    backend.use_device("cpu")
    yield
    backend.use_device(previous)


needs_numba = pytest.mark.skipif(_fused.kernels() is None,
                                 reason="no compiled kernels: numba missing (the accel extra) or PLAYGRAD_FUSED=0")


def _linear_grads(x, w, b, act, fused: bool):
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if b is not None else None
    out = F.linear(xt, wt, bt, activation=act)
    g = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    if fused:
        (out * Tensor(g)).sum().backward()
    else:
        with _fused.disabled():
            (out * Tensor(g)).sum().backward()
    return out.data, xt.grad, wt.grad, (bt.grad if bt is not None else None)


@needs_numba
@pytest.mark.parametrize("act", [None, "tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward_fused_equals_numpy_bit_for_bit(act, bias):
    rng = np.random.default_rng(0)
    for rows, n_in, n_out in [(1, 1, 1), (7, 3, 5), (256, 64, 64), (33, 4, 2), (40, 6, 1), (1, 5, 3)]:
        x = rng.standard_normal((rows, n_in)).astype(np.float32)
        w = rng.standard_normal((n_in, n_out)).astype(np.float32)
        b = rng.standard_normal(n_out).astype(np.float32) if bias else None
        fused = _linear_grads(x, w, b, act, fused=True)
        plain = _linear_grads(x, w, b, act, fused=False)
        for got, want in zip(fused, plain):
            if want is None:
                assert got is None
            else:
                np.testing.assert_array_equal(got, want)


def test_disabled_switches_the_kernels_off():
    with _fused.disabled():
        assert _fused.kernels() is None
    with _fused.disabled(), _fused.disabled():
        assert _fused.kernels() is None


def _composed(logp, old_logp, adv, clip, normalize):
    """The pre-fusion PPO code: normalization, then the clipped surrogate as composed ops and the logged
    statistics."""
    lt = Tensor(logp, requires_grad=True)
    a = adv
    if normalize and adv.size > 1:
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
    log_ratio = lt - old_logp
    ratio = log_ratio.exp()  # the policy gains nothing from moving its ratio beyond 1 +- clip
    loss = F.maximum(ratio * -a, ratio.clip(1.0 - clip, 1.0 + clip) * -a).mean()
    loss.backward()
    kl = ((ratio.data - 1.0) - log_ratio.data).mean()
    frac = (np.abs(ratio.data - 1.0) > clip).mean()
    return float(loss.data), lt.grad, float(kl), float(frac)


def _fused_surrogate(logp, old_logp, adv, clip, normalize):
    lt = Tensor(logp, requires_grad=True)
    loss, kl, frac = losses.clipped_surrogate(lt, old_logp, adv, clip, normalize=normalize)
    loss.backward()
    return float(loss.data), lt.grad, float(kl), float(frac)


def _surrogate_inputs(rng, rows):
    logp = (rng.standard_normal(rows) * 0.5 - 1.0).astype(np.float32)
    old_logp = (logp + rng.standard_normal(rows).astype(np.float32) * 0.3).astype(np.float32)
    old_logp[: rows // 4] = logp[: rows // 4]  # ratio exactly 1 on some rows: ties between the two terms
    adv = (rng.standard_normal(rows) * 3 + 0.5).astype(np.float32)
    return logp, old_logp, adv


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kernels", [True, False])
def test_clipped_surrogate_matches_the_composed_ops(normalize, kernels):
    if kernels and _fused.kernels() is None:
        pytest.skip("no compiled kernels: numba missing or PLAYGRAD_FUSED=0")
    rng = np.random.default_rng(1)
    for rows, clip in [(1, 0.2), (2, 0.1), (255, 0.2), (256, 0.05), (1000, 0.3)]:
        args = (*_surrogate_inputs(rng, rows), clip, normalize)
        want = _composed(*args)
        if kernels:
            got = _fused_surrogate(*args)
        else:
            with _fused.disabled():
                got = _fused_surrogate(*args)
        # float32 rounding: the kernel accumulates its means in float64 where NumPy sums float32 pairwise
        assert got[0] == pytest.approx(want[0], rel=2e-6, abs=2e-7)
        np.testing.assert_allclose(got[1], want[1], rtol=2e-6, atol=1e-9)
        assert got[2] == pytest.approx(want[2], rel=2e-5, abs=1e-7)
        assert got[3] == pytest.approx(want[3])
        assert np.abs(got[1]).max() > 0.0  # some rows inside the trust region carry a gradient


def test_clipped_surrogate_numpy_path_is_the_composed_ops_bit_for_bit():
    rng = np.random.default_rng(2)
    args = (*_surrogate_inputs(rng, 256), 0.2, False)
    with _fused.disabled():
        got = _fused_surrogate(*args)
    want = _composed(*args)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


def test_clipped_surrogate_gradcheck_float64():
    rng = np.random.default_rng(3)
    logp, old_logp, adv = (a.astype(np.float64) for a in _surrogate_inputs(rng, 12))
    old_logp[: 12 // 4] += 0.01  # keep rows off the clip's kinks, where a finite difference is undefined
    check_grad(lambda lt: losses.clipped_surrogate(lt, old_logp, adv, 0.2)[0], logp)


def test_mse_one_node_equals_the_composed_ops():
    rng = np.random.default_rng(4)
    for shape in [(1,), (256,), (8, 3)]:
        pred = rng.standard_normal(shape).astype(np.float32)
        target = rng.standard_normal(shape).astype(np.float32)
        p1, t1 = Tensor(pred, requires_grad=True), Tensor(target, requires_grad=True)
        loss = losses.mse(p1, t1)
        loss.backward()
        p2, t2 = Tensor(pred, requires_grad=True), Tensor(target, requires_grad=True)
        diff = p2 - t2
        ref = (diff * diff).mean()
        ref.backward()
        assert loss.data == ref.data
        np.testing.assert_array_equal(p1.grad, p2.grad)
        np.testing.assert_array_equal(t1.grad, t2.grad)
    check_grad(lambda p, t: losses.mse(p, t), rng.standard_normal((5, 2)), rng.standard_normal((5, 2)))


@needs_numba
def test_categorical_kernels_match_numpy_within_an_ulp():
    from rl.distributions import Categorical

    rng = np.random.default_rng(5)
    for rows, k in [(1, 1), (3, 2), (256, 2), (64, 7)]:
        logits = (rng.standard_normal((rows, k)) * 4).astype(np.float32)
        if k > 2:
            logits[:, 1] = -np.inf  # a masked class: probability 0, entropy term 0, no NaN
        actions = rng.integers(0, k, rows)
        actions[actions == 1] = 0
        got, want = [], []
        for out, off in ((got, False), (want, True)):
            ctx = _fused.disabled() if off else _nullcontext()
            with ctx:
                lt = Tensor(logits, requires_grad=True)
                dist = Categorical(lt)
                logp = dist.log_prob(actions)
                (logp * Tensor(np.linspace(-1, 1, rows).astype(np.float32))).sum().backward()
                with no_grad():
                    ent = Categorical(Tensor(logits)).entropy()
                out += [dist._log_probs, logp.data, lt.grad, ent.data]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=3e-6, atol=3e-7)
            assert np.array_equal(np.isfinite(a), np.isfinite(b))
        # From the same log-probabilities, the entropy and the gradient kernels are NumPy's arithmetic bit for bit.
        g = np.linspace(-1, 1, rows).astype(np.float32)
        from rl.distributions import _CategoricalLogProb

        grads = []
        for off in (False, True):
            with _fused.disabled() if off else _nullcontext():
                node = _CategoricalLogProb()
                node.forward(logits, actions, want[0])
                grads.append(node.backward(g)[0])
        np.testing.assert_array_equal(grads[0], grads[1])
        ents = []
        for off in (False, True):
            with _fused.disabled() if off else _nullcontext():
                dist = Categorical(Tensor(logits))
                dist._log_probs = want[0]
                with no_grad():
                    ents.append(dist.entropy().data)
        np.testing.assert_array_equal(ents[0], ents[1])


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("kernels", [True, False])
def test_forward_stack_is_the_layer_chain_bit_for_bit(kernels):
    """rl.layers.forward_stack (one dense_stack node) against the same layers called one by one, and
    forward_array (no graph) against both; with and without the compiled kernels."""
    from rl.layers import Dense, forward_array, forward_stack

    if kernels and _fused.kernels() is None:
        pytest.skip("no compiled kernels: numba missing or PLAYGRAD_FUSED=0")
    rng = np.random.default_rng(6)
    for acts, bias, x_grad in [(["tanh", "tanh", None], True, False), (["relu", None], False, True),
                               ([None], True, True), (["tanh", "relu", "tanh"], True, True)]:
        layers = [Dense(int(rng.integers(1, 40)), activation=a, use_bias=bias) for a in acts]
        x0 = rng.standard_normal((int(rng.integers(1, 50)), 5)).astype(np.float32)
        chain_x = Tensor(x0)
        for layer in layers:
            chain_x = layer(chain_x)  # builds the layers
        g = rng.standard_normal(chain_x.shape).astype(np.float32)
        results = []
        for stacked in (True, False):
            with _nullcontext() if kernels else _fused.disabled():
                for layer in layers:
                    for p in layer.parameters():
                        p.grad = None
                x = Tensor(x0, requires_grad=x_grad)
                if stacked:
                    out = forward_stack(layers, x)
                else:
                    out = x
                    for layer in layers:
                        out = layer(out)
                out.backward(g)
                results.append([out.data, x.grad] + [p.grad for layer in layers for p in layer.parameters()])
                if stacked:
                    with no_grad():
                        np.testing.assert_array_equal(forward_array(layers, x0), out.data)
        for a, b in zip(*results):
            if b is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, b)


def test_forward_stack_falls_back_for_other_layers():
    from rl.layers import Dense, Dropout, forward_stack

    layers = [Dense(3, activation="sigmoid"), Dropout(0.5)]
    x = Tensor(np.ones((2, 4), dtype=np.float32))
    for layer in layers:
        layer(x)
    with no_grad():
        out = forward_stack(layers, x)
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match="fuses only"):
        F.dense_stack(x, [(layers[0].kernel, None, "sigmoid")])


@pytest.mark.parametrize("kernels", [True, False])
def test_linear_backward_outer_products_are_matmul_bit_for_bit(kernels):
    """One output unit (input gradient) or one row (weight gradient) is an outer product, computed without
    matmul's slow non-BLAS loop: the same single products as ``g @ w.T`` and ``x.T @ g``."""
    if kernels and _fused.kernels() is None:
        pytest.skip("no compiled kernels: numba missing or PLAYGRAD_FUSED=0")
    rng = np.random.default_rng(8)
    for rows, n_in, n_out in [(256, 64, 1), (1, 64, 7), (1, 3, 1), (5, 2, 1)]:
        x = rng.standard_normal((rows, n_in)).astype(np.float32)
        w = rng.standard_normal((n_in, n_out)).astype(np.float32)
        g = rng.standard_normal((rows, n_out)).astype(np.float32)
        with _nullcontext() if kernels else _fused.disabled():
            gx, gw, gb = F._linear_backward(g, x, w, None, None, True, True, True)
        np.testing.assert_array_equal(gx, g @ w.T)
        np.testing.assert_array_equal(gw, x.T @ g)
        np.testing.assert_array_equal(gb, g.sum(0))


def _adam_run(kernels: bool, opt_cls, **kwargs):
    """Ten Adam steps on three parameters with seeded gradients; the parameters and moments afterwards."""
    rng = np.random.default_rng(3)
    params = [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in [(4, 64), (64,), (3,)]]
    opt = opt_cls(params, lr=2e-3, eps=1e-5, **kwargs)
    with _nullcontext() if kernels else _fused.disabled():
        for step in range(10):
            for p in params:
                p.grad = (rng.standard_normal(p.shape) * (0.5 if step % 2 else 5.0)).astype(np.float32)
            if step == 7:
                params[2].grad = None  # a parameter without a gradient: the per-parameter path
            opt.step()
    return [p.data.copy() for p in params], [s.copy() for g in opt._groups for s in g.state.values()]


@needs_numba
@pytest.mark.parametrize("variant", ["adam", "adam_clip_l2", "adamw", "amsgrad"])
def test_adam_kernel_equals_numpy_bit_for_bit(variant, monkeypatch):
    cls, kwargs = {"adam": (Adam, {}), "adam_clip_l2": (Adam, {"clipnorm": 0.5, "weight_decay": 0.01}),
                   "adamw": (AdamW, {"weight_decay": 0.05}), "amsgrad": (Adam, {"amsgrad": True})}[variant]
    kern, calls = _fused.kernels(), []
    compiled = kern.adam
    monkeypatch.setattr(kern, "adam", lambda *args: calls.append(1) or compiled(*args))
    fused_params, fused_state = _adam_run(True, cls, **kwargs)
    # 7 whole-buffer steps; from step 7 on the step counts differ: per parameter (2 + 3 + 3 calls)
    assert len(calls) == (0 if variant == "amsgrad" else 15)
    numpy_params, numpy_state = _adam_run(False, cls, **kwargs)
    assert len(fused_state) >= 2
    for a, b in zip(fused_params + fused_state, numpy_params + numpy_state):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fused_params[0], np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32))


@needs_numba
def test_categorical_sample_kernel_draws_the_numpy_samples_and_log_probs(monkeypatch):
    """Gumbel-max through the kernel: the same uniforms give the NumPy path's actions and log-probabilities bit for
    bit, over seeded random logits (wide and narrow rows, masked -inf classes, near-ties), and the kernel ran."""
    from rl import random as rl_random
    from rl.distributions import Categorical

    calls = []
    real = _fused.kernels().categorical_sample
    monkeypatch.setattr(_fused.kernels(), "categorical_sample", lambda *a: (calls.append(1), real(*a))[1])
    data = np.random.default_rng(3)
    for trial in range(60):
        rows, k = int(data.integers(1, 300)), int(data.integers(1, 9))
        logits = (data.standard_normal((rows, k)) * data.choice([0.01, 1.0, 20.0])).astype(np.float32)
        if k > 1 and trial % 3 == 0:
            logits[data.random((rows, k)) < 0.3] = -np.inf
            logits[:, 0] = np.where(np.isinf(logits).all(axis=1), 0.0, logits[:, 0])  # one class left per row
        with no_grad():
            dist = Categorical(Tensor(logits))
            fused = dist.sample_with_log_prob(rl_random.Generator(trial))
            fused_only = dist.sample(rl_random.Generator(trial))
            with _fused.disabled():
                reference = dist.sample(rl_random.Generator(trial))
                ref_logp = dist.log_prob(reference).data
                plain = dist.sample_with_log_prob(rl_random.Generator(trial))
        np.testing.assert_array_equal(fused[0], reference)
        np.testing.assert_array_equal(fused_only, reference)
        assert fused[0].dtype == reference.dtype == np.int64
        assert fused[1].tobytes() == ref_logp.tobytes() == plain[1].tobytes()
        np.testing.assert_array_equal(plain[0], reference)
        assert np.isfinite(fused[1]).all()  # a masked class is never drawn
    assert len(calls) == 120


def test_compiled_builds_once_and_follows_the_switch():
    """rl._fused.compiled: an outside kernel is built once per name and is None wherever kernels() is."""
    built = []

    def build(numba):
        built.append(numba)
        return "kernel"

    name = "test_compiled_builds_once"
    _fused._outside.pop(name, None)
    with _fused.disabled():
        assert _fused.compiled(name, build) is None
    expected = None if _fused.kernels() is None else "kernel"
    assert _fused.compiled(name, build) == expected and _fused.compiled(name, build) == expected
    assert len(built) == (0 if expected is None else 1)
    _fused._outside.pop(name, None)
