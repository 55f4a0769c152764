"""Action distributions for policy-gradient agents: categorical (discrete), diagonal Gaussian, and the
state-dependent Gaussian of generalized State-Dependent Exploration (gSDE).

Both are built from Tensors, so ``log_prob`` and ``entropy`` are differentiable with respect to
the network outputs that parameterize them (logits; mean and log standard deviation). Sampling
draws from an :class:`rl.random.Generator` (the module default when none is passed) and returns a
plain ``xp`` array: actions carry no gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import rl.functional as F
from rl import _fused, backend
from rl import random as rl_random
from rl.tensor import Function, Tensor, as_tensor, config

__all__ = ["Categorical", "DiagGaussian", "StateDependentGaussian"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _actions(actions: Any, like: Any) -> Any:
    data = actions.data if isinstance(actions, Tensor) else actions
    return backend.get_array_module(like).asarray(data)


class _CategoricalLogProb(Function):
    """``log_softmax(logits)[b, actions[b]]`` as one graph node (instead of log-softmax, gather and
    reshape: three nodes and their backward passes); the log-softmax comes in already computed."""

    def forward(self, logits, actions, log_probs):
        xp = backend.get_array_module(log_probs)
        self.log_probs, self.actions = log_probs, actions
        self.rows = xp.arange(actions.shape[0])
        return log_probs[self.rows, actions]

    def backward(self, g):
        # d log p_a / d logit_k = [k == a] - p_k: the one-hot row minus the softmax, times g.
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(g, self.log_probs):
            grad = np.empty_like(self.log_probs)
            kern.categorical_log_prob_grad(np.exp(self.log_probs), self.actions, g, grad)  # one pass, the same formula
            return grad, None, None
        xp = backend.get_array_module(g)
        grad = xp.zeros_like(self.log_probs)
        grad[self.rows, self.actions] = g
        grad -= xp.exp(self.log_probs) * g[:, None]
        return grad, None, None


class Categorical:
    """A batch of categorical distributions over ``K`` classes.

    Args:
        logits: ``(B, K)`` unnormalized log-probabilities (a Tensor, usually the policy head's output).
    """

    def __init__(self, logits: Tensor):
        logits = as_tensor(logits)
        if logits.ndim != 2:
            raise ValueError(f"Categorical expects logits of shape (B, K), got {logits.shape}")
        self.logits = logits
        # The normalized log-probabilities as a plain array, computed once: sampling, log_prob and an
        # entropy that is only logged read it without building graph nodes.
        self._log_probs = F.log_softmax_array(logits.data, axis=-1)
        self._log_probs_tensor: Tensor | None = None

    def _recording(self) -> bool:
        return config.enable_grad and self.logits.requires_grad

    @property
    def log_probs(self) -> Tensor:
        """``(B, K)`` normalized log-probabilities (differentiable with respect to the logits)."""
        if self._log_probs_tensor is None:
            self._log_probs_tensor = (F.log_softmax(self.logits, axis=-1) if self._recording()
                                      else Tensor(self._log_probs))
        return self._log_probs_tensor

    @property
    def probs(self) -> Tensor:
        """``(B, K)`` class probabilities (differentiable)."""
        return self.log_probs.exp()

    def log_prob(self, actions: Any) -> Tensor:
        """``(B,)`` log-probability of integer ``actions`` (B,)."""
        idx = _actions(actions, self.logits.data)
        if idx.shape != (self.logits.shape[0],) or idx.dtype.kind not in "iu":
            raise ValueError(
                f"Categorical.log_prob: actions must be integers of shape ({self.logits.shape[0]},), "
                f"got {idx.dtype} {idx.shape}"
            )
        return _CategoricalLogProb.apply(self.logits, idx.astype("int64", copy=False), self._log_probs)

    def entropy(self) -> Tensor:
        """``(B,)`` entropy ``-sum_k p_k log p_k`` in nats; classes masked with a ``-inf`` logit add 0."""
        if not self._recording():  # only logged (PPO with no entropy bonus): the same values, no graph
            log_probs = self._log_probs
            kern = _fused.kernels()
            if kern is not None and _fused.is_host_float32(log_probs):
                out = np.empty(log_probs.shape[0], dtype=np.float32)
                kern.categorical_entropy(log_probs, np.exp(log_probs), out)  # one pass over the rows (the same formula)
                return Tensor(out)
            xp = backend.get_array_module(log_probs)
            zero = log_probs.dtype.type(0)
            return Tensor(-(xp.exp(log_probs) * xp.where(xp.isfinite(log_probs), log_probs, zero)).sum(axis=-1))
        log_probs = self.log_probs
        # 0 * log 0 = 0: without this a masked class (invalid action) makes the entropy and every
        # logit's gradient NaN (0 * -inf), where PyTorch's Categorical gives finite values.
        finite = backend.get_array_module(log_probs.data).isfinite(log_probs.data)
        return -(log_probs.exp() * F.where(finite, log_probs, 0.0)).sum(axis=-1)

    def sample(self, rng: rl_random.Generator | None = None) -> Any:
        """``(B,)`` int64 ``xp`` array of sampled classes.

        Gumbel-max: ``argmax_k(log p_k + g_k)`` with ``g_k = -log(-log u_k)`` Gumbel noise is an exact
        categorical sample, in one pass over the logits' dtype (one uniform per class); a class with a
        ``-inf`` logit is never drawn.
        """
        return self._sample(rng, with_log_prob=False)[0]

    def sample_with_log_prob(self, rng: rl_random.Generator | None = None) -> tuple[Any, Any]:
        """``(actions, log_probs)``: :meth:`sample`'s ``(B,)`` int64 classes (the same draws) and their
        ``(B,)`` log-probabilities as a plain array (``log_prob(actions)``'s values, without a graph node)."""
        return self._sample(rng, with_log_prob=True)

    def _sample(self, rng: rl_random.Generator | None, with_log_prob: bool) -> tuple[Any, Any]:
        rng = rng if rng is not None else rl_random.default_generator()
        log_probs = self._log_probs
        xp = backend.get_array_module(log_probs)
        u = rng.random(log_probs.shape, dtype=log_probs.dtype)
        kern = _fused.kernels()
        if kern is not None and _fused.is_host_float32(log_probs, u):
            # The noise log(-log(u + 1e-20) + 1e-20) stays NumPy's (in place, the same values): libm's log, which
            # the kernel would call, differs from NumPy's SIMD log in the last bit and could flip a near-tie.
            np.add(u, 1e-20, out=u)
            np.log(u, out=u)
            np.negative(u, out=u)
            np.add(u, 1e-20, out=u)
            np.log(u, out=u)
            actions = np.empty(log_probs.shape[0], dtype=np.int64)
            logp = np.empty(log_probs.shape[0], dtype=log_probs.dtype)
            kern.categorical_sample(log_probs, u, actions, logp)  # argmax and gather in one pass
            return actions, logp
        # the 1e-20s keep log() finite at u = 0 and at -log(u) = 0
        actions = xp.argmax(log_probs - xp.log(-xp.log(u + 1e-20) + 1e-20), axis=-1).astype(xp.int64)
        if not with_log_prob:
            return actions, None
        return actions, log_probs[xp.arange(actions.shape[0]), actions]

    def mode(self) -> Any:
        """``(B,)`` int64 ``xp`` array of the most likely classes."""
        return self.logits.data.argmax(axis=-1).astype("int64")


class DiagGaussian:
    """A batch of Gaussians with diagonal covariance over ``D``-dimensional actions.

    Args:
        mean: ``(B, D)`` Tensor.
        log_std: ``(D,)`` (state-independent, a learned parameter) or ``(B, D)`` Tensor.
    """

    def __init__(self, mean: Tensor, log_std: Tensor):
        mean, log_std = as_tensor(mean), as_tensor(log_std)
        if mean.ndim != 2:
            raise ValueError(f"DiagGaussian expects mean of shape (B, D), got {mean.shape}")
        if log_std.shape not in ((mean.shape[1],), mean.shape):
            raise ValueError(f"DiagGaussian: log_std must be ({mean.shape[1]},) or {mean.shape}, got {log_std.shape}")
        self.mean, self.log_std = mean, log_std

    @property
    def std(self) -> Tensor:
        """Standard deviation, shape of ``log_std``."""
        return self.log_std.exp()

    def log_prob(self, actions: Any) -> Tensor:
        """``(B,)`` log-density of ``actions`` (B, D), summed over the action dimensions."""
        a = _actions(actions, self.mean.data)
        if a.shape != self.mean.shape:
            raise ValueError(f"DiagGaussian.log_prob: actions shape {a.shape} must equal mean {self.mean.shape}")
        z = (Tensor(a.astype(self.mean.dtype, copy=False)) - self.mean) * (-self.log_std).exp()
        return (-0.5 * z * z - self.log_std - _HALF_LOG_2PI).sum(axis=-1)

    def entropy(self) -> Tensor:
        """``(B,)`` differential entropy ``sum_d (log_std_d + 0.5 + 0.5 log 2 pi)`` in nats."""
        xp = backend.get_array_module(self.mean.data)
        per_row = (self.log_std + (0.5 + _HALF_LOG_2PI)).sum(axis=-1)
        if per_row.ndim == 0:  # a shared log_std: the same entropy for every row
            per_row = per_row * Tensor(xp.ones(self.mean.shape[0], dtype=self.mean.dtype))
        return per_row

    def sample(self, rng: rl_random.Generator | None = None) -> Any:
        """``(B, D)`` ``xp`` array ``mean + std * N(0, 1)`` (no gradient)."""
        rng = rng if rng is not None else rl_random.default_generator()
        noise = rng.normal(self.mean.shape, self.mean.dtype)
        return self.mean.data + backend.get_array_module(noise).exp(self.log_std.data) * noise

    def mode(self) -> Any:
        """``(B, D)`` ``xp`` array: the mean."""
        return self.mean.data.copy()


class StateDependentGaussian:
    """The action distribution of generalized State-Dependent Exploration (gSDE; Raffin, Kober and Stulp,
    "Smooth Exploration for Robotic Reinforcement Learning", CoRL 2021).

    The exploration noise is linear in the policy's features ``z(s)``: ``a = mu(s) + z(s) @ W`` with a noise
    matrix ``W (H, D)`` whose entries are independent ``N(0, sigma_hd^2)``. Kept fixed over several steps, one
    ``W`` perturbs the policy the same way in similar states, so the exploration is consistent over time
    (e.g. reversing for many steps) instead of independent per step. For one state, ``z @ W`` is Gaussian:
    column ``d`` of ``W`` is independent of the others, so action ``d`` has variance
    ``sum_h z_h^2 sigma_hd^2``, i.e. the variances are ``(z^2) @ sigma^2`` (the paper's eq. for the policy's
    density), and the log-probability is that diagonal Gaussian's.

    Args:
        mean: ``(B, D)`` Tensor, the policy's mean action ``mu(s)``.
        features: ``(B, H)`` array (or Tensor, read without its gradient): the features ``z(s)``, in gSDE the
            policy's last hidden layer; the noise does not train them (the paper's default).
        log_std: ``(H, D)`` Tensor, the learned ``log sigma``.
        min_variance: added to every action's variance so that features near zero keep the density finite.
    """

    def __init__(self, mean: Tensor, features: Any, log_std: Tensor, min_variance: float = 1e-6):
        mean, log_std = as_tensor(mean), as_tensor(log_std)
        features = features.data if isinstance(features, Tensor) else features
        if mean.ndim != 2 or features.ndim != 2 or features.shape[0] != mean.shape[0]:
            raise ValueError(f"StateDependentGaussian expects mean (B, D) and features (B, H), "
                             f"got {mean.shape} and {features.shape}")
        if log_std.shape != (features.shape[1], mean.shape[1]):
            raise ValueError(f"StateDependentGaussian: log_std must be (H, D) = {(features.shape[1], mean.shape[1])},"
                             f" got {log_std.shape}")
        self.mean, self.features, self.log_std = mean, features, log_std
        # (B, D) variance of each action: (z^2) @ sigma^2, differentiable with respect to log_std.
        self.variance = Tensor(features * features) @ (log_std * 2.0).exp() + min_variance

    def log_prob(self, actions: Any) -> Tensor:
        """``(B,)`` log-density of ``actions`` (B, D), summed over the action dimensions."""
        a = _actions(actions, self.mean.data)
        if a.shape != self.mean.shape:
            raise ValueError(f"StateDependentGaussian.log_prob: actions shape {a.shape} must equal mean "
                             f"{self.mean.shape}")
        diff = Tensor(a.astype(self.mean.dtype, copy=False)) - self.mean
        return (-0.5 * diff * diff / self.variance - 0.5 * self.variance.log() - _HALF_LOG_2PI).sum(axis=-1)

    def entropy(self) -> Tensor:
        """``(B,)`` differential entropy ``sum_d 0.5 log(2 pi e var_d)`` in nats."""
        return (0.5 * self.variance.log() + (0.5 + _HALF_LOG_2PI)).sum(axis=-1)

    @staticmethod
    def sample_noise_matrices(log_std: Tensor, count: int, rng: rl_random.Generator | None = None) -> Any:
        """``(count, H, D)`` ``xp`` array: one noise matrix ``W ~ N(0, sigma^2)`` per world, drawn anew only when
        the caller decides (gSDE's ``sde_sample_freq``)."""
        rng = rng if rng is not None else rl_random.default_generator()
        std = backend.get_array_module(log_std.data).exp(log_std.data)
        return rng.normal((count, *log_std.shape), log_std.dtype) * std

    def sample(self, noise_matrices: Any) -> Any:
        """``(B, D)`` ``xp`` array ``mu(s) + z(s) @ W`` with row ``b``'s own ``W = noise_matrices[b]`` (B, H, D);
        no gradient."""
        xp = backend.get_array_module(self.mean.data)
        if noise_matrices.shape != (self.mean.shape[0], *self.log_std.shape):
            raise ValueError(f"StateDependentGaussian.sample: noise matrices must be "
                             f"{(self.mean.shape[0], *self.log_std.shape)}, got {noise_matrices.shape}")
        noise = xp.einsum("bh,bhd->bd", self.features.astype(noise_matrices.dtype, copy=False), noise_matrices)
        return self.mean.data + noise.astype(self.mean.dtype, copy=False)

    def mode(self) -> Any:
        """``(B, D)`` ``xp`` array: the mean."""
        return self.mean.data.copy()
