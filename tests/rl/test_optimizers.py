"""Optimizers against updates computed by hand for two steps, state round trips, clipping, schedules."""

import math

import numpy as np
import pytest

from rl import backend, schedules
from rl.optimizers import SGD, Adam, AdamW, RMSprop, clip_grad_norm, get_optimizer
from rl.tensor import Tensor

P0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, 1.0, -2.0])
G2 = np.array([-1.0, 0.25, 3.0])


def _two_steps(opt_factory, xp):
    """Run two steps with gradients G1, G2 on a float64 parameter; return host values after each."""
    p = Tensor(xp.asarray(P0.copy()), requires_grad=True)
    opt = opt_factory([p])
    out = []
    for g in (G1, G2):
        p.grad = xp.asarray(g)
        opt.step()
        out.append(backend.to_numpy(p.data).copy())
    return out


def test_sgd_momentum_by_hand(device):
    lr, mu = 0.1, 0.9
    a1, a2 = _two_steps(lambda ps: SGD(ps, lr=lr, momentum=mu), device)
    buf1 = G1
    p1 = P0 - lr * buf1
    buf2 = mu * buf1 + G2
    p2 = p1 - lr * buf2
    np.testing.assert_allclose(a1, p1, rtol=1e-12)
    np.testing.assert_allclose(a2, p2, rtol=1e-12)


def test_sgd_nesterov_with_weight_decay_by_hand(device):
    lr, mu, wd = 0.1, 0.9, 0.01
    a1, a2 = _two_steps(lambda ps: SGD(ps, lr=lr, momentum=mu, nesterov=True, weight_decay=wd), device)
    g1 = G1 + wd * P0
    buf1 = g1
    p1 = P0 - lr * (g1 + mu * buf1)
    g2 = G2 + wd * p1
    buf2 = mu * buf1 + g2
    p2 = p1 - lr * (g2 + mu * buf2)
    np.testing.assert_allclose(a1, p1, rtol=1e-12)
    np.testing.assert_allclose(a2, p2, rtol=1e-12)


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_by_hand(device, centered):
    lr, rho, eps, mu = 0.01, 0.9, 1e-7, 0.5
    a1, a2 = _two_steps(lambda ps: RMSprop(ps, lr=lr, rho=rho, eps=eps, momentum=mu, centered=centered), device)
    v = np.zeros(3)
    avg = np.zeros(3)
    buf = np.zeros(3)
    p = P0.copy()
    expect = []
    for g in (G1, G2):
        v = rho * v + (1 - rho) * g * g
        avg = rho * avg + (1 - rho) * g
        rms = np.sqrt(v - avg * avg) if centered else np.sqrt(v)
        buf = mu * buf + g / (rms + eps)  # eps outside the root (PyTorch's placement)
        p = p - lr * buf
        expect.append(p)
    np.testing.assert_allclose(a1, expect[0], rtol=1e-12)
    np.testing.assert_allclose(a2, expect[1], rtol=1e-12)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_and_adamw_by_hand(device, decoupled):
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    cls = AdamW if decoupled else Adam
    a1, a2 = _two_steps(lambda ps: cls(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), device)
    m = np.zeros(3)
    v = np.zeros(3)
    p = P0.copy()
    expect = []
    for t, g in enumerate((G1, G2), start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        expect.append(p)
    np.testing.assert_allclose(a1, expect[0], rtol=1e-12)
    np.testing.assert_allclose(a2, expect[1], rtol=1e-12)
    # The first Adam step moves each weight by about lr (m_hat / sqrt(v_hat) = sign(g)).
    if not decoupled:
        assert np.all(np.abs(a1 - P0) <= lr * 1.0001)


def test_amsgrad_keeps_largest_second_moment():
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = Adam([p], lr=0.1, amsgrad=True)
    for g in (10.0, 0.1):
        p.grad = backend.to_device(np.array([g]))
        opt.step()
    vmax = backend.to_numpy(opt.state_dict()["v_max/0"])
    v = backend.to_numpy(opt.state_dict()["v/0"])
    assert vmax[0] == pytest.approx((1 - 0.999) * 100.0)
    assert v[0] < vmax[0]


def test_packed_parameters_keep_tensor_identity_and_skip_missing_grads():
    w = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    b = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    opt = SGD([w, b, w], lr=1.0)  # the duplicate is ignored
    assert len(opt.params) == 2
    w.grad = backend.to_device(np.full((2, 3), 0.5, dtype=np.float32))
    b.grad = None
    opt.step()
    np.testing.assert_array_equal(backend.to_numpy(w.data), np.full((2, 3), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(backend.to_numpy(b.data), np.zeros(3, dtype=np.float32))
    assert opt.state_dict()["steps"].tolist() == [1, 0]
    # A loader that *replaces* .data is adopted on the next step, not lost; a host array is copied
    # to the parameters' device.
    w.data = np.full((2, 3), 7.0, dtype=np.float32)
    w.grad = backend.to_device(np.ones((2, 3), dtype=np.float32))
    opt.step()
    assert backend.get_array_module(w.data) is backend.get_array_module(b.data)
    np.testing.assert_array_equal(backend.to_numpy(w.data), np.full((2, 3), 6.0, dtype=np.float32))
    w.grad = backend.to_device(np.ones((2, 3), dtype=np.float32))
    opt.step()
    np.testing.assert_array_equal(backend.to_numpy(w.data), np.full((2, 3), 5.0, dtype=np.float32))


def test_mixed_dtypes_get_separate_groups():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    c = Tensor(np.ones(2, dtype=np.float64), requires_grad=True)
    opt = Adam([a, c], lr=0.5)
    a.grad = backend.to_device(np.ones(2, dtype=np.float32))
    c.grad = backend.to_device(-np.ones(2, dtype=np.float64))
    opt.step()
    assert a.data.dtype == np.float32 and c.data.dtype == np.float64
    np.testing.assert_allclose(backend.to_numpy(a.data), [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(c.data), [1.5, 1.5], rtol=1e-7)


def test_state_dict_round_trip_gives_the_same_next_step(device):
    rng = np.random.default_rng(3)
    init = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    grads = [[rng.normal(size=(4, 3)), rng.normal(size=3)] for _ in range(3)]

    def make():
        ps = [Tensor(device.asarray(a.copy()), requires_grad=True) for a in init]
        return ps, Adam(ps, lr=0.05, amsgrad=True)

    ps, opt = make()
    for gs in grads[:2]:
        for p, g in zip(ps, gs):
            p.grad = device.asarray(g)
        opt.step()
    saved = {k: backend.to_numpy(v) for k, v in opt.state_dict().items()}
    weights = [backend.to_numpy(p.data).copy() for p in ps]
    assert saved["iterations"].tolist() == [2] and saved["steps"].tolist() == [2, 2]

    ps2, opt2 = make()
    for p, w in zip(ps2, weights):
        p.data = device.asarray(w)
    opt2.load_state_dict(saved)
    for pa, pb, g in zip(ps, ps2, grads[2]):
        pa.grad = device.asarray(g)
        pb.grad = device.asarray(g)
    opt.step()
    opt2.step()
    for pa, pb in zip(ps, ps2):
        np.testing.assert_array_equal(backend.to_numpy(pa.data), backend.to_numpy(pb.data))


def test_load_state_dict_rejects_wrong_shapes_and_names():
    p = Tensor(np.zeros(3), requires_grad=True)
    opt = Adam([p])
    state = opt.state_dict()
    bad = dict(state, **{"m/0": backend.to_device(np.zeros(4))})
    with pytest.raises(ValueError, match="m/0"):
        opt.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "v/0"}
    with pytest.raises(KeyError, match="v/0"):
        opt.load_state_dict(missing)


def test_clip_grad_norm_value_and_scaling():
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(1), requires_grad=True)
    c = Tensor(np.zeros(1), requires_grad=True)  # no grad: ignored
    a.grad = backend.to_device(np.array([3.0, 0.0]))
    b.grad = backend.to_device(np.array([4.0]))
    norm = clip_grad_norm([a, b, c], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    new_norm = math.sqrt(float((a.grad**2).sum() + (b.grad**2).sum()))
    assert new_norm == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(backend.to_numpy(a.grad), [0.6, 0.0], rtol=1e-5)
    # Below the limit nothing changes.
    assert clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(backend.to_numpy(b.grad), [0.8], rtol=1e-5)


def test_optimizer_clipnorm_is_global():
    a = Tensor(np.zeros(2), requires_grad=True)
    opt = SGD([a], lr=1.0, clipnorm=1.0)
    a.grad = backend.to_device(np.array([3.0, 4.0]))
    opt.step()
    np.testing.assert_allclose(backend.to_numpy(a.data), [-0.6, -0.8], rtol=1e-5)
    assert opt.last_grad_norm == pytest.approx(5.0)
    np.testing.assert_array_equal(backend.to_numpy(a.grad), [3.0, 4.0])  # the user's gradient is left alone


def test_schedule_as_learning_rate_is_read_at_iterations():
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = SGD([p], lr=schedules.PiecewiseConstant([1], [1.0, 0.1]))
    for _ in range(2):
        p.grad = backend.to_device(np.ones(1))
        opt.step()
    np.testing.assert_allclose(backend.to_numpy(p.data), [-1.1])
    assert opt.current_lr() == pytest.approx(0.1)


def test_get_optimizer_by_keras_name_and_config_round_trip():
    p = Tensor(np.zeros(2), requires_grad=True)
    opt = get_optimizer("Adam", [p], learning_rate=3e-4)
    assert isinstance(opt, Adam) and opt.current_lr() == pytest.approx(3e-4)
    sched = schedules.LinearDecay(1e-3, 0.0, 100)
    cfg = RMSprop([p], lr=sched, centered=True).get_config()
    again = get_optimizer(cfg, [p])
    assert isinstance(again, RMSprop) and again.centered and again.current_lr() == pytest.approx(1e-3)
    assert get_optimizer(opt) is opt
    with pytest.raises(ValueError, match="adamw"):
        get_optimizer("adagradx", [p])


def test_schedules_values():
    lin = schedules.LinearDecay(1.0, 0.1, 10)
    assert lin(0) == 1.0 and lin(5) == pytest.approx(0.55) and lin(50) == pytest.approx(0.1)
    exp = schedules.ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5, staircase=True)
    assert exp(9) == 1.0 and exp(10) == 0.5 and exp(25) == 0.25
    cos = schedules.CosineDecay(2.0, decay_steps=10, alpha=0.1, warmup_steps=4)
    assert cos(2) == pytest.approx(1.0) and cos(4) == pytest.approx(2.0)
    assert cos(9) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1)) and cos(100) == pytest.approx(0.2)
    pw = schedules.PiecewiseConstant([10, 20], [3.0, 2.0, 1.0])
    assert [pw(0), pw(10), pw(19), pw(20)] == [3.0, 2.0, 2.0, 1.0]
    assert schedules.Constant(0.3)(1e9) == 0.3
    for s in (lin, exp, cos, pw, schedules.Constant(0.3)):
        assert schedules.from_config(s.get_config())(7) == s(7)
