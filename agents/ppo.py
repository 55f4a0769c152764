"""Proximal Policy Optimization (Schulman et al. 2017) on batched vector envs.

One iteration, top to bottom, as in the paper's Algorithm 1:

1. **collect**: run the policy for ``num_steps`` steps in each of ``num_envs`` worlds (one forward
   pass for all worlds per step), storing observations, actions, log-probabilities and values;
2. **advantages**: generalized advantage estimation over the rollout (:func:`agents.rollout.gae`);
3. **update**: ``num_epochs`` passes over the rollout in shuffled minibatches, minimizing the
   clipped surrogate loss plus a value loss, minus an entropy bonus.

The tricks that make PPO work in practice (Huang et al., "The 37 implementation details of PPO")
are each named in :class:`Config`, commented with their reason and switchable. The defaults are
Stable-Baselines3's; ``configs/cartpole_ppo.toml`` sets the RL Zoo's tuned CartPole values.

Actions: ``Discrete(n)`` spaces get a categorical policy over ``n`` logits; ``Box`` spaces a
diagonal Gaussian with a state-independent learned log standard deviation (the sampled action is
stored unclipped and clipped to the space's bounds only when sent to the env), or, with ``use_sde``, generalized
State-Dependent Exploration (gSDE, Raffin et al. 2021): the noise is the policy's last hidden features times a
random matrix held for ``sde_sample_freq`` steps, so exploration stays consistent over many steps
(:class:`rl.distributions.StateDependentGaussian`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import Agent, ExperimentConfig, Hooks, StateSpec, check_hyperparameters
from agents.networks import mlp, mlp_input
from agents.rollout import RolloutBuffer, gae
from rl import backend, losses
from rl import functional as F
from rl.distributions import Categorical, DiagGaussian, StateDependentGaussian
from rl.layers import forward_array, forward_stack
from rl.optimizers import Adam
from rl.random import Generator
from rl.schedules import Constant, LinearDecay
from rl.tensor import Tensor, config, no_grad

__all__ = ["Agent", "Config", "PPO", "clipped_value_errors", "schedules"]


@dataclass
class Config:
    """PPO hyperparameters (the ``[agent]`` table)."""

    num_envs: int = 8  # worlds stepped together; one rollout holds num_envs * num_steps transitions
    num_steps: int = 2048  # steps per world per rollout
    batch_size: int = 64  # transitions per minibatch
    num_epochs: int = 10  # passes over each rollout
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # GAE's bias/variance knob: 0 is one-step TD, 1 is Monte Carlo
    lr: float = 3e-4  # Adam learning rate
    anneal_lr: bool = False  # decay lr linearly to 0 over the run: late updates stop undoing good policies
    clip_coef: float = 0.2  # the surrogate's trust region: ratios outside 1 +- clip_coef earn nothing
    anneal_clip: bool = False  # decay clip_coef linearly to 0 as well (the Zoo's "lin_0.2")
    clip_value_loss: bool = False  # clip value updates to clip_coef around the old values, like the policy
    normalize_advantages: bool = True  # per minibatch zero mean / unit std: one lr fits any reward scale
    ent_coef: float = 0.0  # entropy bonus weight: keeps exploring when > 0
    vf_coef: float = 0.5  # value loss weight in the shared loss
    max_grad_norm: float = 0.5  # clip the global gradient norm: no single minibatch takes a huge step
    target_kl: float | None = None  # stop the epochs early once the approximate KL exceeds this
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # hidden units of policy and value MLPs
    activation: str = "tanh"  # hidden activation (tanh keeps the small nets' outputs bounded)
    orthogonal_init: bool = True  # orthogonal weights, policy head gain 0.01: the first policy is near uniform
    adam_eps: float = 1e-5  # Adam epsilon (PPO implementations use 1e-5, not 1e-8)
    log_std_init: float = 0.0  # Box actions: initial log standard deviation (with use_sde: of each noise weight)
    # gSDE: independent per-step noise averages out over a few steps, so a behaviour that needs many steps of the
    # same deviation (reversing out of a dead end) is almost never tried; noise from a matrix held for many steps is.
    use_sde: bool = False  # Box actions: gSDE, noise = last hidden features @ W with W ~ N(0, sigma^2)
    sde_sample_freq: int = -1  # draw new W every this many steps of a rollout; -1: only at each rollout's start

    def __post_init__(self) -> None:
        check_hyperparameters(self, rates=("lr",), clip_norms=("max_grad_norm",), worlds=("num_envs",))
        if self.num_envs < 1 or self.num_steps < 1 or self.batch_size < 1 or self.num_epochs < 1:
            raise ValueError("num_envs, num_steps, batch_size and num_epochs must be positive")
        if self.sde_sample_freq == 0 or self.sde_sample_freq < -1:
            raise ValueError(f"agent.sde_sample_freq must be a positive number of steps or -1 (once per rollout), "
                             f"got {self.sde_sample_freq}")


class PPO(Agent):
    """PPO with separate policy and value MLPs; see the module docstring for the loop."""

    Config = Config
    STATE = StateSpec(networks=("policy", "value"), optimizers=("optimizer",), generators=("rng",),
                      counters=("iteration",), arrays=("log_std",))

    def __init__(self, config: Config, experiment: ExperimentConfig):
        super().__init__(config, experiment)
        c = config
        self.rng = Generator(experiment.seed)
        self.make_envs(c.num_envs)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        self.discrete = isinstance(act_space, spaces.Discrete)
        if not self.discrete and not isinstance(act_space, spaces.Box):
            raise ValueError(f"PPO supports Discrete and Box action spaces, got {act_space}")
        if c.use_sde and self.discrete:
            raise ValueError("agent.use_sde (state-dependent exploration) needs a Box action space, got "
                             f"{act_space}")
        obs_dim = int(np.prod(obs_space.shape))
        self.action_shape = () if self.discrete else tuple(act_space.shape)
        act_dim = int(act_space.n) if self.discrete else int(np.prod(act_space.shape))
        init = "orthogonal" if c.orthogonal_init else "glorot_uniform"
        from rl import random as rl_random  # noqa: PLC0415

        rl_random.seed(experiment.seed)  # the layers draw their initial weights from the default generator
        self.policy = mlp(obs_dim, c.hidden, act_dim, c.activation, init=init, out_gain=0.01, name="policy")
        self.value = mlp(obs_dim, c.hidden, 1, c.activation, init=init, out_gain=1.0, name="value")
        params = [*self.policy.parameters(), *self.value.parameters()]
        self.log_std = None
        self.noise_matrices = None  # gSDE: (num_envs, features, act_dim), drawn by _resample_noise
        if not self.discrete:
            xp = backend.current().xp
            # gSDE learns one sigma per (feature, action) pair: the features are the last hidden layer's outputs
            log_std_shape = ((c.hidden[-1] if c.hidden else obs_dim), act_dim) if c.use_sde else (act_dim,)
            self.log_std = Tensor(xp.full(log_std_shape, c.log_std_init, dtype=xp.float32), requires_grad=True)
            params.append(self.log_std)
            self.action_low = act_space.low.astype(np.float32)
            self.action_high = act_space.high.astype(np.float32)
        self.optimizer = Adam(params, lr=c.lr, eps=c.adam_eps, clipnorm=c.max_grad_norm)
        self.buffer = RolloutBuffer(c.num_steps, c.num_envs, (obs_dim,), self.action_shape,
                                    np.int64 if self.discrete else np.float32)
        self.iteration = 0

    # ------------------------------------------------------------------------------ the policy
    def _dist(self, obs: Tensor) -> Categorical | DiagGaussian | StateDependentGaussian:
        """The policy's action distribution for observations ``(B, obs_dim)``: a categorical over the
        logits, a Gaussian with mean ``(B, A)`` and the learned log std ``(A,)``, or (``use_sde``) the
        state-dependent Gaussian of the last hidden features ``(B, H)`` and log std ``(H, A)``."""
        if not self.config.use_sde:
            out = forward_stack(self.policy.layers, obs)  # the MLP as one graph node (rl.layers)
            return Categorical(out) if self.discrete else DiagGaussian(out, self.log_std)
        *body, head = self.policy.layers
        features = obs
        for layer in body:
            features = layer(features)
        return StateDependentGaussian(head(features), features.data, self.log_std)

    def _resample_noise(self, num_rows: int) -> None:
        """gSDE: draw a new noise matrix for each of ``num_rows`` worlds."""
        self.noise_matrices = StateDependentGaussian.sample_noise_matrices(self.log_std, num_rows, self.rng)

    def _sample(self, obs: Any) -> tuple[Any, Any]:
        """Sample actions for ``obs (N, obs_dim)``; returns (actions, their log-probabilities (N,))."""
        if self.discrete and not config.enable_grad:
            # Acting needs no graph: the policy runs on raw arrays (rl.layers.forward_array, the same values).
            dist = Categorical(Tensor(forward_array(self.policy.layers, obs)))
        else:
            dist = self._dist(Tensor(obs))
        if isinstance(dist, StateDependentGaussian):
            if self.noise_matrices is None or self.noise_matrices.shape[0] != obs.shape[0]:
                self._resample_noise(obs.shape[0])  # act() on another batch than the training worlds
            actions = dist.sample(self.noise_matrices)
        elif isinstance(dist, Categorical):
            return dist.sample_with_log_prob(self.rng)  # the draws of sample() and log_prob()'s values, one pass
        else:
            actions = dist.sample(self.rng)
        return actions, dist.log_prob(actions).data

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for ``obs (B, *obs_shape)``: the most likely (or sampled) action of each row."""
        with no_grad():
            x = mlp_input(obs)
            if deterministic:
                actions = self._dist(Tensor(x)).mode()
            else:
                actions, _ = self._sample(x)
        return self._to_env(actions)

    def _to_env(self, actions: Any) -> np.ndarray:
        a = backend.to_numpy(actions)
        if self.discrete:
            return a.astype(np.int64)
        return np.clip(a.reshape(len(a), *self.action_shape), self.action_low, self.action_high)

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        if not self.discrete:
            return {}
        with no_grad():
            logits = self.policy(Tensor(mlp_input(np.asarray(obs)[None])))
            return {"probs": backend.to_numpy(F.softmax(logits, axis=-1).data)[0]}

    # ------------------------------------------------------------------------------ learning
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        c = self.config
        lr, clip_coef = schedules(c, total_steps)
        self.start_envs()
        while self.env_steps < total_steps and not hooks.stop_requested:
            self.optimizer.lr = lr(self.iteration)
            clip = clip_coef(self.iteration)
            self.iteration += 1

            self._collect(hooks)  # 1. collect
            advantages, returns = gae(self.buffer, c.gamma, c.gae_lambda)  # 2. advantages
            stats = self._update(advantages, returns, clip)  # 3. update

            hooks.log({"env_steps": self.env_steps, "iteration": self.iteration, "lr": self.optimizer.lr,
                       "clip_coef": clip, **stats})
            if hooks.checkpoint_due(self.env_steps):
                hooks.save(self)

    def _collect(self, hooks: Hooks) -> None:
        """Fill the buffer with ``num_steps`` steps of every world; log each finished episode."""
        buf = self.buffer
        obs = self.obs
        with no_grad():
            for t in range(buf.num_steps):
                if self.config.use_sde and (t == 0 or (self.config.sde_sample_freq > 0
                                                       and t % self.config.sde_sample_freq == 0)):
                    self._resample_noise(buf.num_envs)
                x = mlp_input(obs)
                actions, logp = self._sample(x)
                buf.obs[t] = x
                buf.actions[t] = actions
                buf.logprobs[t] = logp
                buf.values[t] = forward_array(self.value.layers, x)[:, 0]
                obs, reward, terminated, truncated, _ = self.envs.step(self._to_env(actions))
                step = self.tracker.step(reward, terminated, truncated)
                buf.rewards[t] = reward  # host rows: the env's results cross to the device once, in gae()
                buf.terminated[t] = terminated
                buf.dones[t] = terminated | truncated
                # A step right after an episode end is the env's autoreset, not a transition (see rollout.py).
                buf.valid[t] = step.transitions
                if len(step.finished):
                    for record in step.finished.records(self.env_steps):
                        hooks.log(record)
            buf.next_values[:] = forward_array(self.value.layers, mlp_input(obs))[:, 0]
        self.obs = obs

    def _update(self, advantages: Any, returns: Any, clip: float) -> dict[str, float]:
        """``num_epochs`` epochs of minibatch steps on the clipped objective; returns mean statistics."""
        c, buf = self.config, self.buffer
        xp = backend.current().xp
        valid = backend.to_device(np.flatnonzero(buf.valid.reshape(-1)))
        obs, actions = buf.flat("obs")[valid], buf.flat("actions")[valid]
        old_logp, old_values = buf.flat("logprobs")[valid], buf.flat("values")[valid]
        adv_all, ret_all = advantages.reshape(-1)[valid], returns.reshape(-1)[valid]
        n = int(valid.shape[0])
        # The minibatch count comes from the rollout size, as in SB3 and CleanRL, so every update takes the
        # same number of gradient steps; the autoreset rows dropped above only make minibatches a little
        # smaller than batch_size (by the fraction of steps that were resets, ~1/episode length).
        num_minibatches = max(1, round(buf.num_steps * buf.num_envs / c.batch_size))
        # Statistics stay on the device until the end of the update: no host sync per minibatch.
        sums: dict[str, Any] = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
                                "clip_fraction": 0.0}
        count = 0
        for _epoch in range(c.num_epochs):
            order = self.rng.permutation(n)
            kl_sum = 0.0
            for mb in xp.array_split(order, num_minibatches):
                if mb.shape[0] == 0:
                    continue
                x = Tensor(obs[mb])
                dist = self._dist(x)
                logp = dist.log_prob(actions[mb])
                if c.ent_coef:
                    entropy = dist.entropy()
                else:  # a term weighted 0 adds nothing to the gradient: compute it for the log only
                    with no_grad():
                        entropy = dist.entropy()
                # One graph node for the surrogate (and, without value clipping, one for the MSE) instead of the
                # composed ops (ratio, clip, two products, maximum, mean): the same values within float32 rounding,
                # a third of the per-minibatch NumPy calls (rl.losses, rl._fused; tests/rl/test_fused.py keeps the
                # composed form as the reference).
                policy_loss, approx_kl, clip_fraction = losses.clipped_surrogate(
                    logp, old_logp[mb], adv_all[mb], clip, normalize=c.normalize_advantages)
                v = forward_stack(self.value.layers, x).reshape(-1)
                if c.clip_value_loss:
                    value_loss = clipped_value_errors(v, old_values[mb], ret_all[mb], clip).mean()
                else:
                    value_loss = losses.mse(v, ret_all[mb])  # SB3's MSE (CleanRL halves it)
                entropy_mean = entropy.mean()
                loss = policy_loss + value_loss * c.vf_coef
                if c.ent_coef:
                    loss = loss - entropy_mean * c.ent_coef
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()  # the gradient norm is clipped to max_grad_norm inside

                sums["policy_loss"] += policy_loss.data
                sums["value_loss"] += value_loss.data
                sums["entropy"] += entropy_mean.data
                sums["approx_kl"] += approx_kl
                sums["clip_fraction"] += clip_fraction
                kl_sum += approx_kl
                count += 1
            if c.target_kl is not None and float(kl_sum) / num_minibatches > c.target_kl:
                break  # early stop: the policy already moved as far as we trust
        return {k: float(v) / max(count, 1) for k, v in sums.items()}


def schedules(c: Config, total_steps: int) -> tuple[Any, Any]:
    """The learning rate and clip coefficient as functions of the iterations done so far: constant, or
    (``anneal_lr``, ``anneal_clip``) decaying linearly to 0 over the run's iterations."""
    num_iterations = max(1, math.ceil(total_steps / (c.num_envs * c.num_steps)))
    lr = LinearDecay(c.lr, 0.0, num_iterations) if c.anneal_lr else Constant(c.lr)
    clip_coef = LinearDecay(c.clip_coef, 0.0, num_iterations) if c.anneal_clip else Constant(c.clip_coef)
    return lr, clip_coef


def clipped_value_errors(v: Tensor, old_values: Any, returns: Any, clip: float) -> Tensor:
    """Per-row squared errors of the value prediction ``v`` with value clipping (``clip_value_loss``): the
    larger of ``(v - R)**2`` and the error of ``v`` moved at most ``clip`` from its value at collection time,
    so the value gains nothing from moving further. Any shape, the same for all inputs; the caller takes
    the mean (one seed) or each seed's mean (``agents/ppo_seeds.py``)."""
    v_clipped = (v - old_values).clip(-clip, clip) + old_values
    return F.maximum((v - returns) ** 2, (v_clipped - returns) ** 2)


Agent = PPO
