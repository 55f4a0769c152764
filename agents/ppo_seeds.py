"""K seeds of one PPO config trained in one process as one batched computation.

``python scripts/train.py configs/cartpole_ppo_fast.toml --seeds 0-7`` builds the K single-seed agents
(:class:`agents.ppo.PPO`, each with its own initial weights, vector env seeded as its single-seed run
seeds it, random stream and episode tracker) and trains them together: their weights are stacked along a
leading seed axis (:class:`rl.stacked.StackedAdam`; each agent's own tensors stay views of its row, so
every agent can act, be evaluated and be checkpointed as a normal single-seed run at any time), one
batched forward pass per env step serves all K policies, and each minibatch step is one backward pass
and one Adam step for all seeds.

The loop is PPO's (:meth:`agents.ppo.PPO.learn`), with the seed axis in front:

* **collect**: ``(K, N, obs)`` observations through the stacked policy; each seed's actions are sampled
  from its own generator (:class:`rl.stacked.GeneratorStack`), its env stepped and its episodes logged
  to its own run. The rollout buffer holds ``K * N`` worlds, seed ``k`` in columns ``k*N:(k+1)*N``.
* **advantages**: :func:`agents.rollout.gae` over all ``K * N`` worlds at once (it is elementwise per world).
* **update**: each seed shuffles its own valid rows with its own generator and splits them into the same
  number of minibatches as alone; seeds' minibatch sizes differ by a few rows (the autoreset steps they
  drop), so minibatches are padded to the largest and reduced with masked means
  (:func:`rl.stacked.masked_mean`), advantages normalised per seed over its own rows.

How close to K single-seed runs: the first rollout is bit-identical (the collect path has no padding),
and so are the optimizer's per-seed clipping and update. The minibatch padding is not: a mean over
padded rows sums in another order, and OpenBLAS may round a narrow output layer differently over more
rows, so losses differ from the single-seed run's at float32 rounding (~1e-7 relative) from the first
update on. RL amplifies such differences: after some iterations a sampled action flips and the seeds'
trajectories part from their single-seed runs (every seed is still a correct PPO run of its seed;
``tests/agents/test_ppo_seeds.py`` bounds the first iterations, ``benchmarks/bench_seeds.py`` reports
both sides' final returns).

Not stacked (the caller runs such configs seed after seed): Box action spaces, ``target_kl`` (each seed
would stop its epochs at another time), networks other than ``Dense`` stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.base import Hooks
from agents.networks import mlp_input
from agents.ppo import PPO, clipped_losses, schedules
from agents.rollout import RolloutBuffer, gae
from rl import backend
from rl.distributions import Categorical
from rl.stacked import GeneratorStack, StackedAdam, StackedMLP, masked_mean
from rl.tensor import Tensor, no_grad

__all__ = ["PPOSeeds", "unstackable_reason"]


def unstackable_reason(agent: Any) -> str | None:
    """Why ``agent``'s config cannot train as a seed stack (None when it can)."""
    if not isinstance(agent, PPO):
        return f"agent {agent.experiment.agent!r} has no batched multi-seed path (ppo has)"
    if agent.config.use_sde:
        return "agent.use_sde (state-dependent exploration) has no batched multi-seed path: train each seed alone"
    if not agent.discrete:
        return "batched PPO seeds support Discrete action spaces only"
    if agent.config.target_kl is not None:
        return "agent.target_kl stops each seed's epochs at another time"
    return None


class PPOSeeds:
    """PPO for K seeds of one config at once.

    Args:
        agents: K :class:`agents.ppo.PPO` agents built from one config with different seeds, each loaded
            from its checkpoint when resuming (they must be at the same iteration).

    After :meth:`learn`, or before a checkpoint, :meth:`sync_agents` puts each seed's optimizer state back
    into its agent, so ``agents[k].state_dict()`` is seed ``k``'s single-seed checkpoint.
    """

    def __init__(self, agents: Sequence[PPO]):
        self.agents = list(agents)
        for agent in self.agents:
            reason = unstackable_reason(agent)
            if reason is not None:
                raise ValueError(reason)
        first = self.agents[0]
        c = self.config = first.config
        if any(a.config != c for a in self.agents) or len({a.iteration for a in self.agents}) > 1:
            raise ValueError("stacked seeds need one agent config and the same iteration")
        self.num_seeds = len(self.agents)
        params = [[*a.policy.parameters(), *a.value.parameters()] for a in self.agents]
        self.optimizer = StackedAdam(params, lr=c.lr, eps=c.adam_eps, clipnorm=c.max_grad_norm)
        self.optimizer.load_seed_states([a.optimizer.state_dict() for a in self.agents])
        n_policy = len(first.policy.parameters())
        self.policy = StackedMLP(first.policy, self.optimizer.tensors[:n_policy])
        self.value = StackedMLP(first.value, self.optimizer.tensors[n_policy:])
        self.rngs = GeneratorStack([a.rng for a in self.agents])
        obs_dim = first.buffer.obs.shape[2]
        self.buffer = RolloutBuffer(c.num_steps, self.num_seeds * c.num_envs, (obs_dim,), (), np.int64)

    @property
    def env_steps(self) -> int:
        return self.agents[0].env_steps

    def sync_agents(self) -> None:
        """Copy each seed's optimizer state into its agent (the weights already are its agent's tensors)."""
        for k, agent in enumerate(self.agents):
            agent.optimizer.load_state_dict(self.optimizer.seed_state(k))
            agent.optimizer.lr = self.optimizer.lr

    # ------------------------------------------------------------------------------ learning
    def learn(self, total_steps: int, hooks: Sequence[Hooks]) -> None:
        """Train every seed until ``total_steps`` env steps each (or a stop request); ``hooks[k]`` is seed ``k``'s."""
        c = self.config
        lr, clip_coef = schedules(c, total_steps)
        for agent in self.agents:
            agent.start_envs()
        while self.env_steps < total_steps and not any(h.stop_requested for h in hooks):
            iteration = self.agents[0].iteration
            self.optimizer.lr = lr(iteration)
            clip = clip_coef(iteration)
            for agent in self.agents:
                agent.iteration += 1

            self._collect(hooks)  # 1. collect
            advantages, returns = gae(self.buffer, c.gamma, c.gae_lambda)  # 2. advantages
            stats = self._update(advantages, returns, clip)  # 3. update

            for k, (agent, h) in enumerate(zip(self.agents, hooks)):
                h.log({"env_steps": agent.env_steps, "iteration": agent.iteration, "lr": self.optimizer.lr,
                       "clip_coef": clip, **{name: float(values[k]) for name, values in stats.items()}})
            if hooks[0].checkpoint_due(self.env_steps):
                self.sync_agents()
                for agent, h in zip(self.agents, hooks):
                    h.save(agent)
        self.sync_agents()

    def _collect(self, hooks: Sequence[Hooks]) -> None:
        """Fill the buffer with ``num_steps`` steps of every seed's worlds; log each seed's finished episodes."""
        buf, agents, k_seeds, n = self.buffer, self.agents, self.num_seeds, self.config.num_envs
        with no_grad():
            for t in range(buf.num_steps):
                x = mlp_input(np.concatenate([a.obs for a in agents]))  # (K * N, obs_dim)
                stacked = Tensor(x.reshape(k_seeds, n, -1))
                logits = self.policy(stacked)
                dist = Categorical(logits.reshape(k_seeds * n, -1))
                actions = dist.sample(self.rngs)
                buf.obs[t] = x
                buf.actions[t] = actions
                buf.logprobs[t] = dist.log_prob(actions).data
                buf.values[t] = self.value(stacked).data.reshape(-1)
                env_actions = agents[0]._to_env(actions)
                for k, (agent, h) in enumerate(zip(agents, hooks)):
                    cols = slice(k * n, (k + 1) * n)
                    agent.obs, reward, terminated, truncated, _ = agent.envs.step(env_actions[cols])
                    step = agent.tracker.step(reward, terminated, truncated)
                    buf.rewards[t, cols] = reward
                    buf.terminated[t, cols] = terminated
                    buf.dones[t, cols] = terminated | truncated
                    buf.valid[t, cols] = step.transitions
                    for record in step.finished.records(agent.env_steps):
                        h.log(record)
            x = mlp_input(np.concatenate([a.obs for a in agents]))
            buf.next_values[:] = self.value(Tensor(x.reshape(k_seeds, n, -1))).data.reshape(-1)

    def _seed_rows(self, a: Any) -> Any:
        """A ``(T, K * N, ...)`` buffer field as ``(K, T * N, ...)``: row ``t * N + i`` of seed ``k`` is its world
        ``i`` at step ``t``, the order of a single-seed run's ``buf.flat``."""
        t, k_seeds, n = self.buffer.num_steps, self.num_seeds, self.config.num_envs
        a = a.reshape(t, k_seeds, n, *a.shape[2:])
        return backend.get_array_module(a).ascontiguousarray(a.swapaxes(0, 1).reshape(k_seeds, t * n, *a.shape[3:]))

    def _minibatches(self, valid_rows: list[Any], num_minibatches: int) -> tuple[Any, Any]:
        """One epoch's minibatches: each seed's valid rows shuffled by its own generator and split as
        ``PPO._update`` splits them, padded to the largest. Returns row indices and a mask, both
        ``(num_minibatches, K, B_max)``."""
        chunks = [np.array_split(backend.to_numpy(rows[agent.rng.permutation(len(rows))]), num_minibatches)
                  for agent, rows in zip(self.agents, valid_rows)]
        width = max(len(chunk) for seed in chunks for chunk in seed)
        index = np.zeros((num_minibatches, self.num_seeds, width), dtype=np.int64)
        mask = np.zeros((num_minibatches, self.num_seeds, width), dtype=bool)
        for k, seed in enumerate(chunks):
            for j, chunk in enumerate(seed):
                index[j, k, :len(chunk)] = chunk
                mask[j, k, :len(chunk)] = True
        return backend.to_device(index), backend.to_device(mask)

    def _update(self, advantages: Any, returns: Any, clip: float) -> dict[str, Any]:
        """``num_epochs`` epochs of stacked minibatch steps; returns each statistic's per-seed means ``(K,)``."""
        c, buf, k_seeds = self.config, self.buffer, self.num_seeds
        xp = backend.current().xp
        obs, actions = self._seed_rows(buf.obs), self._seed_rows(buf.actions)
        old_logp, old_values = self._seed_rows(buf.logprobs), self._seed_rows(buf.values)
        adv_all, ret_all = self._seed_rows(advantages), self._seed_rows(returns)
        valid = self._seed_rows(buf.valid)
        valid_rows = [xp.asarray(np.flatnonzero(v)) for v in backend.to_numpy(valid)]
        num_minibatches = max(1, round(buf.num_steps * self.config.num_envs / c.batch_size))
        sums = {name: xp.zeros(k_seeds, dtype=xp.float32)
                for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")}
        count = 0
        for _epoch in range(c.num_epochs):
            index, masks = self._minibatches(valid_rows, num_minibatches)
            for mb, mask in zip(index, masks):
                counts = xp.maximum(mask.sum(axis=1), 1).astype(xp.float32)  # (K,)
                x = Tensor(xp.take_along_axis(obs, mb[:, :, None], axis=1))  # (K, B, obs_dim)
                dist = Categorical(self.policy(x).reshape(k_seeds * mb.shape[1], -1))
                logp = dist.log_prob(xp.take_along_axis(actions, mb, axis=1).reshape(-1)).reshape(mb.shape)
                if c.ent_coef:
                    entropy = dist.entropy().reshape(mb.shape)
                else:  # a term weighted 0 adds nothing to the gradient: compute it for the log only
                    with no_grad():
                        entropy = dist.entropy().reshape(mb.shape)
                adv = xp.take_along_axis(adv_all, mb, axis=1)
                if c.normalize_advantages:
                    adv = self._normalize(adv, mask, counts)
                v = self.value(x).reshape(mb.shape)

                def mean(t: Tensor, mask: Any = mask, counts: Any = counts) -> Tensor:
                    return masked_mean(t, mask, counts)

                policy_loss, value_loss, ratio, log_ratio = clipped_losses(
                    logp, xp.take_along_axis(old_logp, mb, axis=1), adv, v, xp.take_along_axis(old_values, mb, axis=1),
                    xp.take_along_axis(ret_all, mb, axis=1), clip, c.clip_value_loss, mean)
                entropy_mean = mean(entropy)
                loss = policy_loss + value_loss * c.vf_coef  # (K,): each seed's loss reaches only its weights
                if c.ent_coef:
                    loss = loss - entropy_mean * c.ent_coef
                self.optimizer.zero_grad()
                loss.sum().backward()
                self.optimizer.step()  # each seed's gradient norm is clipped to max_grad_norm inside

                with no_grad():
                    sums["approx_kl"] += mean(Tensor((ratio.data - 1.0) - log_ratio.data)).data
                    sums["clip_fraction"] += mean(Tensor((xp.abs(ratio.data - 1.0) > clip).astype(xp.float32))).data
                sums["policy_loss"] += policy_loss.data
                sums["value_loss"] += value_loss.data
                sums["entropy"] += entropy_mean.data
                count += 1
        return {k: backend.to_numpy(v) / max(count, 1) for k, v in sums.items()}

    @staticmethod
    def _normalize(adv: Any, mask: Any, counts: Any) -> Any:
        """Zero mean, unit (population) standard deviation per seed over its rows; a seed with one row is
        left as it is, as ``PPO._update`` leaves a one-row minibatch."""
        xp = backend.get_array_module(adv)
        mean = xp.where(mask, adv, 0).sum(axis=1) / counts
        centred = adv - mean[:, None]
        std = xp.sqrt(xp.where(mask, centred * centred, 0).sum(axis=1) / counts)
        normalized = centred / (std[:, None] + 1e-8)
        return xp.where((counts > 1)[:, None], normalized, adv)
