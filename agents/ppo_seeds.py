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
  from its own generator (:class:`rl.stacked.GeneratorStack`) and its episodes logged to its own run. The
  rollout buffer holds ``K * N`` worlds, seed ``k`` in columns ``k*N:(k+1)*N``. Where the env's core
  declares its per-world arrays (``WORLD_AXES``, e.g. :class:`envs.cartpole.core.CartPoleCore`), the K
  seeds' envs run as ONE vector env of ``K * N`` worlds with one episode tracker: its state is the K
  snapshots (``get_state``) laid side by side, each world keeping its own random stream, so every world
  steps exactly as in its own seed's env; :meth:`PPOSeeds.sync_agents` splits it back into the agents'
  envs and trackers (checkpoints, the end). Other envs are stepped seed by seed.
* **advantages**: :func:`agents.rollout.gae` over all ``K * N`` worlds at once (it is elementwise per world).
* **update**: each seed shuffles its own valid rows with its own generator and splits them into the same
  minibatches as alone; seeds' minibatch sizes differ by a few rows (the autoreset steps they drop), so a
  minibatch is one ``(K, W, ...)`` array, each seed's rows first and then padding up to the widest a seed
  could have (``W``, fixed by the config). The networks compute each seed's real rows alone
  (:class:`rl.stacked.StackedMLP` with ``rows=``), and the losses reduce over them alone
  (:func:`rl.stacked.seed_clipped_surrogates`, :func:`~rl.stacked.seed_mse`, :func:`~rl.stacked.seed_means`):
  one backward pass and one Adam step for all seeds, each seed's gradient its own.

**Each seed's run is its single-seed run, bit for bit** (on the host backend, NumPy): the same episodes, the
same logged losses and statistics, the same weights and optimizer state at every checkpoint
(``tests/agents/test_ppo_seeds.py``). Every seed's arithmetic is the single-seed path's on the same arrays:
the merged env steps each world as its own env, the rollout's batched products have the single run's row count
(``N``), and in the update each seed's matrix products are taken over a matrix of exactly its real rows, as
alone (:class:`rl.stacked.StackedMLP` with ``rows=``). That is where the price of being exact is paid: BLAS
may round a row differently with the matrix's row count (a narrow head's GEMM, measured with OpenBLAS), so one
batched product over the padded ``W`` rows would not give the single run's numbers. Taking the products seed
by seed costs ~9% of a stacked run's time (8 seeds of ``configs/cartpole_ppo_fast.toml``: 5.9 CPU s against
5.4 s with one batched product over the padding, on the bench machine). For the same reason a seed computes
the same numbers whichever seeds share its stack, so seeds 0-7 as one stack, as two stacks of four (``sweep.py
--workers 2`` splits one grid point's seeds that way) or alone give the same runs. On CuPy the padded product
stays batched (one GEMM launch per layer instead of K), so there a stacked seed can part from its single-seed
run at float32 rounding.

Not stacked (the caller runs such configs seed after seed): Box action spaces, ``target_kl`` (each seed
would stop its epochs at another time), networks other than ``Dense`` stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.base import Hooks, make_vec_env
from agents.episodes import EpisodeTracker
from agents.networks import mlp_input
from agents.ppo import PPO, clipped_value_errors, schedules
from agents.rollout import RolloutBuffer, gae
from rl import backend
from rl.distributions import Categorical
from rl.stacked import (
    GeneratorStack,
    StackedAdam,
    StackedMLP,
    keep_freed_memory,
    seed_clipped_surrogates,
    seed_means,
    seed_mse,
)
from rl.tensor import Tensor, no_grad

__all__ = ["PPOSeeds", "merge_env_states", "split_env_state", "unstackable_reason"]


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


def _world_axes(envs: Any) -> dict[str, int] | None:
    """The per-world arrays of a batched vector env's core, ``{name: world axis}`` (its ``WORLD_AXES``), or None
    when the env's worlds cannot be merged (no batched core, or one that does not declare them)."""
    core = getattr(envs, "core", None)
    axes = getattr(type(core), "WORLD_AXES", None)
    if axes is None or not hasattr(envs, "get_state") or getattr(core, "STATE_PARTS", ()):
        return None
    return dict(axes)


def merge_env_states(states: Sequence[dict[str, Any]], world_axes: dict[str, int]) -> dict[str, Any]:
    """One snapshot of ``K * N`` worlds from K vector envs' ``get_state()`` snapshots of N worlds each.

    Seed ``k``'s worlds become worlds ``k*N:(k+1)*N``: the core's arrays named in ``world_axes`` and the
    env's per-world bookkeeping and random streams (world axis 0) are concatenated; every other field (the
    core's constants, e.g. the start bounds) must be the same in all K. The envs' own ``np_random``
    (used only by unseeded resets) is left out: each seed's stays in its own env.
    """
    first = states[0]
    core: dict[str, Any] = {}
    for name, value in first["core"].items():
        if name in world_axes:
            core[name] = np.concatenate([s["core"][name] for s in states], axis=world_axes[name])
        elif all(np.array_equal(s["core"][name], value) for s in states[1:]):
            core[name] = value
        else:
            raise ValueError(f"the seeds' envs differ in {name!r}, which is not a per-world array: cannot merge")
    env: dict[str, Any] = {}
    for name, value in first["env"].items():
        if isinstance(value, np.ndarray):
            env[name] = np.concatenate([s["env"][name] for s in states])
        elif all(s["env"][name] == value for s in states[1:]):
            env[name] = value
        else:
            raise ValueError(f"the seeds' envs differ in {name!r}: cannot merge")
    return {"core": core, "env": env, "rng": np.concatenate([s["rng"] for s in states])}


def split_env_state(state: dict[str, Any], num_seeds: int, world_axes: dict[str, int]) -> list[dict[str, Any]]:
    """Undo :func:`merge_env_states`: the snapshot of ``num_seeds * N`` worlds as ``num_seeds`` snapshots of N."""
    n = len(state["rng"]) // num_seeds

    def part(value: Any, axis: int, k: int) -> Any:
        index = [slice(None)] * value.ndim
        index[axis] = slice(k * n, (k + 1) * n)
        return value[tuple(index)].copy()

    return [{"core": {name: part(v, world_axes[name], k) if name in world_axes else v
                      for name, v in state["core"].items()},
             "env": {name: part(v, 0, k) if isinstance(v, np.ndarray) else v for name, v in state["env"].items()},
             "rng": part(state["rng"], 0, k)} for k in range(num_seeds)]


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
        if backend.current().name == "numpy":
            keep_freed_memory()  # the stacked arrays are K times larger: see rl.stacked.keep_freed_memory
        params = [[*a.policy.parameters(), *a.value.parameters()] for a in self.agents]
        self.optimizer = StackedAdam(params, lr=c.lr, eps=c.adam_eps, clipnorm=c.max_grad_norm)
        self.optimizer.load_seed_states([a.optimizer.state_dict() for a in self.agents])
        n_policy = len(first.policy.parameters())
        self.policy = StackedMLP(first.policy, self.optimizer.tensors[:n_policy])
        self.value = StackedMLP(first.value, self.optimizer.tensors[n_policy:])
        self.rngs = GeneratorStack([a.rng for a in self.agents])
        obs_dim = first.buffer.obs.shape[2]
        self.buffer = RolloutBuffer(c.num_steps, self.num_seeds * c.num_envs, (obs_dim,), (), np.int64)
        # The merged env of K * N worlds (see the module docstring), its observation and episode tracker; None
        # while the agents' own envs are the current ones (before learn, after sync_agents) or cannot merge.
        self.envs: Any = None
        self.obs: Any = None
        self.tracker: EpisodeTracker | None = None
        self.world_axes = _world_axes(first.envs)

    @property
    def env_steps(self) -> int:
        return self.agents[0].env_steps

    def sync_agents(self) -> None:
        """Copy each seed's optimizer state into its agent (the weights already are its agent's tensors), and its
        worlds, observation and running episodes from the merged env back into its own env and tracker."""
        for k, agent in enumerate(self.agents):
            agent.optimizer.load_state_dict(self.optimizer.seed_state(k))
            agent.optimizer.lr = self.optimizer.lr
        if self.envs is None:
            return
        n = self.config.num_envs
        pieces = split_env_state(self.envs.get_state(), self.num_seeds, self.world_axes)
        for k, (agent, piece) in enumerate(zip(self.agents, pieces)):
            cols = slice(k * n, (k + 1) * n)
            agent.envs.set_state(piece)
            agent.obs = self.obs[cols].copy()
            tracker = agent.tracker
            tracker.returns, tracker.lengths = self.tracker.returns[cols].copy(), self.tracker.lengths[cols].copy()
            tracker.resetting = self.tracker.resetting[cols].copy()

    def _can_merge(self) -> bool:
        """Whether the seeds' envs can run as one: a core that declares its per-world arrays, the same env
        settings for every seed (the merged env is made from the first seed's) and no extra episode sums."""
        first = self.agents[0].experiment
        return (self.world_axes is not None
                and all((a.experiment.env_id, a.experiment.env) == (first.env_id, first.env) for a in self.agents)
                and not any(a.tracker.sum_names for a in self.agents))

    def _merge_envs(self) -> None:
        """Start every seed's envs, then (where the env allows) run them as one merged env from here on."""
        for agent in self.agents:
            agent.start_envs()
        if not self._can_merge():
            return
        first, k_seeds = self.agents[0], self.num_seeds
        self.envs = make_vec_env(first.experiment, k_seeds * self.config.num_envs)
        self.envs.set_state(merge_env_states([a.envs.get_state() for a in self.agents], self.world_axes))
        self.obs = np.concatenate([a.obs for a in self.agents])
        self.tracker = EpisodeTracker(self.envs.num_envs)
        self.tracker.returns = np.concatenate([a.tracker.returns for a in self.agents])
        self.tracker.lengths = np.concatenate([a.tracker.lengths for a in self.agents])
        self.tracker.resetting = np.concatenate([a.tracker.resetting for a in self.agents])

    # ------------------------------------------------------------------------------ learning
    def learn(self, total_steps: int, hooks: Sequence[Hooks]) -> None:
        """Train every seed until ``total_steps`` env steps each (or a stop request); ``hooks[k]`` is seed ``k``'s."""
        c = self.config
        lr, clip_coef = schedules(c, total_steps)
        self._merge_envs()
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

    def evaluate(self, episodes: int, max_steps: int = 100_000) -> list[dict[str, Any]]:
        """Every seed's :func:`agents.runner.evaluate` (``episodes`` deterministic episodes, its env seeded with
        its experiment seed + 1,000,000), played at once: the K seeds' evaluation envs merged into one of
        ``K * episodes`` worlds, one stacked policy call per step. Each seed's dict is the one ``evaluate`` gives
        (its worlds step as in its own env, its logits are its own network's; tested). An env that cannot be
        merged is evaluated seed by seed with ``evaluate``."""
        from agents.runner import evaluate  # noqa: PLC0415 - the runner imports the agents

        if not self._can_merge():
            return [evaluate(agent, episodes=episodes, max_steps=max_steps) for agent in self.agents]
        k_seeds = self.num_seeds
        own = [make_vec_env(agent.experiment, episodes) for agent in self.agents]
        env = make_vec_env(self.agents[0].experiment, k_seeds * episodes)
        try:
            obs = np.concatenate([e.reset(seed=a.experiment.seed + 1_000_000)[0] for e, a in zip(own, self.agents)])
            env.set_state(merge_env_states([e.get_state() for e in own], self.world_axes))
            tracker = EpisodeTracker(env.num_envs)
            returns, lengths = np.zeros(env.num_envs), np.zeros(env.num_envs, dtype=np.int64)
            finished = np.zeros(env.num_envs, dtype=bool)
            # agents.episodes.first_episodes over the merged env: each world's first episode; later ones ignored
            for _ in range(max_steps):
                logits = self.policy.forward_array(mlp_input(obs).reshape(k_seeds, episodes, -1))
                obs, reward, terminated, truncated, _ = env.step(backend.to_numpy(logits.argmax(axis=-1)).reshape(-1))
                ended = tracker.step(reward, terminated, truncated).finished
                first = ended.select(~finished[ended.worlds])
                returns[first.worlds], lengths[first.worlds] = first.returns, first.lengths
                finished[first.worlds] = True
                if finished.all():
                    break
            running = ~finished
            returns[running], lengths[running] = tracker.returns[running], tracker.lengths[running]
        finally:
            env.close()
            for e in own:
                e.close()
        results = []
        for k, agent in enumerate(self.agents):  # the dict agents.runner.evaluate returns
            r, n = returns[k * episodes:(k + 1) * episodes], lengths[k * episodes:(k + 1) * episodes]
            results.append({
                "episodes": episodes, "mean_return": float(r.mean()), "std_return": float(r.std()),
                "min_return": float(r.min()), "max_return": float(r.max()), "mean_length": float(n.mean()),
                "returns": r.tolist(), "lengths": n.tolist(), "env_steps": int(agent.env_steps),
                "unfinished": int((~finished[k * episodes:(k + 1) * episodes]).sum())})
        return results

    def _act(self, x: Any) -> tuple[Any, Any, Any]:
        """Every seed's policy on its worlds' rows of ``x (K * N, obs_dim)``: sampled actions, their
        log-probabilities and the values, each ``(K * N,)``; raw arrays, no graph (the rollout's)."""
        stacked = x.reshape(self.num_seeds, -1, x.shape[-1])
        logits = self.policy.forward_array(stacked)
        actions, logp = Categorical(Tensor(logits.reshape(-1, logits.shape[-1]))).sample_with_log_prob(self.rngs)
        return actions, logp, self.value.forward_array(stacked).reshape(-1)

    def _collect(self, hooks: Sequence[Hooks]) -> None:
        """Fill the buffer with ``num_steps`` steps of every seed's worlds; log each seed's finished episodes."""
        if self.envs is not None:
            self._collect_merged(hooks)
            return
        buf, agents, k_seeds, n = self.buffer, self.agents, self.num_seeds, self.config.num_envs
        with no_grad():
            for t in range(buf.num_steps):
                x = mlp_input(np.concatenate([a.obs for a in agents]))  # (K * N, obs_dim)
                actions, buf.logprobs[t], buf.values[t] = self._act(x)
                buf.obs[t] = x
                buf.actions[t] = actions
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
            buf.next_values[:] = self.value.forward_array(x.reshape(k_seeds, n, -1)).reshape(-1)

    def _collect_merged(self, hooks: Sequence[Hooks]) -> None:
        """:meth:`_collect` on the merged env: one env step and one tracker step per time step for all seeds;
        the per-seed counters (env steps, transitions, episodes) go to the agents' trackers once per rollout."""
        buf, agents, k_seeds, n = self.buffer, self.agents, self.num_seeds, self.config.num_envs
        start_steps = agents[0].env_steps  # the seeds move in step: N world-steps each per time step
        episodes = np.zeros(k_seeds, dtype=np.int64)
        obs = self.obs
        with no_grad():
            for t in range(buf.num_steps):
                x = mlp_input(obs)  # (K * N, obs_dim)
                actions, buf.logprobs[t], buf.values[t] = self._act(x)
                buf.obs[t] = x
                buf.actions[t] = actions
                obs, reward, terminated, truncated, _ = self.envs.step(agents[0]._to_env(actions))
                step = self.tracker.step(reward, terminated, truncated)
                buf.rewards[t] = reward
                buf.terminated[t] = terminated
                buf.dones[t] = terminated | truncated
                buf.valid[t] = step.transitions
                if len(step.finished):
                    owners = step.finished.worlds // n  # the seed of each world that finished an episode
                    episodes += np.bincount(owners, minlength=k_seeds)
                    for record, k in zip(step.finished.records(start_steps + (t + 1) * n), owners):
                        hooks[k].log(record)
            buf.next_values[:] = self.value.forward_array(mlp_input(obs).reshape(k_seeds, n, -1)).reshape(-1)
        self.obs = obs
        transitions = backend.to_numpy(buf.valid).reshape(buf.num_steps, k_seeds, n).sum(axis=(0, 2))
        for k, agent in enumerate(agents):
            agent.tracker.env_steps += buf.num_steps * n
            agent.tracker.transitions += int(transitions[k])
            agent.tracker.episodes += int(episodes[k])

    def _seed_rows(self, a: Any) -> Any:
        """A ``(T, K * N, ...)`` buffer field as ``(K, T * N, ...)``: row ``t * N + i`` of seed ``k`` is its world
        ``i`` at step ``t``, the order of a single-seed run's ``buf.flat``."""
        t, k_seeds, n = self.buffer.num_steps, self.num_seeds, self.config.num_envs
        a = a.reshape(t, k_seeds, n, *a.shape[2:])
        return backend.get_array_module(a).ascontiguousarray(a.swapaxes(0, 1).reshape(k_seeds, t * n, *a.shape[3:]))

    def _minibatches(self, valid_rows: list[Any], num_minibatches: int, rows_per_seed: int) -> tuple[Any, Any]:
        """One epoch's minibatches: each seed's valid rows shuffled by its own generator and split as
        ``PPO._update`` splits them, padded to the widest minibatch any seed could have, ``ceil(rows_per_seed /
        num_minibatches)`` (fixed by the config, not by the other seeds' rows: a seed then computes the same
        numbers in any stack, whichever seeds share it). Returns indices into the seeds' rows laid end to end
        (seed ``k``'s row ``i`` is ``k * rows_per_seed + i``), ``(num_minibatches, K, width)``, each seed's rows
        first and then padding (its row 0), and the host counts of real rows, ``(num_minibatches, K)``."""
        chunks = [np.array_split(backend.to_numpy(rows[agent.rng.permutation(len(rows))]), num_minibatches)
                  for agent, rows in zip(self.agents, valid_rows)]
        width = -(-rows_per_seed // num_minibatches)
        offsets = np.arange(self.num_seeds, dtype=np.int64) * rows_per_seed
        index = np.broadcast_to(offsets[None, :, None], (num_minibatches, self.num_seeds, width)).copy()
        counts = np.zeros((num_minibatches, self.num_seeds), dtype=np.int64)
        for k, seed in enumerate(chunks):
            for j, chunk in enumerate(seed):
                index[j, k, :len(chunk)] += chunk
                counts[j, k] = len(chunk)
        return backend.to_device(index), counts

    def _update(self, advantages: Any, returns: Any, clip: float) -> dict[str, list[float]]:
        """``num_epochs`` epochs of stacked minibatch steps; returns each statistic's per-seed means, K floats.

        Each seed's losses are its single-seed run's (:func:`rl.stacked.seed_clipped_surrogates` etc.: the same
        arithmetic over its own rows of the padded minibatch), and so are the statistics' sums and means."""
        c, buf, k_seeds = self.config, self.buffer, self.num_seeds
        xp = backend.current().xp
        rows = buf.num_steps * c.num_envs  # per seed

        def flat(a: Any) -> Any:  # (K * rows, ...): the seeds' rows end to end, gathered with _minibatches' indices
            seeds = self._seed_rows(a)
            return seeds.reshape(k_seeds * rows, *seeds.shape[2:])

        obs, actions, old_logp, old_values = flat(buf.obs), flat(buf.actions), flat(buf.logprobs), flat(buf.values)
        adv_all, ret_all = flat(advantages), flat(returns)
        valid = self._seed_rows(buf.valid)
        valid_rows = [xp.asarray(np.flatnonzero(v)) for v in backend.to_numpy(valid)]
        num_minibatches = max(1, round(buf.num_steps * self.config.num_envs / c.batch_size))
        # PPO._update's sums: a Python 0.0 plus each minibatch's (K,) values, so each sum keeps its values' dtype
        sums: dict[str, Any] = {name: 0.0 for name in ("policy_loss", "value_loss", "entropy", "approx_kl",
                                                      "clip_fraction")}
        count = 0
        for _epoch in range(c.num_epochs):
            index, counts = self._minibatches(valid_rows, num_minibatches, rows)
            for mb, n in zip(index, counts):
                x = Tensor(obs[mb])  # (K, W, obs_dim)
                dist = Categorical(self.policy(x, rows=n).reshape(k_seeds * mb.shape[1], -1))
                logp = dist.log_prob(actions[mb].reshape(-1)).reshape(mb.shape)
                if c.ent_coef:
                    entropy = dist.entropy().reshape(mb.shape)
                else:  # a term weighted 0 adds nothing to the gradient: compute it for the log only
                    with no_grad():
                        entropy = dist.entropy().reshape(mb.shape)
                policy_loss, approx_kl, clip_fraction = seed_clipped_surrogates(
                    logp, old_logp[mb], adv_all[mb], n, clip, normalize=c.normalize_advantages)
                v = self.value(x, rows=n).reshape(mb.shape)
                ret = ret_all[mb]
                if c.clip_value_loss:
                    value_loss = seed_means(clipped_value_errors(v, old_values[mb], ret, clip), n)
                else:
                    value_loss = seed_mse(v, ret, n)  # SB3's MSE (CleanRL halves it)
                entropy_mean = seed_means(entropy, n)
                loss = policy_loss + value_loss * c.vf_coef  # (K,): each seed's loss reaches only its weights
                if c.ent_coef:
                    loss = loss - entropy_mean * c.ent_coef
                self.optimizer.zero_grad()
                loss.sum().backward()
                self.optimizer.step()  # each seed's gradient norm is clipped to max_grad_norm inside

                sums["policy_loss"] = sums["policy_loss"] + policy_loss.data
                sums["value_loss"] = sums["value_loss"] + value_loss.data
                sums["entropy"] = sums["entropy"] + entropy_mean.data
                sums["approx_kl"] = sums["approx_kl"] + approx_kl
                sums["clip_fraction"] = sums["clip_fraction"] + clip_fraction
                count += 1
        # PPO._update's float(sum) / count: a float64 division of each seed's sum
        return {name: [float(x) / max(count, 1) for x in np.broadcast_to(backend.to_numpy(v), (k_seeds,))]
                for name, v in sums.items()}
