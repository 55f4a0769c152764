"""Losses against closed forms, their gradients by finite differences, and the Keras-name lookup."""

import numpy as np
import pytest

from rl import backend, losses
from rl.gradcheck import check_grad
from rl.tensor import Tensor


def _arr(xp, *shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _np(t):
    return backend.to_numpy(t.data if isinstance(t, Tensor) else t)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_regression_losses_closed_form(device):
    p, t = _arr(device, 4, 3), _arr(device, 4, 3, seed=1)
    d = _np(p) - _np(t)
    np.testing.assert_allclose(losses.mse(Tensor(p), t).item(), (d**2).mean())
    np.testing.assert_allclose(losses.mse(Tensor(p), t, reduction="sum").item(), (d**2).sum())
    np.testing.assert_allclose(_np(losses.mse(Tensor(p), t, reduction="none")), d**2)  # (4, 3): no reduction
    np.testing.assert_allclose(losses.mae(Tensor(p), t).item(), abs(d).mean())
    delta = 0.7
    expected = np.where(abs(d) <= delta, 0.5 * d**2, delta * (abs(d) - 0.5 * delta))
    np.testing.assert_allclose(_np(losses.huber(Tensor(p), t, delta, reduction="none")), expected)
    assert losses.huber(Tensor(device.asarray([3.0])), device.asarray([0.0])).item() == 2.5


def test_softmax_cross_entropy_closed_form_and_stability(device):
    z, y = _arr(device, 5, 4), np.array([0, 3, 1, 1, 2])
    expected = -_log_softmax(_np(z))[np.arange(5), y]
    got = losses.softmax_cross_entropy(Tensor(z), device.asarray(y), reduction="none")
    np.testing.assert_allclose(_np(got), expected)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(losses.softmax_cross_entropy(Tensor(z), device.asarray(onehot)).item(), expected.mean())
    huge = Tensor(device.asarray([[1000.0, 0.0], [-1000.0, 0.0]]))
    np.testing.assert_allclose(_np(losses.softmax_cross_entropy(huge, device.asarray([0, 0]), "none")), [0, 1000])


def test_sigmoid_bce_closed_form_and_stability(device):
    z, t = _arr(device, 3, 2), device.asarray(np.random.default_rng(1).random((3, 2)))
    s = 1 / (1 + np.exp(-_np(z)))
    expected = -(_np(t) * np.log(s) + (1 - _np(t)) * np.log(1 - s))
    np.testing.assert_allclose(_np(losses.sigmoid_bce(Tensor(z), t, "none")), expected)
    big = losses.sigmoid_bce(Tensor(device.asarray([800.0, -800.0])), device.asarray([0.0, 1.0]), "none")
    np.testing.assert_allclose(_np(big), [800, 800])


def test_probability_losses_match_keras_definitions(device):
    probs = device.asarray([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    onehot = device.asarray([[1.0, 0, 0], [0, 1.0, 0]])
    expected = -np.log([0.7, 0.1])
    np.testing.assert_allclose(_np(losses.categorical_crossentropy(Tensor(probs), onehot, reduction="none")), expected)
    sparse = losses.sparse_categorical_crossentropy(Tensor(probs), device.asarray([0, 1]))
    np.testing.assert_allclose(sparse.item(), expected.mean())
    # a zero probability is clipped to 1e-7, not infinite
    zero = losses.categorical_crossentropy(Tensor(device.asarray([[1.0, 0.0]])), device.asarray([[0.0, 1.0]]))
    np.testing.assert_allclose(zero.item(), -np.log(1e-7), rtol=1e-6)
    p, t = device.asarray([0.9, 0.2]), device.asarray([1.0, 0.0])
    np.testing.assert_allclose(losses.binary_crossentropy(Tensor(p), t).item(), -np.log([0.9, 0.8]).mean())
    z = _arr(device, 2, 3)
    np.testing.assert_allclose(
        losses.categorical_crossentropy(Tensor(z), onehot, from_logits=True).item(),
        losses.softmax_cross_entropy(Tensor(z), onehot).item(),
    )


GRADIENT_CASES = {
    "mse": lambda p, t: losses.mse(p, t),
    "mae": lambda p, t: losses.mae(p, t, reduction="sum"),
    "huber": lambda p, t: losses.huber(p, t * 3, delta=0.5, reduction="none"),
    "sigmoid_bce": lambda p, t: losses.sigmoid_bce(p * 3, t.sigmoid()),
    "binary_crossentropy": lambda p, t: losses.binary_crossentropy(p.sigmoid(), t.sigmoid()),
    "softmax_ce_soft_labels": lambda p, t: losses.softmax_cross_entropy(p, t.exp(), reduction="none"),
    "categorical_crossentropy": lambda p, t: losses.categorical_crossentropy(p.exp(), t.exp()),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_loss_gradients(device, name):
    check_grad(GRADIENT_CASES[name], _arr(device, 4, 3), _arr(device, 4, 3, seed=1))


def test_class_index_gradients(device):
    y = device.asarray([2, 0, 1, 2])
    check_grad(lambda z: losses.softmax_cross_entropy(z, y), _arr(device, 4, 3))
    check_grad(lambda z: losses.sparse_categorical_crossentropy(z.exp(), y, reduction="sum"), _arr(device, 4, 3))


def test_get_loss_names_and_errors():
    assert losses.get_loss("mean_squared_error") is losses.mse
    assert losses.get_loss("sparse_categorical_crossentropy") is losses.sparse_categorical_crossentropy
    z, y = Tensor(np.array([[2.0, -1.0]])), np.array([0])
    from_logits = losses.get_loss("sparse_categorical_crossentropy", from_logits=True)
    np.testing.assert_allclose(from_logits(z, y).item(), losses.softmax_cross_entropy(z, y).item())
    with pytest.raises(ValueError, match="valid: .*categorical_crossentropy"):
        losses.get_loss("crossentropy")
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(Tensor(np.zeros(2)), np.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        losses.softmax_cross_entropy(z, np.array([2]))
    with pytest.raises(ValueError, match="shape"):
        losses.mse(Tensor(np.zeros(2)), np.zeros(3))


@pytest.mark.parametrize("bad", [4, -1])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_rejects_labels_out_of_range(device, bad, from_logits):
    # On probabilities an out-of-range label used to make an all-zero one-hot row: a finite, meaningless loss.
    probs = Tensor(device.asarray(np.full((2, 4), 0.25)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        losses.sparse_categorical_crossentropy(probs, np.array([0, bad]), from_logits=from_logits)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        losses.get_loss("sparse_categorical_crossentropy")(probs, np.array([bad, 1]))
