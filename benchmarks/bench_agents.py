"""Benchmark the agents against their targets and against Stable-Baselines3 (PyTorch, CPU).

    python benchmarks/bench_agents.py --sb3-python /tmp/sb3venv/bin/python [--seeds 5] [--sb3-seeds 3]

Measured in one run, on this machine:

* PPO on CartPole-v1, 100,000 steps, two configurations: the RL Zoo's settings
  (``configs/cartpole_ppo.toml``: the same hyperparameters as SB3, so the ratio is framework speed)
  and ``configs/cartpole_ppo_fast.toml`` (32 batched worlds, 5 epochs, lr 2e-3: the same budget of
  env steps, a quarter of the gradient steps). Training wall time per seed and the deterministic evaluation mean over 20
  episodes. The target is a mean >= 475 on every seed and a median wall time at most 1/10 of SB3's
  PPO with the Zoo settings.
* REINFORCE with the book's settings (``configs/cartpole_reinforce.toml``): mean steps per game at
  iteration 20 (and the best iteration up to 20); the target is >= 450 on at least 4 of 5 seeds.
* SB3 PPO (``MlpPolicy``, the same Zoo hyperparameters, ``gymnasium``'s CartPole-v1) runs in a
  subprocess with ``--sb3-python`` (a separate venv: ``pip install stable-baselines3 torch``).

Both sides use one BLAS/torch thread: the networks are tiny, and threads only add synchronisation.
Ours runs in this process; timings cover ``learn`` only (no imports, no evaluation).
The results replace the ``bench_agents`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

from _benchlib import one_compute_thread

one_compute_thread()  # before NumPy loads (see the module docstring)

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

from _benchlib import ROOT, command_line, machine_description, verdict, write_section

from agents.runner import evaluate, make_agent
from rl.experiment import apply_overrides, load_toml

SB3_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
import stable_baselines3
seed, steps, cfg = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
env = make_vec_env("CartPole-v1", n_envs=cfg["num_envs"], seed=seed)
def schedule(start, anneal):
    return (lambda progress_remaining: progress_remaining * start) if anneal else start
activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[cfg["activation"]]
model = PPO("MlpPolicy", env, n_steps=cfg["num_steps"], batch_size=cfg["batch_size"], gae_lambda=cfg["gae_lambda"],
            gamma=cfg["gamma"], n_epochs=cfg["num_epochs"], ent_coef=cfg["ent_coef"], vf_coef=cfg["vf_coef"],
            max_grad_norm=cfg["max_grad_norm"], normalize_advantage=cfg["normalize_advantages"],
            learning_rate=schedule(cfg["lr"], cfg["anneal_lr"]),
            clip_range=schedule(cfg["clip_coef"], cfg["anneal_clip"]),
            policy_kwargs=dict(net_arch=dict(pi=cfg["hidden"], vf=cfg["hidden"]), activation_fn=activation),
            seed=seed, device="cpu", verbose=0)
start = time.perf_counter()
model.learn(steps)
wall = time.perf_counter() - start
eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 1_000_000)
mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
print(json.dumps({"seed": seed, "wall_s": wall, "eval_mean": float(mean), "sb3": stable_baselines3.__version__,
                  "torch": torch.__version__, "env_steps": int(model.num_timesteps)}))
"""

# The [agent] keys of a PPO config that SB3's PPO takes too; the peer gets them from configs/cartpole_ppo.toml,
# so both sides always run the same settings.
SB3_KEYS = ("num_envs", "num_steps", "batch_size", "num_epochs", "gamma", "gae_lambda", "lr", "anneal_lr", "clip_coef",
            "anneal_clip", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantages", "hidden", "activation")


def ppo_config(config_name: str) -> dict:
    """The ``[agent]`` table of ``configs/<config_name>.toml`` plus the run's step budget as ``total_steps``."""
    config = load_toml(ROOT / "configs" / f"{config_name}.toml")
    return {**config["agent"], "total_steps": int(config["experiment"]["total_steps"])}


def ppo_settings_text(cfg: dict) -> str:
    """The settings of a PPO config in words, with the minibatch updates its budget makes (as our PPO counts)."""
    rollout = cfg["num_envs"] * cfg["num_steps"]
    iterations = -(-cfg["total_steps"] // rollout)  # the loop runs while env_steps < total_steps
    updates = iterations * cfg["num_epochs"] * max(1, round(rollout / cfg["batch_size"]))
    lr = f"{'linear ' if cfg.get('anneal_lr') else ''}lr {cfg['lr']:g}"
    clip = f"{'linear ' if cfg.get('anneal_clip') else ''}clip {cfg['clip_coef']:g}"
    return (f"{cfg['num_envs']} envs x {cfg['num_steps']} steps, batch {cfg['batch_size']}, "
            f"{cfg['num_epochs']} epochs, "
            f"gamma {cfg['gamma']:g}, GAE {cfg['gae_lambda']:g}, {lr}, {clip}, {cfg['activation']} "
            f"{'-'.join(map(str, cfg['hidden']))} nets ({updates:,} minibatch updates)")


class _Hooks:
    """Minimal hooks: keep the records, never checkpoint."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.stop_requested = False

    def log(self, record: dict) -> None:
        self.records.append(record)

    def checkpoint_due(self, env_steps: int) -> bool:
        return False

    def save(self, agent: object, tag: str = "latest") -> None:
        pass


def bench_ours_ppo(seed: int, config_name: str = "cartpole_ppo") -> dict:
    path = ROOT / "configs" / f"{config_name}.toml"
    config = apply_overrides(load_toml(path), [f"experiment.seed={seed}", "experiment.device='cpu'"])
    agent = make_agent(config, where=str(path))
    start = time.perf_counter()
    agent.learn(agent.experiment.total_steps, _Hooks())
    wall = time.perf_counter() - start
    return {"seed": seed, "wall_s": wall, "eval_mean": evaluate(agent, episodes=20)["mean_return"],
            "env_steps": agent.env_steps}


def bench_ours_reinforce(seed: int) -> dict:
    config = apply_overrides(load_toml(ROOT / "configs" / "cartpole_reinforce.toml"),
                             [f"experiment.seed={seed}", "experiment.device='cpu'"])
    agent = make_agent(config, where="configs/cartpole_reinforce.toml")
    hooks = _Hooks()
    start = time.perf_counter()
    agent.learn(agent.experiment.total_steps, hooks)
    wall = time.perf_counter() - start
    curve = [r["mean_steps_per_game"] for r in hooks.records if "iteration" in r]
    return {"seed": seed, "wall_s": wall, "at_20": curve[-1], "best_by_20": max(curve[:20]), "iterations": len(curve)}


def bench_sb3(python: str, seed: int, cfg: dict) -> dict:
    """SB3's PPO with the settings of ``cfg`` (a :func:`ppo_config`), in a subprocess of ``python``."""
    settings = json.dumps({k: cfg[k] for k in SB3_KEYS})
    proc = subprocess.run([python, "-c", SB3_CHILD, str(seed), str(cfg["total_steps"]), settings],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"SB3 run failed (seed {seed}): {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _scores(runs: list[dict]) -> str:
    return ", ".join(f"{r['eval_mean']:.1f}" for r in runs)


def _ppo_row(name: str, runs: list[dict]) -> str:
    walls = [r["wall_s"] for r in runs]
    solved = sum(r["eval_mean"] >= 475 for r in runs)
    return (f"| {name} | {len(runs)} | {_scores(runs)} | {solved}/{len(runs)} | {statistics.median(walls):.2f} | "
            f"{min(walls):.2f} / {max(walls):.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sb3-python", help="python of a venv with stable-baselines3 and torch (peer runs)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of our agents (default 5)")
    parser.add_argument("--sb3-seeds", type=int, default=3, help="seeds of SB3 PPO (default 3; it is slow)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    # Ours and SB3 are interleaved seed by seed, so drifting load on a shared machine hits both sides.
    ppo, fast, sb3 = [], [], []
    zoo_cfg, fast_cfg = ppo_config("cartpole_ppo"), ppo_config("cartpole_ppo_fast")
    for s in range(max(args.seeds, args.sb3_seeds if args.sb3_python else 0)):
        if s < args.seeds:
            ppo.append(bench_ours_ppo(s))
            print(f"ours PPO (Zoo settings) seed {s}: {ppo[-1]['wall_s']:.1f} s, eval {ppo[-1]['eval_mean']:.1f}",
                  flush=True)
            fast.append(bench_ours_ppo(s, "cartpole_ppo_fast"))
            print(f"ours PPO (fast config) seed {s}: {fast[-1]['wall_s']:.1f} s, eval {fast[-1]['eval_mean']:.1f}",
                  flush=True)
        if args.sb3_python and s < args.sb3_seeds:
            sb3.append(bench_sb3(args.sb3_python, s, zoo_cfg))
            print(f"SB3 PPO seed {s}: {sb3[-1]['wall_s']:.1f} s, eval {sb3[-1]['eval_mean']:.1f}", flush=True)
    rf = []
    for s in range(args.seeds):
        rf.append(bench_ours_reinforce(s))
        print(f"ours REINFORCE seed {s}: iteration 20 {rf[-1]['at_20']:.1f} steps/game, "
              f"best {rf[-1]['best_by_20']:.1f}, {rf[-1]['wall_s']:.1f} s", flush=True)

    ours_median = statistics.median(r["wall_s"] for r in ppo)
    fast_median = statistics.median(r["wall_s"] for r in fast)
    rf_toml = load_toml(ROOT / "configs" / "cartpole_reinforce.toml")
    rf_cfg, rf_env = rf_toml["agent"], rf_toml["env"]
    rf_ok = sum(r["at_20"] >= 450 for r in rf)
    rf_ok_best = sum(r["best_by_20"] >= 450 for r in rf)
    ppo_ok, fast_ok = sum(r["eval_mean"] >= 475 for r in ppo), sum(r["eval_mean"] >= 475 for r in fast)
    lines = [
        "## bench_agents",
        "",
        f"Machine: {machine_description()}. Command: `{command_line()}`; one BLAS/torch thread "
        f"on both sides; wall times cover training (`learn`) only; ours and SB3 interleaved seed by seed. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"PPO on CartPole-v1, {zoo_cfg['total_steps']:,} env steps each; deterministic evaluation over 20 episodes. "
        f"Zoo settings (`configs/cartpole_ppo.toml`, given to SB3 as well): {ppo_settings_text(zoo_cfg)}. "
        f"Fast config (`configs/cartpole_ppo_fast.toml`, {fast_cfg['total_steps']:,} steps): "
        f"{ppo_settings_text(fast_cfg)}.",
        "",
        "| implementation | seeds | eval mean per seed | seeds >= 475 | median train wall s | min / max s |",
        "|---|---|---|---|---|---|",
        _ppo_row("playgrad PPO, Zoo settings", ppo),
        _ppo_row("playgrad PPO, `cartpole_ppo_fast`", fast),
    ]
    if sb3:
        sb3_median = statistics.median(r["wall_s"] for r in sb3)
        lines.append(
            f"| SB3 {sb3[0]['sb3']} PPO (torch {sb3[0]['torch']}, CPU) | {len(sb3)} | "
            f"{_scores(sb3)} | {sum(r['eval_mean'] >= 475 for r in sb3)}/"
            f"{len(sb3)} | {sb3_median:.2f} | {min(r['wall_s'] for r in sb3):.2f} / "
            f"{max(r['wall_s'] for r in sb3):.2f} |")
        solve_ratio = fast_median / sb3_median
        # "Time to solve" counts only if the fast config did solve: every seed at >= 475.
        solve_verdict = (verdict(solve_ratio, 0.1) if fast_ok == len(fast)
                         else f"missed ({len(fast) - fast_ok} fast-config seed(s) below 475)")
        lines += ["", f"Median wall-time ratio playgrad / SB3 (Zoo settings on both: framework speed): "
                      f"**{ours_median / sb3_median:.3f}**. Time to solve, playgrad's fast config / SB3 with "
                      f"the Zoo settings: **{solve_ratio:.3f}**, target {solve_verdict}. SB3 ran "
                      f"{len(sb3)} seeds."]
    else:
        lines += ["", "SB3 was not run (no `--sb3-python`), so there is no ratio in this run."]
    lines += ["", f"Every seed at >= 475: Zoo settings {ppo_ok}/{len(ppo)}, fast config {fast_ok}/{len(fast)} "
                  f"(target {'met' if ppo_ok == len(ppo) and fast_ok == len(fast) else 'missed'})."]
    lines += [
        "",
        f"REINFORCE, the book's cart-pole settings (`configs/cartpole_reinforce.toml`: {rf_cfg['iterations']} "
        f"iterations x {rf_cfg['games_per_iteration']} games, <= {rf_env['max_steps']} steps, gamma "
        f"{rf_cfg['gamma']:g}, Adam {rf_cfg['lr']:g}, {rf_env['variant']} start states):",
        "",
        "| seed | mean steps per game at iteration 20 | best iteration <= 20 | train wall s |",
        "|---|---|---|---|",
        *(f"| {r['seed']} | {r['at_20']:.1f} | {r['best_by_20']:.1f} | {r['wall_s']:.2f} |" for r in rf),
        "",
        f"Seeds with >= 450 steps per game at iteration 20: **{rf_ok}/{len(rf)}** (reached by iteration 20: "
        f"{rf_ok_best}/{len(rf)}); target at least 4 of 5 seeds (80%): "
        f"{'met' if rf_ok >= math.ceil(0.8 * len(rf)) else 'missed'}.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("bench_agents", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
