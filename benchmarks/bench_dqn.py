"""Benchmark the value-based agents on the CPU and write section ``bench_dqn`` of docs/benchmarks.md.

1. DQN on CartPole-v1 with RL Zoo's settings (``configs/cartpole_dqn.toml``, 50k frames) and with
   ``configs/cartpole_dqn_fast.toml`` (same budget, batched worlds, a quarter of the updates) for several
   seeds: training wall time and a deterministic evaluation (mean return of 10 episodes, target 475).
   The peer is Stable-Baselines3's DQN on PyTorch (CPU) with the config's settings (its own Huber loss), on Gymnasium's
   CartPole-v1, run as a subprocess with the python of a separate venv (``--sb3-python``; SB3 is not
   a playgrad dependency). Both run with one BLAS/torch thread: tiny networks gain nothing from a
   second thread, and on a loaded 2-core machine oversubscribed BLAS threads slow both down ~10x.
2. DQN on the book's snake with ``configs/snake_dqn_small.toml``: frames and wall time until the mean
   reward of the last 100 games reaches the config's ``target_return`` (30).
3. The MetaCar level0 Q-table (``configs/metacar_level0_qtable.toml``, the config's frames): share
   of greedy evaluation episodes from shuffled starts that drive 800 steps without a crash.

    python benchmarks/bench_dqn.py                       # everything (~10-15 min on 2 cores)
    python benchmarks/bench_dqn.py --seeds 0 1 --skip-snake --sb3-seeds 0
    python benchmarks/bench_dqn.py --no-write            # print, do not touch docs/benchmarks.md

Set up the peer once: ``python3 -m venv /tmp/sb3venv_dqn && /tmp/sb3venv_dqn/bin/pip install
stable-baselines3 torch`` (a local torch wheel makes it fast).
"""

from __future__ import annotations

import os

from _benchlib import one_compute_thread

one_compute_thread()  # before NumPy loads (see the module docstring)

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _benchlib import ROOT, command_line, machine_description, median_time, verdict, write_section

from agents import dqn, qtable
from agents.base import ExperimentConfig
from agents.runner import evaluate
from rl.experiment import dataclass_from_dict, load_toml

SB3_SCRIPT = r"""
import json, sys, time
import gymnasium as gym, torch
from stable_baselines3 import DQN
torch.set_num_threads(1)
seed, episodes, steps, cfg = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
env = gym.make("CartPole-v1")
# The settings of configs/cartpole_dqn.toml (RL Zoo hyperparams/dqn.yml, CartPole-v1); the loss stays SB3's Huber.
model = DQN("MlpPolicy", env, learning_rate=cfg["lr"], batch_size=cfg["batch_size"], buffer_size=cfg["buffer_size"],
            learning_starts=cfg["learning_starts"], gamma=cfg["gamma"],
            target_update_interval=cfg["target_update_interval"], train_freq=cfg["train_freq"],
            gradient_steps=cfg["gradient_steps"], exploration_fraction=cfg["exploration_fraction"],
            exploration_initial_eps=cfg["epsilon_start"], exploration_final_eps=cfg["epsilon_final"],
            max_grad_norm=cfg["max_grad_norm"], policy_kwargs=dict(net_arch=cfg["hidden_sizes"]), seed=seed,
            device="cpu", verbose=0)
start = time.perf_counter()
model.learn(steps)
train_s = time.perf_counter() - start
returns = []
for ep in range(episodes):
    eval_env = gym.make("CartPole-v1")
    obs, _ = eval_env.reset(seed=1_000_000 + ep)
    done, total = False, 0.0
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = eval_env.step(action)
        total += reward
        done = terminated or truncated
    returns.append(total)
import stable_baselines3
print(json.dumps({"seed": seed, "train_s": train_s, "returns": returns, "sb3": stable_baselines3.__version__,
                  "torch": torch.__version__}))
"""


# The [agent] keys of configs/cartpole_dqn.toml that SB3's DQN is given, so both sides run the same settings.
SB3_KEYS = ("lr", "batch_size", "buffer_size", "learning_starts", "gamma", "target_update_interval", "train_freq",
            "gradient_steps", "exploration_fraction", "epsilon_start", "epsilon_final", "max_grad_norm", "hidden_sizes")


class BenchHooks:
    """Hooks for a bare ``learn``: counts episodes, stops once the 100-game mean reaches ``target``."""

    def __init__(self, target: float | None = None, window: int = 100):
        self.returns: list[float] = []
        self.target, self.window = target, window
        self.reached_at: int | None = None

    def log(self, record):
        if "episode_return" in record:
            self.returns.append(float(record["episode_return"]))
            if (self.target is not None and self.reached_at is None and len(self.returns) >= self.window
                    and np.mean(self.returns[-self.window:]) >= self.target):
                self.reached_at = int(record["env_steps"])

    def checkpoint_due(self, env_steps):
        return False

    def save(self, agent, tag="latest"):
        pass

    @property
    def stop_requested(self):
        return self.reached_at is not None


def build(module, config_path: Path, seed: int, overrides: dict | None = None):
    config = load_toml(config_path)
    experiment = dataclass_from_dict(ExperimentConfig, {**config["experiment"], "seed": seed, "env": config["env"]})
    agent_cfg = dataclass_from_dict(module.Config, {**config["agent"], **(overrides or {})})
    return module.Agent(agent_cfg, experiment), experiment


def bench_cartpole(seeds: list[int], episodes: int, config: str = "cartpole_dqn") -> list[dict]:
    rows = []
    for seed in seeds:
        agent, experiment = build(dqn, ROOT / "configs" / f"{config}.toml", seed)
        start = time.perf_counter()
        agent.learn(experiment.total_steps, BenchHooks())
        train_s = time.perf_counter() - start
        result = evaluate(agent, episodes=episodes)
        rows.append({"seed": seed, "train_s": train_s, "returns": result["returns"], "updates": agent.updates})
        print(f"  playgrad {config} seed {seed}: {train_s:.1f} s, eval mean {np.mean(result['returns']):.1f}",
              flush=True)
    return rows


def matmul_floor_s(updates: int) -> float:
    """Seconds the bare float32 matmuls of ``updates`` Zoo-sized DQN updates take in NumPy (no autograd,
    no optimizer): target and online forward on a batch of 64 through 4-256-256-2, and the backward's
    weight and input gradients. A floor no implementation on the same BLAS thread can go below."""
    rng = np.random.default_rng(0)
    w = [rng.standard_normal(s).astype(np.float32) for s in ((4, 256), (256, 256), (256, 2))]
    x = rng.standard_normal((64, 4)).astype(np.float32)

    def one_update():
        for _ in range(2):  # target net, online net
            h1 = x @ w[0]
            h2 = h1 @ w[1]
            q = h2 @ w[2]
        g2 = q @ w[2].T
        _ = h2.T @ q, h1.T @ g2, x.T @ (g2 @ w[1].T)

    return median_time(one_update, repeats=7, inner=200) * updates


def bench_sb3(python: str, seeds: list[int], episodes: int) -> tuple[list[dict], str | None]:
    if not Path(python).exists():
        return [], f"{python} not found (create the SB3 venv, see the module docstring)"
    config = load_toml(ROOT / "configs" / "cartpole_dqn.toml")
    settings = json.dumps({k: config["agent"][k] for k in SB3_KEYS})
    steps = str(config["experiment"]["total_steps"])
    rows = []
    for seed in seeds:
        proc = subprocess.run([python, "-c", SB3_SCRIPT, str(seed), str(episodes), steps, settings],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            return rows, f"SB3 run failed: {proc.stderr.strip().splitlines()[-1:]}"
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  SB3 seed {seed}: {row['train_s']:.1f} s, eval mean {np.mean(row['returns']):.1f}", flush=True)
    return rows, None


def bench_snake(seed: int) -> dict:
    """Train ``configs/snake_dqn_small.toml`` until the 100-game mean reaches its ``target_return``."""
    path = ROOT / "configs" / "snake_dqn_small.toml"
    target = float(load_toml(path)["experiment"]["target_return"])
    agent, experiment = build(dqn, path, seed)
    hooks = BenchHooks(target=target)
    start = time.perf_counter()
    agent.learn(experiment.total_steps, hooks)
    wall_s = time.perf_counter() - start
    out = {"seed": seed, "target": target, "wall_s": wall_s, "frames": agent.env_steps, "reached_at": hooks.reached_at,
           "games": len(hooks.returns), "mean100": float(np.mean(hooks.returns[-100:])), "updates": agent.updates}
    print(f"  snake seed {seed}: {out}", flush=True)
    return out


def bench_qtable(seeds: list[int], episodes: int) -> list[dict]:
    rows = []
    for seed in seeds:
        agent, experiment = build(qtable, ROOT / "configs" / "metacar_level0_qtable.toml", seed)
        start = time.perf_counter()
        agent.learn(experiment.total_steps, BenchHooks())
        train_s = time.perf_counter() - start
        result = qtable.crash_free_rate(agent, episodes=episodes)
        rows.append({"seed": seed, "train_s": train_s, "frames": agent.env_steps, **result})
        print(f"  qtable seed {seed}: {train_s:.1f} s, crash-free {result['crash_free']}/{episodes}", flush=True)
    return rows


def markdown(args, ours, fast, sb3, sb3_error, snake, qt, load_before, load_after, floor_s) -> str:
    lines = ["## DQN and tabular Q-learning (benchmarks/bench_dqn.py)", "",
             f"Machine: {machine_description()}. One BLAS/torch thread for both sides. "
             f"Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} "
             "(other jobs were sharing the machine when it was higher than ~1).", ""]
    lines += ["### CartPole-v1, RL Zoo DQN settings, 50,000 frames", "",
              "| implementation | seed | train wall time (s) | deterministic eval, mean of 10 | >= 475 |",
              "|---|---|---|---|---|"]
    for name, rows in (("playgrad, Zoo settings", ours), ("playgrad, `cartpole_dqn_fast`", fast)):
        for r in rows:
            m = float(np.mean(r["returns"]))
            ok = "yes" if m >= 475 else "no"
            lines.append(f"| {name} | {r['seed']} | {r['train_s']:.1f} | {m:.1f} | {ok} |")
    for r in sb3:
        m = float(np.mean(r["returns"]))
        lines.append(f"| SB3 {r['sb3']} / torch {r['torch']} (CPU) | {r['seed']} | {r['train_s']:.1f} | {m:.1f} | "
                     f"{'yes' if m >= 475 else 'no'} |")
    passed = sum(float(np.mean(r["returns"])) >= 475 for r in ours)
    ours_med = statistics.median(r["train_s"] for r in ours) if ours else float("nan")
    fast_passed = sum(float(np.mean(r["returns"])) >= 475 for r in fast)
    fast_med = statistics.median(r["train_s"] for r in fast) if fast else float("nan")
    fc = load_toml(ROOT / "configs" / "cartpole_dqn_fast.toml")["agent"]
    zoo_loss = load_toml(ROOT / "configs" / "cartpole_dqn.toml")["agent"]["loss"]
    enough = math.ceil(0.8 * len(ours)) if ours else 1
    lines += ["", f"playgrad, Zoo settings: {passed} of {len(ours)} seeds evaluate >= 475; target 4 of 5 (80%): "
              f"{'met' if ours and passed >= enough else 'missed'}; median train time {ours_med:.1f} s. "
              f"`cartpole_dqn_fast` ({fc['num_envs']} batched worlds, "
              f"{'-'.join(map(str, fc['hidden_sizes']))} net, {fc['gradient_steps']} updates of batch "
              f"{fc['batch_size']} per {fc['train_freq']} frames): {fast_passed} of {len(fast)}; "
              f"median {fast_med:.1f} s."]
    if sb3:
        sb3_med = statistics.median(r["train_s"] for r in sb3)
        solve = fast_med / sb3_med
        fast_solved = bool(fast) and fast_passed >= math.ceil(0.8 * len(fast))
        solve_verdict = verdict(solve, 0.2) if fast_solved else "missed (the fast config solved < 80% of its seeds)"
        lines.append(f"SB3 (Zoo settings): median train time {sb3_med:.1f} s over {len(sb3)} seed(s). "
                     f"Wall-time ratio playgrad / SB3 with the same settings (except the loss: {zoo_loss} here, "
                     f"SB3's Huber) = **{ours_med / sb3_med:.2f}**; time to solve with `cartpole_dqn_fast` / SB3 = "
                     f"**{solve:.2f}**, target {solve_verdict}. Ours and SB3 ran interleaved seed by seed.")
    else:
        lines.append(f"SB3 was not measured: {sb3_error}.")
    if ours:
        updates = ours[0]["updates"]
        lines.append(f"For scale: the bare NumPy matmuls of those {updates:,} updates (batch 64, 4-256-256-2, "
                     f"forward of both nets and the backward) take {floor_s:.1f} s on one thread, measured alone; "
                     "the rest of playgrad's time is autograd, Adam, replay and 50,000 acting steps.")
    if snake is not None:
        lines += ["", "### Snake 9x9 (the book's game), configs/snake_dqn_small.toml", ""]
        if snake["reached_at"] is not None:
            lines.append(f"Seed {snake['seed']}: the 100-game mean reward reached {snake['target']:g} after "
                         f"**{snake['reached_at']:,} frames** ({snake['games']:,} games, {snake['updates']:,} "
                         f"gradient steps) in **{snake['wall_s']:.0f} s** of CPU wall time.")
        else:
            lines.append(f"Seed {snake['seed']}: did NOT reach a 100-game mean of {snake['target']:g} within "
                         f"{snake['frames']:,} frames "
                         f"({snake['wall_s']:.0f} s); last 100-game mean {snake['mean100']:.1f}.")
        lines.append("The book's own network and settings (configs/snake_dqn.toml, 1.12 M weights, one batch per "
                     "frame) are GPU-sized: not trained here; their cost per frame is in the bench_snake_dqn section.")
    if qt:
        lines += ["", f"### MetaCar level0, tabular Q-learning ({qt[0]['frames'] / 1e6:.1f} M frames)", "",
                  "| seed | train wall time (s) | crash-free 800-step episodes (greedy, shuffled starts) |",
                  "|---|---|---|"]
        for r in qt:
            lines.append(f"| {r['seed']} | {r['train_s']:.1f} | {r['crash_free']}/{r['episodes']} "
                         f"({100 * r['rate']:.0f}%) |")
        lines.append("")
        ok = all(r["rate"] >= 0.9 for r in qt)
        lines.append(f"Target: >= 90% of evaluation episodes drive 800 steps without a crash, on every seed: "
                     f"{'met' if ok else 'missed'}.")
    command = command_line(["benchmarks/bench_dqn.py", *args])
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="CartPole seeds (playgrad)")
    parser.add_argument("--sb3-seeds", type=int, nargs="*", default=[0], help="CartPole seeds for SB3 (slow)")
    parser.add_argument("--sb3-python", default="/tmp/sb3venv_dqn/bin/python", help="python of the SB3 venv")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--skip-snake", action="store_true")
    parser.add_argument("--snake-seed", type=int, default=0)
    parser.add_argument("--qtable-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    # Ours (both configs) and SB3 alternate seed by seed, so drifting load on a shared machine hits both sides.
    print("CartPole DQN, playgrad and SB3 interleaved", flush=True)
    ours, fast, sb3 = [], [], []
    sb3_error = "skipped (--sb3-seeds given no seeds)" if not args.sb3_seeds else None
    for seed in dict.fromkeys([*args.seeds, *args.sb3_seeds]):
        if seed in args.seeds:
            ours += bench_cartpole([seed], args.eval_episodes)
            fast += bench_cartpole([seed], args.eval_episodes, "cartpole_dqn_fast")
        if seed in args.sb3_seeds and sb3_error is None:
            rows, sb3_error = bench_sb3(args.sb3_python, [seed], args.eval_episodes)
            sb3 += rows
    snake = None
    if not args.skip_snake:
        print("Snake DQN (small)", flush=True)
        snake = bench_snake(args.snake_seed)
    print("MetaCar level0 Q-table", flush=True)
    qt = bench_qtable(args.qtable_seeds, episodes=100)
    floor_s = matmul_floor_s(ours[0]["updates"]) if ours else float("nan")
    text = markdown(sys.argv[1:] if argv is None else argv, ours, fast, sb3, sb3_error, snake, qt, load_before,
                    os.getloadavg()[0], floor_s)
    print(text)
    if not args.no_write:
        write_section("bench_dqn", text)


if __name__ == "__main__":
    main()
