"""Gradients of the primitive ops and functional layer, checked by finite differences in float64."""

import numpy as np
import pytest

import rl.functional as F
from rl import backend
from rl.gradcheck import check_grad
from rl.tensor import Tensor, config, no_grad, using_config


def _arr(xp, *shape, seed=0, positive=False):
    a = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return xp.asarray(a, dtype=np.float64)


UNARY = {
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "sqrt": lambda x: x.sqrt(),
    "abs": lambda x: x.abs(),
    "neg": lambda x: -x,
    "pow": lambda x: x**3,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": F.relu,
    "relu6": lambda x: F.relu6(x * 4),
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "gelu": F.gelu,
    "softmax": lambda x: F.softmax(x, axis=-1),
    "log_softmax": lambda x: F.log_softmax(x, axis=0),
    "logsumexp": lambda x: F.logsumexp(x, axis=1),
    "sum_axis": lambda x: x.sum(axis=0),
    "sum_all": lambda x: x.sum(),
    "mean_axis_keep": lambda x: x.mean(axis=1, keepdims=True),
    "max_axis": lambda x: x.max(axis=1),
    "max_all": lambda x: x.max(),
    "reshape": lambda x: x.reshape(4, 3) * 2,
    "transpose": lambda x: x.T * 2,
    "getitem_slice": lambda x: x[1:, ::2],
    "getitem_fancy_repeat": lambda x: x[np.array([0, 0, 2])],
    "clip": lambda x: x.clip(-0.5, 0.5),
    "astype": lambda x: x.astype(np.float64) * 2,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(device, name):
    positive = name in ("log", "sqrt", "pow")
    check_grad(UNARY[name], _arr(device, 3, 4, positive=positive))


BINARY = {
    "add_broadcast": lambda a, b: a + b[0],
    "sub": lambda a, b: a - b,
    "mul_broadcast": lambda a, b: a * b[:, :1],
    "div": lambda a, b: a / b,
    "pow_tensor": lambda a, b: a**b,
    "matmul": lambda a, b: a @ b.T,
    "maximum": F.maximum,
    "minimum": F.minimum,
    "concat": lambda a, b: F.concat([a, b], axis=1),
    "stack": lambda a, b: F.stack([a, b], axis=1),
    "where": lambda a, b: F.where(a.data > 0, a, b),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients(device, name):
    positive = name in ("div", "pow_tensor")
    a, b = _arr(device, 3, 4, seed=1, positive=positive), _arr(device, 3, 4, seed=2, positive=positive)
    check_grad(BINARY[name], a, b)


def test_matmul_vector_and_batched(device):
    check_grad(lambda a, b: a @ b, _arr(device, 2, 3, 4), _arr(device, 4, seed=1))
    check_grad(lambda a, b: a @ b, _arr(device, 4), _arr(device, 2, 4, 3, seed=1))
    check_grad(lambda a, b: a @ b, _arr(device, 2, 3, 4), _arr(device, 4, 5, seed=1))


def test_linear_and_take_along_axis(device):
    check_grad(F.linear, _arr(device, 5, 3), _arr(device, 3, 2, seed=1), _arr(device, 2, seed=2))
    idx = device.asarray([[0], [2], [2], [1]])
    check_grad(lambda q: F.take_along_axis(q, idx, axis=1), _arr(device, 4, 3))


def test_fan_out_accumulates(device):
    x = Tensor(device.asarray([2.0, 3.0]), requires_grad=True)
    y = (x * x + x * 3).sum()  # d/dx = 2x + 3
    y.backward()
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), [7.0, 9.0])
    # gradients accumulate across backward calls until cleared
    (x * 2).sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), [9.0, 11.0])


def test_long_chain_has_no_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    assert float(x.grad[0]) == pytest.approx(1.0001**20_000, rel=1e-6)


def test_graph_is_freed_after_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).exp().sum()
    y.backward()
    assert not hasattr(y.creator, "a")  # the exp node and its saved output are gone
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.creator is None
    assert config.enable_grad


def test_using_config_restores_and_rejects_unknown():
    with using_config("train", False):
        assert config.train is False
    assert config.train is True
    with pytest.raises(AttributeError, match="valid"), using_config("trian", False):
        pass


def test_detach_and_default_dtype():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert x.dtype == np.float32
    d = (x * 2).detach()
    assert not d.requires_grad and d.creator is None
    assert Tensor(np.arange(3)).dtype.kind == "i"


def test_softmax_values_are_stable():
    x = Tensor(np.array([[1000.0, 1000.0], [-1000.0, 0.0]]))
    np.testing.assert_allclose(F.softmax(x).numpy(), [[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(F.log_softmax(x).numpy()[0], [np.log(0.5)] * 2)
    # softplus(x) = log(1 + e^x): x for large x, e^x (underflowing to 0) for very negative x, log 2 at 0
    np.testing.assert_allclose(F.softplus(Tensor(np.array([1000.0, -1000.0, 0.0, -30.0]))).numpy(),
                               [1000.0, 0.0, np.log(2), np.log1p(np.exp(-30.0))], rtol=1e-12, atol=0)


def test_unknown_activation_lists_valid():
    with pytest.raises(ValueError, match="relu6"):
        F.get_activation("relu7")


@pytest.mark.parametrize("order", ["ca", "ac"])
def test_shared_intermediate_gets_all_contributions_before_its_backward(order):
    # c feeds the root directly and through a: c's backward must wait for a's contribution.
    x = Tensor(np.ones(3), requires_grad=True)
    c = x * 2
    a = c * 3
    y = (c + a) if order == "ca" else (a + c)
    y.sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [8.0, 8.0, 8.0])


def test_backward_on_a_leaf_and_with_upstream_gradient():
    x = Tensor(np.ones(2), requires_grad=True)
    x.backward(np.array([2.0, 3.0]))
    np.testing.assert_allclose(backend.to_numpy(x.grad), [2.0, 3.0])
    y = x * 4
    y.backward(Tensor(np.array([1.0, 1.0])))
    np.testing.assert_allclose(backend.to_numpy(x.grad), [6.0, 7.0])


def test_review_regressions_edge_case_gradients(device):
    # transpose with negative axes (argsort of (0, -1, 1) is not the inverse permutation)
    check_grad(lambda a: a.transpose(0, -1, 1), _arr(device, 2, 3, 4))
    check_grad(lambda a: a.transpose(-1, 0), _arr(device, 3, 4))
    # a dot product of two vectors
    check_grad(lambda a, b: a @ b, _arr(device, 3), _arr(device, 3, seed=1))
    # logsumexp over every axis
    check_grad(lambda a: F.logsumexp(a, axis=None), _arr(device, 3, 4))
    # indices that broadcast against x's other axes, as NumPy's take_along_axis allows
    idx = device.asarray([[0, 2]])
    check_grad(lambda q: F.take_along_axis(q, idx, axis=1), _arr(device, 4, 3))


def test_review_regressions_no_nan_where_the_answer_is_finite():
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [0.0, 0.0])
    y = Tensor(np.array([-np.inf, -1.0, 3.0]), requires_grad=True)
    out = F.relu(y)
    np.testing.assert_array_equal(out.numpy(), [0.0, 0.0, 3.0])
    out.sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(y.grad), [0.0, 0.0, 1.0])


def test_a_gradient_of_the_wrong_shape_is_caught():
    from rl.tensor import Function

    class Broken(Function):
        def forward(self, a):
            return a.copy()

        def backward(self, g):
            return g.T.copy().reshape(g.shape[::-1])  # same size, wrong shape

    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3, 2\) does not fit an input of shape \(2, 3\)"):
        Broken.apply(x).sum().backward()


def test_an_upstream_gradient_of_the_wrong_shape_is_refused():
    x = Tensor(np.ones((3, 1)), requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for a tensor of shape \(3, 1\)"):
        (x * 2).backward(np.ones(3))  # before: broadcast to (3, 3), then blamed on Mul's backward
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\) for a tensor of shape \(3, 1\)"):
        x.backward(np.ones(2))  # before: a leaf silently got a .grad of the wrong shape
    assert x.grad is None


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_with_shared_nodes_match_finite_differences(seed):
    # backward runs nodes in reverse creation order; random DAGs where intermediates feed several later
    # nodes (and the root both directly and through others) check that every node has all its gradient
    # contributions before its own backward runs.
    from rl.gradcheck import check_grad

    rng = np.random.default_rng(seed)
    ops = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b, lambda a, b: (a * 0.5).tanh() * b,
           lambda a, b: a.tanh()]
    plan = [(int(rng.integers(len(ops))), int(rng.integers(0, 3 + i)), int(rng.integers(0, 3 + i)))
            for i in range(int(rng.integers(4, 14)))]
    picks = rng.integers(0, 3 + len(plan), size=3)

    def graph(x, y, z):
        nodes = [x, y, z]
        for op, i, j in plan:
            nodes.append(ops[op](nodes[i], nodes[j]))
        return nodes[picks[0]] * 1.0 + nodes[picks[1]] + nodes[picks[2]] * nodes[-1]

    check_grad(graph, *(rng.standard_normal(3) * 0.5 for _ in range(3)))
