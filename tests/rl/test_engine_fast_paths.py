"""The engine's fast paths (issue 16) give exactly what the general code gives.

Each shortcut taken for speed is compared bit for bit with the slower formula it replaces, on seeded
random cases (the failure message names the case):

* ``Mean`` on float32/float64 arrays is a sum and one division, not ``ndarray.mean``;
* ``take_along_axis``'s backward scatters with a plain assignment when no element can be picked twice
  (one index per line), and keeps ``add.at`` otherwise (indices that broadcast over an axis where x has
  size 1 used to index past it: fixed, the case is here);
* ``Mul``, ``Sub`` and ``where`` hand no gradient to an input that does not need one;
* ``x ** 2``'s backward skips the ``x ** 1`` pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import rl.functional as F
from rl.backend import to_numpy
from rl.tensor import Tensor


@pytest.mark.parametrize("seed", range(6))
def test_mean_is_bitwise_ndarray_mean(seed):
    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64, np.float16):
        shape = tuple(int(n) for n in rng.integers(1, 40, size=rng.integers(1, 4)))
        a = (rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3)).astype(dtype)
        axes = [None, *range(a.ndim), tuple(range(a.ndim))]
        for axis in axes:
            for keepdims in (False, True):
                got = to_numpy(Tensor(a).mean(axis=axis, keepdims=keepdims).data)
                want = a.mean(axis=axis, keepdims=keepdims)
                case = f"seed {seed} dtype {np.dtype(dtype).name} shape {shape} axis {axis} keepdims {keepdims}"
                assert np.asarray(got).dtype == np.asarray(want).dtype, case
                assert np.shape(got) == np.shape(want), case
                np.testing.assert_array_equal(got, want, err_msg=case)


def test_mean_backward_spreads_evenly():
    x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    x.mean(axis=1).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), np.full((3, 4), 0.25, np.float32))


def _take_along_reference_grad(shape, indices, axis, g):
    """Element by element: output position p took x at p with p[axis] replaced by its index (and 0 on the
    axes where x has size 1 and was broadcast); its gradient adds there."""
    out = np.zeros(shape, dtype=g.dtype)  # summed in g's dtype and in C order, as add.at does
    picked = np.broadcast_to(indices, g.shape)
    for p in np.ndindex(*g.shape):
        where = [0 if shape[i] == 1 else p[i] for i in range(len(shape))]
        where[axis] = picked[p]
        out[tuple(where)] += g[p]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_take_along_axis_backward_matches_add_at(seed):
    rng = np.random.default_rng(seed)
    b, k = int(rng.integers(1, 9)), int(rng.integers(1, 6))
    x = rng.standard_normal((b, k)).astype(np.float32)
    cases = {
        "one index per row (the scatter path)": (rng.integers(0, k, size=(b, 1)), 1),
        "several per row, repeats (add.at)": (rng.integers(0, k, size=(b, 3)), 1),
        "along axis 0": (rng.integers(0, b, size=(1, k)), 0),
        "indices broadcast over x's size-1 axis (add.at)": (rng.integers(0, k, size=(4, 1)), 1),
    }
    for name, (indices, axis) in cases.items():
        xin = x[:1] if "broadcast" in name else x
        t = Tensor(xin, requires_grad=True)
        y = F.take_along_axis(t, indices, axis=axis)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        want = _take_along_reference_grad(xin.shape, indices, axis, g)
        np.testing.assert_array_equal(to_numpy(t.grad), want, err_msg=f"seed {seed}: {name}")


def test_constant_operands_get_no_gradient_and_grads_are_unchanged():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3)).astype(np.float32)
    c = rng.standard_normal((5, 3)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    k = Tensor(c)  # a constant operand: a tensor that needs no gradient (on the active device)
    for name, op, want in [
        ("x * c", lambda x: x * k, g * c),
        ("c * x", lambda x: k * x, g * c),
        ("x - c", lambda x: x - k, g),
        ("c - x", lambda x: k - x, -g),
        ("where(x > 0, x, 0)", lambda x: F.where(x.data > 0, x, 0.0), np.where(a > 0, g, 0)),
        ("where(x > 0, 0, x)", lambda x: F.where(x.data > 0, 0.0, x), np.where(a > 0, 0, g)),
        ("x ** 2", lambda x: x**2, g * 2 * a),
        ("x ** 2.0", lambda x: x**2.0, g * 2.0 * a),
    ]:
        x = Tensor(a, requires_grad=True)
        op(x).backward(g)
        np.testing.assert_array_equal(to_numpy(x.grad), want, err_msg=name)
    # Both sides needing gradients still get both.
    x, y = Tensor(a, requires_grad=True), Tensor(c, requires_grad=True)
    (x * y).backward(g)
    np.testing.assert_array_equal(to_numpy(x.grad), g * c)
    np.testing.assert_array_equal(to_numpy(y.grad), g * a)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("seed", range(3))
def test_linear_with_fused_activation_is_bitwise_the_two_nodes(activation, seed):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((7, 5)).astype(np.float32)
    w0, b0 = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    g = rng.standard_normal((7, 4)).astype(np.float32)
    results = []
    for fused in (True, False):
        x, w, b = (Tensor(a, requires_grad=True) for a in (x0, w0, b0))
        if fused:
            y = F.linear(x, w, b, activation=activation)
        else:
            y = F.get_activation(activation)(F.linear(x, w, b))
        y.backward(g)
        results.append([to_numpy(a) for a in (y.data, x.grad, w.grad, b.grad)])
    for name, got, want in zip(["y", "dx", "dw", "db"], *results):
        np.testing.assert_array_equal(got, want, err_msg=f"seed {seed} {activation}: {name}")


def test_dense_fuses_tanh_and_relu_only():
    from rl.layers import Dense

    x = Tensor(np.ones((2, 3), np.float32))
    for activation, fused in [("tanh", True), ("relu", True), ("sigmoid", False), (None, False)]:
        layer = Dense(4, activation=activation, input_shape=(3,))
        y = layer(x)
        assert layer._fused == (activation if fused else None)
        # One node per layer when fused (or linear); the activation's own node on top otherwise.
        assert (type(y.creator).__name__ == "_Linear") == (fused or activation is None), activation
    with pytest.raises(ValueError, match="linear fuses only"):
        F.linear(x, Tensor(np.ones((3, 4), np.float32)), None, activation="sigmoid")


def _categorical_by_composition(logits, actions):
    """What Categorical did before its fused node: log-softmax, gather and reshape as three graph nodes."""
    log_probs = F.log_softmax(logits, axis=-1)
    return F.take_along_axis(log_probs, actions[:, None], axis=1).reshape(-1)


@pytest.mark.parametrize("seed", range(6))
def test_categorical_log_prob_node_is_bitwise_the_composition(seed):
    from rl.distributions import Categorical

    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64):
        b, k = int(rng.integers(1, 40)), int(rng.integers(2, 7))
        z = (rng.standard_normal((b, k)) * 10 ** rng.uniform(-2, 2)).astype(dtype)
        if seed % 2:
            z[rng.random((b, k)) < 0.2] = -np.inf  # masked classes (never all of a row: column 0 stays finite)
            z[:, 0] = np.abs(rng.standard_normal(b))
        actions = np.where(np.isfinite(z[np.arange(b), a := rng.integers(0, k, b)]), a, 0).astype(np.int64)
        g = rng.standard_normal(b).astype(dtype)
        results = []
        for fused in (True, False):
            logits = Tensor(z.copy(), requires_grad=True)
            out = Categorical(logits).log_prob(actions) if fused else _categorical_by_composition(logits, actions)
            out.backward(g)
            results.append((to_numpy(out.data), to_numpy(logits.grad)))
        case = f"seed {seed} dtype {np.dtype(dtype).name} shape {(b, k)}"
        np.testing.assert_array_equal(results[0][0], results[1][0], err_msg=f"{case}: log_prob")
        np.testing.assert_array_equal(results[0][1], results[1][1], err_msg=f"{case}: d logits")


@pytest.mark.parametrize("seed", range(4))
def test_categorical_entropy_without_a_graph_is_bitwise_the_recorded_one(seed):
    from rl.distributions import Categorical
    from rl.tensor import no_grad

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((17, 5)).astype(np.float32)
    z[rng.random(z.shape) < 0.2] = -np.inf
    z[:, 1] = 0.0
    recorded = Categorical(Tensor(z, requires_grad=True)).entropy()
    assert recorded.requires_grad
    with no_grad():
        logged = Categorical(Tensor(z, requires_grad=True)).entropy()
    assert not logged.requires_grad and logged.creator is None
    np.testing.assert_array_equal(to_numpy(logged.data), to_numpy(recorded.data))
    np.testing.assert_array_equal(to_numpy(Categorical(Tensor(z)).entropy().data), to_numpy(recorded.data))


@pytest.mark.parametrize("seed", range(6))
def test_clip_gradient_mask_is_the_two_comparisons(seed):
    # The backward lets the gradient through where clamping left the value alone (out == a); that must be
    # exactly low <= a <= high, ends included, NaN excluded, whichever bound is missing.
    rng = np.random.default_rng(seed)
    low, high = sorted(rng.uniform(-1, 1, 2).astype(np.float32).tolist())
    a = rng.uniform(-2, 2, 200).astype(np.float32)
    a[:20] = rng.choice(np.array([low, high, np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32), 20)
    g = rng.standard_normal(200).astype(np.float32)
    for lo, hi in ((low, high), (None, high), (low, None)):
        x = Tensor(a, requires_grad=True)
        y = x.clip(lo, hi)
        y.backward(g)
        inside = np.ones(200, bool)
        if lo is not None:
            inside &= a >= np.float32(lo)
        if hi is not None:
            inside &= a <= np.float32(hi)
        np.testing.assert_array_equal(to_numpy(y.data), np.clip(a, lo, hi), err_msg=f"seed {seed} {lo} {hi}")
        np.testing.assert_array_equal(to_numpy(x.grad), g * inside, err_msg=f"seed {seed} {lo} {hi}")
