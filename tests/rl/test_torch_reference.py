"""Differential tests: the rl core's forward and backward against PyTorch's, on the same float64 inputs.

The answers come from ``tests/data/torch_reference.npz``, written by ``tests/data/make_torch_reference.py``
(run with a torch-enabled interpreter; this file never imports torch). Each case feeds the stored inputs
through our op on every backend of the ``device`` fixture, back-propagates the stored upstream gradient
and compares output and input/parameter gradients with torch's, to ~1e-10.

Conventions that differ on purpose are asserted as such, not hidden:

* GELU is the tanh approximation (torch's ``approximate="tanh"``); it differs from the erf form by < 1e-3.
* ``max``/``min`` over an axis share a tied gradient equally (torch's ``amax``/``amin``), not all to one
  index as torch's ``max(dim)``. Elementwise ``maximum``/``minimum`` give a tie's gradient to ``a``;
  torch splits it in half.
* Conv/pool ``"same"`` is TF's rule; torch runs on an input explicitly padded by that rule (bottom/right
  only for stride 2 on an even size), so those cases check the asymmetric split.
* Batch norm: Keras' ``momentum`` is ``1 - torch_momentum``; torch's running variance takes the
  unbiased batch variance (ours with ``unbiased_running_var=True``); our default takes the biased one.
* Huber: ``huber(delta)`` is torch's ``huber_loss(delta)``; torch's ``smooth_l1_loss(beta)`` is
  ``huber(delta=beta) / beta``.
* Optimizers follow torch's update equations (RMSprop's eps outside the square root, AdamW's
  ``p *= 1 - lr * wd``), so they are compared with torch configured alike, step by step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rl.functional as F
from rl import backend, losses, nn_ops, optimizers
from rl.distributions import Categorical, DiagGaussian
from rl.layers import BatchNormalization
from rl.tensor import Tensor, using_config

REF_PATH = Path(__file__).resolve().parents[1] / "data" / "torch_reference.npz"
RTOL = ATOL = 1e-10

with np.load(REF_PATH, allow_pickle=False) as _archive:
    REF = {key: _archive[key] for key in _archive.files}


def ref(key: str) -> np.ndarray:
    return REF[key]


def ref_json(key: str):
    return json.loads(str(REF[key]))


def leaf(key_or_array) -> Tensor:
    """A float64 tensor requiring grad, on the active device, from a reference key or a host array."""
    a = ref(key_or_array) if isinstance(key_or_array, str) else key_or_array
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def host(x) -> np.ndarray:
    return backend.to_numpy(x.data if isinstance(x, Tensor) else x)


def close(actual, expected, what: str = "") -> None:
    np.testing.assert_allclose(host(actual), expected, rtol=RTOL, atol=ATOL, err_msg=what)


def run_case(fn, inputs: dict[str, Tensor], g: np.ndarray) -> Tensor:
    out = fn(**inputs)
    assert out.dtype == np.float64
    out.backward(np.asarray(g, dtype=np.float64))
    return out


def test_reference_file_is_small_and_from_torch():
    assert REF_PATH.stat().st_size < 1_000_000
    assert str(ref("meta/torch_version")).startswith("2.")


# ---------------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "elu": F.elu,
    "elu_alpha0.5": lambda x: F.elu(x, alpha=0.5),
    "leaky_relu0.3": lambda x: F.leaky_relu(x, negative_slope=0.3),  # the LeakyReLU layer's slope in Keras
    "leaky_relu0.01": lambda x: F.leaky_relu(x, negative_slope=0.01),
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "softplus": F.softplus,
    "gelu_tanh": F.gelu,
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(device, name):
    x = leaf("act/x")
    out = run_case(ACTIVATIONS[name], {"x": x}, ref("act/g"))
    close(out, ref(f"act/{name}/out"), name)
    close(x.grad, ref(f"act/{name}/gx"), name)


def test_activations_by_keras_name_are_the_same_functions(device):
    # leaky_relu (slope 0.2, not in the fixture) is checked in test_functional.py.
    for name in ("relu", "relu6", "elu", "tanh", "sigmoid", "softplus", "gelu"):
        x = leaf("act/x")
        key = {"gelu": "gelu_tanh"}.get(name, name)
        close(F.get_activation(name)(x), ref(f"act/{key}/out"), name)


def test_gelu_is_the_tanh_approximation_not_erf(device):
    ours = host(F.gelu(leaf("act/x")))
    close(ours, ref("act/gelu_tanh/out"))
    gap = np.abs(ours - ref("act/gelu_erf/out")).max()
    assert 1e-6 < gap < 1e-3, gap


def test_subgradients_at_kinks(device):
    # x = [-6, 0, 6, 3]
    grads = {}
    for name, fn in {"relu": F.relu, "relu6": F.relu6, "leaky_relu0.3": ACTIVATIONS["leaky_relu0.3"],
                     "elu": F.elu}.items():
        x = leaf("kink/x")
        fn(x).backward(np.ones(4))
        grads[name] = host(x.grad)
    for name in ("relu", "relu6", "leaky_relu0.3", "elu"):
        close(grads[name], ref(f"kink/{name}/gx"), name)
    # relu6 gives 0 at both ends, as torch and TF (it used to be a clip to [0, 6], which lets them through).
    np.testing.assert_array_equal(grads["relu6"], [0.0, 0.0, 0.0, 1.0])
    # clip keeps its ends: the gradient flows wherever the input is inside [low, high], ends included.
    x = leaf("kink/x")
    F.clip(x, 0.0, 6.0).backward(np.ones(4))
    np.testing.assert_array_equal(host(x.grad), [0.0, 1.0, 1.0, 1.0])


def test_softplus_extremes(device):
    x = leaf("softplus_big/x")
    out = F.softplus(x)
    out.backward(np.ones(x.shape))
    assert np.isfinite(host(out)).all()
    close(out, ref("softplus_big/out"))
    close(x.grad, ref("softplus_big/gx"))


# ---------------------------------------------------------------------------------- softmax family
@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("softmax_axis-1", lambda x: F.softmax(x, axis=-1)),
        ("softmax_axis0", lambda x: F.softmax(x, axis=0)),
        ("log_softmax_axis-1", lambda x: F.log_softmax(x, axis=-1)),
    ],
)
def test_softmax_family(device, name, fn):
    x = leaf(f"soft/{name}/x")
    out = run_case(fn, {"x": x}, ref("soft/g"))
    close(out, ref(f"soft/{name}/out"), name)
    close(x.grad, ref(f"soft/{name}/gx"), name)


def test_logsumexp(device):
    x = leaf("soft/x")  # one row is offset by +1000
    out = run_case(lambda x: F.logsumexp(x, axis=-1), {"x": x}, ref("soft/logsumexp/g"))
    close(out, ref("soft/logsumexp/out"))
    close(x.grad, ref("soft/logsumexp/gx"))
    x = leaf("soft/logsumexp_axis0_keep/x")
    out = run_case(lambda x: F.logsumexp(x, axis=0, keepdims=True), {"x": x}, ref("soft/logsumexp_axis0_keep/g"))
    close(out, ref("soft/logsumexp_axis0_keep/out"))
    close(x.grad, ref("soft/logsumexp_axis0_keep/gx"))


def test_logsumexp_of_infinities(device):
    x = leaf("soft/logsumexp_inf/x")  # rows: one -inf entry, all -inf, one +inf entry, finite
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) and inf - inf are the point here
        out = F.logsumexp(x, axis=-1)
        out.backward(np.ones(4))
    np.testing.assert_array_equal(host(out)[1:3], [-np.inf, np.inf])
    close(out, ref("soft/logsumexp_inf/out"))
    close(x.grad, ref("soft/logsumexp_inf/gx"))  # NaN where torch's is NaN (rows 1 and 2), equal elsewhere


# ---------------------------------------------------------------------------------- reductions
REDUCTIONS = {
    "sum_all": lambda x: x.sum(),
    "sum_axis1": lambda x: x.sum(axis=1),
    "sum_axes02_keep": lambda x: x.sum(axis=(0, 2), keepdims=True),
    "mean_all": lambda x: x.mean(),
    "mean_axis2": lambda x: x.mean(axis=2),
    "mean_axes01_keep": lambda x: x.mean(axis=(0, 1), keepdims=True),
    "max_axis1": lambda x: x.max(axis=1),
    "min_axis2_keep": lambda x: x.min(axis=2, keepdims=True),
    "sum_axes_neg": lambda x: x.sum(axis=(-1, 0)),
    "mean_axes_neg": lambda x: x.mean(axis=(-2, -1)),
    "max_axes02": lambda x: x.max(axis=(0, 2)),
    "max_all": lambda x: x.max(),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction(device, name):
    x = leaf("red/x")
    out = run_case(REDUCTIONS[name], {"x": x}, ref(f"red/{name}/g"))
    close(out, ref(f"red/{name}/out"), name)
    close(x.grad, ref(f"red/{name}/gx"), name)


def test_max_ties_share_the_gradient_like_amax(device):
    g = ref("ties/g")
    x = leaf("ties/x")
    out = run_case(lambda x: x.max(axis=1), {"x": x}, g)
    close(out, ref("ties/amax_axis1/out"))
    close(x.grad, ref("ties/amax_axis1/gx"))
    # torch's max(dim) returns one index per row and sends it the whole gradient: a different subgradient.
    close(out, ref("ties/max_dim1/out"))
    assert not np.allclose(host(x.grad), ref("ties/max_dim1/gx"))
    np.testing.assert_allclose(host(x.grad).sum(axis=1), ref("ties/max_dim1/gx").sum(axis=1), rtol=1e-12)

    x = leaf("ties/x")
    out = run_case(lambda x: (-x).min(axis=1), {"x": x}, g)
    close(out, ref("ties/amin_axis1/out"))
    close(x.grad, ref("ties/amin_axis1/gx"))

    x = leaf("ties/x")
    x.max().backward()
    close(x.grad, ref("ties/max_all/gx"))  # torch's full max() also splits among the four tied fives


# ---------------------------------------------------------------------------------- matmul, linear
@pytest.mark.parametrize("name", ["batched_broadcast", "matrix_vector", "vector_batched", "dot", "matrix"])
def test_matmul(device, name):
    a, b = leaf(f"matmul/{name}/a"), leaf(f"matmul/{name}/b")
    out = run_case(lambda a, b: a @ b, {"a": a, "b": b}, ref(f"matmul/{name}/g"))
    close(out, ref(f"matmul/{name}/out"))
    close(a.grad, ref(f"matmul/{name}/ga"))
    close(b.grad, ref(f"matmul/{name}/gb"))


def test_linear(device):
    x, w, b = leaf("linear/x"), leaf("linear/w"), leaf("linear/b")
    out = run_case(F.linear, {"x": x, "weight": w, "bias": b}, ref("linear/g"))
    close(out, ref("linear/out"))
    close(x.grad, ref("linear/gx"))
    close(w.grad, ref("linear/gw"))
    close(b.grad, ref("linear/gb"))


# ---------------------------------------------------------------------------------- elementwise, indexing, joins
ELEMENTWISE = {
    "add": lambda a, b, pos: a + b,  # (3, 1, 4) with (2, 4): both broadcast
    "sub": lambda a, b, pos: a - b,
    "mul": lambda a, b, pos: a * b,
    "div": lambda a, b, pos: b / pos,
    "rsub_scalar": lambda a, b, pos: 2.5 - a,
    "rdiv_scalar": lambda a, b, pos: 2.5 / pos,
    "neg": lambda a, b, pos: -a,
    "pow3": lambda a, b, pos: a**3,
    "pow_half": lambda a, b, pos: pos**0.5,
    "pow_neg": lambda a, b, pos: pos**-1.5,
    "pow_tensor": lambda a, b, pos: pos**b,
    "rpow": lambda a, b, pos: 2.0**a,
    "exp": lambda a, b, pos: a.exp(),
    "log": lambda a, b, pos: pos.log(),
    "sqrt": lambda a, b, pos: pos.sqrt(),
    "abs": lambda a, b, pos: a.abs(),
    "transpose_reshape": lambda a, b, pos: (a * b).transpose(2, 0, 1).reshape(4, 6),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise(device, name):
    a, b, pos = leaf("elem/a"), leaf("elem/b"), leaf("elem/pos")
    out = ELEMENTWISE[name](a, b, pos)
    out.backward(ref(f"elem/{name}/g"))
    close(out, ref(f"elem/{name}/out"), "out")
    for key, t in (("ga", a), ("gb", b), ("gpos", pos)):
        expected = ref(f"elem/{name}/{key}")
        if t.grad is None:
            assert not expected.any(), key
        else:
            close(t.grad, expected, key)


def test_constant_base_power_keeps_the_gradient_dtype(device):
    # 2.0 ** t: the Python-number base once made a float32 exponent's gradient float64 (and broke CuPy's where).
    t = Tensor(np.array([0.5, -1.0], dtype=np.float32), requires_grad=True)
    (2.0**t).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_allclose(host(t.grad), np.log(2.0) * 2.0 ** np.array([0.5, -1.0]), rtol=1e-6)


INDEXING = {
    "slice": lambda x: x[1:3, ::2],
    "rows_repeated": lambda x: x[ref("index/rows")],
    "pairs_repeated": lambda x: x[ref("index/rows"), ref("index/cols")],
    "negative_step": lambda x: x[::-1, -2],
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing(device, name):
    x = leaf("index/x")
    out = run_case(INDEXING[name], {"x": x}, ref(f"index/{name}/g"))
    close(out, ref(f"index/{name}/out"))
    close(x.grad, ref(f"index/{name}/gx"))  # repeated indices add up


@pytest.mark.parametrize(
    ("name", "fn"),
    [("concat", lambda p, q: F.concat([p, q, p], axis=1)), ("stack", lambda p, q: F.stack([p, p * 2.0], axis=1))],
)
def test_joins(device, name, fn):
    p, q = leaf("join/p"), leaf("join/q")
    out = run_case(fn, {"p": p, "q": q}, ref(f"join/{name}/g"))
    close(out, ref(f"join/{name}/out"))
    close(p.grad, ref(f"join/{name}/gp"))
    if q.grad is not None:
        close(q.grad, ref(f"join/{name}/gq"))
    else:
        assert not ref(f"join/{name}/gq").any()


# ---------------------------------------------------------------------------------- selection
@pytest.mark.parametrize(("name", "axis"), [("axis1", 1), ("axis0", 0)])
def test_take_along_axis_is_gather(device, name, axis):
    x = leaf("gather/x")
    out = run_case(lambda x: F.take_along_axis(x, ref(f"gather/{name}/idx"), axis=axis), {"x": x},
                   ref(f"gather/{name}/g"))
    close(out, ref(f"gather/{name}/out"))
    close(x.grad, ref(f"gather/{name}/gx"))  # repeated indices add up


def test_where_broadcasts_and_routes_gradients(device):
    a, b = leaf("where/a"), leaf("where/b")
    out = run_case(lambda a, b: F.where(ref("where/cond"), a, b), {"a": a, "b": b}, ref("where/g"))
    close(out, ref("where/out"))
    close(a.grad, ref("where/ga"))
    close(b.grad, ref("where/gb"))


def test_clip(device):
    x = leaf("clip/x")
    out = run_case(lambda x: F.clip(x, -0.5, 0.7), {"x": x}, ref("clip/g"))
    close(out, ref("clip/out"))
    close(x.grad, ref("clip/gx"))


def test_maximum_minimum_ties(device):
    # Element 2 is a tie: torch gives each side half; ours gives it all to ``a``. Elsewhere they agree.
    for name, fn in (("maximum", F.maximum), ("minimum", F.minimum)):
        a, b = leaf("maximum/a"), leaf("maximum/b")
        fn(a, b).backward(np.ones(5))
        ga, gb = host(a.grad), host(b.grad)
        untied = np.arange(5) != 2
        close(ga[untied], ref(f"{name}/ga")[untied], name)
        close(gb[untied], ref(f"{name}/gb")[untied], name)
        assert (ga[2], gb[2]) == (1.0, 0.0)
        assert (ref(f"{name}/ga")[2], ref(f"{name}/gb")[2]) == (0.5, 0.5)


# ---------------------------------------------------------------------------------- convolution
CONV_CASES = sorted({key.split("/")[1] for key in REF if key.startswith("conv/")})


def test_conv_cases_are_all_there():
    assert len(CONV_CASES) == 13 and "same_stride2_even" in CONV_CASES and "depthwise_groups_mult2" in CONV_CASES


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d(device, name):
    check_conv(name)


@pytest.mark.parametrize("name", [n for n in CONV_CASES if ref(f"conv/{n}/x").shape[0] > 1])
def test_conv2d_one_image_chunks(device, name, monkeypatch):
    monkeypatch.setattr(nn_ops, "_CHUNK_BYTES", 1)  # the host's chunked im2col, one image a chunk (GPU: no-op)
    check_conv(name)


def check_conv(name: str) -> None:
    kwargs = ref_json(f"conv/{name}/kwargs")
    if isinstance(kwargs.get("padding"), list):
        kwargs["padding"] = tuple(tuple(p) if isinstance(p, list) else p for p in kwargs["padding"])
    x, k, b = leaf(f"conv/{name}/x"), leaf(f"conv/{name}/k"), leaf(f"conv/{name}/b")
    out = run_case(lambda x, k, b: F.conv2d(x, k, b, **kwargs), {"x": x, "k": k, "b": b}, ref(f"conv/{name}/g"))
    close(out, ref(f"conv/{name}/out"), "out")
    close(x.grad, ref(f"conv/{name}/gx"), "gx")
    close(k.grad, ref(f"conv/{name}/gk"), "gk")
    close(b.grad, ref(f"conv/{name}/gb"), "gb")


@pytest.mark.parametrize("chunked", [False, True])
def test_depthwise_conv2d_same_stride2(device, chunked, monkeypatch):
    if chunked:
        monkeypatch.setattr(nn_ops, "_CHUNK_BYTES", 1)
    x, k, b = leaf("dwconv/x"), leaf("dwconv/k"), leaf("dwconv/b")
    out = run_case(lambda x, k, b: F.depthwise_conv2d(x, k, b, stride=2, padding="same"), {"x": x, "k": k, "b": b},
                   ref("dwconv/g"))
    close(out, ref("dwconv/out"))
    close(x.grad, ref("dwconv/gx"))
    close(k.grad, ref("dwconv/gk"))
    close(b.grad, ref("dwconv/gb"))


# ---------------------------------------------------------------------------------- pooling
POOLS = {
    "max_2x2": ("x", lambda x: nn_ops.max_pool2d(x, 2)),
    "max_3x3_s2_overlap": ("x", lambda x: nn_ops.max_pool2d(x, 3, strides=2)),
    "max_3x3_s1_ties": ("x_ties", lambda x: nn_ops.max_pool2d(x, 3, strides=1)),  # first max wins, as torch
    "max_2x2_s1_ties": ("x_ties", lambda x: nn_ops.max_pool2d(x, 2, strides=1)),
    "max_2x3_s1x2": ("x", lambda x: nn_ops.max_pool2d(x, (2, 3), strides=(1, 2))),
    "avg_3x2_s2x1": ("x", lambda x: nn_ops.avg_pool2d(x, (3, 2), strides=(2, 1))),
    "max_same_3_s2": ("x", lambda x: nn_ops.max_pool2d(x, 3, strides=2, padding="same")),
    "avg_2x2": ("x", lambda x: nn_ops.avg_pool2d(x, 2)),
    "avg_3x3_s1_overlap": ("x", lambda x: nn_ops.avg_pool2d(x, 3, strides=1)),
    "avg_same_3_s1": ("x", lambda x: nn_ops.avg_pool2d(x, 3, strides=1, padding="same")),
    "avg_same_3_s2": ("x", lambda x: nn_ops.avg_pool2d(x, 3, strides=2, padding="same")),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pooling(device, name):
    src, fn = POOLS[name]
    x = leaf(f"pool/{src}")
    out = run_case(fn, {"x": x}, ref(f"pool/{name}/g"))
    close(out, ref(f"pool/{name}/out"), "out")
    close(x.grad, ref(f"pool/{name}/gx"), "gx")


# ---------------------------------------------------------------------------------- batch norm
def _bn(device, training: bool, unbiased: bool):
    xp = device
    x, gamma, beta = leaf("bn/x"), leaf("bn/gamma"), leaf("bn/beta")
    rmean, rvar = xp.asarray(ref("bn/running_mean").copy()), xp.asarray(ref("bn/running_var").copy())
    out = run_case(
        lambda x, gamma, beta: nn_ops.batch_norm(
            x, gamma, beta, rmean, rvar, training=training, momentum=float(ref("bn/momentum")),
            eps=float(ref("bn/eps")), unbiased_running_var=unbiased),
        {"x": x, "gamma": gamma, "beta": beta}, ref("bn/g"))
    return out, x, gamma, beta, host(rmean), host(rvar)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batch_norm_matches_torch(device, mode):
    out, x, gamma, beta, rmean, rvar = _bn(device, training=mode == "train", unbiased=True)
    close(out, ref(f"bn/{mode}/out"), "out")
    close(x.grad, ref(f"bn/{mode}/gx"), "gx")
    close(gamma.grad, ref(f"bn/{mode}/ggamma"), "ggamma")
    close(beta.grad, ref(f"bn/{mode}/gbeta"), "gbeta")
    close(rmean, ref(f"bn/{mode}/running_mean"), "running_mean")  # keras 0.9 == torch momentum 0.1
    close(rvar, ref(f"bn/{mode}/running_var"), "running_var")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_channels_first_without_affine(device, training):
    # axis=1 on NCHW is torch's own layout; gamma = beta = None. Eval mode uses the running stats
    # torch ended with, so one torch run checks both modes.
    xp = device
    x = leaf("bn_axis1/x")
    if training:
        rmean, rvar = xp.zeros(3), xp.ones(3)
    else:
        rmean, rvar = xp.asarray(ref("bn_axis1/running_mean")), xp.asarray(ref("bn_axis1/running_var"))
    out = run_case(
        lambda x: nn_ops.batch_norm(x, None, None, rmean, rvar, training=training, momentum=float(ref("bn/momentum")),
                                    eps=float(ref("bn/eps")), axis=1, unbiased_running_var=True),
        {"x": x}, ref("bn_axis1/g"))
    if training:
        close(out, ref("bn_axis1/out"))
        close(x.grad, ref("bn_axis1/gx"))
        close(rmean, ref("bn_axis1/running_mean"))
        close(rvar, ref("bn_axis1/running_var"))
    else:
        expected = (ref("bn_axis1/x") - ref("bn_axis1/running_mean")[:, None, None]) / np.sqrt(
            ref("bn_axis1/running_var")[:, None, None] + float(ref("bn/eps")))
        close(out, expected)  # the formula in float64 NumPy
        close(x.grad, ref("bn_axis1/g") / np.sqrt(ref("bn_axis1/running_var")[:, None, None] + float(ref("bn/eps"))))


def _biased_running_var() -> np.ndarray:
    """Our default's running variance, derived from torch's unbiased update on the same batch."""
    momentum, rv0 = float(ref("bn/momentum")), ref("bn/running_var")
    count = ref("bn/x").size // ref("bn/x").shape[-1]
    unbiased_batch_var = (ref("bn/train/running_var") - momentum * rv0) / (1 - momentum)
    return momentum * rv0 + (1 - momentum) * unbiased_batch_var * (count - 1) / count


def test_batch_norm_default_feeds_the_biased_variance(device):
    out, x, _, _, rmean, rvar = _bn(device, training=True, unbiased=False)
    close(out, ref("bn/train/out"))  # normalization itself always uses the biased variance
    close(x.grad, ref("bn/train/gx"))
    close(rmean, ref("bn/train/running_mean"))
    close(rvar, _biased_running_var())
    assert not np.allclose(rvar, ref("bn/train/running_var"))


def test_batch_normalization_layer_is_keras_momentum(device):
    layer = BatchNormalization(momentum=float(ref("bn/momentum")), epsilon=float(ref("bn/eps")), dtype="float64")
    with using_config("train", False):
        layer(Tensor(ref("bn/x")))  # builds it
    for weight, key in ((layer.gamma, "gamma"), (layer.beta, "beta"), (layer.moving_mean, "running_mean"),
                        (layer.moving_variance, "running_var")):
        weight.data[...] = device.asarray(ref(f"bn/{key}"))
    with using_config("train", False):
        close(layer(Tensor(ref("bn/x"))), ref("bn/eval/out"), "inference")
    with using_config("train", True):
        close(layer(Tensor(ref("bn/x"))), ref("bn/train/out"), "training")
    close(layer.moving_mean, ref("bn/train/running_mean"))
    close(layer.moving_variance, _biased_running_var())


# ---------------------------------------------------------------------------------- losses
REGRESSION = {
    "mse": losses.mse,
    "mae": losses.mae,
    "huber_delta1": losses.huber,
    "huber_delta2": lambda p, t, reduction: losses.huber(p, t, delta=2.0, reduction=reduction),
    "smooth_l1_beta2": lambda p, t, reduction: losses.huber(p, t, delta=2.0, reduction=reduction) / 2.0,
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_loss(device, name, reduction):
    p, t = leaf("loss/pred"), leaf("loss/target")
    g = ref("loss/g_none") if reduction == "none" else np.array(1.7)
    out = run_case(lambda p, t: REGRESSION[name](p, t, reduction=reduction), {"p": p, "t": t}, g)
    base = f"loss/{name}/{reduction}"
    close(out, ref(f"{base}/out"), "out")
    close(p.grad, ref(f"{base}/gpred"), "gpred")
    close(t.grad, ref(f"{base}/gtarget"), "gtarget")


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("labels", ["int", "onehot", "soft"])
def test_softmax_cross_entropy(device, labels, reduction):
    z = leaf("ce/logits")  # one row is offset by +500
    target = {"int": ref("ce/labels"), "onehot": np.eye(4)[ref("ce/labels")]}.get(labels)
    if labels == "soft":
        target = leaf("ce/soft")  # differentiable soft labels (distillation)
    g = ref("ce/g_none") if reduction == "none" else np.array(1.0)
    out = run_case(lambda z: losses.softmax_cross_entropy(z, target, reduction=reduction), {"z": z}, g)
    close(out, ref(f"ce/{labels}/{reduction}/out"), "out")
    close(z.grad, ref(f"ce/{labels}/{reduction}/glogits"), "glogits")
    if labels == "soft":
        close(target.grad, ref(f"ce/soft/{reduction}/glabels"), "glabels")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_bce_with_logits(device, reduction):
    z, t = leaf("bce/logits"), leaf("bce/targets")  # includes logits of +-60
    g = ref("bce/g_none") if reduction == "none" else np.array(1.0)
    out = run_case(lambda z, t: losses.sigmoid_bce(z, t, reduction=reduction), {"z": z, "t": t}, g)
    close(out, ref(f"bce/logits_{reduction}/out"))
    close(z.grad, ref(f"bce/logits_{reduction}/glogits"))
    close(t.grad, ref(f"bce/logits_{reduction}/gtargets"))


def test_binary_crossentropy_on_probabilities(device):
    p = leaf("bce/probs/p")  # inside Keras' clip range, where its BCE is torch's
    out = losses.binary_crossentropy(p, ref("bce/targets"))
    out.backward()
    close(out, ref("bce/probs/out"))
    close(p.grad, ref("bce/probs/gp"))


# ---------------------------------------------------------------------------------- distributions
@pytest.mark.parametrize("what", ["log_prob", "entropy", "probs"])
def test_categorical(device, what):
    z = leaf("cat/logits")
    dist = Categorical(z)
    fn = {"log_prob": lambda: dist.log_prob(ref("cat/actions")), "entropy": dist.entropy, "probs": lambda: dist.probs}
    out = fn[what]()
    out.backward(ref(f"cat/{what}/g"))
    close(out, ref(f"cat/{what}/out"))
    close(z.grad, ref(f"cat/{what}/glogits"))


@pytest.mark.parametrize("what", ["log_prob", "entropy"])
def test_categorical_with_masked_logits(device, what):
    # -inf logits mask invalid actions; 0 * log 0 counts as 0 in the entropy, and nothing turns NaN.
    z = leaf("cat_masked/logits")
    dist = Categorical(z)
    out = dist.log_prob(ref("cat/actions")) if what == "log_prob" else dist.entropy()
    out.backward(ref("cat/g"))
    close(out, ref(f"cat_masked/{what}/out"))
    close(z.grad, ref(f"cat_masked/{what}/glogits"))


@pytest.mark.parametrize("what", ["log_prob", "entropy"])
@pytest.mark.parametrize("log_std_shape", ["shared", "per_row"])
def test_diag_gaussian(device, log_std_shape, what):
    mean, log_std = leaf("gauss/mean"), leaf(f"gauss/{log_std_shape}/log_std")
    dist = DiagGaussian(mean, log_std)
    out = dist.log_prob(ref("gauss/actions")) if what == "log_prob" else dist.entropy()
    out.backward(ref("gauss/g"))
    base = f"gauss/{log_std_shape}/{what}"
    close(out, ref(f"{base}/out"))
    close(log_std.grad, ref(f"{base}/glog_std"))
    if what == "log_prob":
        close(mean.grad, ref(f"{base}/gmean"))
    else:  # the entropy does not depend on the mean
        assert mean.grad is None and not ref(f"{base}/gmean").any()


# ---------------------------------------------------------------------------------- optimizers
OPT_CASES = sorted({key.split("/")[1] for key in REF if key.startswith("opt/") and key.endswith("/ours")})


def test_optimizer_cases_are_all_there():
    assert {"sgd_momentum", "sgd_nesterov_wd", "rmsprop", "adam", "adamw", "adamw_late_head"} <= set(OPT_CASES)


@pytest.mark.parametrize("name", OPT_CASES)
def test_optimizer_trajectory(device, name):
    spec = ref_json(f"opt/{name}/ours")
    params = [leaf(f"opt/init/{i}") for i in range(4)]
    opt = getattr(optimizers, spec["class"])(params, **spec["kwargs"])
    x, y = Tensor(ref("opt/x")), Tensor(ref("opt/y"))
    steps = ref(f"opt/{name}/0").shape[0]
    for step in range(steps):
        opt.zero_grad()
        w1, b1, w2, b2 = params
        losses.mse(F.linear(F.tanh(F.linear(x, w1, b1)), w2, b2), y).backward()
        if step < spec["no_grad"]["steps"]:
            for i in spec["no_grad"]["params"]:  # these get no gradient yet: skipped, as torch skips them
                params[i].grad = None
        opt.step()
        for i, p in enumerate(params):
            close(p, ref(f"opt/{name}/{i}")[step], f"parameter {i} after step {step + 1}")
        if f"opt/{name}/grad_norms" in REF:  # the global norm before clipping, as clip_grad_norm_ returns
            np.testing.assert_allclose(opt.last_grad_norm, ref(f"opt/{name}/grad_norms")[step], rtol=RTOL)
