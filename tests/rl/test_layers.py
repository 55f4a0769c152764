"""Each layer against a NumPy reference and a float64 gradient check, plus freezing, dtypes and configs."""

import numpy as np
import pytest

from rl import backend, initializers
from rl import layers as L
from rl.gradcheck import check_grad
from rl.tensor import Tensor, using_config


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _np(t):
    return backend.to_numpy(t.data if isinstance(t, Tensor) else t)


F64 = "float64"  # gradient checks need float64 layers


def _built(layer, x):
    """Build ``layer`` by calling it on ``x`` and return it."""
    layer(Tensor(backend.to_device(x)))
    return layer


def _check_through(layer, x, weight_names):
    """Gradient check of ``layer(x)`` with respect to ``x`` and the named weights."""
    xp = backend.current().xp

    def fn(x_t, *ws):
        for name, w in zip(weight_names, ws):
            setattr(layer, name, w)
        return layer(x_t)

    weights = [xp.array(getattr(layer, n).data) for n in weight_names]
    check_grad(fn, xp.asarray(x), *weights)


# ----------------------------------------------------------------------------------------- references
def _conv_ref(x, k, b, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, cin, cout = k.shape
    n, h, w, _ = x.shape
    ho = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                for c in range(kw):
                    patch = x[:, i * stride[0] + a * dilation[0], j * stride[1] + c * dilation[1], :]
                    out[:, i, j, :] += patch @ k[a, c]
    return out + (0 if b is None else b)


def _depthwise_ref(x, k, b, pads=((0, 0), (0, 0))):
    kh, kw, c, mult = k.shape
    full = np.zeros((kh, kw, c, c * mult))
    for ch in range(c):
        for m in range(mult):
            full[:, :, ch, ch * mult + m] = k[:, :, ch, m]
    return _conv_ref(x, full, b, pads=pads)


# ----------------------------------------------------------------------------------------- dense
def test_dense_forward_and_grad(device):
    x = _rand(3, 4)
    layer = _built(L.Dense(5, activation="tanh", dtype=F64), x)
    assert layer.kernel.shape == (4, 5) and layer.kernel.dtype == np.float64
    expected = np.tanh(x @ _np(layer.kernel) + _np(layer.bias))
    np.testing.assert_allclose(_np(layer(Tensor(device.asarray(x)))), expected, rtol=1e-12)
    _check_through(layer, x, ["kernel", "bias"])


def test_dense_dtype_argument_and_casting(device):
    layer = L.Dense(2, dtype="float64", use_bias=False)
    out = layer(np.ones((1, 3), np.float32))
    assert layer.kernel.dtype == np.float64 and out.dtype == np.float64 and layer.bias is None
    f32 = L.Dense(2)
    out = f32(Tensor(device.ones((1, 3), dtype=np.float64)))  # real inputs do not pick the dtype: Keras casts
    assert f32.kernel.dtype == np.float32 and out.dtype == np.float32


def test_dense_activations_by_name():
    layer = L.Dense(3, activation="softmax", dtype="float64")
    out = _np(layer(_rand(4, 2)))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        L.Dense(3, activation="nope")


# ----------------------------------------------------------------------------------------- convolutions
@pytest.mark.parametrize(
    "kwargs, pads",
    [
        ({}, ((0, 0), (0, 0))),
        ({"padding": "same"}, ((1, 1), (1, 1))),
        ({"padding": ((1, 0), (0, 2)), "strides": 2}, ((1, 0), (0, 2))),
        ({"dilation_rate": 2, "padding": 1}, ((1, 1), (1, 1))),
    ],
)
def test_conv2d_forward_and_grad(device, kwargs, pads):
    x = _rand(2, 6, 5, 3)
    layer = _built(L.Conv2D(4, 3, activation=None, dtype=F64, **kwargs), x)
    assert layer.kernel.shape == (3, 3, 3, 4)
    stride = (2, 2) if kwargs.get("strides") == 2 else (1, 1)
    dilation = (2, 2) if kwargs.get("dilation_rate") == 2 else (1, 1)
    expected = _conv_ref(x, _np(layer.kernel), _np(layer.bias), stride, pads, dilation)
    out = layer(Tensor(device.asarray(x)))
    np.testing.assert_allclose(_np(out), expected, rtol=1e-10, atol=1e-12)
    assert out.shape == layer.compute_output_shape(x.shape)
    _check_through(layer, x, ["kernel", "bias"])


def test_conv2d_same_stride2_pads_bottom_right_like_tf():
    x = _rand(1, 4, 4, 1)
    layer = _built(L.Conv2D(1, 3, strides=2, padding="same", use_bias=False, dtype=F64), x)
    expected = _conv_ref(x, _np(layer.kernel), None, (2, 2), ((0, 1), (0, 1)))
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-10)


def test_depthwise_conv2d_forward_and_grad(device):
    x = _rand(2, 5, 5, 3)
    layer = _built(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dtype=F64), x)
    assert layer.depthwise_kernel.shape == (3, 3, 3, 2) and layer.bias.shape == (6,)
    expected = _depthwise_ref(x, _np(layer.depthwise_kernel), _np(layer.bias), ((1, 1), (1, 1)))
    np.testing.assert_allclose(_np(layer(Tensor(device.asarray(x)))), expected, rtol=1e-10, atol=1e-12)
    _check_through(layer, x, ["depthwise_kernel", "bias"])


# ----------------------------------------------------------------------------------------- shape layers
def test_pooling_and_padding_layers(device):
    x = _rand(2, 4, 6, 3)
    xt = Tensor(device.asarray(x))  # a float64 tensor builds float64 layers (a NumPy array would give float32)
    mx = _np(L.MaxPooling2D(2, dtype=F64)(xt))
    np.testing.assert_allclose(mx, x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
    av = _np(L.AveragePooling2D((2, 3), dtype=F64)(xt))
    np.testing.assert_allclose(av, x.reshape(2, 2, 2, 2, 3, 3).mean(axis=(2, 4)))
    np.testing.assert_allclose(_np(L.GlobalAveragePooling2D(dtype=F64)(xt)), x.mean(axis=(1, 2)))
    padded = _np(L.ZeroPadding2D(((1, 0), (2, 1)), dtype=F64)(xt))
    np.testing.assert_allclose(padded, np.pad(x, ((0, 0), (1, 0), (2, 1), (0, 0))))
    np.testing.assert_allclose(_np(L.Flatten(dtype=F64)(xt)), x.reshape(2, -1))
    np.testing.assert_allclose(_np(L.Reshape((6, -1), dtype=F64)(xt)), x.reshape(2, 6, 12))
    for layer in (L.MaxPooling2D(2, dtype=F64), L.AveragePooling2D(2, strides=1, padding="same", dtype=F64),
                  L.GlobalAveragePooling2D(dtype=F64), L.ZeroPadding2D(1, dtype=F64), L.Flatten(dtype=F64),
                  L.Reshape((-1, 3), dtype=F64)):
        check_grad(lambda t, layer=layer: layer(t), device.asarray(x))
        assert layer(xt).shape == layer.compute_output_shape(x.shape)


def test_activation_and_relu_layers(device):
    x = _rand(3, 4) * 5
    xt = Tensor(device.asarray(x))
    np.testing.assert_allclose(_np(L.Activation("relu", dtype=F64)(xt)), np.maximum(x, 0))
    np.testing.assert_allclose(_np(L.ReLU(max_value=6.0, dtype=F64)(xt)), np.clip(x, 0, 6))
    np.testing.assert_allclose(_np(L.ReLU(negative_slope=0.1, dtype=F64)(xt)), np.where(x > 0, x, 0.1 * x))
    check_grad(lambda t: L.ReLU(max_value=2.0, dtype=F64)(t), device.asarray(_rand(3, 4) * 2 + 0.01))


def test_relu6_layer_gradient_is_zero_at_both_kinks(device):
    # MobileNet's ReLU(6.0): like F.relu6, TF and torch, no gradient at exactly 0 and 6 (it used to pass there).
    x = Tensor(device.asarray(np.array([-1.0, 0.0, 3.0, 6.0, 7.0])), requires_grad=True)
    L.ReLU(max_value=6.0, dtype=F64)(x).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [0.0, 0.0, 1.0, 0.0, 0.0])


def test_merge_layers(device):
    a, b = _rand(2, 3, seed=1), _rand(2, 5, seed=2)
    at, bt = Tensor(device.asarray(a)), Tensor(device.asarray(b))
    np.testing.assert_allclose(_np(L.Add(dtype=F64)([at, at * 2])), a * 3)
    np.testing.assert_allclose(_np(L.Multiply(dtype=F64)([at, at])), a * a)
    np.testing.assert_allclose(_np(L.Concatenate(dtype=F64)([at, bt])), np.concatenate([a, b], axis=1))
    check_grad(lambda s, t: L.Concatenate(axis=-1, dtype=F64)([s, t]), device.asarray(a), device.asarray(b))
    check_grad(lambda s, t: L.Add(dtype=F64)([s, t * s]), device.asarray(a), device.asarray(a * 0.5))
    with pytest.raises(ValueError, match="list of at least 2"):
        L.Add()(a)
    x1, x2 = L.Input((3,)), L.Input((4,))
    with pytest.raises(ValueError, match=r"'multiply' \(Multiply\) got inputs of different shapes"):
        L.Multiply(name="multiply")([x1, x2])  # the message said "(Add)" for every merge


# ----------------------------------------------------------------------------------------- batch norm, dropout
def test_batch_normalization_train_and_inference(device):
    x = _rand(8, 3, 3, 4) * 2 + 1
    layer = _built(L.BatchNormalization(momentum=0.9, epsilon=1e-3, dtype=F64), x)
    assert [n for n, _ in layer.named_weights()] == [
        "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert layer.count_params() == 16 and len(layer.trainable_weights) == 2
    layer.moving_mean.data[...] = 0
    layer.moving_variance.data[...] = 1
    with using_config("train", True):
        out = _np(layer(x))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(layer.moving_mean), 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(_np(layer.moving_variance), 0.9 + 0.1 * var, rtol=1e-10)
    with using_config("train", False):
        inf = _np(layer(x))
    np.testing.assert_allclose(inf, (x - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-3), rtol=1e-10)
    with using_config("train", True):
        _check_through(layer, x, ["gamma", "beta"])
    with using_config("train", False):
        _check_through(layer, x, ["gamma", "beta"])


def test_frozen_batch_normalization_uses_moving_stats_in_training():
    x = _rand(8, 4) + 3
    layer = _built(L.BatchNormalization(dtype=F64), x)
    layer.trainable = False
    mean, var = _np(layer.moving_mean).copy(), _np(layer.moving_variance).copy()
    with using_config("train", True):
        out = _np(layer(x))
    np.testing.assert_allclose(_np(layer.moving_mean), mean)  # not updated
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-10)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    assert not layer.gamma.requires_grad


def test_dropout_train_and_inference(device):
    x = np.ones((200, 50))
    layer = L.Dropout(0.25, seed=3, dtype="float64")
    with using_config("train", False):
        np.testing.assert_array_equal(_np(layer(x)), x)
    xt = Tensor(device.asarray(x), requires_grad=True)
    with using_config("train", True):
        out = layer(xt)
    values = _np(out)
    assert set(np.unique(values).tolist()) <= {0.0, 1 / 0.75}
    assert abs((values == 0).mean() - 0.25) < 0.02
    out.sum().backward()
    np.testing.assert_allclose(_np(xt.grad), values)  # gradient is the (scaled) mask


# ----------------------------------------------------------------------------------------- freezing, config
def test_trainable_false_freezes_params():
    layer = _built(L.Dense(3, dtype=F64), _rand(2, 4))
    layer.trainable = False
    x = Tensor(_rand(2, 4), requires_grad=True)
    layer(x).sum().backward()
    assert layer.kernel.grad is None and layer.bias.grad is None
    # the input still gets its gradient through the frozen kernel: d(sum(x @ K + b))/dx = 1 @ K^T
    np.testing.assert_allclose(_np(x.grad), np.ones((2, 3)) @ _np(layer.kernel).T, rtol=1e-12)
    assert layer.parameters() == [] and len(layer.non_trainable_weights) == 2
    layer.trainable = True
    assert len(layer.parameters()) == 2


@pytest.mark.parametrize(
    "layer",
    [
        L.Dense(3, activation="relu", use_bias=False, kernel_initializer="he_normal"),
        L.Conv2D(8, (3, 1), strides=(2, 1), padding=((1, 1), (0, 0)), groups=1, activation="relu6"),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
        L.BatchNormalization(momentum=0.9, epsilon=1e-5),
        L.Dropout(0.3, seed=1), L.ReLU(6.0), L.Activation("tanh"), L.Flatten(), L.Reshape((2, -1)),
        L.MaxPooling2D(3, strides=2, padding="same"), L.AveragePooling2D(), L.GlobalAveragePooling2D(),
        L.ZeroPadding2D(((0, 1), (0, 1))), L.Add(), L.Concatenate(axis=1),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    cfg = L.serialize(layer)
    clone = L.deserialize(cfg)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_unknown_layer_class_is_named():
    with pytest.raises(ValueError, match="unknown layer class 'Dense2'"):
        L.deserialize({"class_name": "Dense2", "config": {}})
    with pytest.raises(ValueError, match="bad config for layer class Dense"):
        L.deserialize({"class_name": "Dense", "config": {"units": 3, "colour": "red"}})


# ----------------------------------------------------------------------------------------- initializers
def test_initializers_follow_keras_fans():
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)
    assert initializers.compute_fans((5, 7)) == (5, 7)
    k = backend.to_numpy(initializers.glorot_uniform((300, 200), np.float64, 0))
    limit = np.sqrt(6 / 500)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    he = backend.to_numpy(initializers.he_normal((3, 3, 64, 64), np.float64, 1))
    assert abs(he.std() - np.sqrt(2 / 576)) < 0.05 * np.sqrt(2 / 576)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 576) / 0.87962566103423978 + 1e-12  # truncated at 2 sigma
    q = backend.to_numpy(initializers.orthogonal((6, 4), np.float64, 2, gain=2.0))
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-12)
    assert initializers.get("GlorotUniform").__class__ is initializers.GlorotUniform
    assert backend.to_numpy(initializers.get({"class_name": "Constant", "config": {"value": 2}})((2,), np.float32)
                            ).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        initializers.get("glorot")


def test_initializers_are_seeded():
    a = initializers.he_uniform((4, 4), np.float32, 7)
    b = initializers.he_uniform((4, 4), np.float32, 7)
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert a.dtype == np.float32


@pytest.mark.parametrize(("make", "what"), [
    (lambda: L.Conv2D(4, 3, strides=0), "strides"),
    (lambda: L.Conv2D(4, (3, -1)), "kernel_size"),
    (lambda: L.DepthwiseConv2D(3, dilation_rate=(1, 2, 3)), "dilation_rate"),
    (lambda: L.MaxPooling2D(pool_size="big"), "pool_size"),
    (lambda: L.AveragePooling2D(2, strides=(0, 1)), "strides"),
])
def test_window_arguments_must_be_positive_ints_or_pairs(make, what):
    with pytest.raises(ValueError, match=rf"{what} must be a positive int or a pair of them"):
        make()
    assert L.Conv2D(4, np.int64(3), strides=(np.int64(2), 1)).strides == (2, 1)


def test_training_batch_norm_on_an_empty_batch_leaves_moving_statistics_alone():
    bn = L.BatchNormalization()
    bn(np.ones((4, 3), np.float32))  # build
    before = (backend.to_numpy(bn.moving_mean.data).copy(), backend.to_numpy(bn.moving_variance.data).copy())
    with using_config("train", True):
        out = bn(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 3)
    np.testing.assert_array_equal(backend.to_numpy(bn.moving_mean.data), before[0])  # torch leaves them too
    np.testing.assert_array_equal(backend.to_numpy(bn.moving_variance.data), before[1])


@pytest.mark.parametrize(
    ("layer", "out_shape"),
    [
        (lambda: L.DepthwiseConv2D(3), (0, 3, 3, 4)),
        (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (0, 5, 5, 8)),
        (lambda: L.Flatten(), (0, 100)),
        (lambda: L.Reshape((-1,)), (0, 100)),
        (lambda: L.Reshape((-1, 4)), (0, 25, 4)),
        (lambda: L.Reshape((5, -1)), (0, 5, 20)),
    ],
)
def test_layers_run_forward_and_backward_on_an_empty_batch(layer, out_shape):
    x = Tensor(np.zeros((0, 5, 5, 4), np.float32), requires_grad=True)
    y = layer()(x)
    assert y.shape == out_shape
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_layer_classes_register_themselves_and_user_classes_come_through_custom_objects():
    from rl import layer_base, models

    registry = layer_base.registered_classes()
    assert registry["Dense"] is L.Dense and registry["Sequential"] is models.Sequential
    assert registry["Functional"] is registry["Model"] is models.Model  # Keras' other name for it
    assert not [name for name in registry if name.startswith("_")]  # _Conv2DBase, _Pooling2D, _Merge

    class Mine(L.Dense):  # defined outside the rl package: not registered, as in Keras
        pass

    assert "Mine" not in layer_base.registered_classes()
    config = {"class_name": "Mine", "config": L.Dense(3).get_config()}
    with pytest.raises(ValueError, match="unknown layer class 'Mine'"):
        L.deserialize(config)
    assert type(L.deserialize(config, custom_objects={"Mine": Mine})) is Mine


@pytest.mark.parametrize(
    "layer",
    [L.Conv2D(2, 3, dilation_rate=2), L.DepthwiseConv2D(5), L.MaxPooling2D(3), L.AveragePooling2D((1, 3), strides=3),
     L.Conv2D(2, 4, padding=((0, 0), (1, 0)))],
)
def test_a_window_that_does_not_fit_is_refused_when_the_model_is_built(layer):
    # It used to build with a 0-sized output and fail only at the first call (found by test_random_tfjs).
    from rl.models import Sequential

    with pytest.raises(ValueError, match=f"layer '{layer.name}': a window of .* does not fit an input of"):
        Sequential([L.InputLayer((4, 2, 2)), layer])
