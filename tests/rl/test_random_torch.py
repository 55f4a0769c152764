"""Randomized differential tests against PyTorch (CPU): random cases, seeded, every failure replayable.

``tests/rl/test_torch_reference.py`` checks hand-picked cases from a stored fixture; this file draws
its cases at random and runs torch itself, so it finds what nobody thought to pick: random shapes,
convolution paddings / strides / dilations / groups, pooling, batch norm in both modes, activations,
losses with their ``from_logits`` and reduction variants, optimizer settings over several steps, and
whole random layer stacks. Each case compares forward values and the gradients of the inputs and of
every parameter, in float64 (to ~1e-9) and float32 (to ~1e-4 against torch's float64).

Each test runs ``PLAYGRAD_FUZZ_CASES`` cases (default 12) with seeds ``PLAYGRAD_FUZZ_SEED`` (default
0) onwards. A failure names its seed and prints the case; replay it alone with e.g.::

    PLAYGRAD_FUZZ_SEED=17 PLAYGRAD_FUZZ_CASES=1 .venv/bin/python -m pytest tests/rl/test_random_torch.py -k conv

Conventions that differ from torch on purpose (see test_torch_reference.py) are built into the torch
side: TF's "same" padding (an explicit, possibly asymmetric pad), Keras' batch-norm momentum
(``1 - torch_momentum``) and biased running variance, Keras' probability clipping and
renormalization in the probability cross-entropies, GELU's tanh form.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed: `.venv/bin/pip install torch==2.13.0` (CPU) runs these comparisons"
)
import torch.nn.functional as TF  # noqa: E402

import rl.functional as F  # noqa: E402
from rl import backend, losses, nn_ops, optimizers  # noqa: E402
from rl import layers as L  # noqa: E402
from rl.models import Sequential  # noqa: E402
from rl.tensor import Tensor, using_config  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    # The comparison is made on host arrays against torch on the CPU; make test's GPU pass (simulated CuPy, or a
    # real GPU) checks the GPU path with the suite's own tests, which compare each backend with NumPy.
    pytest.mark.skipif(backend.current().device == "gpu",
                       reason="randomized torch comparison runs on the NumPy backend (the GPU pass covers the cupy "
                              "path with the core's own tests)"),
]
torch.set_num_threads(1)  # the machine is shared; also keeps torch's sums in one order

N_CASES = int(os.environ.get("PLAYGRAD_FUZZ_CASES", "12"))
BASE_SEED = int(os.environ.get("PLAYGRAD_FUZZ_SEED", "0"))
SEEDS = [pytest.param(BASE_SEED + i, id=f"seed{BASE_SEED + i}") for i in range(N_CASES)]
DTYPES = ("float32", "float64")


# ---------------------------------------------------------------------------------- helpers
def _replay(test: str, seed: int, case: Any) -> str:
    return (f"\n  case: {case!r}\n  replay: PLAYGRAD_FUZZ_SEED={seed} PLAYGRAD_FUZZ_CASES=1 "
            f".venv/bin/python -m pytest tests/rl/test_random_torch.py -k {test}")


def _close(ours: Any, ref: Any, dtype: str, what: str, ctx: str, tol_dtype: str | None = None) -> None:
    """``ours`` (a Tensor or array, in ``dtype``) against torch's float64 ``ref``, to the tolerance of
    ``tol_dtype`` (default ``dtype``)."""
    got = ours.numpy() if isinstance(ours, Tensor) else np.asarray(ours)
    want = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}{ctx}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}{ctx}"
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    tol = 1e-9 if (tol_dtype or dtype) == "float64" else 2e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=f"{what}{ctx}")


def _leaf(a: np.ndarray, dtype: str) -> Tensor:
    return Tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def _tleaf(a: np.ndarray) -> Any:
    # Contiguous: torch's CPU conv refuses a weight whose gradient would not be (e.g. Cout == 1, transposed).
    return torch.tensor(np.array(a, dtype=np.float64, order="C"), requires_grad=True)


def _nchw(x: Any) -> Any:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: Any) -> Any:
    return x.permute(0, 2, 3, 1)


def _same_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF's "same": output ceil(size / s), the extra pixel at the bottom/right (written out independently)."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _explicit_pads(padding: Any, hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
                   d: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return _same_pad(hw[0], k[0], s[0], d[0]), _same_pad(hw[1], k[1], s[1], d[1])
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    a, b = padding
    if isinstance(a, int):
        return (a, a), (b, b)
    return tuple(a), tuple(b)


def _torch_pad(x_nchw: Any, pads: Any, value: float = 0.0) -> Any:
    (t, b), (left, r) = pads
    return TF.pad(x_nchw, (left, r, t, b), value=value)


def _out(size: int, k: int, s: int, d: int) -> int:
    return (size - (k - 1) * d - 1) // s + 1


def _batch_size(rng: np.random.Generator) -> int:
    """1 to 3, and now and then an empty batch (a last partial batch of 0, an env with no live agents)."""
    return 0 if rng.random() < 0.1 else int(rng.integers(1, 4))


def _random_padding(rng: np.random.Generator) -> Any:
    kind = rng.choice(["valid", "same", "int", "pair", "explicit"])
    if kind in ("valid", "same"):
        return str(kind)
    if kind == "int":
        return int(rng.integers(0, 3))
    if kind == "pair":
        return int(rng.integers(0, 3)), int(rng.integers(0, 3))
    return tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))


# ---------------------------------------------------------------------------------- convolutions
def _conv_case(rng: np.random.Generator, depthwise: bool) -> dict[str, Any]:
    case: dict[str, Any] = {
        "dtype": str(rng.choice(DTYPES)), "n": _batch_size(rng), "h": int(rng.integers(1, 10)),
        "w": int(rng.integers(1, 10)), "kernel": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
        "stride": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
        "dilation": (int(rng.integers(1, 3)), int(rng.integers(1, 3))), "padding": _random_padding(rng),
        "bias": bool(rng.random() < 0.6),
        # The ops work through the batch a few images at a time (im2col memory); a tiny chunk budget makes
        # every batch span several chunks, so their boundaries are exercised too.
        "chunk_bytes": int(rng.choice([1, 200, 4 << 20])),
    }
    if depthwise:
        case.update(cin=int(rng.integers(1, 5)), mult=int(rng.integers(1, 4)))
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        case.update(groups=groups, cin=groups * int(rng.integers(1, 4)), cout=groups * int(rng.integers(1, 4)))
    return case


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv2d", "depthwise"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_convolution(seed, depthwise, monkeypatch):
    rng = np.random.default_rng(seed)
    case = _conv_case(rng, depthwise)
    monkeypatch.setattr(nn_ops, "_CHUNK_BYTES", case["chunk_bytes"])
    ctx = _replay(f"'convolution and seed{seed}-'", seed, case)
    dt, (kh, kw), cin = case["dtype"], case["kernel"], case["cin"]
    x = rng.normal(size=(case["n"], case["h"], case["w"], cin))
    if depthwise:
        k = rng.normal(size=(kh, kw, cin, case["mult"]))
        cout, groups = cin * case["mult"], cin
        k_torch = k.transpose(2, 3, 0, 1).reshape(cout, 1, kh, kw)  # out channel c*mult + m, as Keras
    else:
        groups, cout = case["groups"], case["cout"]
        k = rng.normal(size=(kh, kw, cin // groups, cout))
        k_torch = k.transpose(3, 2, 0, 1)
    b = rng.normal(size=cout) if case["bias"] else None
    pads = _explicit_pads(case["padding"], (case["h"], case["w"]), case["kernel"], case["stride"], case["dilation"])
    out_hw = [_out(n + sum(p), kk, s, d) for n, p, kk, s, d in
              zip((case["h"], case["w"]), pads, case["kernel"], case["stride"], case["dilation"])]
    xs, ks, bs = _leaf(x, dt), _leaf(k, dt), (_leaf(b, dt) if b is not None else None)
    op = nn_ops.depthwise_conv2d if depthwise else nn_ops.conv2d
    kwargs = {"stride": case["stride"], "padding": case["padding"], "dilation": case["dilation"]}
    if not depthwise:
        kwargs["groups"] = groups
    if min(out_hw) < 1:  # the window does not fit: a clear error, as torch raises one
        with pytest.raises(ValueError, match="does not fit"):
            op(xs, ks, bs, **kwargs)
        return
    out = op(xs, ks, bs, **kwargs)
    g = rng.normal(size=out.shape)
    out.backward(np.asarray(g, dtype=dt))
    xt, kt = _tleaf(x), _tleaf(k_torch)
    bt = _tleaf(b) if b is not None else None
    ref = TF.conv2d(_torch_pad(_nchw(xt), pads), kt, bt, stride=case["stride"], dilation=case["dilation"],
                    groups=groups)
    ref = _nhwc(ref)
    ref.backward(torch.tensor(g))
    _close(out, ref, dt, "output", ctx)
    _close(xs.grad, xt.grad, dt, "d input", ctx)
    gk = kt.grad.numpy()
    gk = gk.reshape(cin, case["mult"], kh, kw).transpose(2, 3, 0, 1) if depthwise else gk.transpose(2, 3, 1, 0)
    _close(ks.grad, gk, dt, "d kernel", ctx)
    if b is not None:
        _close(bs.grad, bt.grad, dt, "d bias", ctx)


# ---------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("seed", SEEDS)
def test_random_pooling(seed):
    rng = np.random.default_rng(seed)
    case = {"kind": str(rng.choice(["max", "avg"])), "dtype": str(rng.choice(DTYPES)),
            "shape": (_batch_size(rng), int(rng.integers(1, 9)), int(rng.integers(1, 9)),
                      int(rng.integers(1, 4))),
            "pool": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
            "strides": None if rng.random() < 0.3 else (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
            "padding": str(rng.choice(["valid", "same"]))}
    ctx = _replay(f"'pooling and seed{seed}-'", seed, case)
    dt, (_, h, w, _) = case["dtype"], case["shape"]
    strides = case["strides"] or case["pool"]
    pads = _explicit_pads(case["padding"], (h, w), case["pool"], strides, (1, 1))
    x = rng.normal(size=case["shape"])
    xs = _leaf(x, dt)
    op = nn_ops.max_pool2d if case["kind"] == "max" else nn_ops.avg_pool2d
    if min(_out(n + sum(p), k, s, 1) for n, p, k, s in zip((h, w), pads, case["pool"], strides)) < 1:
        with pytest.raises(ValueError):
            op(xs, case["pool"], case["strides"], case["padding"])
        return
    out = op(xs, case["pool"], case["strides"], case["padding"])
    g = rng.normal(size=out.shape)
    out.backward(np.asarray(g, dtype=dt))
    xt = _tleaf(x)
    if case["kind"] == "max":  # padding never wins a max
        ref = TF.max_pool2d(_torch_pad(_nchw(xt), pads, -math.inf), case["pool"], strides)
    else:  # Keras/TF 'same' averages over the real cells only
        sums = TF.avg_pool2d(_torch_pad(_nchw(xt), pads), case["pool"], strides, divisor_override=1)
        counts = TF.avg_pool2d(_torch_pad(torch.ones_like(_nchw(xt)), pads), case["pool"], strides,
                               divisor_override=1)
        ref = sums / counts
    ref = _nhwc(ref)
    ref.backward(torch.tensor(g))
    _close(out, ref, dt, "output", ctx)
    _close(xs.grad, xt.grad, dt, "d input", ctx)


# ---------------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("seed", SEEDS)
def test_random_batch_norm(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.choice([2, 4]))
    n = 0 if rng.random() < 0.1 else int(rng.integers(2, 5))  # torch needs 2+ values per channel in training
    shape = (n, *(int(rng.integers(1, 4)) for _ in range(rank - 2)), int(rng.integers(1, 5)))
    case = {"dtype": str(rng.choice(DTYPES)), "shape": shape, "training": bool(rng.random() < 0.6),
            "momentum": float(rng.choice([0.0, 0.5, 0.9, 0.99])), "eps": float(rng.choice([1e-3, 1e-5, 0.1])),
            "gamma": bool(rng.random() < 0.7), "beta": bool(rng.random() < 0.7),
            "unbiased": bool(rng.random() < 0.5)}
    ctx = _replay(f"'batch_norm and seed{seed}-'", seed, case)
    dt, c = case["dtype"], shape[-1]
    x = rng.normal(size=shape) * rng.uniform(0.5, 3) + rng.normal()
    gamma = rng.uniform(0.5, 1.5, c) if case["gamma"] else None
    beta = rng.normal(size=c) if case["beta"] else None
    rm0, rv0 = rng.normal(size=c), rng.uniform(0.5, 2.0, c)
    xs = _leaf(x, dt)
    gs = _leaf(gamma, dt) if gamma is not None else None
    bs = _leaf(beta, dt) if beta is not None else None
    rm, rv = rm0.astype(dt), rv0.astype(dt)
    out = nn_ops.batch_norm(xs, gs, bs, rm, rv, case["training"], case["momentum"], case["eps"],
                            unbiased_running_var=case["unbiased"])
    g = rng.normal(size=shape)
    out.backward(np.asarray(g, dtype=dt))
    if shape[0] == 0:  # torch refuses a training batch of 0; ours keeps the moving statistics as they were
        assert out.shape == shape and xs.grad.shape == shape, ctx
        _close(rm, rm0, dt, "moving mean", ctx)
        _close(rv, rv0, dt, "moving variance", ctx)
        return
    xt = _tleaf(x)
    gt = _tleaf(gamma) if gamma is not None else None
    bt = _tleaf(beta) if beta is not None else None
    rmt, rvt = torch.tensor(rm0), torch.tensor(rv0)
    x_c = xt.movedim(-1, 1)  # torch's channels are axis 1
    ref = TF.batch_norm(x_c, rmt, rvt, gt, bt, training=case["training"], momentum=1 - case["momentum"],
                        eps=case["eps"]).movedim(1, -1)
    ref.backward(torch.tensor(g))
    _close(out, ref, dt, "output", ctx)
    _close(xs.grad, xt.grad, dt, "d input", ctx)
    if gamma is not None:
        _close(gs.grad, gt.grad, dt, "d gamma", ctx)
    if beta is not None:
        _close(bs.grad, bt.grad, dt, "d beta", ctx)
    want_rv = rvt.numpy()
    if case["training"] and not case["unbiased"]:  # Keras/TF.js feed the biased batch variance
        batch_var = x.reshape(-1, c).var(axis=0)
        want_rv = case["momentum"] * rv0 + (1 - case["momentum"]) * batch_var
    _close(rm, rmt, dt, "moving mean", ctx)
    _close(rv, want_rv, dt, "moving variance", ctx)


# ---------------------------------------------------------------------------------- activations
def _activation_case(rng: np.random.Generator) -> dict[str, Any]:
    name = str(rng.choice(["relu", "relu6", "elu", "leaky_relu", "tanh", "sigmoid", "softplus", "gelu",
                           "softmax", "log_softmax", "logsumexp", "maximum", "minimum", "clip"]))
    ndim = int(rng.integers(1, 4))
    case: dict[str, Any] = {"name": name, "dtype": str(rng.choice(DTYPES)),
                            "shape": tuple(int(rng.integers(1, 5)) for _ in range(ndim)),
                            "scale": float(rng.choice([1.0, 5.0, 40.0])), "axis": int(rng.integers(-ndim, ndim))}
    case["param"] = {"elu": float(rng.uniform(0.1, 2)), "leaky_relu": float(rng.uniform(0.01, 0.5)),
                     "maximum": float(rng.normal()), "minimum": float(rng.normal()),
                     "clip": (float(rng.uniform(-2, 0)), float(rng.uniform(0.1, 2)))}.get(name)
    return case


def _ours_activation(case: dict[str, Any], x: Tensor) -> Tensor:
    name, p, axis = case["name"], case["param"], case["axis"]
    if name in ("elu", "leaky_relu"):
        return getattr(F, name)(x, p)
    if name in ("softmax", "log_softmax"):
        return getattr(F, name)(x, axis=axis)
    if name == "logsumexp":
        return F.logsumexp(x, axis=axis, keepdims=False)
    if name in ("maximum", "minimum"):
        return getattr(F, name)(x, p)  # a Python float against the tensor: it takes the tensor's dtype
    if name == "clip":
        return F.clip(x, *p)
    return getattr(F, name)(x)


def _torch_activation(case: dict[str, Any], x: Any) -> Any:
    name, p, axis = case["name"], case["param"], case["axis"]
    table = {"relu": TF.relu, "relu6": TF.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "softplus": TF.softplus, "gelu": lambda t: TF.gelu(t, approximate="tanh"),
             "elu": lambda t: TF.elu(t, p), "leaky_relu": lambda t: TF.leaky_relu(t, p),
             "softmax": lambda t: torch.softmax(t, axis), "log_softmax": lambda t: torch.log_softmax(t, axis),
             "logsumexp": lambda t: torch.logsumexp(t, axis),
             "maximum": lambda t: torch.maximum(t, torch.tensor(p, dtype=t.dtype)),
             "minimum": lambda t: torch.minimum(t, torch.tensor(p, dtype=t.dtype)),
             "clip": lambda t: torch.clamp(t, *p)}
    return table[name](x)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_activation(seed):
    rng = np.random.default_rng(seed)
    case = _activation_case(rng)
    ctx = _replay(f"'activation and seed{seed}-'", seed, case)
    dt = case["dtype"]
    x = rng.normal(size=case["shape"]) * case["scale"]
    if dt == "float32":
        x = x.astype(np.float32).astype(np.float64)  # torch sees exactly the float32 input
    if case["name"] in ("relu6", "clip") or case["scale"] > 1:
        x = np.where(np.abs(x) < 1e-3, 0.5, x)  # keep clear of kinks, where conventions legitimately differ
    xs, xt = _leaf(x, dt), _tleaf(x)
    out, ref = _ours_activation(case, xs), _torch_activation(case, xt)
    g = rng.normal(size=ref.shape)
    out.backward(np.asarray(g, dtype=dt))
    ref.backward(torch.tensor(g))
    _close(out, ref, dt, "output", ctx)
    _close(xs.grad, xt.grad, dt, "d input", ctx)


# ---------------------------------------------------------------------------------- losses
LOSS_KINDS = ("mse", "mae", "huber", "bce", "bce_logits", "cce", "cce_logits", "scce", "scce_logits")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_loss(seed):
    rng = np.random.default_rng(seed)
    case = {"kind": str(rng.choice(LOSS_KINDS)), "dtype": str(rng.choice(DTYPES)),
            "reduction": str(rng.choice(["mean", "sum", "none"])), "b": int(rng.integers(1, 7)),
            "k": int(rng.integers(2, 6)), "delta": float(rng.uniform(0.2, 2.0)), "soft": bool(rng.random() < 0.5)}
    ctx = _replay(f"'loss and seed{seed}-'", seed, case)
    kind, dt, red, b, k = case["kind"], case["dtype"], case["reduction"], case["b"], case["k"]
    labels = rng.integers(0, k, size=b)
    onehot = np.eye(k)[labels]
    soft = rng.dirichlet(np.ones(k), size=b)
    if kind in ("mse", "mae", "huber"):
        pred, target = rng.normal(size=(b, k)) * 2, rng.normal(size=(b, k))
    elif kind == "bce":
        pred, target = rng.uniform(0.02, 0.98, size=(b, k)), rng.uniform(0, 1, size=(b, k))
    elif kind == "bce_logits":
        pred, target = rng.normal(size=(b, k)) * 4, rng.uniform(0, 1, size=(b, k))
    elif kind == "cce":  # unnormalized positive rows: Keras rescales them to sum to 1
        pred, target = rng.uniform(0.05, 1.0, size=(b, k)), (soft if case["soft"] else onehot)
    elif kind == "cce_logits":
        pred, target = rng.normal(size=(b, k)) * 3, (soft if case["soft"] else onehot)
    elif kind == "scce":
        pred, target = rng.dirichlet(np.ones(k) * 2, size=b) * 0.98 + 0.02 / k, labels
    else:
        pred, target = rng.normal(size=(b, k)) * 3, labels
    ps, pt = _leaf(pred, dt), _tleaf(pred)
    tgt = target if target.dtype.kind == "i" else target.astype(dt)
    # Soft targets that are themselves trained (distillation): the gradient reaches them too.
    target_grad = kind == "cce_logits" and case["soft"]
    if target_grad:
        tgt, target = _leaf(target, dt), _tleaf(target)
    ours = {"mse": lambda: losses.mse(ps, tgt, reduction=red), "mae": lambda: losses.mae(ps, tgt, reduction=red),
            "huber": lambda: losses.huber(ps, tgt, delta=case["delta"], reduction=red),
            "bce": lambda: losses.binary_crossentropy(ps, tgt, reduction=red),
            "bce_logits": lambda: losses.binary_crossentropy(ps, tgt, from_logits=True, reduction=red),
            "cce": lambda: losses.categorical_crossentropy(ps, tgt, reduction=red),
            "cce_logits": lambda: losses.categorical_crossentropy(ps, tgt, from_logits=True, reduction=red),
            "scce": lambda: losses.sparse_categorical_crossentropy(ps, tgt, reduction=red),
            "scce_logits": lambda: losses.sparse_categorical_crossentropy(ps, tgt, from_logits=True,
                                                                          reduction=red)}[kind]()
    t = target if target_grad else torch.tensor(target)
    eps = losses.EPSILON

    def keras_cce(probs, onehot_rows):  # Keras' probability cross-entropy: rescale, clip, log
        p = torch.clamp(probs / probs.sum(-1, keepdim=True), eps, 1 - eps)
        per = -(onehot_rows * torch.log(p)).sum(-1)
        return {"mean": per.mean(), "sum": per.sum(), "none": per}[red]

    ref = {"mse": lambda: TF.mse_loss(pt, t, reduction=red), "mae": lambda: TF.l1_loss(pt, t, reduction=red),
           "huber": lambda: TF.huber_loss(pt, t, reduction=red, delta=case["delta"]),
           "bce": lambda: TF.binary_cross_entropy(pt, t, reduction=red),
           "bce_logits": lambda: TF.binary_cross_entropy_with_logits(pt, t, reduction=red),
           "cce": lambda: keras_cce(pt, t),
           "cce_logits": lambda: TF.cross_entropy(pt, t, reduction=red),
           "scce": lambda: keras_cce(pt, torch.tensor(np.eye(k)[target])),
           "scce_logits": lambda: TF.cross_entropy(pt, t, reduction=red)}[kind]()
    g = rng.normal(size=tuple(ref.shape))
    ours.backward(np.asarray(g, dtype=dt))
    ref.backward(torch.tensor(g))
    _close(ours, ref, dt, "loss", ctx)
    _close(ps.grad, pt.grad, dt, "d prediction", ctx)
    if target_grad:
        _close(tgt.grad, t.grad, dt, "d target", ctx)


# ---------------------------------------------------------------------------------- optimizers
def _optimizer_case(rng: np.random.Generator) -> dict[str, Any]:
    kind = str(rng.choice(["sgd", "rmsprop", "adam", "adamw"]))
    cfg: dict[str, Any] = {"lr": float(10 ** rng.uniform(-3, -1))}
    if kind == "sgd":
        cfg["momentum"] = float(rng.choice([0.0, 0.5, 0.9]))
        cfg["nesterov"] = bool(cfg["momentum"] > 0 and rng.random() < 0.5)
        cfg["weight_decay"] = float(rng.choice([0.0, 0.01]))
    elif kind == "rmsprop":
        cfg.update(rho=float(rng.choice([0.9, 0.99])), momentum=float(rng.choice([0.0, 0.5])),
                   eps=float(rng.choice([1e-7, 1e-3])), centered=bool(rng.random() < 0.5),
                   weight_decay=float(rng.choice([0.0, 0.01])))
    else:
        cfg.update(betas=(float(rng.choice([0.8, 0.9])), float(rng.choice([0.99, 0.999]))),
                   eps=float(rng.choice([1e-8, 1e-3])), amsgrad=bool(rng.random() < 0.5),
                   weight_decay=float(rng.choice([0.0, 0.01, 0.1])))
    # Half the time the learning rate follows a schedule, read at the step count before each step.
    cfg["schedule"] = None if rng.random() < 0.5 else str(rng.choice(["linear", "exponential", "cosine"]))
    return {"kind": kind, "config": cfg, "clipnorm": None if rng.random() < 0.6 else float(rng.uniform(0.5, 3)),
            "dtypes": [str(rng.choice(DTYPES)) for _ in range(int(rng.integers(1, 4)))],
            "steps": int(rng.integers(2, 7)), "skip_prob": float(rng.choice([0.0, 0.3]))}


def _schedule(case: dict[str, Any]) -> Any:
    """The case's rl.schedules learning rate (or its float)."""
    from rl import schedules

    lr, kind = case["config"]["lr"], case["config"]["schedule"]
    if kind is None:
        return lr
    if kind == "linear":
        return schedules.LinearDecay(lr, lr * 0.1, 4)
    if kind == "exponential":
        return schedules.ExponentialDecay(lr, decay_steps=2, decay_rate=0.5)
    return schedules.CosineDecay(lr, decay_steps=5)


def _ours_optimizer(case: dict[str, Any], params: list[Tensor]) -> Any:
    cfg = {k: v for k, v in case["config"].items() if k != "schedule"}
    cfg["lr"] = _schedule(case)
    return optimizers.get_optimizer(case["kind"], params, clipnorm=case["clipnorm"], **cfg)


def _torch_optimizer(case: dict[str, Any], params: list[Any]) -> Any:
    """torch's optimizer and a LambdaLR following the same schedule (None without one)."""
    opt = _torch_optimizer_only(case, params)
    lr = _schedule(case)
    if not callable(lr):
        return opt, None
    base = case["config"]["lr"]
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr(step) / base)


def _torch_optimizer_only(case: dict[str, Any], params: list[Any]) -> Any:
    cfg = {k: v for k, v in case["config"].items() if k != "schedule"}
    if case["kind"] == "sgd":
        return torch.optim.SGD(params, **cfg)
    if case["kind"] == "rmsprop":
        cfg["alpha"] = cfg.pop("rho")
        return torch.optim.RMSprop(params, **cfg)
    return (torch.optim.Adam if case["kind"] == "adam" else torch.optim.AdamW)(params, **cfg)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_optimizer(seed):
    rng = np.random.default_rng(seed)
    case = _optimizer_case(rng)
    ctx = _replay(f"'optimizer and seed{seed}-'", seed, case)
    shapes = [tuple(int(d) for d in rng.integers(1, 4, size=rng.integers(1, 3))) for _ in case["dtypes"]]
    init = [rng.normal(size=s) for s in shapes]
    ours = [Tensor(a.astype(dt), requires_grad=True) for a, dt in zip(init, case["dtypes"])]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = _ours_optimizer(case, ours)
    topt, tsched = _torch_optimizer(case, theirs)
    tol_dtype = "float32" if case["clipnorm"] is not None and "float32" in case["dtypes"] else None
    for step in range(case["steps"]):
        for p, tp in zip(ours, theirs):
            # A parameter without a gradient this step (a head not used) is skipped by both.
            if rng.random() < case["skip_prob"]:
                p.grad, tp.grad = None, None
                continue
            g = rng.normal(size=p.shape) * rng.choice([0.1, 1.0, 10.0])
            p.grad, tp.grad = np.asarray(g, dtype=p.dtype), torch.tensor(g)
        if case["clipnorm"] is not None:
            torch.nn.utils.clip_grad_norm_([tp for tp in theirs if tp.grad is not None], case["clipnorm"])
        opt.step()
        topt.step()
        if tsched is not None:
            tsched.step()
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            # float32 parameters drift from torch's float64 ones by rounding each step: compared loosely. So
            # are float64 ones clipped together with float32 ones, whose float32 gradients enter the norm.
            _close(p.data, tp, case["dtypes"][i], f"parameter {i} after step {step + 1}", ctx, tol_dtype)


# ---------------------------------------------------------------------------------- random layer stacks
_ACT_NAMES = ("linear", "relu", "relu6", "elu", "tanh", "sigmoid", "softplus", "gelu", "leaky_relu")
_TORCH_ACT = {"linear": lambda t: t, "relu": TF.relu, "relu6": TF.relu6, "elu": TF.elu, "tanh": torch.tanh,
              "sigmoid": torch.sigmoid, "softplus": TF.softplus, "gelu": lambda t: TF.gelu(t, approximate="tanh"),
              "leaky_relu": lambda t: TF.leaky_relu(t, 0.2), "softmax": lambda t: torch.softmax(t, -1)}


def _random_layer(rng: np.random.Generator, dt: str, channels: int) -> L.Layer:
    kind = str(rng.choice(["conv", "conv", "depthwise", "bn", "maxpool", "avgpool", "act", "relu", "zeropad"]))
    act = str(rng.choice(_ACT_NAMES))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    d = (1, 1) if max(s) > 1 or rng.random() < 0.6 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad = _random_padding(rng)
    if kind == "conv":
        groups = int(rng.choice([1, 1, 1, channels])) if channels > 1 else 1  # grouped only as Cin allows
        return L.Conv2D(groups * int(rng.integers(1, 4)), k, strides=s, padding=pad, dilation_rate=d,
                        groups=groups, activation=act, use_bias=bool(rng.random() < 0.7), dtype=dt)
    if kind == "depthwise":
        return L.DepthwiseConv2D(k, strides=s, padding=pad, depth_multiplier=int(rng.integers(1, 3)),
                                 dilation_rate=d, activation=act, use_bias=bool(rng.random() < 0.7), dtype=dt)
    if kind == "bn":
        return L.BatchNormalization(momentum=float(rng.choice([0.9, 0.99])), epsilon=float(rng.choice([1e-3, 1e-5])),
                                    center=bool(rng.random() < 0.8), scale=bool(rng.random() < 0.8), dtype=dt)
    if kind in ("maxpool", "avgpool"):
        cls = L.MaxPooling2D if kind == "maxpool" else L.AveragePooling2D
        return cls(k, strides=None if rng.random() < 0.5 else s, padding=str(rng.choice(["valid", "same"])),
                   dtype=dt)
    if kind == "act":
        return L.Activation(act, dtype=dt)
    if kind == "relu":
        return L.ReLU(max_value=None if rng.random() < 0.4 else float(rng.uniform(0.5, 6)),
                      negative_slope=float(rng.choice([0.0, 0.1])), dtype=dt)
    return L.ZeroPadding2D(tuple((int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(2)), dtype=dt)


def _random_network(rng: np.random.Generator, dt: str) -> tuple[Sequential, tuple[int, ...]]:
    shape = (int(rng.integers(4, 10)), int(rng.integers(4, 10)), int(rng.integers(1, 4)))
    layers: list[L.Layer] = [L.InputLayer(shape, dtype=dt)]
    current: tuple[Any, ...] = (None, *shape)
    for _ in range(int(rng.integers(1, 6))):
        layer = _random_layer(rng, dt, current[-1])
        try:
            out = layer.compute_output_shape(current)
        except ValueError:
            continue
        if min(out[1:3]) < 1:
            continue
        layers.append(layer)
        current = out
    layers.append(L.Flatten(dtype=dt) if rng.random() < 0.5 else L.GlobalAveragePooling2D(dtype=dt))
    layers.append(L.Dense(int(rng.integers(1, 5)), activation=str(rng.choice([*_ACT_NAMES, "softmax"])), dtype=dt))
    return Sequential(layers), shape


def _torch_layer(layer: L.Layer, x: Any, params: dict[str, Any], training: bool) -> Any:
    """``layer``'s forward in torch (NHWC in and out), with its weights taken from ``params``."""
    w = {key.split("/")[-1]: t for key, t in params.items() if key.rsplit("/", 1)[0] == layer.name}
    if isinstance(layer, L.Conv2D | L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        pads = _explicit_pads(layer.padding, tuple(x.shape[1:3]), layer.kernel_size, layer.strides,
                              layer.dilation_rate)
        if isinstance(layer, L.Conv2D):
            kernel, groups = w["kernel"].permute(3, 2, 0, 1).contiguous(), layer.groups
        else:
            c, mult = w["depthwise_kernel"].shape[2:]
            kernel, groups = w["depthwise_kernel"].permute(2, 3, 0, 1).reshape(c * mult, 1, kh, kw).contiguous(), c
        y = TF.conv2d(_torch_pad(_nchw(x), pads), kernel, w.get("bias"), stride=layer.strides,
                      dilation=layer.dilation_rate, groups=groups)
        return _TORCH_ACT[layer.activation](_nhwc(y))
    if isinstance(layer, L.BatchNormalization):
        mean, var = w["moving_mean"], w["moving_variance"]
        y = TF.batch_norm(x.movedim(-1, 1), None if training else mean, None if training else var, w.get("gamma"),
                          w.get("beta"), training=training, eps=layer.epsilon)
        if training:  # Keras' update: momentum kept, and the biased batch variance (torch's is unbiased)
            flat = x.detach().reshape(-1, x.shape[-1])
            mean.mul_(layer.momentum).add_((1 - layer.momentum) * flat.mean(0))
            var.mul_(layer.momentum).add_((1 - layer.momentum) * flat.var(0, unbiased=False))
        return y.movedim(1, -1)
    if isinstance(layer, L.MaxPooling2D | L.AveragePooling2D):
        pads = _explicit_pads(layer.padding, tuple(x.shape[1:3]), layer.pool_size, layer.strides, (1, 1))
        if isinstance(layer, L.MaxPooling2D):
            return _nhwc(TF.max_pool2d(_torch_pad(_nchw(x), pads, -math.inf), layer.pool_size, layer.strides))
        sums = TF.avg_pool2d(_torch_pad(_nchw(x), pads), layer.pool_size, layer.strides, divisor_override=1)
        counts = TF.avg_pool2d(_torch_pad(torch.ones_like(_nchw(x)), pads), layer.pool_size, layer.strides,
                               divisor_override=1)
        return _nhwc(sums / counts)
    if isinstance(layer, L.Activation):
        return _TORCH_ACT[layer.activation](x)
    if isinstance(layer, L.ReLU):
        y = TF.leaky_relu(x, layer.negative_slope) if layer.negative_slope else TF.relu(x)
        return y if layer.max_value is None else torch.clamp(y, max=layer.max_value)
    if isinstance(layer, L.ZeroPadding2D):
        return _nhwc(_torch_pad(_nchw(x), layer.padding))
    if isinstance(layer, L.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, L.GlobalAveragePooling2D):
        return x.mean(dim=(1, 2))
    if isinstance(layer, L.Dense):
        return _TORCH_ACT[layer.activation](x @ w["kernel"] + w["bias"] if "bias" in w else x @ w["kernel"])
    raise AssertionError(f"no torch translation for {type(layer).__name__}")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_layer_stack(seed):
    rng = np.random.default_rng(seed)
    dt, training = str(rng.choice(DTYPES)), bool(rng.random() < 0.5)
    model, shape = _random_network(rng, dt)
    case = {"dtype": dt, "training": training, "input": shape,
            "layers": [(type(layer).__name__, layer.get_config()) for layer in model.layers]}
    ctx = _replay(f"'layer_stack and seed{seed}-'", seed, case)
    state = model.state_dict()
    for key, value in state.items():  # random statistics, so BN's inference mode is not the identity
        if key.endswith(("moving_mean", "beta", "bias")):
            value[...] = rng.normal(size=value.shape)
        elif key.endswith(("moving_variance", "gamma")):
            value[...] = rng.uniform(0.5, 1.5, size=value.shape)
    before = {k: np.array(v, dtype=np.float64) for k, v in state.items()}
    x = rng.normal(size=(int(rng.integers(2, 4)), *shape))
    xs = _leaf(x, dt)
    with using_config("train", training):
        out = model(xs)
    g = rng.normal(size=out.shape)
    out.backward(np.asarray(g, dtype=dt))
    params = {k: torch.tensor(v, requires_grad=not k.endswith(("moving_mean", "moving_variance")))
              for k, v in before.items()}
    xt = _tleaf(x)
    y = xt
    for layer in model.layers:  # the InputLayer is not among them
        y = _torch_layer(layer, y, params, training)
    y.backward(torch.tensor(g))
    _close(out, y, dt, "output", ctx)
    _close(xs.grad, xt.grad, dt, "d input", ctx)
    for key, tensor in model.named_weights():
        if params[key].requires_grad:
            _close(tensor.grad, params[key].grad, dt, f"d {key}", ctx)
        else:  # moving statistics: updated in training mode only
            _close(tensor.data, params[key], dt, key, ctx)


# ---------------------------------------------------------------------------------- tensor algebra
def _broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast together (sizes stretched from 1, leading axes missing)."""
    full = tuple(int(d) for d in rng.integers(1, 4, size=int(rng.integers(0, 4))))
    a = tuple(1 if rng.random() < 0.3 else d for d in full)
    b = tuple(1 if rng.random() < 0.3 else d for d in full)
    return a[int(rng.integers(0, len(a) + 1)):] if rng.random() < 0.3 else a, \
        b[int(rng.integers(0, len(b) + 1)):] if rng.random() < 0.3 else b


ALGEBRA = ("add", "sub", "mul", "div", "pow", "rpow", "pow_tensor", "matmul", "exp", "log", "sqrt", "abs",
           "sum", "mean", "max", "min", "reshape", "transpose", "getitem", "concat", "stack", "take_along_axis",
           "where", "categorical", "gaussian", "linear")


def _algebra_case(rng: np.random.Generator) -> dict[str, Any]:
    op = str(rng.choice(ALGEBRA))
    case: dict[str, Any] = {"op": op, "dtype": str(rng.choice(DTYPES))}
    if op in ("add", "sub", "mul", "div", "pow_tensor", "where"):
        case["shapes"] = _broadcast_pair(rng)
    elif op == "matmul":
        k, n, m = (int(d) for d in rng.integers(1, 4, size=3))
        batch_a, batch_b = _broadcast_pair(rng)
        a = (k,) if rng.random() < 0.2 else (*batch_a, n, k)
        b = (k,) if rng.random() < 0.2 else (*batch_b, k, m)
        case["shapes"] = (a, b)
    elif op == "linear":  # x (..., in) @ w (in, out) + b (out,): any leading axes
        lead = tuple(int(d) for d in rng.integers(1, 4, size=int(rng.integers(1, 4))))
        n_in, n_out = (int(d) for d in rng.integers(1, 5, size=2))
        case["shapes"] = ((*lead, n_in), (n_in, n_out), (n_out,)) if rng.random() < 0.7 else ((*lead, n_in),
                                                                                               (n_in, n_out))
    elif op in ("categorical", "gaussian"):
        case["shapes"] = ((int(rng.integers(1, 5)), int(rng.integers(1, 5))),)
        case["shared_std"] = bool(rng.random() < 0.5)
    else:
        case["shapes"] = (tuple(int(d) for d in rng.integers(1, 4, size=int(rng.integers(1, 4)))),)
        ndim = len(case["shapes"][0])
        axes = [a for a in range(ndim) if rng.random() < 0.5]
        case["axis"] = None if not axes or rng.random() < 0.2 else (axes[0] - ndim if len(axes) == 1
                                                                       else tuple(axes))
        case["keepdims"] = bool(rng.random() < 0.5)
        case["exponent"] = float(rng.choice([2.0, 3.0, 0.5, -1.5]))
        case["perm"] = tuple(int(i) for i in rng.permutation(ndim))
        case["pick"] = int(rng.integers(-1, 2))
    return case


def _algebra(case: dict[str, Any], ins: list[Any], lib: str) -> Any:
    """Run ``case`` with ``lib`` = ``"rl"`` or ``"torch"`` on the prepared inputs ``ins``."""
    op, mine = case["op"], lib == "rl"
    a = ins[0]
    b = ins[1] if len(ins) > 1 else None
    if op in ("add", "sub", "mul", "div"):
        return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    if op == "pow":
        return a ** case["exponent"]
    if op == "rpow":
        return 1.7 ** a
    if op == "pow_tensor":
        return a ** b
    if op == "matmul":
        return a @ b
    if op in ("exp", "log", "sqrt", "abs"):
        return getattr(a, op)() if mine else getattr(torch, op)(a)
    if op in ("sum", "mean", "max", "min"):
        axis, keep = case["axis"], case["keepdims"]
        if mine:
            return getattr(a, op)(axis=axis, keepdims=keep)
        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[op]
        dims = tuple(range(a.ndim)) if axis is None else axis
        return fn(a, dim=dims, keepdim=keep)
    if op == "reshape":
        return a.reshape(-1, 1) if case["pick"] else a.reshape(a.shape[::-1])
    if op == "transpose":
        return a.transpose(*case["perm"]) if mine else a.permute(*case["perm"])
    if op == "getitem":
        if mine:  # NumPy's negative-step slice; torch has none, so it flips
            return a[::-1, ..., case["pick"] % a.shape[-1]] if a.ndim > 1 else a[::-1]
        flipped = torch.flip(a, dims=(0,))
        return flipped[..., case["pick"] % a.shape[-1]] if a.ndim > 1 else flipped
    if op in ("concat", "stack"):
        parts = [a, a * 2.0, a.exp() if mine else torch.exp(a)]
        axis = case["perm"][0] if op == "concat" else min(case["pick"] + 1, a.ndim)
        if mine:
            return F.concat(parts, axis=axis) if op == "concat" else F.stack(parts, axis=axis)
        return torch.cat(parts, dim=axis) if op == "concat" else torch.stack(parts, dim=axis)
    if op == "take_along_axis":
        axis = case["perm"][0]
        idx = ins[-1]
        return F.take_along_axis(a, idx, axis=axis) if mine else torch.take_along_dim(a, torch.tensor(idx), dim=axis)
    if op == "where":
        cond = ins[-1]
        return F.where(cond, a, b) if mine else torch.where(torch.tensor(cond), a, b)
    if op == "linear":
        bias = ins[2] if len(ins) > 2 else None
        if mine:
            return F.linear(a, b, bias)
        return a @ b + bias if bias is not None else a @ b
    if op == "categorical":
        actions = ins[-1]
        if mine:
            from rl.distributions import Categorical

            d = Categorical(a)
            return F.concat([d.log_prob(actions).reshape(-1, 1), d.entropy().reshape(-1, 1)], axis=1)
        d = torch.distributions.Categorical(logits=a)
        return torch.stack([d.log_prob(torch.tensor(actions)), d.entropy()], dim=1)
    if op == "gaussian":
        actions = ins[-1]
        if mine:
            from rl.distributions import DiagGaussian

            d = DiagGaussian(a, b)
            return F.concat([d.log_prob(actions).reshape(-1, 1), d.entropy().reshape(-1, 1)], axis=1)
        d = torch.distributions.Normal(a, torch.exp(b).expand_as(a))
        return torch.stack([d.log_prob(torch.tensor(actions)).sum(-1), d.entropy().sum(-1)], dim=1)
    raise AssertionError(op)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_tensor_algebra(seed):
    rng = np.random.default_rng(seed)
    case = _algebra_case(rng)
    ctx = _replay(f"'tensor_algebra and seed{seed}-'", seed, case)
    op, dt = case["op"], case["dtype"]
    arrays = [rng.normal(size=s) for s in case["shapes"]]
    if op in ("log", "sqrt", "pow", "pow_tensor"):
        arrays[0] = np.abs(arrays[0]) + 0.5  # the real domain
    if op in ("div", "pow_tensor"):
        arrays[1] = np.sign(arrays[1]) * (np.abs(arrays[1]) + 0.5) if op == "div" else arrays[1]
    if op == "abs":
        arrays[0] = np.where(np.abs(arrays[0]) < 1e-3, 0.5, arrays[0])
    if dt == "float32":
        arrays = [a.astype(np.float32).astype(np.float64) for a in arrays]
    extra: list[Any] = []
    if op == "take_along_axis":
        shape = list(arrays[0].shape)
        shape[case["perm"][0]] = int(rng.integers(1, 4))
        extra = [rng.integers(0, arrays[0].shape[case["perm"][0]], size=shape)]
    elif op == "where":
        extra = [rng.random(np.broadcast_shapes(*case["shapes"])) < 0.5]
    elif op == "categorical":
        extra = [rng.integers(0, arrays[0].shape[1], size=arrays[0].shape[0])]
    elif op == "gaussian":
        arrays.append(rng.normal(size=arrays[0].shape[1:] if case["shared_std"] else arrays[0].shape) * 0.5)
        extra = [rng.normal(size=arrays[0].shape).astype(dt)]
    ours_in = [_leaf(a, dt) for a in arrays]
    torch_in = [_tleaf(a) for a in arrays]
    out = _algebra(case, [*ours_in, *extra], "rl")
    ref = _algebra(case, [*torch_in, *extra], "torch")
    g = rng.normal(size=tuple(ref.shape))
    out.backward(np.asarray(g, dtype=dt))
    ref.backward(torch.tensor(g))
    _close(out, ref, dt, "output", ctx)
    for i, (x, xt) in enumerate(zip(ours_in, torch_in)):
        _close(x.grad, xt.grad, dt, f"d input {i}", ctx)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_optimizer_resume_is_exact(seed):
    """Saving the optimizer mid-run and resuming in a fresh one (as a checkpoint does) changes nothing, bit for bit."""
    rng = np.random.default_rng(seed)
    case = _optimizer_case(rng)
    ctx = _replay(f"'optimizer_resume and seed{seed}-'", seed, case)
    shapes = [tuple(int(d) for d in rng.integers(1, 4, size=rng.integers(1, 3))) for _ in case["dtypes"]]
    init = [rng.normal(size=s).astype(dt) for s, dt in zip(shapes, case["dtypes"])]
    grads = [[None if rng.random() < case["skip_prob"] else rng.normal(size=s).astype(dt)
              for s, dt in zip(shapes, case["dtypes"])] for _ in range(case["steps"])]
    cut = int(rng.integers(1, case["steps"]))

    def run(params, opt, steps):
        for step_grads in steps:
            for p, g in zip(params, step_grads):
                p.grad = g
            opt.step()

    straight = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt = _ours_optimizer(case, straight)
    run(straight, opt, grads)
    first = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt1 = _ours_optimizer(case, first)
    run(first, opt1, grads[:cut])
    resumed = [Tensor(p.numpy().copy(), requires_grad=True) for p in first]
    opt2 = optimizers.get_optimizer(opt1.get_config(), resumed)
    opt2.load_state_dict({k: np.array(v) for k, v in opt1.state_dict().items()})
    run(resumed, opt2, grads[cut:])
    for i, (a, b) in enumerate(zip(straight, resumed)):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=f"parameter {i} (resumed after step {cut}){ctx}")
