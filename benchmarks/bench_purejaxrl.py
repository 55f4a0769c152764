"""playgrad's PPO training loop beside PureJaxRL's compiled loop, at equal hyperparameters.

    python benchmarks/bench_purejaxrl.py --jax-python /tmp/benchvenv/bin/python [--rounds 3] [--repeats 2]

The peer (``benchmarks/purejaxrl_ppo_peer.py``) is PPO written after PureJaxRL's ``ppo.py``: the whole
run, env steps on gymnax CartPole-v1 included, is one ``jax.jit``-compiled program. It runs in a separate
venv (``pip install jax jaxlib gymnax optax flax``; never a dependency of playgrad), in a subprocess with
one XLA compute thread. Both sides get the settings of ``configs/cartpole_ppo_fast.toml`` (read from the
file, so they cannot drift apart) and the same env-step budget.

Each round runs the peer (one compile, then ``--repeats`` timed runs of the compiled program) and then
playgrad (``--repeats`` training runs of a fresh agent, in this process, one BLAS thread), alternating, so
the load of a shared machine falls on both. Reported, as medians over all runs:

* the loop: playgrad's ``agent.learn`` vs the compiled program's run after compile (wall and process CPU
  seconds); the issue's target is playgrad within 2x of the peer;
* the loop without playgrad's compiled kernels (``rl/_fused.py``, numba; one run per round with
  ``rl._fused.disabled()``): what an install without numba runs;
* compile: the peer's lowering plus XLA compile; playgrad's numba import and kernel load from numba's
  cache (and, reported beside it, their first compile with an empty cache), measured in fresh processes
  (``kernel_load_s``);
* end to end: compile + loop for each side (agent construction and other imports are left out on both
  sides); and the step budget at which the peer's compile is paid back, from the measured per-step loop
  costs;
* learning: each side's deterministic mean return over 20 episodes of the final policy (475+ is solved);
* where playgrad's loop time goes (one more run, after the timed ones): process CPU seconds of its parts
  (the env's step, the episode tracker, the rest of collection, GAE, the update's forward and loss, its
  backward, the optimizer, logging), the graph nodes built per minibatch and per env step, and the same
  minibatch written as the NumPy calls it makes with no autograd objects (the kernel floor; the rest of
  playgrad's minibatch is Python dispatch).

The results replace the ``bench_purejaxrl`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import os

from _benchlib import one_compute_thread

one_compute_thread()  # before NumPy loads (see the module docstring)

import argparse
import collections
import contextlib
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _benchlib import ROOT, command_line, machine_description, verdict, write_section
from bench_agents import _Hooks, ppo_config, ppo_settings_text

from agents.runner import evaluate, make_agent
from rl import _fused
from rl.experiment import apply_overrides, load_toml

CONFIG = "cartpole_ppo_fast"
# One compute thread for XLA (its Eigen pool and its intra-op pool), as playgrad gets one BLAS thread.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def run_peer(python: str, cfg: dict, seed: int, repeats: int) -> dict:
    """One peer process: compile once, run ``repeats`` times; its JSON line as a dict."""
    env = {**os.environ, "XLA_FLAGS": XLA_ONE_THREAD, "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [python, str(ROOT / "benchmarks" / "purejaxrl_ppo_peer.py"), json.dumps(cfg), "--seed", str(seed),
           "--repeats", str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_purejaxrl: the JAX peer failed ({python}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_ours(seed: int, total_steps: int):
    """A fresh playgrad PPO agent for the config, on the CPU."""
    path = ROOT / "configs" / f"{CONFIG}.toml"
    config = apply_overrides(load_toml(path), [f"experiment.seed={seed}", "experiment.device='cpu'",
                                               f"experiment.total_steps={total_steps}"])
    return make_agent(config, where=str(path))


def run_ours(seed: int, total_steps: int, kernels: bool = True) -> dict:
    """One playgrad training run of the config (fresh agent); wall and CPU seconds of ``learn``.

    ``kernels=False`` runs the NumPy path (``rl._fused.disabled()``: what a install without numba runs).
    """
    agent = make_ours(seed, total_steps)
    start, cpu_start = time.perf_counter(), time.process_time()
    with contextlib.nullcontext() if kernels else _fused.disabled():
        agent.learn(total_steps, _Hooks())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"wall_s": wall, "cpu_s": cpu, "eval_mean": evaluate(agent, episodes=20)["mean_return"],
            "env_steps": agent.env_steps}


def profile_ours(seed: int, total_steps: int) -> dict:
    """One more playgrad run with process-CPU meters around the parts of its loop, and graph-node counts.

    Returns ``{"parts": {name: cpu_s}, "total_cpu_s", "minibatches", "env_steps", "nodes_per_minibatch",
    "nodes_per_env_step"}``; the meters wrap the agent's own methods (its ``_collect`` and ``_update``,
    the vector env's and tracker's ``step``, ``gae``, the optimizer's ``step``, ``Tensor.backward``)
    and are removed with the agent.
    """
    tensor_module = importlib.import_module("rl.tensor")
    ppo_module = importlib.import_module("agents.ppo")
    agent = make_ours(seed, total_steps)
    hooks = _Hooks()
    cpu = collections.defaultdict(float)
    calls = collections.Counter()
    nodes = collections.Counter()
    phase = [None]  # the agent method running now, for the node counts

    def meter(owner, name, key, counts_nodes=False):
        method = getattr(owner, name)

        def metered(*args, **kwargs):
            if counts_nodes:
                phase[0] = key
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                cpu[key] += time.process_time() - start
                calls[key] += 1
        setattr(owner, name, metered)
        return method

    apply = tensor_module.Function.__dict__["apply"]

    def counting_apply(cls, *inputs, **params):
        nodes[phase[0]] += 1
        return apply.__func__(cls, *inputs, **params)

    meter(agent, "_collect", "collect", counts_nodes=True)
    meter(agent, "_update", "update", counts_nodes=True)
    meter(agent.envs, "step", "env step")
    meter(agent.tracker, "step", "episode tracker")
    meter(agent.optimizer, "step", "optimizer step")
    meter(hooks, "log", "logging")
    gae = meter(ppo_module, "gae", "gae")
    backward = meter(tensor_module.Tensor, "backward", "backward")
    tensor_module.Function.apply = classmethod(counting_apply)
    try:
        start = time.process_time()
        agent.learn(total_steps, hooks)
        total = time.process_time() - start
    finally:
        tensor_module.Function.apply = apply
        tensor_module.Tensor.backward = backward
        ppo_module.gae = gae
    minibatches = calls["optimizer step"]
    parts = {
        "env step (envs/, CartPole's batched core)": cpu["env step"],
        "episode tracker (agents/episodes.py)": cpu["episode tracker"],
        "rest of collect: policy and value forward, sampling, log-probs, buffer writes":
            cpu["collect"] - cpu["env step"] - cpu["episode tracker"],
        "GAE": cpu["gae"],
        "update: minibatch gathering, forward passes and losses, statistics":
            cpu["update"] - cpu["backward"] - cpu["optimizer step"],
        "update: backward": cpu["backward"],
        "update: optimizer step (global-norm clip + Adam on one flat buffer)": cpu["optimizer step"],
        "logging (hooks.log) and the loop itself": total - cpu["collect"] - cpu["gae"] - cpu["update"],
    }
    return {"parts": parts, "total_cpu_s": total, "minibatches": minibatches, "env_steps": agent.env_steps,
            "update_cpu_s": cpu["update"], "nodes_per_minibatch": nodes["update"] / max(minibatches, 1),
            "nodes_per_env_step": nodes["collect"] / max(agent.env_steps / agent.config.num_envs, 1)}


_LOAD_PROBE = """
import sys, time
sys.path[:0] = [{root!r}, {bench!r}]
import bench_purejaxrl as b
agent = b.make_ours(0, 2048)
start = time.perf_counter()
agent.learn(2048, b._Hooks())
print(time.perf_counter() - start)
"""


def kernel_load_s() -> dict | None:
    """What the compiled kernels cost before they run: two iterations of PPO (2,048 steps) in fresh processes,
    with numba's cache emptied, then with it filled, then with the kernels off (``PLAYGRAD_FUSED=0``).

    Returns ``{"compile_s", "load_s"}`` (cold minus off: import numba and compile every kernel; warm minus
    off: import numba and load the cached kernels), or None without numba.
    """
    if _fused.kernels() is None:
        return None
    code = _LOAD_PROBE.format(root=str(ROOT), bench=str(ROOT / "benchmarks"))
    with tempfile.TemporaryDirectory() as cache:
        times = {}
        for name, extra in (("cold", {"NUMBA_CACHE_DIR": cache}), ("warm", {"NUMBA_CACHE_DIR": cache}),
                            ("off", {"PLAYGRAD_FUSED": "0"})):
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **extra}
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            times[name] = float(done.stdout.strip().splitlines()[-1])
    return {"compile_s": max(times["cold"] - times["off"], 0.0), "load_s": max(times["warm"] - times["off"], 0.0)}


def numpy_floor_minibatch_s(cfg: dict, repeats: int = 15) -> float:
    """CPU seconds of one PPO minibatch of the config written as plain NumPy calls (no Tensors, no graph).

    The same kernels playgrad's minibatch runs, in the same dtype and shapes: both MLPs forward and
    backward (fused bias + tanh), the categorical log-prob, the clipped surrogate and value loss with
    advantage normalization, the global-norm clip and Adam on one flat buffer. What playgrad spends
    beyond this is Python dispatch: tensors, graph nodes, layers, the backward walk. Best of ``repeats``
    passes over 5 epochs of 4 minibatches.
    """
    rng = np.random.default_rng(0)
    f32, batch, (h1, h2) = np.float32, cfg["batch_size"], cfg["hidden"]
    rows = cfg["num_envs"] * cfg["num_steps"]

    def net(out: int) -> list:
        return [rng.standard_normal(s, dtype=f32) * 0.1 for s in [(4, h1), (h1,), (h1, h2), (h2,), (h2, out), (out,)]]
    policy, value = net(2), net(1)
    size = sum(w.size for w in policy + value)
    flat, m, v, tmp, grad = (np.zeros(size, f32) for _ in range(5))
    obs, actions = rng.standard_normal((rows, 4), dtype=f32), rng.integers(0, 2, rows)
    old_logp, advantages, returns = (rng.standard_normal(rows, dtype=f32) for _ in range(3))

    def forward(w, x):
        a = np.tanh(x @ w[0] + w[1])
        b = np.tanh(a @ w[2] + w[3])
        return a, b, b @ w[4] + w[5]

    def backward(w, x, a, b, g):
        gw = [b.T @ g, g.sum(0)]
        g = (g @ w[4].T) * (1 - b * b)
        gw = [a.T @ g, g.sum(0), *gw]
        g = (g @ w[2].T) * (1 - a * a)
        return [x.T @ g, g.sum(0), *gw]

    def minibatch(mb, clip=0.2):
        x = obs[mb]
        a, b, logits = forward(policy, x)
        shifted = logits - logits.max(1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        picked = np.arange(len(mb)), actions[mb]
        adv = advantages[mb]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = np.exp(log_probs[picked] - old_logp[mb])
        s1, s2 = ratio * -adv, np.clip(ratio, 1 - clip, 1 + clip) * -adv
        first = s1 >= s2
        (np.where(first, s1, s2)).mean()
        va, vb, values = forward(value, x)
        diff = values.reshape(-1) - returns[mb]
        (diff ** 2).mean()
        g_ratio = np.where(first, -adv, -adv * (ratio == np.clip(ratio, 1 - clip, 1 + clip))) / len(mb)
        g_logits = np.zeros_like(log_probs)
        g_logits[picked] = g_ratio * ratio
        g_logits -= np.exp(log_probs) * g_logits.sum(1, keepdims=True)
        g_values = (diff * (2 * cfg["vf_coef"] / len(mb))).reshape(-1, 1)
        grads = backward(policy, x, a, b, g_logits) + backward(value, x, va, vb, g_values)
        np.concatenate([g.reshape(-1) for g in grads], out=grad)
        norm = np.sqrt(grad @ grad)
        if norm > cfg["max_grad_norm"]:
            np.multiply(grad, cfg["max_grad_norm"] / norm, out=grad)
        np.multiply(m, 0.9, out=m)  # Adam, as rl.optimizers runs it: whole-buffer ops into scratch
        np.multiply(grad, 0.1, out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, 0.999, out=v)
        np.multiply(grad, grad, out=tmp)
        np.multiply(tmp, 0.001, out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, 1e-5, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, cfg["lr"], out=tmp)
        np.subtract(flat, tmp, out=flat)

    num_minibatches = max(1, round(rows / batch))
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _epoch in range(cfg["num_epochs"]):
            for mb in np.array_split(rng.permutation(rows), num_minibatches):
                minibatch(mb)
        best = min(best, time.process_time() - start)
    return best / (cfg["num_epochs"] * num_minibatches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jax-python", required=True, help="python of a venv with jax, gymnax, optax and flax")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the peer compiles once per round)")
    parser.add_argument("--repeats", type=int, default=2, help="timed training runs per side per round")
    parser.add_argument("--seed", type=int, default=0, help="the seed of round 0 (round i uses seed + i)")
    parser.add_argument("--total-steps", type=int, default=None, help="env-step budget (default: the config's)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    if not Path(args.jax_python).exists():
        parser.error(f"--jax-python {args.jax_python} does not exist")

    cfg = ppo_config(CONFIG)
    if args.total_steps is not None:
        cfg["total_steps"] = args.total_steps
    peers, ours, plain = [], [], []  # plain: playgrad's NumPy path (kernels off), one run per round
    kernels_on = _fused.kernels() is not None
    for i in range(args.rounds):
        seed = args.seed + i
        peer = run_peer(args.jax_python, cfg, seed, args.repeats)
        peers.append(peer)
        print(f"round {i}: peer compile {peer['compile_s']:.2f} s, runs {[round(r, 3) for r in peer['run_s']]} s, "
              f"eval {peer['eval_mean']:.1f}", flush=True)
        for _ in range(args.repeats):
            ours.append({"seed": seed, **run_ours(seed, cfg["total_steps"])})
        print(f"round {i}: playgrad runs {[round(r['wall_s'], 3) for r in ours[-args.repeats:]]} s, "
              f"eval {ours[-1]['eval_mean']:.1f}", flush=True)
        if kernels_on:
            plain.append({"seed": seed, **run_ours(seed, cfg["total_steps"], kernels=False)})
            print(f"round {i}: playgrad NumPy path {plain[-1]['wall_s']:.3f} s, eval {plain[-1]['eval_mean']:.1f}",
                  flush=True)

    loads = kernel_load_s()
    if loads is not None:
        print(f"kernels: compile {loads['compile_s']:.2f} s with an empty cache, load {loads['load_s']:.2f} s cached",
              flush=True)
    profile = profile_ours(args.seed, cfg["total_steps"])
    floor_s = numpy_floor_minibatch_s(cfg)
    print(f"profile: {profile['total_cpu_s']:.2f} CPU s, numpy floor {floor_s * 1e6:.0f} us per minibatch", flush=True)

    med = statistics.median
    peer_loop = med(r for p in peers for r in p["run_s"])
    peer_loop_cpu = med(r for p in peers for r in p["run_cpu_s"])
    peer_compile = med(p["compile_s"] for p in peers)
    our_loop, our_loop_cpu = med(r["wall_s"] for r in ours), med(r["cpu_s"] for r in ours)
    loop_ratio, cpu_ratio = our_loop / peer_loop, our_loop_cpu / peer_loop_cpu
    plain_wall = med(r["wall_s"] for r in plain) if plain else 0.0
    plain_cpu = med(r["cpu_s"] for r in plain) if plain else 0.0
    our_load = loads["load_s"] if loads else 0.0  # numba's import and cached kernels: once per process
    end_to_end_ratio = (our_load + our_loop) / (peer_compile + peer_loop)
    steps = ours[0]["env_steps"]
    # Per-step loop costs decide where the peer's one-off compile is paid back (its compile does not grow
    # with the budget: the loop is a lax.scan).
    extra_per_step = (our_loop - peer_loop) / steps
    break_even = (peer_compile - our_load) / extra_per_step if extra_per_step > 0 else float("inf")
    solved_ours = sum(r["eval_mean"] >= 475 for r in ours)
    solved_peer = sum(p["eval_mean"] >= 475 for p in peers)
    p0 = peers[0]

    def returns(runs: list[dict]) -> str:
        return ", ".join(f"{r['eval_mean']:.0f}" for r in runs)
    load = os.getloadavg()[0]

    lines = [
        "## PPO training loop vs PureJaxRL's compiled loop (`benchmarks/bench_purejaxrl.py`)",
        "",
        f"Machine: {machine_description()}; one compute thread each side (OpenBLAS 1 thread; XLA_FLAGS "
        f"`{XLA_ONE_THREAD}`). 1-minute load average at the end: {load:.1f} (other work shares the cores: "
        "wall times move, ratios come from alternating rounds). "
        f"Command: `{command_line()}`.",
        "",
        f"Both sides: `configs/{CONFIG}.toml`: {ppo_settings_text(cfg)}, {steps:,} env steps. "
        f"Peer: `benchmarks/purejaxrl_ppo_peer.py`, PureJaxRL's `ppo.py` structure (the whole run in one `jax.jit`: "
        f"`lax.scan` over iterations, env steps, epochs and minibatches; gymnax CartPole-v1; flax + optax), "
        f"JAX {p0['jax']} on {p0['backend']}. {args.rounds} rounds x {args.repeats} runs per side "
        f"(the peer compiles once per round); medians.",
        "",
        "| | playgrad | PureJaxRL-style JAX | playgrad / peer |",
        "| --- | ---: | ---: | ---: |",
        f"| training loop, wall s (peer: after compile) | {our_loop:.2f} | {peer_loop:.2f} | "
        f"**{loop_ratio:.2f}x** ({verdict(loop_ratio, 2.0)}) |",
        f"| training loop, process CPU s | {our_loop_cpu:.2f} | {peer_loop_cpu:.2f} | {cpu_ratio:.2f}x |",
        *([f"| training loop without the compiled kernels (NumPy path, as without numba), wall / CPU s | "
           f"{plain_wall:.2f} / {plain_cpu:.2f} | | {plain_wall / peer_loop:.2f}x / {plain_cpu / peer_loop_cpu:.2f}x |"]
          if plain else []),
        (f"| compile, wall s (playgrad: numba import + loading its cached kernels; {loads['compile_s']:.2f} s "
         f"the first time, empty cache) | {our_load:.2f} | {peer_compile:.2f} | |" if loads else
         f"| compile, wall s | 0 (numba not installed: NumPy path) | {peer_compile:.2f} | |"),
        f"| end to end (compile + loop), wall s | {our_load + our_loop:.2f} | {peer_compile + peer_loop:.2f} | "
        f"**{end_to_end_ratio:.2f}x** ({verdict(end_to_end_ratio, 1.0)}) |",
        f"| final deterministic mean return, 20 episodes | {returns(ours)} | {returns(peers)} | |",
        "",
        f"Solved (>= 475): playgrad {solved_ours}/{len(ours)} runs, peer {solved_peer}/{len(peers)} "
        "(the peer's repeats of one round are the same seed and compiled program: one result per round). ",
        (f"From the measured loop costs, the peer's compile is paid back after about {break_even:,.0f} env steps "
         f"of this config ({break_even / steps:.1f}x this budget): below that playgrad finishes first end to end."
         if extra_per_step > 0 else "playgrad's loop is not slower than the peer's: it finishes first at any budget."),
    ]
    total = profile["total_cpu_s"]
    minibatches, steps_per_world = profile["minibatches"], profile["env_steps"] / cfg["num_envs"]
    update_per_minibatch = profile["update_cpu_s"] / max(minibatches, 1)
    collect_s = sum(cpu_s for name, cpu_s in profile["parts"].items() if not name.startswith("update"))
    bound_s = floor_s * minibatches + collect_s
    lines += [
        "",
        f"Where playgrad's loop goes (one more run of seed {args.seed} with CPU meters around its parts, "
        f"{total:.2f} process CPU s in all; {minibatches:,} minibatch updates, {steps_per_world:,.0f} steps "
        f"of {cfg['num_envs']} worlds):",
        "",
        "| part | CPU s | share |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {cpu_s:.2f} | {100 * cpu_s / total:.0f}% |" for name, cpu_s in profile["parts"].items()),
        "",
        f"Graph nodes built: {profile['nodes_per_minibatch']:.1f} per minibatch update (each network's MLP is one "
        "node, `rl.functional.dense_stack`; PPO's clipped surrogate one, `rl.losses.clipped_surrogate`; the "
        f"value MSE one), {profile['nodes_per_env_step']:.1f} per step of the {cfg['num_envs']} worlds (the "
        "rollout's forward passes run on raw arrays: `rl.layers.forward_array`). "
        f"One minibatch update costs {update_per_minibatch * 1e6:.0f} CPU us in playgrad"
        f"{' (compiled kernels on)' if kernels_on else ''}; the same minibatch as plain NumPy calls (no tensors, "
        f"no graph, no compiled kernels: `numpy_floor_minibatch_s`) costs {floor_s * 1e6:.0f} us. The peer's "
        f"whole loop, env steps included, is {peer_loop_cpu / minibatches * 1e6:.0f} CPU us per minibatch update. "
        f"Plain NumPy for the {minibatches:,} updates ({floor_s * minibatches:.2f} CPU s) plus the rest of the "
        f"loop as measured above (collection, GAE, logging: {collect_s:.2f} s) is {bound_s:.2f} s, "
        f"{bound_s / peer_loop_cpu:.1f}x the peer's whole loop: the floor of a NumPy-only engine here.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_purejaxrl", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
