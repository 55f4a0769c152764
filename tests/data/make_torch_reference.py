"""Regenerate ``tests/data/torch_reference.npz``: PyTorch's answers for the rl core's differential tests.

``tests/rl/test_torch_reference.py`` checks our ops, layers' maths, losses, distributions and optimizers
against what PyTorch computes for the same float64 inputs. The project never imports torch, so the
answers are computed once here and committed. Run it with a torch-enabled interpreter (a separate venv,
not the project's)::

    /tmp/benchvenv/bin/python tests/data/make_torch_reference.py

Inputs come from NumPy's seeded generator (not torch's), so they are the same on every machine; every
backward uses a fixed random upstream gradient (``.../g``), not ``sum()``, so a wrongly transposed or
scaled gradient cannot hide behind a symmetric all-ones seed. Everything is float64.

Layout of the archive: one flat dict of arrays whose keys are ``case/name``, e.g. ``act/x``,
``act/relu/out``, ``act/relu/gx``. Images are stored in **our** layout (NHWC, kernels
``(kh, kw, Cin/groups, Cout)``); the conversion to torch's NCHW / ``(Cout, Cin/groups, kh, kw)`` happens
here. Where the frameworks' conventions differ the mapping is written next to the case:

* Keras/TF ``"same"`` padding with stride 2 pads bottom/right only on even sizes; torch's ``padding=``
  is symmetric, so those cases run torch on an input explicitly ``F.pad``-ed by TF's rule (``-inf`` for
  max pooling), or with ``ceil_mode=True`` for the average pool (same windows, same real-cell counts).
* Batch norm: our (Keras) ``momentum`` is the weight of the *old* running value, torch's the weight of
  the *new* batch value: ``torch_momentum = 1 - keras_momentum``. torch feeds the running variance the
  unbiased batch variance (our ``unbiased_running_var=True``); our default, the biased one, is
  checked in the test against the biased batch variance derived from these numbers.
* Huber: ``F.huber_loss(delta)`` is our ``huber(delta)``; ``F.smooth_l1_loss(beta)`` is ``huber(beta) / beta``.
* Leaky ReLU's slope is passed explicitly (ours defaults to Keras' 0.3, torch's to 0.01).
* Optimizers: parameters after each of 5 steps on a tiny tanh MLP with an MSE loss, torch configured
  to our documented maths (RMSprop's eps outside the root is torch's placement; ``alpha`` is our
  ``rho``; AdamW's decay ``p *= 1 - lr * wd`` is torch's); ``*_late_head`` cases give the output layer
  no gradient for 2 steps; ``sgd_clipnorm`` also stores ``clip_grad_norm_``'s pre-clip norms.
* Edge values on purpose: a +1000 softmax row, +500 cross-entropy logits, +-60 BCE logits, softplus at
  +-800, logsumexp rows of -inf / holding +inf, Categorical logits masked with -inf, tied maxima.

Our-side keyword arguments of the conv and optimizer cases are stored as JSON strings
(``conv/NAME/kwargs``, ``opt/NAME/ours``), so the test reads each case's spec from the archive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention

OUT_PATH = Path(__file__).resolve().parent / "torch_reference.npz"
torch.set_default_dtype(torch.float64)

arrays: dict[str, np.ndarray] = {}


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def put(key: str, value) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    arrays[key] = np.array(value)


def put_json(key: str, value) -> None:
    """Keyword arguments for our side of a case, stored as a JSON string so the test reads them from here."""
    arrays[key] = np.array(json.dumps(value))


def leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def away_from(a: np.ndarray, points: tuple[float, ...], margin: float = 0.05) -> np.ndarray:
    """``a`` with values within ``margin`` of a kink moved off it, so no subgradient convention is tested."""
    a = a.copy()
    for p in points:
        close = np.abs(a - p) < margin
        a[close] = p + np.where(a[close] >= p, margin, -margin)
    return a


def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def nchw_to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------------- activations
def activations() -> None:
    x = away_from(rng(1).standard_normal((4, 6)) * 4.0, (0.0, 6.0))
    g = rng(2).standard_normal(x.shape)
    put("act/x", x)
    put("act/g", g)
    cases = {
        "relu": F.relu,
        "relu6": F.relu6,
        "elu": lambda t: F.elu(t, alpha=1.0),
        "elu_alpha0.5": lambda t: F.elu(t, alpha=0.5),
        "leaky_relu0.3": lambda t: F.leaky_relu(t, negative_slope=0.3),
        "leaky_relu0.01": lambda t: F.leaky_relu(t, negative_slope=0.01),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "softplus": F.softplus,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "gelu_erf": lambda t: F.gelu(t, approximate="none"),  # stored to document how far ours is from it
    }
    for name, fn in cases.items():
        t = leaf(x)
        out = fn(t)
        out.backward(torch.tensor(g))
        put(f"act/{name}/out", out)
        put(f"act/{name}/gx", t.grad)
    # The kinks themselves: the subgradient each framework picks at exactly 0 and 6.
    kinks = np.array([-6.0, 0.0, 6.0, 3.0])
    put("kink/x", kinks)
    for name, fn in {"relu": F.relu, "relu6": F.relu6, "leaky_relu0.3": lambda t: F.leaky_relu(t, 0.3),
                     "elu": F.elu}.items():
        t = leaf(kinks)
        fn(t).backward(torch.ones(4))
        put(f"kink/{name}/gx", t.grad)
    # Softplus far out: log1p(exp(x)) must neither overflow nor lose the tail.
    big = np.array([-800.0, -40.0, -1e-3, 0.0, 30.0, 800.0])
    t = leaf(big)
    # torch returns x itself above threshold=20, which is log1p(exp(x)) to within exp(-20) * x.
    out = F.softplus(t)
    out.backward(torch.ones(6))
    put("softplus_big/x", big)
    put("softplus_big/out", out)
    put("softplus_big/gx", t.grad)


# ---------------------------------------------------------------------------------- softmax family
def softmax_family() -> None:
    x = rng(3).standard_normal((4, 5)) * 3.0
    x[2] += 1000.0  # a row that overflows a naive exp
    g = rng(4).standard_normal(x.shape)
    put("soft/x", x)
    put("soft/g", g)
    for axis in (-1, 0):
        for name, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
            if axis == 0 and name == "log_softmax":
                continue
            # Along axis 0 the +1000 row would take all the mass; use unshifted values there.
            t = leaf(x if axis == -1 else rng(9).standard_normal(x.shape))
            out = fn(t, dim=axis)
            out.backward(torch.tensor(g))
            put(f"soft/{name}_axis{axis}/x", t.detach())
            put(f"soft/{name}_axis{axis}/out", out)
            put(f"soft/{name}_axis{axis}/gx", t.grad)
    t = leaf(x)
    out = torch.logsumexp(t, dim=-1)
    g_lse = rng(5).standard_normal(out.shape)
    out.backward(torch.tensor(g_lse))
    put("soft/logsumexp/g", g_lse)
    put("soft/logsumexp/out", out)
    put("soft/logsumexp/gx", t.grad)
    t = leaf(x[:, :3] - 1000.0 * (np.arange(4) == 2)[:, None])
    out = torch.logsumexp(t, dim=0, keepdim=True)
    g_lse0 = rng(6).standard_normal(out.shape)
    out.backward(torch.tensor(g_lse0))
    put("soft/logsumexp_axis0_keep/x", t.detach())
    put("soft/logsumexp_axis0_keep/g", g_lse0)
    put("soft/logsumexp_axis0_keep/out", out)
    put("soft/logsumexp_axis0_keep/gx", t.grad)
    # Infinite entries: a row of -inf gives -inf (not NaN), a +inf entry gives +inf. The gradient of
    # those two rows is NaN in torch too (exp(inf - inf)); the finite rows' gradients must stay clean.
    inf = np.inf
    xi = np.array([[0.0, 1.0, -inf], [-inf, -inf, -inf], [1.0, inf, 0.0], [2.0, 3.0, 4.0]])
    t = leaf(xi)
    out = torch.logsumexp(t, dim=-1)
    out.backward(torch.ones(4))
    put("soft/logsumexp_inf/x", xi)
    put("soft/logsumexp_inf/out", out)
    put("soft/logsumexp_inf/gx", t.grad)


# ---------------------------------------------------------------------------------- reductions
def reductions() -> None:
    x = rng(7).standard_normal((3, 4, 5))
    put("red/x", x)
    for name, fn in {
        "sum_all": lambda t: t.sum(),
        "sum_axis1": lambda t: t.sum(dim=1),
        "sum_axes02_keep": lambda t: t.sum(dim=(0, 2), keepdim=True),
        "mean_all": lambda t: t.mean(),
        "mean_axis2": lambda t: t.mean(dim=2),
        "mean_axes01_keep": lambda t: t.mean(dim=(0, 1), keepdim=True),
        "max_axis1": lambda t: t.amax(dim=1),
        "min_axis2_keep": lambda t: t.amin(dim=2, keepdim=True),
        "sum_axes_neg": lambda t: t.sum(dim=(-1, 0)),
        "mean_axes_neg": lambda t: t.mean(dim=(-2, -1)),
        "max_axes02": lambda t: t.amax(dim=(0, 2)),
        "max_all": lambda t: t.amax(),
    }.items():
        t = leaf(x)
        out = fn(t)
        g = rng(8).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        put(f"red/{name}/g", g)
        put(f"red/{name}/out", out)
        put(f"red/{name}/gx", t.grad)
    # Ties: amax/amin share the gradient equally among the tied maxima; max(dim) (values, indices)
    # sends all of it to the one index it returns.
    ties = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1.0, 2.0, 1.0]])
    g = np.array([1.0, 2.0, -3.0])
    put("ties/x", ties)
    put("ties/g", g)
    for name, fn in {
        "amax_axis1": lambda t: t.amax(dim=1),
        "max_dim1": lambda t: t.max(dim=1).values,
        "amin_axis1": lambda t: (-t).amin(dim=1),  # the min of -x, ties in the same places
    }.items():
        t = leaf(ties)
        out = fn(t)
        out.backward(torch.tensor(g))
        put(f"ties/{name}/out", out)
        put(f"ties/{name}/gx", t.grad)
    t = leaf(ties)
    t.max().backward()  # the full reduction: 4 tied fives
    put("ties/max_all/gx", t.grad)


# ---------------------------------------------------------------------------------- matmul, linear
def matmul() -> None:
    shapes = {
        "batched_broadcast": ((2, 1, 3, 4), (5, 4, 2)),
        "matrix_vector": ((3, 4), (4,)),
        "vector_batched": ((4,), (2, 4, 3)),
        "dot": ((4,), (4,)),
        "matrix": ((3, 4), (4, 2)),
    }
    for i, (name, (sa, sb)) in enumerate(shapes.items()):
        a, b = leaf(rng(10 + i).standard_normal(sa)), leaf(rng(20 + i).standard_normal(sb))
        out = a @ b
        g = rng(30 + i).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        for key, value in (("a", a.detach()), ("b", b.detach()), ("g", g), ("out", out), ("ga", a.grad),
                           ("gb", b.grad)):
            put(f"matmul/{name}/{key}", value)
    # F.linear with our (in, out) weight: torch's weight is its transpose.
    x, w, b = leaf(rng(40).standard_normal((2, 3, 4))), leaf(rng(41).standard_normal((4, 5))), leaf(
        rng(42).standard_normal(5))
    out = F.linear(x, w.T, b)
    g = rng(43).standard_normal(out.shape)
    out.backward(torch.tensor(g))
    for key, value in (("x", x.detach()), ("w", w.detach()), ("b", b.detach()), ("g", g), ("out", out),
                       ("gx", x.grad), ("gw", w.grad), ("gb", b.grad)):
        put(f"linear/{key}", value)


# ---------------------------------------------------------------------------------- elementwise, indexing, joins
def elementwise() -> None:
    a_np = rng(60).standard_normal((3, 1, 4))
    b_np = rng(61).standard_normal((2, 4))
    pos_np = rng(62).random((3, 1, 4)) + 0.5  # positive: log, sqrt, fractional and tensor powers
    put("elem/a", a_np)
    put("elem/b", b_np)
    put("elem/pos", pos_np)
    cases = {
        # name: (torch fn of (a, b, pos), which inputs it uses)
        "add": lambda a, b, pos: a + b,
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
        "exp": lambda a, b, pos: torch.exp(a),
        "log": lambda a, b, pos: torch.log(pos),
        "sqrt": lambda a, b, pos: torch.sqrt(pos),
        "abs": lambda a, b, pos: torch.abs(a),
        "transpose_reshape": lambda a, b, pos: (a * b).permute(2, 0, 1).reshape(4, 6),
    }
    for i, (name, fn) in enumerate(cases.items()):
        a, b, pos = leaf(a_np), leaf(b_np), leaf(pos_np)
        out = fn(a, b, pos)
        g = rng(63 + i).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        put(f"elem/{name}/g", g)
        put(f"elem/{name}/out", out)
        for key, t in (("ga", a), ("gb", b), ("gpos", pos)):
            put(f"elem/{name}/{key}", t.grad if t.grad is not None else np.zeros(t.shape))

    x_np = rng(90).standard_normal((4, 5))
    put("index/x", x_np)
    rows, cols = np.array([0, 2, 0, 3]), np.array([1, 1, 1, 4])  # (0, 1) picked twice: gradients add
    put("index/rows", rows)
    put("index/cols", cols)
    cases = {
        "slice": lambda t: t[1:3, ::2],
        "rows_repeated": lambda t: t[torch.tensor(rows)],
        "pairs_repeated": lambda t: t[torch.tensor(rows), torch.tensor(cols)],
        "negative_step": lambda t: t.flip(0)[:, -2],  # x[::-1, -2]
    }
    for i, (name, fn) in enumerate(cases.items()):
        t = leaf(x_np)
        out = fn(t)
        g = rng(91 + i).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        put(f"index/{name}/g", g)
        put(f"index/{name}/out", out)
        put(f"index/{name}/gx", t.grad)

    p_np, q_np = rng(95).standard_normal((2, 3)), rng(96).standard_normal((2, 2))
    put("join/p", p_np)
    put("join/q", q_np)
    for name, fn in (("concat", lambda p, q: torch.cat([p, q, p], dim=1)),
                     ("stack", lambda p, q: torch.stack([p, p * 2.0], dim=1))):
        p, q = leaf(p_np), leaf(q_np)
        out = fn(p, q)
        g = rng(97).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        put(f"join/{name}/g", g)
        put(f"join/{name}/out", out)
        put(f"join/{name}/gp", p.grad)
        put(f"join/{name}/gq", q.grad if q.grad is not None else np.zeros(q.shape))


# ---------------------------------------------------------------------------------- selection
def selection() -> None:
    x = rng(50).standard_normal((3, 5))
    idx1 = np.array([[0, 4, 4, 2], [1, 1, 1, 1], [3, 0, 2, 0]])  # repeats: their gradients add
    idx0 = np.array([[2, 0, 1, 1, 0], [0, 0, 2, 1, 2]])
    for name, (axis, idx) in {"axis1": (1, idx1), "axis0": (0, idx0)}.items():
        t = leaf(x)
        out = torch.gather(t, axis, torch.tensor(idx))
        g = rng(51).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        for key, value in (("idx", idx), ("g", g), ("out", out), ("gx", t.grad)):
            put(f"gather/{name}/{key}", value)
    put("gather/x", x)

    cond = rng(52).random((3, 4)) < 0.5
    a, b = leaf(rng(53).standard_normal((3, 4))), leaf(rng(54).standard_normal(4))  # b broadcasts
    out = torch.where(torch.tensor(cond), a, b)
    g = rng(55).standard_normal(out.shape)
    out.backward(torch.tensor(g))
    for key, value in (("cond", cond), ("a", a.detach()), ("b", b.detach()), ("g", g), ("out", out),
                       ("ga", a.grad), ("gb", b.grad)):
        put(f"where/{key}", value)

    xc = away_from(rng(56).standard_normal((3, 4)), (-0.5, 0.7))
    t = leaf(xc)
    out = torch.clamp(t, -0.5, 0.7)
    g = rng(57).standard_normal(out.shape)
    out.backward(torch.tensor(g))
    for key, value in (("x", xc), ("g", g), ("out", out), ("gx", t.grad)):
        put(f"clip/{key}", value)

    # maximum/minimum without ties, and one tie (torch splits it in half; ours gives it to the first).
    a_np = rng(58).standard_normal(5)
    b_np = rng(59).standard_normal(5)
    b_np[2] = a_np[2]
    for name, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        a, b = leaf(a_np), leaf(b_np)
        fn(a, b).backward(torch.ones(5))
        put(f"{name}/ga", a.grad)
        put(f"{name}/gb", b.grad)
    put("maximum/a", a_np)
    put("maximum/b", b_np)


# ---------------------------------------------------------------------------------- convolution
# name: x (N, H, W, Cin), our kernel (kh, kw, Cin/groups, Cout), our kwargs (as literals for the test),
# the explicit TF pads ((top, bottom), (left, right)) applied with F.pad before torch's conv, torch kwargs.
CONV_CASES = {
    "valid_3x3_bias": ((2, 5, 6, 3), (3, 3, 3, 4), {}, ((0, 0), (0, 0)), {}),
    "stride2_pad1": ((2, 6, 5, 2), (3, 3, 2, 3), {"stride": 2, "padding": 1}, ((0, 0), (0, 0)),
                     {"stride": 2, "padding": 1}),
    "stride_hw_explicit_pads": ((1, 5, 6, 2), (2, 3, 2, 3), {"stride": (2, 1), "padding": ((0, 2), (1, 0))},
                                ((0, 2), (1, 0)), {"stride": (2, 1)}),
    "dilation2": ((1, 7, 7, 2), (3, 3, 2, 3), {"dilation": 2}, ((0, 0), (0, 0)), {"dilation": 2}),
    "dilation_hw_same": ((1, 6, 7, 1), (3, 2, 1, 2), {"dilation": (2, 1), "padding": "same"},
                         ((2, 2), (0, 1)), {"dilation": (2, 1)}),
    "groups2": ((2, 5, 5, 4), (3, 3, 2, 6), {"groups": 2}, ((0, 0), (0, 0)), {"groups": 2}),
    "depthwise_groups_mult2": ((2, 5, 5, 3), (3, 3, 1, 6), {"groups": 3, "padding": "same"},
                               ((1, 1), (1, 1)), {"groups": 3}),
    "same_stride1": ((1, 5, 4, 2), (3, 3, 2, 2), {"padding": "same"}, ((1, 1), (1, 1)), {}),
    # TF's "same" with stride 2 on an even size: total padding 1, all of it bottom/right.
    "same_stride2_even": ((2, 6, 6, 2), (3, 3, 2, 3), {"stride": 2, "padding": "same"}, ((0, 1), (0, 1)),
                          {"stride": 2}),
    "same_stride2_odd": ((1, 7, 7, 2), (3, 3, 2, 2), {"stride": 2, "padding": "same"}, ((1, 1), (1, 1)),
                         {"stride": 2}),
    "groups3_stride2_dilation2": ((1, 9, 8, 6), (3, 3, 2, 6), {"groups": 3, "stride": 2, "dilation": 2, "padding": 1},
                                  ((0, 0), (0, 0)), {"groups": 3, "stride": 2, "dilation": 2, "padding": 1}),
    "pointwise": ((2, 3, 3, 4), (1, 1, 4, 5), {}, ((0, 0), (0, 0)), {}),
    "pointwise_stride2": ((1, 5, 5, 3), (1, 1, 3, 2), {"stride": 2}, ((0, 0), (0, 0)), {"stride": 2}),
}


def _tf_pad(x_nchw: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    (top, bottom), (left, right) = pads
    return F.pad(x_nchw, (left, right, top, bottom), value=value)


def convolution() -> None:
    for i, (name, (xs, ks, ours, tf_pads, torch_kwargs)) in enumerate(CONV_CASES.items()):
        put_json(f"conv/{name}/kwargs", ours)
        x, k = leaf(rng(100 + i).standard_normal(xs)), leaf(rng(200 + i).standard_normal(ks))
        b = leaf(rng(300 + i).standard_normal(ks[3]))
        weight = k.permute(3, 2, 0, 1)  # (kh, kw, Cin/g, Cout) -> (Cout, Cin/g, kh, kw)
        out = nchw_to_nhwc(F.conv2d(_tf_pad(nhwc_to_nchw(x), tf_pads), weight, b, **torch_kwargs))
        g = rng(400 + i).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        for key, value in (("x", x.detach()), ("k", k.detach()), ("b", b.detach()), ("g", g), ("out", out),
                           ("gx", x.grad), ("gk", k.grad), ("gb", b.grad)):
            put(f"conv/{name}/{key}", value)
    # depthwise_conv2d's own kernel layout (kh, kw, C, mult): output channel c*mult + m, which is
    # torch's grouped order with groups = C, so the torch weight is the kernel reshaped to (C*mult, 1, kh, kw).
    x, k = leaf(rng(500).standard_normal((2, 6, 6, 3))), leaf(rng(501).standard_normal((3, 3, 3, 2)))
    b = leaf(rng(502).standard_normal(6))
    weight = k.reshape(3, 3, 6).permute(2, 0, 1)[:, None]
    out = nchw_to_nhwc(F.conv2d(_tf_pad(nhwc_to_nchw(x), ((0, 1), (0, 1))), weight, b, stride=2, groups=3))
    g = rng(503).standard_normal(out.shape)
    out.backward(torch.tensor(g))
    for key, value in (("x", x.detach()), ("k", k.detach()), ("b", b.detach()), ("g", g), ("out", out),
                       ("gx", x.grad), ("gk", k.grad), ("gb", b.grad)):
        put(f"dwconv/{key}", value)


# ---------------------------------------------------------------------------------- pooling
def pooling() -> None:
    x = rng(600).standard_normal((2, 6, 6, 3))
    x_ties = np.round(rng(601).standard_normal((1, 5, 5, 2)))  # integers: many tied windows
    put("pool/x", x)
    put("pool/x_ties", x_ties)
    cases = {
        # name: (input key, torch call on NCHW)
        "max_2x2": ("x", lambda t: F.max_pool2d(t, 2)),
        "max_3x3_s2_overlap": ("x", lambda t: F.max_pool2d(t, 3, 2)),
        "max_3x3_s1_ties": ("x_ties", lambda t: F.max_pool2d(t, 3, 1)),
        "max_2x2_s1_ties": ("x_ties", lambda t: F.max_pool2d(t, 2, 1)),
        "max_2x3_s1x2": ("x", lambda t: F.max_pool2d(t, (2, 3), (1, 2))),
        "avg_3x2_s2x1": ("x", lambda t: F.avg_pool2d(t, (3, 2), (2, 1))),
        # TF "same", pool 3 stride 2 on 6: total padding 1, bottom/right; padded cells never win.
        "max_same_3_s2": ("x", lambda t: F.max_pool2d(_tf_pad(t, ((0, 1), (0, 1)), float("-inf")), 3, 2)),
        "avg_2x2": ("x", lambda t: F.avg_pool2d(t, 2)),
        "avg_3x3_s1_overlap": ("x", lambda t: F.avg_pool2d(t, 3, 1)),
        # TF "same", stride 1: symmetric padding 1, each window divided by its count of real cells.
        "avg_same_3_s1": ("x", lambda t: F.avg_pool2d(t, 3, 1, padding=1, count_include_pad=False)),
        # TF "same", pool 3 stride 2 on 6: the bottom/right window hangs over by one; ceil_mode gives
        # the same windows and divides by the real cells in them.
        "avg_same_3_s2": ("x", lambda t: F.avg_pool2d(t, 3, 2, ceil_mode=True)),
    }
    for i, (name, (src, fn)) in enumerate(cases.items()):
        t = leaf(x if src == "x" else x_ties)
        out = nchw_to_nhwc(fn(nhwc_to_nchw(t)))
        g = rng(610 + i).standard_normal(out.shape)
        out.backward(torch.tensor(g))
        put(f"pool/{name}/g", g)
        put(f"pool/{name}/out", out)
        put(f"pool/{name}/gx", t.grad)


# ---------------------------------------------------------------------------------- batch norm
def batch_norm() -> None:
    keras_momentum, eps = 0.9, 1e-3
    x_np = rng(700).standard_normal((3, 2, 2, 4)) * 2.0 + 0.5  # NHWC: statistics over 12 values per channel
    gamma_np, beta_np = rng(701).standard_normal(4), rng(702).standard_normal(4)
    rmean_np, rvar_np = rng(703).standard_normal(4) * 0.1, rng(704).random(4) + 0.5
    g = rng(705).standard_normal(x_np.shape)
    for key, value in (("x", x_np), ("gamma", gamma_np), ("beta", beta_np), ("running_mean", rmean_np),
                       ("running_var", rvar_np), ("g", g), ("momentum", keras_momentum), ("eps", eps)):
        put(f"bn/{key}", value)
    for mode in ("train", "eval"):
        x, gamma, beta = leaf(x_np), leaf(gamma_np), leaf(beta_np)
        rmean, rvar = torch.tensor(rmean_np), torch.tensor(rvar_np)
        out = F.batch_norm(nhwc_to_nchw(x), rmean, rvar, gamma, beta, training=mode == "train",
                           momentum=1.0 - keras_momentum, eps=eps)
        out = nchw_to_nhwc(out)
        out.backward(torch.tensor(g))
        for key, value in (("out", out), ("gx", x.grad), ("ggamma", gamma.grad), ("gbeta", beta.grad),
                           ("running_mean", rmean), ("running_var", rvar)):
            put(f"bn/{mode}/{key}", value)
    # axis=1 on an NCHW input is torch's own layout; no gamma/beta (Keras scale=False, center=False).
    x_np = rng(706).standard_normal((4, 3, 2, 2))
    g = rng(707).standard_normal(x_np.shape)
    put("bn_axis1/x", x_np)
    put("bn_axis1/g", g)
    x, rmean, rvar = leaf(x_np), torch.zeros(3), torch.ones(3)
    out = F.batch_norm(x, rmean, rvar, None, None, training=True, momentum=1.0 - keras_momentum, eps=eps)
    out.backward(torch.tensor(g))
    for key, value in (("out", out), ("gx", x.grad), ("running_mean", rmean), ("running_var", rvar)):
        put(f"bn_axis1/{key}", value)


# ---------------------------------------------------------------------------------- losses
def losses() -> None:
    pred_np = rng(800).standard_normal((4, 3)) * 2.0
    target_np = rng(801).standard_normal((4, 3))
    pred_np = target_np + away_from(pred_np - target_np, (-2.0, -1.0, 1.0, 2.0))  # no |d| == delta
    put("loss/pred", pred_np)
    put("loss/target", target_np)
    g_none = rng(802).standard_normal(pred_np.shape)
    put("loss/g_none", g_none)
    regression = {
        "mse": lambda p, t, r: F.mse_loss(p, t, reduction=r),
        "mae": lambda p, t, r: F.l1_loss(p, t, reduction=r),
        "huber_delta1": lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=1.0),
        "huber_delta2": lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=2.0),
        "smooth_l1_beta2": lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=2.0),
    }
    for name, fn in regression.items():
        for reduction in ("mean", "sum", "none"):
            p, t = leaf(pred_np), leaf(target_np)
            out = fn(p, t, reduction)
            out.backward(torch.tensor(g_none) if reduction == "none" else torch.tensor(1.7))
            put(f"loss/{name}/{reduction}/out", out)
            put(f"loss/{name}/{reduction}/gpred", p.grad)
            put(f"loss/{name}/{reduction}/gtarget", t.grad)

    logits_np = rng(810).standard_normal((5, 4)) * 2.0
    logits_np[3] += 500.0  # stable for large logits
    labels = np.array([0, 3, 1, 3, 2])
    soft = rng(811).random((5, 4))
    soft /= soft.sum(axis=1, keepdims=True)
    g_ce = rng(812).standard_normal(5)
    for key, value in (("logits", logits_np), ("labels", labels), ("soft", soft), ("g_none", g_ce)):
        put(f"ce/{key}", value)
    for name, target in (("int", torch.tensor(labels)), ("onehot", torch.tensor(np.eye(4)[labels])),
                         ("soft", leaf(soft))):
        for reduction in ("mean", "none"):
            z = leaf(logits_np)
            tgt = leaf(soft) if name == "soft" else target
            out = F.cross_entropy(z, tgt, reduction=reduction)
            out.backward(torch.tensor(g_ce) if reduction == "none" else torch.tensor(1.0))
            put(f"ce/{name}/{reduction}/out", out)
            put(f"ce/{name}/{reduction}/glogits", z.grad)
            if name == "soft":
                put(f"ce/{name}/{reduction}/glabels", tgt.grad)

    z_np = rng(820).standard_normal((3, 4)) * 3.0
    z_np[0, :2] = (60.0, -60.0)  # saturated logits
    t_np = rng(821).random((3, 4))
    t_np[1] = (rng(822).random(4) < 0.5).astype(float)  # hard 0/1 targets in one row
    g_bce = rng(823).standard_normal(z_np.shape)
    for key, value in (("logits", z_np), ("targets", t_np), ("g_none", g_bce)):
        put(f"bce/{key}", value)
    for reduction in ("mean", "sum", "none"):
        z, t = leaf(z_np), leaf(t_np)
        out = F.binary_cross_entropy_with_logits(z, t, reduction=reduction)
        out.backward(torch.tensor(g_bce) if reduction == "none" else torch.tensor(1.0))
        put(f"bce/logits_{reduction}/out", out)
        put(f"bce/logits_{reduction}/glogits", z.grad)
        put(f"bce/logits_{reduction}/gtargets", t.grad)
    # On probabilities inside Keras' clip range [1e-7, 1 - 1e-7], Keras' BCE is torch's.
    p = leaf(1.0 / (1.0 + np.exp(-np.clip(z_np, -8, 8))))
    out = F.binary_cross_entropy(p, torch.tensor(t_np))
    out.backward()
    put("bce/probs/p", p.detach())
    put("bce/probs/out", out)
    put("bce/probs/gp", p.grad)


# ---------------------------------------------------------------------------------- distributions
def distributions() -> None:
    logits_np = rng(900).standard_normal((4, 5)) * 2.0
    actions = np.array([0, 4, 2, 2])
    g = rng(901).standard_normal(4)
    for key, value in (("logits", logits_np), ("actions", actions), ("g", g)):
        put(f"cat/{key}", value)
    for what in ("log_prob", "entropy", "probs"):
        z = leaf(logits_np)
        dist = torch.distributions.Categorical(logits=z)
        if what == "log_prob":
            out = dist.log_prob(torch.tensor(actions))
        elif what == "entropy":
            out = dist.entropy()
        else:
            out = dist.probs
        gg = rng(902).standard_normal(out.shape) if what == "probs" else g
        out.backward(torch.tensor(gg))
        put(f"cat/{what}/g", gg)
        put(f"cat/{what}/out", out)
        put(f"cat/{what}/glogits", z.grad)

    # Invalid-action masking: -inf logits. torch's entropy treats 0 * log 0 as 0 (it clamps the logits).
    masked_np = logits_np.copy()
    masked_np[0, 1] = masked_np[2, [0, 3]] = -np.inf
    put("cat_masked/logits", masked_np)
    for what in ("log_prob", "entropy"):
        z = leaf(masked_np)
        dist = torch.distributions.Categorical(logits=z)
        out = dist.log_prob(torch.tensor(actions)) if what == "log_prob" else dist.entropy()
        out.backward(torch.tensor(g))
        put(f"cat_masked/{what}/out", out)
        put(f"cat_masked/{what}/glogits", z.grad)

    mean_np = rng(910).standard_normal((4, 3))
    actions_c = rng(911).standard_normal((4, 3)) * 1.5
    for key, value in (("mean", mean_np), ("actions", actions_c)):
        put(f"gauss/{key}", value)
    for shape_name, shape in (("shared", (3,)), ("per_row", (4, 3))):
        log_std_np = rng(912).standard_normal(shape) * 0.5
        put(f"gauss/{shape_name}/log_std", log_std_np)
        for what in ("log_prob", "entropy"):
            mean, log_std = leaf(mean_np), leaf(log_std_np)
            dist = torch.distributions.Normal(mean, log_std.exp())
            out = (dist.log_prob(torch.tensor(actions_c)) if what == "log_prob" else dist.entropy()).sum(-1)
            out.backward(torch.tensor(g))
            put(f"gauss/{shape_name}/{what}/out", out)
            put(f"gauss/{shape_name}/{what}/gmean", mean.grad if mean.grad is not None else np.zeros((4, 3)))
            put(f"gauss/{shape_name}/{what}/glog_std", log_std.grad)
    put("gauss/g", g)


# ---------------------------------------------------------------------------------- optimizers
# name: (torch optimizer class name, its kwargs, our class name, our kwargs, clip norm or None)
OPTIMIZER_CASES = {
    "sgd": ("SGD", {"lr": 0.1}, "SGD", {"lr": 0.1}, None),
    "sgd_momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}, "SGD", {"lr": 0.1, "momentum": 0.9}, None),
    "sgd_nesterov_wd": ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, "SGD",
                        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, None),
    "sgd_clipnorm": ("SGD", {"lr": 0.1}, "SGD", {"lr": 0.1, "clipnorm": 0.3}, 0.3),
    "rmsprop": ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-7}, "RMSprop", {"lr": 0.01, "rho": 0.9, "eps": 1e-7},
                None),
    "rmsprop_centered_momentum": ("RMSprop", {"lr": 0.01, "alpha": 0.8, "eps": 1e-6, "momentum": 0.5,
                                              "centered": True, "weight_decay": 0.01},
                                  "RMSprop", {"lr": 0.01, "rho": 0.8, "eps": 1e-6, "momentum": 0.5,
                                              "centered": True, "weight_decay": 0.01}, None),
    "adam": ("Adam", {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}, "Adam",
             {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}, None),
    "adam_amsgrad_l2": ("Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True,
                                 "weight_decay": 0.1},
                        "Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True,
                                 "weight_decay": 0.1}, None),
    "adamw": ("AdamW", {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}, "AdamW",
              {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}, None),
}
OPT_STEPS = 5
# Cases where the output layer (parameters 2 and 3) has no gradient (None) for the first 2 steps: it
# must be left alone then (no decay, no state change) and start its own bias-correction count later.
LATE_PARAMS, LATE_STEPS = (2, 3), 2
for _name in ("adam", "adamw", "sgd_momentum"):
    _t, _tk, _o, _ok, _c = OPTIMIZER_CASES[_name]
    OPTIMIZER_CASES[f"{_name}_late_head"] = (_t, _tk, _o, {**_ok}, _c)


def mlp_loss(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The test's tiny model: tanh(x @ w1 + b1) @ w2 + b2, mean squared error."""
    w1, b1, w2, b2 = params
    return F.mse_loss(torch.tanh(x @ w1 + b1) @ w2 + b2, y)


def optimizers() -> None:
    x, y = rng(1000).standard_normal((6, 3)), rng(1001).standard_normal((6, 2))
    init = [rng(1002).standard_normal((3, 4)) * 0.7, rng(1003).standard_normal(4) * 0.1,
            rng(1004).standard_normal((4, 2)) * 0.7, rng(1005).standard_normal(2) * 0.1]
    put("opt/x", x)
    put("opt/y", y)
    for i, p in enumerate(init):
        put(f"opt/init/{i}", p)
    for name, (torch_cls, torch_kwargs, ours, our_kwargs, clip) in OPTIMIZER_CASES.items():
        late = name.endswith("_late_head")
        put_json(f"opt/{name}/ours", {"class": ours, "kwargs": our_kwargs,
                                      "no_grad": {"params": list(LATE_PARAMS) if late else [], "steps": LATE_STEPS}})
        params = [leaf(p) for p in init]
        opt = getattr(torch.optim, torch_cls)(params, **torch_kwargs)
        trajectory: list[list[np.ndarray]] = [[] for _ in params]
        norms: list[float] = []
        for step in range(OPT_STEPS):
            opt.zero_grad()
            mlp_loss(params, torch.tensor(x), torch.tensor(y)).backward()
            if late and step < LATE_STEPS:
                for i in LATE_PARAMS:
                    params[i].grad = None
            if clip is not None:
                norms.append(torch.nn.utils.clip_grad_norm_(params, clip).item())
            opt.step()
            for i, p in enumerate(params):
                trajectory[i].append(p.detach().numpy().copy())
        for i, steps in enumerate(trajectory):
            put(f"opt/{name}/{i}", np.stack(steps))  # (OPT_STEPS, *param shape)
        if norms:
            put(f"opt/{name}/grad_norms", norms)  # before clipping, one per step


def main() -> None:
    activations()
    softmax_family()
    reductions()
    matmul()
    elementwise()
    selection()
    convolution()
    pooling()
    batch_norm()
    losses()
    distributions()
    optimizers()
    arrays["meta/torch_version"] = np.array(torch.__version__)
    for key, value in arrays.items():
        if value.dtype.kind == "f" and value.dtype != np.float64:
            raise AssertionError(f"{key} is {value.dtype}, expected float64")
    np.savez_compressed(OUT_PATH, **arrays)
    print(f"{OUT_PATH.name}: {len(arrays)} arrays, {OUT_PATH.stat().st_size} bytes (torch {torch.__version__})")


if __name__ == "__main__":
    main()
