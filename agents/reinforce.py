"""REINFORCE: Monte-Carlo policy gradient (Williams 1992), as the TensorFlow.js book's cart-pole.

One iteration (``docs/specs/tfjs-examples.md`` §1.3):

1. **collect**: play ``games_per_iteration`` whole games with actions sampled from the policy
   (the games run side by side as the worlds of one vector env; each world plays exactly one game);
2. **returns**: discount each game's rewards with ``gamma`` (a backward cumulative sum), then
   normalize all returns of the iteration together with their mean and *population* std;
3. **update**: one Adam step on the mean over every step of every game of
   ``-log pi(a_t|s_t) * G_t``, which is the book's "average of per-step gradients, each scaled by its
   normalized return".

The book's network is 4 -> 128 (elu) -> 1 logit with ``p(left) = sigmoid(logit)``; here
``policy_head = "sigmoid"`` builds exactly that (a one-unit output read as the logits ``[l, 0]``,
whose softmax is ``[sigmoid(l), 1 - sigmoid(l)]``).

The MetaCar demo's variant (``docs/specs/metacar.md`` §6.2) is the same loop with
``baseline = true``: a value network ``V(s)`` fitted to the returns by mean squared error, the
advantage ``G_t - V(s_t)`` (not normalized) in place of the normalized return, and minibatched
updates (``batch_size``) with a summed loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import Agent, ExperimentConfig, Hooks, StateSpec, check_hyperparameters
from agents.networks import mlp, mlp_input
from agents.rollout import discounted_returns
from rl import backend
from rl import functional as F
from rl import random as rl_random
from rl.distributions import Categorical
from rl.optimizers import Adam
from rl.random import Generator
from rl.tensor import Tensor, no_grad

__all__ = ["Agent", "Config", "Reinforce"]


@dataclass
class Config:
    """REINFORCE hyperparameters (the ``[agent]`` table); defaults are the book's cart-pole."""

    iterations: int = 20  # training iterations (the book's "Number of iterations"); the step budget also stops
    games_per_iteration: int = 20  # games played per policy update
    gamma: float = 0.95  # reward discount rate
    lr: float = 0.05  # Adam learning rate
    hidden: list[int] = field(default_factory=lambda: [128])  # hidden layer sizes (the book's default "128")
    activation: str = "elu"  # hidden activation
    init: str = "glorot_uniform"  # kernel initializer (tfjs' default; MetaCar's demo uses "random_normal")
    policy_head: str = "sigmoid"  # "sigmoid": one logit for 2 actions (the book); "softmax": one per action
    normalize_returns: bool = True  # the book: (G - mean) / std over the whole iteration; lowers the variance
    baseline: bool = False  # MetaCar demo: subtract a learned V(s) from G instead of normalizing
    value_hidden: list[int] = field(default_factory=lambda: [9])  # value network hidden sizes (baseline)
    value_activation: str = "tanh"  # value network hidden activation
    value_lr: float = 0.005  # value network Adam learning rate
    batch_size: int = 0  # steps per update; 0: one update over the whole iteration (the book)
    loss_reduction: str = "mean"  # "mean" over steps (the book) or "sum" (MetaCar's demo)
    max_steps_per_game: int = 100_000  # safety cap when the env has no episode limit of its own

    def __post_init__(self) -> None:
        check_hyperparameters(self, rates=("lr", "value_lr"), worlds=("games_per_iteration",))
        if self.policy_head not in ("sigmoid", "softmax"):
            raise ValueError(f"policy_head must be 'sigmoid' or 'softmax', got {self.policy_head!r}")
        if self.loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {self.loss_reduction!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")


class Reinforce(Agent):
    """REINFORCE with optional value baseline; see the module docstring."""

    Config = Config
    STATE = StateSpec(networks=("policy", "value"), optimizers=("optimizer", "value_optimizer"),
                      generators=("rng",), counters=("iteration",))

    def __init__(self, config: Config, experiment: ExperimentConfig):
        super().__init__(config, experiment)
        c = config
        self.rng = Generator(experiment.seed)
        self.make_envs(c.games_per_iteration)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        if not isinstance(act_space, spaces.Discrete):
            raise ValueError(f"REINFORCE here supports Discrete actions, got {act_space}")
        self.num_actions = int(act_space.n)
        if c.policy_head == "sigmoid" and self.num_actions != 2:
            raise ValueError(f"policy_head 'sigmoid' needs 2 actions, the env has {self.num_actions}")
        obs_dim = int(np.prod(obs_space.shape))
        rl_random.seed(experiment.seed)  # layers draw their initial weights from the default generator
        out_dim = 1 if c.policy_head == "sigmoid" else self.num_actions
        self.policy = mlp(obs_dim, c.hidden, out_dim, c.activation, init=c.init, name="policy")
        self.optimizer = Adam(self.policy.parameters(), lr=c.lr)
        self.value = self.value_optimizer = None
        if c.baseline:
            self.value = mlp(obs_dim, c.value_hidden, 1, c.value_activation, init=c.init, name="value",
                             key="agent.value_hidden")
            self.value_optimizer = Adam(self.value.parameters(), lr=c.value_lr)
        self.iteration = 0

    # ------------------------------------------------------------------------------ the policy
    def _logits(self, obs: Tensor) -> Tensor:
        """Action logits ``(B, A)``; the sigmoid head's one output ``l`` becomes ``[l, 0]``."""
        out = self.policy(obs)
        if self.config.policy_head == "sigmoid":
            out = F.concat([out, out * 0.0], axis=-1)
        return out

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for ``obs (B, *obs_shape)``: argmax of the policy, or a sample."""
        with no_grad():
            dist = Categorical(self._logits(Tensor(mlp_input(obs))))
            actions = dist.mode() if deterministic else dist.sample(self.rng)
        return backend.to_numpy(actions).astype(np.int64)

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        with no_grad():
            logits = self._logits(Tensor(mlp_input(np.asarray(obs)[None])))
            return {"probs": backend.to_numpy(F.softmax(logits, axis=-1).data)[0]}

    # ------------------------------------------------------------------------------ learning
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        c = self.config
        while (self.iteration < c.iterations and self.env_steps < total_steps and not hooks.stop_requested):
            self.iteration += 1
            obs, actions, rewards, alive, lengths = self._collect(hooks)  # 1. collect
            returns = discounted_returns(rewards, alive, c.gamma)  # 2. returns
            stats = self._update(obs, actions, returns, alive)  # 3. update
            hooks.log({"env_steps": self.env_steps, "iteration": self.iteration,
                       "mean_steps_per_game": float(lengths.mean()), **stats})
            if hooks.checkpoint_due(self.env_steps):
                hooks.save(self)

    def _collect(self, hooks: Hooks) -> tuple[Any, Any, Any, Any, np.ndarray]:
        """Play one game in every world. Returns ``obs (T, N, obs_dim)``, ``actions (T, N)``,
        ``rewards (T, N)``, ``alive (T, N)`` (True during each world's game) and host ``lengths (N,)``."""
        xp = backend.current().xp
        n = self.config.games_per_iteration
        # Each iteration reseeds the env from the agent's stream, so a resumed run needs no env state.
        obs, _ = self.envs.reset(seed=int(self.rng.numpy.integers(2**31)))
        self.tracker.reset()
        running = np.ones(n, dtype=bool)  # True until the world's game ends; later games are not played
        lengths = np.zeros(n, dtype=np.int64)
        steps_obs, steps_actions, steps_rewards, steps_alive = [], [], [], []
        with no_grad():
            for _ in range(self.config.max_steps_per_game):
                x = mlp_input(obs)
                actions = Categorical(self._logits(Tensor(x))).sample(self.rng)
                obs, reward, terminated, truncated, _ = self.envs.step(backend.to_numpy(actions).astype(np.int64))
                steps_obs.append(xp.array(x))  # a copy: the env may reuse its observation buffer
                steps_actions.append(actions)
                steps_rewards.append(xp.asarray(reward))
                steps_alive.append(xp.array(running))  # a copy: running changes in place below
                lengths += running
                finished = self.tracker.step(reward, terminated, truncated).finished
                # Each world's one game; a world that finished early is stepped on, its later games ignored.
                games = finished.select(running[finished.worlds])
                running[games.worlds] = False
                for record in games.records(self.env_steps):
                    hooks.log(record)
                if not running.any():
                    break
        return (xp.stack(steps_obs), xp.stack(steps_actions), xp.stack(steps_rewards), xp.stack(steps_alive),
                lengths)

    def _update(self, obs: Any, actions: Any, returns: Any, alive: Any) -> dict[str, float]:
        """Policy step(s) on ``-log pi(a|s) * weight`` over the iteration's alive steps (and the baseline)."""
        c = self.config
        xp = backend.get_array_module(obs)
        idx = xp.flatnonzero(alive.reshape(-1))
        obs = obs.reshape(-1, obs.shape[-1])[idx]
        actions = actions.reshape(-1)[idx]
        returns = returns.reshape(-1)[idx]
        stats: dict[str, float] = {}
        if c.baseline:
            with no_grad():
                weights = returns - self.value(Tensor(obs)).data[:, 0]  # advantage G - V(s), not normalized
            stats["value_loss"] = self._fit_value(obs, returns)
        elif c.normalize_returns:
            # The book: global mean and population std of this iteration's returns.
            weights = (returns - returns.mean()) / max(float(returns.std()), 1e-8)
        else:
            weights = returns
        batch = len(idx) if c.batch_size <= 0 else c.batch_size
        losses, entropies = [], []
        for start in range(0, len(idx), batch):
            s = slice(start, start + batch)
            dist = Categorical(self._logits(Tensor(obs[s])))
            objective = dist.log_prob(actions[s]) * weights[s]
            loss = -(objective.mean() if c.loss_reduction == "mean" else objective.sum())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.data))
            entropies.append(float(dist.entropy().mean().data))
        stats["policy_loss"] = float(np.mean(losses))
        stats["entropy"] = float(np.mean(entropies))
        return stats

    def _fit_value(self, obs: Any, returns: Any) -> float:
        """One epoch of MSE regression of ``V(s)`` onto the returns, minibatches of min(200, steps)."""
        losses = []
        batch = min(200, len(obs))
        for start in range(0, len(obs), batch):
            s = slice(start, start + batch)
            loss = ((self.value(Tensor(obs[s])).reshape(-1) - returns[s]) ** 2).mean()
            self.value_optimizer.zero_grad()
            loss.backward()
            self.value_optimizer.step()
            losses.append(float(loss.data))
        return float(np.mean(losses))


Agent = Reinforce
