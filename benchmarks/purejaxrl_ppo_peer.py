"""The JAX peer of ``benchmarks/bench_purejaxrl.py``: PPO on gymnax CartPole-v1 as one compiled program.

Runs ONLY in a separate benchmark venv (never a dependency of playgrad)::

    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install jax jaxlib gymnax optax flax
    /tmp/benchvenv/bin/python benchmarks/purejaxrl_ppo_peer.py '{"num_envs": 32, ...}' --seed 0 --repeats 3

Written for this benchmark after the structure of PureJaxRL's ``ppo.py`` (Lu et al. 2022): a
``make_train(config)`` that returns ``train(rng)``, and the *whole* training run inside one ``jax.jit``:

* ``lax.scan`` over the update iterations; in each, ``lax.scan`` over ``num_steps`` env steps of
  ``num_envs`` gymnax worlds (``vmap``-ed reset/step, gymnax's automatic reset), GAE by a reverse
  ``lax.scan``, then ``lax.scan`` over epochs and, inside, over shuffled minibatches;
* a flax ``ActorCritic``: separate actor and critic MLPs, orthogonal init (gain sqrt(2) hidden,
  0.01 policy head, 1.0 value head), zero biases;
* optax ``chain(clip_by_global_norm(max_grad_norm), adam(lr, eps=1e-5))``, the learning rate
  annealed linearly per update iteration as PureJaxRL's ``linear_schedule`` does.

Where playgrad's ``configs/cartpole_ppo_fast.toml`` differs from PureJaxRL's defaults, the peer follows
the config, so both sides run the same algorithm: the clip coefficient is annealed linearly too
(``anneal_clip``), the value loss is the unclipped MSE weighted by ``vf_coef`` (``clip_value_loss =
false``; PureJaxRL clips it and halves it), advantages are normalized per minibatch (as PureJaxRL does).
One difference is PureJaxRL's: its GAE treats every episode end as terminal, a time-limit truncation
too (playgrad bootstraps a truncated episode from the value of its real last observation). The peer
keeps PureJaxRL's rule; it changes the targets of ~1 step in 500, not the cost.

``--seeds K`` trains K seeds as PureJaxRL's ``ppo.py`` does: ``jax.jit(jax.vmap(train))`` over
``jax.random.split(rng, K)``, one compiled program for all seeds (``benchmarks/bench_seeds.py``); the
line then holds each seed's evaluation (``eval_means``).

Prints one JSON line: compile seconds (lowering + XLA compile), the seconds of each timed run after
compile (and their process CPU seconds), and the final policy's deterministic mean return over
``--eval-episodes`` episodes (not timed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def make_train(config: dict):
    """``train(rng) -> (params, last_iteration_mean_loss)`` for ``config`` (the PPO ``[agent]`` table plus
    ``total_steps``); the returned function is pure and meant for ``jax.jit``."""
    import flax.linen as nn
    import gymnax
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax.linen.initializers import constant, orthogonal

    env, env_params = gymnax.make("CartPole-v1")
    num_envs, num_steps = config["num_envs"], config["num_steps"]
    rollout = num_envs * num_steps
    num_updates = -(-config["total_steps"] // rollout)  # playgrad runs while env_steps < total_steps
    num_minibatches = max(1, round(rollout / config["batch_size"]))
    minibatch = rollout // num_minibatches
    epochs = config["num_epochs"]
    act = {"tanh": nn.tanh, "relu": nn.relu}[config["activation"]]
    hidden = tuple(config["hidden"])
    num_actions = env.action_space(env_params).n

    class ActorCritic(nn.Module):
        @nn.compact
        def __call__(self, x):
            a = x
            for units in hidden:
                a = act(nn.Dense(units, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(a))
            logits = nn.Dense(num_actions, kernel_init=orthogonal(0.01), bias_init=constant(0.0))(a)
            v = x
            for units in hidden:
                v = act(nn.Dense(units, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(v))
            value = nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=constant(0.0))(v)
            return logits, value[:, 0]

    def fraction_left(count):
        """1 at the first update iteration, falling linearly (per iteration) towards 0."""
        return 1.0 - (count // (num_minibatches * epochs)) / num_updates

    lr0, clip0 = config["lr"], config["clip_coef"]
    lr = (lambda count: lr0 * fraction_left(count)) if config["anneal_lr"] else lr0
    network = ActorCritic()
    tx = optax.chain(optax.clip_by_global_norm(config["max_grad_norm"]), optax.adam(lr, eps=1e-5))

    def train(rng):
        rng, init_rng, reset_rng = jax.random.split(rng, 3)
        params = network.init(init_rng, jnp.zeros((1, *env.observation_space(env_params).shape)))
        opt_state = tx.init(params)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_rng, num_envs), env_params)

        def update_step(carry, iteration):
            params, opt_state, env_state, obs, rng = carry
            clip = clip0 * (1.0 - iteration / num_updates) if config["anneal_clip"] else clip0

            def env_step(carry, _):
                env_state, obs, rng = carry
                rng, act_rng, step_rng = jax.random.split(rng, 3)
                logits, value = network.apply(params, obs)
                action = jax.random.categorical(act_rng, logits)
                logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
                step_keys = jax.random.split(step_rng, num_envs)
                next_obs, env_state, reward, terminated, truncated, _info = jax.vmap(
                    env.step, in_axes=(0, 0, 0, None))(step_keys, env_state, action, env_params)
                done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
                return (env_state, next_obs, rng), (obs, action, logp, value, reward, done)

            (env_state, obs, rng), traj = jax.lax.scan(env_step, (env_state, obs, rng), None, num_steps)
            t_obs, t_action, t_logp, t_value, t_reward, t_done = traj
            _, last_value = network.apply(params, obs)

            def gae_step(carry, x):
                adv, next_value = carry
                done, value, reward = x
                delta = reward + config["gamma"] * next_value * (1 - done) - value
                adv = delta + config["gamma"] * config["gae_lambda"] * (1 - done) * adv
                return (adv, value), adv

            _, advantages = jax.lax.scan(gae_step, (jnp.zeros_like(last_value), last_value),
                                         (t_done, t_value, t_reward), reverse=True)
            targets = advantages + t_value

            def loss_fn(params, batch):
                b_obs, b_action, b_logp, b_adv, b_target = batch
                logits, value = network.apply(params, b_obs)
                log_probs = jax.nn.log_softmax(logits)
                logp = jnp.take_along_axis(log_probs, b_action[:, None], axis=1)[:, 0]
                entropy = -(jnp.exp(log_probs) * log_probs).sum(-1).mean()
                value_loss = ((value - b_target) ** 2).mean()
                ratio = jnp.exp(logp - b_logp)
                adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
                policy_loss = jnp.maximum(-ratio * adv, -jnp.clip(ratio, 1 - clip, 1 + clip) * adv).mean()
                return policy_loss + config["vf_coef"] * value_loss - config["ent_coef"] * entropy

            def epoch_step(carry, _):
                params, opt_state, rng = carry
                rng, perm_rng = jax.random.split(rng)
                perm = jax.random.permutation(perm_rng, rollout)
                flat = (t_obs.reshape(rollout, -1), t_action.reshape(-1), t_logp.reshape(-1),
                        advantages.reshape(-1), targets.reshape(-1))
                batches = jax.tree_util.tree_map(
                    lambda a: a[perm].reshape(num_minibatches, minibatch, *a.shape[1:]), flat)

                def minibatch_step(carry, batch):
                    params, opt_state = carry
                    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), loss

                (params, opt_state), losses = jax.lax.scan(minibatch_step, (params, opt_state), batches)
                return (params, opt_state, rng), losses

            (params, opt_state, rng), losses = jax.lax.scan(epoch_step, (params, opt_state, rng), None, epochs)
            return (params, opt_state, env_state, obs, rng), losses.mean()

        carry = (params, opt_state, env_state, obs, rng)
        (params, *_), losses = jax.lax.scan(update_step, carry, jnp.arange(num_updates))
        return params, losses[-1]

    def evaluate(params, rng, episodes: int):
        """Deterministic (argmax) mean return of ``episodes`` fresh episodes, each run to its end."""
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(rng, episodes), env_params)

        def step(carry, _):
            obs, state, alive, total, rng = carry
            rng, step_rng = jax.random.split(rng)
            logits, _ = network.apply(params, obs)
            obs, state, reward, terminated, truncated, _info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(step_rng, episodes), state, jnp.argmax(logits, -1), env_params)
            done = jnp.logical_or(terminated, truncated)
            total = total + reward * alive
            return (obs, state, alive * (1 - done), total, rng), None

        zeros = jnp.zeros(episodes)
        (_, _, _, total, _), _ = jax.lax.scan(step, (obs, state, zeros + 1, zeros, rng), None,
                                              env_params.max_steps_in_episode)
        return total.mean()

    return train, evaluate, num_updates * rollout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the PPO [agent] table plus total_steps, as JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after the one compile")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=None,
                        help="train this many seeds as one vmapped program (PureJaxRL's NUM_SEEDS)")
    args = parser.parse_args(argv)

    import jax
    import jaxlib

    train, evaluate, env_steps = make_train(json.loads(args.config))
    rng = jax.random.PRNGKey(args.seed)
    if args.seeds is not None:
        return run_seeds(train, evaluate, env_steps, rng, args)
    start = time.perf_counter()
    compiled = jax.jit(train).lower(rng).compile()
    compile_s = time.perf_counter() - start
    runs, cpu = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        params, _loss = jax.block_until_ready(compiled(rng))
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    eval_mean = float(jax.jit(evaluate, static_argnums=2)(params, jax.random.PRNGKey(args.seed + 1_000_000),
                                                           args.eval_episodes))
    print(json.dumps({"seed": args.seed, "compile_s": compile_s, "run_s": runs, "run_cpu_s": cpu,
                      "eval_mean": eval_mean, "env_steps": env_steps, "jax": jax.__version__,
                      "jaxlib": jaxlib.__version__, "backend": jax.default_backend()}))
    return 0


def run_seeds(train, evaluate, env_steps: int, rng, args: argparse.Namespace) -> int:
    """PureJaxRL's multi-seed run: ``jax.jit(jax.vmap(train))(jax.random.split(rng, K))``; prints the JSON line."""
    import jax
    import jaxlib

    rngs = jax.random.split(rng, args.seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(rngs).compile()
    compile_s = time.perf_counter() - start
    runs, cpu = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        params, _loss = jax.block_until_ready(compiled(rngs))
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    evaluate_all = jax.jit(jax.vmap(evaluate, in_axes=(0, None, None)), static_argnums=2)
    eval_means = evaluate_all(params, jax.random.PRNGKey(args.seed + 1_000_000), args.eval_episodes)
    print(json.dumps({"seed": args.seed, "seeds": args.seeds, "compile_s": compile_s, "run_s": runs,
                      "run_cpu_s": cpu, "eval_means": [float(m) for m in eval_means], "env_steps": env_steps,
                      "jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": jax.default_backend()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
