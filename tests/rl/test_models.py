"""Sequential and functional models: naming, building, summary, configs, state dicts, freezing."""

import numpy as np
import pytest

import rl
from rl import layers as L
from rl.models import Sequential
from rl.tensor import Tensor


def _mlp(**kwargs):
    return Sequential([L.Dense(64, activation="relu", input_shape=(4,)), L.Dense(64, activation="relu"),
                       L.Dense(2)], **kwargs)


def test_sequential_forward_matches_numpy():
    model = _mlp()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    sd = {k: rl.backend.to_numpy(v) for k, v in model.state_dict().items()}
    h = np.maximum(x @ sd["dense/kernel"] + sd["dense/bias"], 0)
    h = np.maximum(h @ sd["dense_1/kernel"] + sd["dense_1/bias"], 0)
    expected = h @ sd["dense_2/kernel"] + sd["dense_2/bias"]
    out = model(x)
    assert isinstance(out, Tensor) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_auto_names_are_per_model():
    a, b = _mlp(), _mlp()
    assert [l.name for l in a.layers] == ["dense", "dense_1", "dense_2"]
    assert [l.name for l in b.layers] == ["dense", "dense_1", "dense_2"]
    assert list(a.state_dict()) == list(b.state_dict())


def test_lazy_sequential_builds_on_first_call():
    model = Sequential([L.Dense(3), L.Dense(2)])
    assert not model.built
    with pytest.raises(ValueError, match="not built"):
        model.state_dict()
    out = model(np.ones((2, 5)))
    assert out.shape == (2, 2) and out.dtype == np.float32  # float64 NumPy input becomes float32
    assert model.get_layer("dense").kernel.shape == (5, 3)
    assert model.count_params() == 5 * 3 + 3 + 3 * 2 + 2


def test_backward_reaches_every_parameter():
    model = _mlp()
    loss = (model(np.ones((3, 4), np.float32)) ** 2).mean()
    loss.backward()
    params = model.parameters()
    assert len(params) == 6 and all(p.grad is not None and p.grad.shape == p.shape for p in params)
    model.zero_grad()
    assert all(p.grad is None for p in params)
