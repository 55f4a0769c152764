"""Categorical and diagonal-Gaussian distributions: closed forms, gradients, seeded sampling."""

import math

import numpy as np
import pytest

from rl import backend
from rl.distributions import Categorical, DiagGaussian, StateDependentGaussian
from rl.gradcheck import check_grad
from rl.random import Generator
from rl.tensor import Tensor


def _arr(xp, *shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _np(t):
    return backend.to_numpy(t.data if isinstance(t, Tensor) else t)


def test_categorical_closed_forms(device):
    logits = device.asarray(np.log([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    dist = Categorical(Tensor(logits))
    np.testing.assert_allclose(_np(dist.probs), [[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(_np(dist.log_prob(device.asarray([0, 2]))), np.log([0.5, 0.8]))
    ent = -(np.array([0.5, 0.25, 0.25]) * np.log([0.5, 0.25, 0.25])).sum()
    np.testing.assert_allclose(_np(dist.entropy())[0], ent)
    np.testing.assert_array_equal(_np(dist.mode()), [0, 2])


def test_categorical_gradients(device):
    actions = device.asarray([1, 0, 2])
    check_grad(lambda z: Categorical(z).log_prob(actions), _arr(device, 3, 3))
    check_grad(lambda z: Categorical(z).entropy(), _arr(device, 3, 4))


def test_categorical_sample_frequencies_match_probs(device):
    p = np.array([0.1, 0.6, 0.3])
    dist = Categorical(Tensor(device.asarray(np.log(np.tile(p, (20000, 1))))))
    samples = _np(dist.sample(Generator(0)))
    assert samples.dtype == np.int64 and samples.shape == (20000,)
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 20000, p, atol=0.015)
    np.testing.assert_array_equal(samples, _np(dist.sample(Generator(0))))


def test_categorical_never_samples_a_masked_class_and_float32_logits_sample_too(device):
    logits = np.tile([0.0, -np.inf, 0.0], (5000, 1))  # the middle class masked with -inf
    for dtype in ("float64", "float32"):
        dist = Categorical(Tensor(device.asarray(logits.astype(dtype))))
        samples = _np(dist.sample(Generator(3)))
        assert samples.dtype == np.int64 and 1 not in set(samples.tolist()), dtype
        assert abs((samples == 0).mean() - 0.5) < 0.03, dtype
        assert np.isfinite(_np(dist.entropy())).all()


def test_diag_gaussian_closed_forms(device):
    mean, log_std = device.asarray([[0.0, 1.0], [2.0, -1.0]]), device.asarray([0.0, math.log(2.0)])
    dist = DiagGaussian(Tensor(mean), Tensor(log_std))
    a = device.asarray([[1.0, 1.0], [2.0, 3.0]])
    std = np.array([1.0, 2.0])
    z = (_np(a) - _np(mean)) / std
    expected = (-0.5 * z**2 - np.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    np.testing.assert_allclose(_np(dist.log_prob(a)), expected)
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + np.log(std)).sum()
    np.testing.assert_allclose(_np(dist.entropy()), [ent, ent])
    np.testing.assert_array_equal(_np(dist.mode()), _np(mean))


@pytest.mark.parametrize("per_row_std", [False, True])
def test_diag_gaussian_gradients(device, per_row_std):
    mean = _arr(device, 3, 2)
    log_std = _arr(device, *((3, 2) if per_row_std else (2,)), seed=1) * 0.3
    actions = _arr(device, 3, 2, seed=2)
    check_grad(lambda m, s: DiagGaussian(m, s).log_prob(actions), mean, log_std)
    check_grad(lambda m, s: DiagGaussian(m, s).entropy(), mean, log_std)


def test_diag_gaussian_sample_statistics(device):
    mean = device.asarray(np.tile([1.0, -2.0], (20000, 1)))
    dist = DiagGaussian(Tensor(mean), Tensor(device.asarray([0.0, math.log(0.5)])))
    s = _np(dist.sample(Generator(1)))
    np.testing.assert_allclose(s.mean(0), [1, -2], atol=0.03)
    np.testing.assert_allclose(s.std(0), [1, 0.5], atol=0.03)
    np.testing.assert_array_equal(s, _np(dist.sample(Generator(1))))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        Categorical(Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="log_std"):
        DiagGaussian(Tensor(np.zeros((2, 3))), Tensor(np.zeros(2)))
    with pytest.raises(ValueError, match="actions"):
        Categorical(Tensor(np.zeros((2, 3)))).log_prob(np.array([0.5, 1.0]))


def _sde_case(xp):
    """Two states' features (2, H=3), means (2, D=2) and a log sigma (H, D) of mixed sizes."""
    features = xp.asarray([[0.5, -1.0, 0.2], [0.0, 0.3, -0.8]])
    mean = xp.asarray([[0.1, -0.4], [1.0, 0.5]])
    log_std = xp.asarray([[-0.5, 0.2], [0.0, -1.0], [0.4, -0.3]])
    return features, mean, log_std


def test_state_dependent_gaussian_matches_the_density_of_its_own_samples(device):
    # Monte Carlo: draw many noise matrices W ~ N(0, sigma^2), form a = mu + z @ W for each state, and compare the
    # log-prob with the Gaussian density fitted to those samples (their mean and full covariance, so the check
    # would also catch correlation between the action dimensions, which the closed form says is zero).
    features, mean, log_std = _sde_case(device)
    dist = StateDependentGaussian(Tensor(mean), features, Tensor(log_std))
    n = 200_000
    matrices = StateDependentGaussian.sample_noise_matrices(Tensor(log_std), n, Generator(5))
    assert matrices.shape == (n, 3, 2)
    np.testing.assert_allclose(_np(matrices).std(axis=0), np.exp(_np(log_std)), rtol=0.01)
    probe = np.array([[0.3, -0.1], [0.2, 1.1]])  # one action per state, within a std or two of the mean
    for row in range(2):
        rows = StateDependentGaussian(Tensor(device.repeat(mean[row:row + 1], n, axis=0)),
                                      device.repeat(features[row:row + 1], n, axis=0), Tensor(log_std))
        samples = _np(rows.sample(matrices))
        mu, cov = samples.mean(axis=0), np.cov(samples, rowvar=False)
        np.testing.assert_allclose(mu, _np(mean)[row], atol=0.01)
        np.testing.assert_allclose(cov, np.diag(_np(dist.variance)[row]), atol=0.01)
        diff = probe[row] - mu
        fitted = -0.5 * diff @ np.linalg.solve(cov, diff) - 0.5 * np.log(np.linalg.det(2 * math.pi * cov))
        logp = _np(dist.log_prob(device.asarray(probe)))[row]
        assert abs(logp - fitted) < 0.01, (row, logp, fitted)
    # the closed forms: variance (z^2) @ sigma^2 (+ the 1e-6 floor), entropy of that diagonal Gaussian
    var = (_np(features) ** 2) @ np.exp(2 * _np(log_std)) + 1e-6
    np.testing.assert_allclose(_np(dist.variance), var)
    np.testing.assert_allclose(_np(dist.entropy()), (0.5 * np.log(2 * math.pi * math.e * var)).sum(-1))
    np.testing.assert_array_equal(_np(dist.mode()), _np(mean))


def test_state_dependent_gaussian_gradients(device):
    features, mean, log_std = _sde_case(device)
    actions = _arr(device, 2, 2, seed=4)
    check_grad(lambda m, s: StateDependentGaussian(m, features, s).log_prob(actions), mean, log_std)
    check_grad(lambda m, s: StateDependentGaussian(m, features, s).entropy(), mean, log_std)


def test_state_dependent_noise_is_one_linear_map_per_row(device):
    # The same matrix gives the same noise for the same features (consistent exploration), noise linear in
    # the features, and each row its own matrix.
    features, mean, log_std = _sde_case(device)
    matrices = StateDependentGaussian.sample_noise_matrices(Tensor(log_std), 2, Generator(0))
    first = _np(StateDependentGaussian(Tensor(mean), features, Tensor(log_std)).sample(matrices))
    again = _np(StateDependentGaussian(Tensor(mean), features, Tensor(log_std)).sample(matrices))
    doubled = _np(StateDependentGaussian(Tensor(mean), features * 2, Tensor(log_std)).sample(matrices))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(doubled - _np(mean), 2 * (first - _np(mean)))
    np.testing.assert_allclose(first[1] - _np(mean)[1], _np(features)[1] @ _np(matrices)[1])
    with pytest.raises(ValueError, match="noise matrices"):
        StateDependentGaussian(Tensor(mean), features, Tensor(log_std)).sample(matrices[:1])
    with pytest.raises(ValueError, match=r"\(H, D\)"):
        StateDependentGaussian(Tensor(mean), features, Tensor(log_std[:2]))
