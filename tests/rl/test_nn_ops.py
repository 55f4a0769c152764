"""Convolution, pooling, padding, batch norm and dropout: known answers, a loop reference, gradients."""

import numpy as np
import pytest

import rl.functional as F
from rl import backend, nn_ops
from rl.gradcheck import check_grad
from rl.random import Generator
from rl.tensor import Tensor, using_config


def _arr(xp, *shape, seed=0, dtype=np.float64):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _np(t):
    return backend.to_numpy(t.data if isinstance(t, Tensor) else t)


def conv_reference(x, k, b=None, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """Direct loops over outputs: the definition of a grouped, dilated, padded NHWC convolution."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, h, w, cin = x.shape
    kh, kw, cin_g, cout = k.shape
    cout_g = cout // groups
    ho = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    wo = (w - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((n, ho, wo, cout))
    for oy in range(ho):
        for ox in range(wo):
            for oc in range(cout):
                grp = oc // cout_g
                total = np.zeros(n)
                for i in range(kh):
                    for j in range(kw):
                        y, xx = oy * stride[0] + i * dilation[0], ox * stride[1] + j * dilation[1]
                        total += x[:, y, xx, grp * cin_g : (grp + 1) * cin_g] @ k[i, j, :, oc]
                out[:, oy, ox, oc] = total
    return out if b is None else out + b


# ---------------------------------------------------------------------------------- convolution
CONV_CASES = {
    # name: (x shape, kernel shape, kwargs, explicit pads for the reference)
    "valid_3x3": ((2, 5, 6, 3), (3, 3, 3, 4), {}, ((0, 0), (0, 0))),
    "stride2_same_even": ((1, 6, 6, 2), (3, 3, 2, 3), {"stride": 2, "padding": "same"}, ((0, 1), (0, 1))),
    "stride1_same": ((2, 5, 4, 2), (3, 3, 2, 2), {"padding": "same"}, ((1, 1), (1, 1))),
    "same_5x5_odd": ((1, 7, 5, 1), (5, 2, 1, 2), {"padding": "same", "stride": (2, 1)}, ((2, 2), (0, 1))),
    "int_padding": ((1, 4, 4, 2), (3, 3, 2, 2), {"padding": 1}, ((1, 1), (1, 1))),
    "explicit_pads": ((1, 4, 5, 2), (2, 3, 2, 2), {"padding": ((0, 2), (1, 0))}, ((0, 2), (1, 0))),
    "dilation2": ((1, 7, 7, 2), (3, 3, 2, 3), {"dilation": 2}, ((0, 0), (0, 0))),
    "dilation_same": ((1, 6, 6, 1), (3, 3, 1, 2), {"dilation": 2, "padding": "same"}, ((2, 2), (2, 2))),
    "pointwise": ((2, 3, 3, 4), (1, 1, 4, 5), {}, ((0, 0), (0, 0))),
    "pointwise_stride2": ((1, 5, 5, 3), (1, 1, 3, 2), {"stride": 2}, ((0, 0), (0, 0))),
    "groups2": ((1, 5, 5, 4), (3, 3, 2, 6), {"groups": 2}, ((0, 0), (0, 0))),
    "groups_depthwise": ((1, 5, 5, 3), (3, 3, 1, 6), {"groups": 3, "padding": "same"}, ((1, 1), (1, 1))),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv2d_matches_loop_reference(device, name):
    xs, ks, kwargs, pads = CONV_CASES[name]
    x, k, b = _arr(device, *xs), _arr(device, *ks, seed=1), _arr(device, ks[3], seed=2)
    out = F.conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs)
    stride = nn_ops._pair(kwargs.get("stride", 1), "stride")
    dilation = nn_ops._pair(kwargs.get("dilation", 1), "dilation")
    expected = conv_reference(_np(x), _np(k), _np(b), stride, pads, dilation, kwargs.get("groups", 1))
    np.testing.assert_allclose(_np(out), expected, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv2d_gradients(device, name):
    xs, ks, kwargs, _ = CONV_CASES[name]
    x, k, b = _arr(device, *xs), _arr(device, *ks, seed=1), _arr(device, ks[3], seed=2)
    check_grad(lambda x, k, b: F.conv2d(x, k, b, **kwargs), x, k, b)


def test_conv2d_known_answer(device):
    # 3x3 image 1..9, 2x2 kernel of ones: each output is the sum of a 2x2 block.
    x = device.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    k = device.ones((2, 2, 1, 1), dtype=np.float32)
    out = F.conv2d(Tensor(x), Tensor(k))
    np.testing.assert_array_equal(_np(out)[0, :, :, 0], [[12, 16], [24, 28]])
    assert out.dtype == np.float32


def test_conv2d_same_equals_tf_explicit_padding(device):
    # formats.md 5.6: stride-2 3x3 'same' on 4x4 pads only bottom/right.
    x, k = Tensor(_arr(device, 2, 4, 4, 3)), Tensor(_arr(device, 3, 3, 3, 5, seed=1))
    same = F.conv2d(x, k, stride=2, padding="same")
    explicit = F.conv2d(F.pad2d(x, ((0, 1), (0, 1))), k, stride=2, padding="valid")
    symmetric = F.conv2d(x, k, stride=2, padding=1)
    assert same.shape == (2, 2, 2, 5)
    np.testing.assert_allclose(_np(same), _np(explicit), atol=1e-12)
    assert not np.allclose(_np(same), _np(symmetric))
    assert nn_ops.resolve_padding("same", (4, 4), (3, 3), 2) == ((0, 1), (0, 1))
    assert nn_ops.resolve_padding("same", (5, 5), (3, 3), 2) == ((1, 1), (1, 1))


def test_conv2d_errors_name_the_shapes():
    x, k = Tensor(np.zeros((1, 4, 4, 3))), Tensor(np.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="3 channels"):
        F.conv2d(x, k)
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(Tensor(np.zeros((1, 4, 4, 2))), k, padding="full")
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(Tensor(np.zeros((1, 2, 2, 2))), k)
    with pytest.raises(ValueError, match="rank 4"):
        F.conv2d(Tensor(np.zeros((4, 4, 2))), k)


def test_strides_and_pools_may_be_numpy_ints():
    # Before: np.int64(2) went down the pair branch ("'numpy.int64' object is not iterable").
    x, k = Tensor(np.ones((1, 4, 4, 2))), Tensor(np.ones((3, 3, 2, 1)))
    assert F.conv2d(x, k, stride=np.int64(2), padding="same").shape == (1, 2, 2, 1)
    assert F.max_pool2d(x, pool_size=np.int32(2)).shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match="stride must be a positive int or a pair of them, got 'two'"):
        F.conv2d(x, k, stride="two")


# ---------------------------------------------------------------------------------- depthwise
DEPTHWISE_CASES = {
    "valid": ((2, 5, 5, 3), (3, 3, 3, 1), {}),
    "mult2_same": ((1, 5, 4, 2), (3, 3, 2, 2), {"padding": "same"}),
    "stride2_same": ((1, 6, 6, 2), (3, 3, 2, 1), {"stride": 2, "padding": "same"}),
    "dilation": ((1, 6, 6, 2), (2, 2, 2, 3), {"dilation": 2}),
}


@pytest.mark.parametrize("name", sorted(DEPTHWISE_CASES))
def test_depthwise_matches_grouped_reference(device, name):
    xs, ks, kwargs = DEPTHWISE_CASES[name]
    x, k, b = _arr(device, *xs), _arr(device, *ks, seed=1), _arr(device, ks[2] * ks[3], seed=2)
    out = F.depthwise_conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs)
    c, mult = ks[2], ks[3]
    # Keras order: channel c with multiplier m is output c*mult + m, i.e. a grouped conv kernel (kh, kw, 1, C*mult).
    grouped = _np(k).reshape(ks[0], ks[1], 1, c * mult)
    stride = nn_ops._pair(kwargs.get("stride", 1), "stride")
    dilation = nn_ops._pair(kwargs.get("dilation", 1), "dilation")
    pads = nn_ops.resolve_padding(kwargs.get("padding", "valid"), xs[1:3], ks[:2], stride, dilation)
    expected = conv_reference(_np(x), grouped, _np(b), stride, pads, dilation, groups=c)
    np.testing.assert_allclose(_np(out), expected, atol=1e-10)


@pytest.mark.parametrize("name", sorted(DEPTHWISE_CASES))
def test_depthwise_gradients(device, name):
    xs, ks, kwargs = DEPTHWISE_CASES[name]
    x, k, b = _arr(device, *xs), _arr(device, *ks, seed=1), _arr(device, ks[2] * ks[3], seed=2)
    check_grad(lambda x, k, b: F.depthwise_conv2d(x, k, b, **kwargs), x, k, b)


# ---------------------------------------------------------------------------------- pooling
def test_max_pool_known_answer_and_first_max_gets_gradient(device):
    x = device.asarray([[1, 5, 2, 2], [3, 4, 2, 0], [0, 0, 9, 8], [0, 0, 7, 9]], dtype=np.float64)
    t = Tensor(x.reshape(1, 4, 4, 1), requires_grad=True)
    out = F.max_pool2d(t, 2)
    np.testing.assert_array_equal(_np(out)[0, :, :, 0], [[5, 2], [0, 9]])
    out.sum().backward()
    grad = _np(t.grad)[0, :, :, 0]
    # ties (the 2s, the 0s, the 9s) send the whole gradient to the first maximum in row-major order
    np.testing.assert_array_equal(grad, [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_max_pool_same_ignores_padding(device):
    x = -device.ones((1, 3, 3, 1))  # all negative: a zero pad would wrongly win
    out = F.max_pool2d(Tensor(x), 2, padding="same")
    assert out.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(_np(out), -1)


def test_avg_pool_known_answers(device):
    x = device.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    valid = F.avg_pool2d(Tensor(x), 2, strides=1)
    np.testing.assert_allclose(_np(valid)[0, :, :, 0], [[3, 4], [6, 7]])
    # 'same', pool 2 stride 2 on 3x3: pads bottom/right; the edge windows average only real cells
    same = F.avg_pool2d(Tensor(x), 2, padding="same")
    np.testing.assert_allclose(_np(same)[0, :, :, 0], [[3, 4.5], [7.5, 9]])


POOL_CASES = {
    "max_valid": (F.max_pool2d, (2, 4, 5, 3), {"pool_size": 2}),
    "max_same_overlap": (F.max_pool2d, (1, 5, 5, 2), {"pool_size": 3, "strides": 2, "padding": "same"}),
    "max_rect": (F.max_pool2d, (1, 6, 5, 2), {"pool_size": (3, 2), "strides": (1, 2)}),
    "avg_valid": (F.avg_pool2d, (2, 4, 4, 3), {"pool_size": 2}),
    "avg_same": (F.avg_pool2d, (1, 5, 5, 2), {"pool_size": 3, "strides": 2, "padding": "same"}),
    "avg_overlap": (F.avg_pool2d, (1, 5, 4, 2), {"pool_size": (2, 3), "strides": 1}),
}


@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_pool_gradients(device, name):
    fn, shape, kwargs = POOL_CASES[name]
    check_grad(lambda x: fn(x, **kwargs), _arr(device, *shape))  # random values: no ties


def test_global_avg_pool(device):
    x = _arr(device, 2, 3, 4, 5)
    out = F.global_avg_pool2d(Tensor(x))
    np.testing.assert_allclose(_np(out), _np(x).mean(axis=(1, 2)))
    assert F.global_avg_pool2d(Tensor(x), keepdims=True).shape == (2, 1, 1, 5)
    check_grad(F.global_avg_pool2d, x)


def test_pad2d(device):
    x = _arr(device, 1, 2, 3, 2)
    out = F.pad2d(Tensor(x), ((1, 0), (2, 1)), value=0.5)
    assert out.shape == (1, 3, 6, 2)
    got = _np(out)
    np.testing.assert_array_equal(got[:, 1:, 2:5], _np(x))
    assert (got[:, 0] == 0.5).all() and (got[:, :, :2] == 0.5).all() and (got[:, :, 5] == 0.5).all()
    check_grad(lambda x: F.pad2d(x, 1), x)


# ---------------------------------------------------------------------------------- batch norm
def test_batch_norm_training_known_answer_and_running_update(device):
    x = device.asarray([[1.0, 10.0], [3.0, 30.0]])  # (N=2, C=2)
    rm, rv = device.zeros(2), device.ones(2)
    out = F.batch_norm(Tensor(x), None, None, rm, rv, training=True, momentum=0.9, eps=0.0)
    np.testing.assert_allclose(_np(out), [[-1, -1], [1, 1]])
    np.testing.assert_allclose(_np(rm), [0.1 * 2, 0.1 * 20])  # in place: 0.9*0 + 0.1*batch mean
    np.testing.assert_allclose(_np(rv), [0.9 + 0.1 * 1, 0.9 + 0.1 * 100])  # biased batch variance
    rv2 = device.ones(2)
    F.batch_norm(Tensor(x), None, None, device.zeros(2), rv2, True, momentum=0.9, eps=0.0, unbiased_running_var=True)
    np.testing.assert_allclose(_np(rv2), [0.9 + 0.1 * 2, 0.9 + 0.1 * 200])


def test_batch_norm_inference_uses_running_statistics(device):
    x = _arr(device, 3, 2, 2, 4)
    gamma, beta = _arr(device, 4, seed=1), _arr(device, 4, seed=2)
    rm, rv = _arr(device, 4, seed=3), device.asarray(np.linspace(0.5, 2.0, 4))
    rm0 = _np(rm).copy()
    out = F.batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), rm, rv, training=False)
    expected = (_np(x) - rm0) / np.sqrt(_np(rv) + 1e-3) * _np(gamma) + _np(beta)
    np.testing.assert_allclose(_np(out), expected, atol=1e-12)
    np.testing.assert_array_equal(_np(rm), rm0)  # untouched in inference


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("axis", [-1, 1])
def test_batch_norm_gradients(device, training, axis):
    x = _arr(device, 4, 3, 2, 3)
    c = x.shape[axis]
    gamma, beta = _arr(device, c, seed=1), _arr(device, c, seed=2)
    rv = device.asarray(np.linspace(0.5, 2.0, c))

    def fn(x, gamma, beta):
        # fresh running arrays each call, so the finite differences see the same function
        return F.batch_norm(x, gamma, beta, device.zeros(c), rv.copy(), training, axis=axis)

    check_grad(fn, x, gamma, beta)


def test_batch_norm_gradients_without_scale(device):
    x = _arr(device, 5, 3)
    check_grad(lambda x: F.batch_norm(x, None, None, device.zeros(3), device.ones(3), True), x)


# ---------------------------------------------------------------------------------- dropout
def test_dropout_scales_survivors_and_respects_mode(device):
    x = Tensor(device.ones((200, 50), dtype=np.float32))
    out = _np(F.dropout(x, 0.25, training=True, rng=Generator(0)))
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    assert out.dtype == np.float32
    assert F.dropout(x, 0.25, training=False) is x
    with using_config("train", False):
        assert F.dropout(x, 0.25) is x
    with using_config("train", True):
        assert (_np(F.dropout(x, 0.5)) == 0).any()
    same = _np(F.dropout(x, 0.25, training=True, rng=Generator(0)))
    np.testing.assert_array_equal(out, same)
    with pytest.raises(ValueError, match="rate"):
        F.dropout(x, 1.0)


def test_dropout_gradient_with_fixed_mask(device):
    check_grad(lambda x: F.dropout(x, 0.4, training=True, rng=Generator(3)), _arr(device, 4, 5))


@pytest.mark.parametrize("name", ["valid_3x3", "stride2_same_even", "pointwise_stride2", "groups2"])
def test_conv2d_chunked_columns_match(device, name, monkeypatch):
    # A tiny chunk budget forces one image per column chunk: results and gradients must not change.
    xs, ks, kwargs, pads = CONV_CASES[name]
    x, k, b = _arr(device, *xs), _arr(device, *ks, seed=1), _arr(device, ks[3], seed=2)
    whole = _np(F.conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs))
    monkeypatch.setattr(nn_ops, "_CHUNK_BYTES", 1)
    x = device.concatenate([x, x[:1] * 2])  # an odd batch: the last chunk is partial
    np.testing.assert_allclose(_np(F.conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs))[: xs[0]], whole, atol=1e-12)
    check_grad(lambda x, k, b: F.conv2d(x, k, b, **kwargs), x, k, b)


@pytest.mark.parametrize("name", ["valid", "mult2_same"])
def test_depthwise_chunked_matches(device, name, monkeypatch):
    xs, ks, kwargs = DEPTHWISE_CASES[name]
    x = device.concatenate([_arr(device, *xs), _arr(device, *xs, seed=5)])  # at least two images
    k, b = _arr(device, *ks, seed=1), _arr(device, ks[2] * ks[3], seed=2)
    whole = _np(F.depthwise_conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs))
    monkeypatch.setattr(nn_ops, "_CHUNK_BYTES", 1)  # one image per chunk
    np.testing.assert_allclose(_np(F.depthwise_conv2d(Tensor(x), Tensor(k), Tensor(b), **kwargs)), whole, atol=1e-12)
    check_grad(lambda x, k, b: F.depthwise_conv2d(x, k, b, **kwargs), x, k, b)


def test_backward_twice_with_retain_graph():
    # Ops keep what their backward needs until the graph is dropped, so a retained graph runs again.
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 6, 6, 3)), requires_grad=True)
    k = Tensor(rng.standard_normal((3, 3, 3, 4)), requires_grad=True)
    dk = Tensor(rng.standard_normal((3, 3, 4, 1)), requires_grad=True)
    gamma, beta = Tensor(np.ones(4), requires_grad=True), Tensor(np.zeros(4), requires_grad=True)
    # running statistics live on the active device: batch_norm updates them in place
    mean, var = backend.to_device(np.zeros(4)), backend.to_device(np.ones(4))
    h = nn_ops.conv2d(x, k, None, padding="same")
    h = nn_ops.batch_norm(h, gamma, beta, mean, var, training=True)
    h = nn_ops.depthwise_conv2d(h, dk, None)
    y = (nn_ops.max_pool2d(h, 2) ** 2).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(_np(x.grad), 2 * _np(first))
