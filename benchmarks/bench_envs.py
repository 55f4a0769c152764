"""Environment throughput: steps per second of our envs beside Gymnasium's, measured in one run.

    python benchmarks/bench_envs.py [--repeats 7] [--no-write]

Rows (median of ``--repeats`` timed runs; actions drawn before timing; autoreset included):

* CartPole batched, 1024 worlds: ours vs ``gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv``.
* CartPole single env: ``gym.make("envs/CartPole-v1")`` vs ``gym.make("CartPole-v1")`` (both with
  the wrappers ``gym.make`` adds; the loop resets on episode end).
* Snake batched, 1024 boards: the vector env (observations included) and the bare core step.
* Snake single env.
* MetaCar single (level1) and batched (256 worlds), when ``envs.metacar`` imports.

Writes section ``bench_envs`` of ``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from _benchlib import command_line, machine_description, write_section
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv

import envs  # noqa: F401  (registers the ids)
from rl import backend

BATCH = 1024
METACAR_BATCH = 256


def paired_medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function, timed in alternation so that other load on the machine
    falls on all of them alike (a plain one-after-the-other median would favour whichever ran idle)."""
    for fn in fns:
        fn()  # warm-up
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def vector_runner(vec, n_actions: int, steps: int) -> tuple[Callable[[], None], int]:
    """A closure stepping ``vec`` with ``steps`` pre-drawn random action batches, and its world-step count."""
    actions = np.random.default_rng(0).integers(0, n_actions, (steps, vec.num_envs))
    vec.reset(seed=0)

    def run():
        for a in actions:
            vec.step(a)

    return run, steps * vec.num_envs


def single_runner(env, n_actions: int, steps: int) -> tuple[Callable[[], None], int]:
    """A closure stepping one env ``steps`` times with pre-drawn actions, resetting on episode end."""
    actions = np.random.default_rng(0).integers(0, n_actions, steps).tolist()
    env.reset(seed=0)

    def run():
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()

    return run, steps


def core_runner(core, n_actions: int, steps: int) -> tuple[Callable[[], None], int]:
    """A closure running a batched core's step plus resets of ended worlds (no observations)."""
    xp = core.xp
    actions = xp.asarray(np.random.default_rng(0).integers(0, n_actions, (steps, core.num_worlds)))
    core.rng.seed(0, None)
    core.reset_worlds(xp.arange(core.num_worlds))

    def run():
        for a in actions:
            _, died = core.step(a)
            ended = xp.flatnonzero(died)
            if ended.size:
                core.reset_worlds(ended)

    return run, steps * core.num_worlds


def rates(runners: list[tuple[Callable[[], None], int]], repeats: int) -> list[float]:
    """Steps/s of each runner, medians timed in alternation."""
    times = paired_medians([fn for fn, _ in runners], repeats)
    return [n / t for (_, n), t in zip(runners, times)]


def fmt(rate: float) -> str:
    return f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:.1f} k"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="steps/s of playgrad's envs beside Gymnasium's")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    r = args.repeats
    rows: list[tuple[str, str, str, str]] = []  # (what, ours, peer, ratio)
    notes: list[str] = []

    def row(what: str, ours: float, peer: float | None = None, peer_name: str = "") -> None:
        ratio = f"{ours / peer:.2f}x" if peer else ""
        peer_cell = f"{fmt(peer)} ({peer_name})" if peer else ""
        rows.append((what, fmt(ours), peer_cell, ratio))
        print(f"{what:<48} {fmt(ours):>9} steps/s  {peer_cell:<40} {ratio}", flush=True)

    xp = backend.current().xp
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {machine_description()}; array module for batched envs: {xp.__name__}")

    ours = gym.make_vec("envs/CartPole-v1", num_envs=BATCH, vectorization_mode="vector_entry_point")
    peer = GymCartPoleVectorEnv(num_envs=BATCH)
    mine, theirs = rates([vector_runner(ours, 2, 300), vector_runner(peer, 2, 300)], r)
    row(f"CartPole batched, {BATCH} worlds", mine, theirs, "Gymnasium CartPoleVectorEnv")
    mine, theirs = rates([single_runner(gym.make("envs/CartPole-v1"), 2, 20000),
                          single_runner(gym.make("CartPole-v1"), 2, 20000)], r)
    row("CartPole single env", mine, theirs, 'gym.make("CartPole-v1")')

    snake = gym.make_vec("envs/Snake-v0", num_envs=BATCH, vectorization_mode="vector_entry_point")
    (vec_rate,) = rates([vector_runner(snake, 3, 200)], r)
    row(f"Snake 9x9 vector env, {BATCH} boards (with obs)", vec_rate)
    (bare_rate,) = rates([core_runner(snake.unwrapped.core, 3, 200)], r)
    row(f"Snake 9x9 core step, {BATCH} boards (no obs)", bare_rate)
    (single,) = rates([single_runner(gym.make("envs/Snake-v0"), 3, 5000)], r)
    row("Snake 9x9 single env", single)

    try:
        import envs.metacar.vector  # noqa: F401, PLC0415 - written concurrently; optional here
    except Exception as exc:  # not there yet, or broken: say so instead of failing the benchmark
        notes.append(f"MetaCar rows skipped: `envs.metacar` did not import ({type(exc).__name__}: {exc}).")
        print(notes[-1])
    else:
        try:
            one = gym.make("envs/MetaCar-v0", level="level1")
            (rate,) = rates([single_runner(one, int(one.action_space.n), 2000)], r)
            row("MetaCar single env, level1 (with bots)", rate)
            mc = gym.make_vec("envs/MetaCar-v0", num_envs=METACAR_BATCH, vectorization_mode="vector_entry_point",
                              level="level1")
            (rate,) = rates([vector_runner(mc, int(mc.single_action_space.n), 100)], r)
            row(f"MetaCar batched, {METACAR_BATCH} worlds, level1", rate)
        except Exception as exc:
            notes.append(f"MetaCar rows skipped: the env failed while benchmarking ({type(exc).__name__}: {exc}).")
            print(notes[-1])

    lines = [
        "## Environment throughput (`benchmarks/bench_envs.py`)",
        "",
        f"Machine: {machine_description()}. Array module for batched envs: {xp.__name__}. "
        f"Median of {r} runs (ours and the peer timed in alternation); random actions drawn before timing; "
        f"episode resets included. 1-minute load average at the start: {load:.1f} (other work shares "
        "the cores, so absolute figures move; the ratios are timed side by side). "
        "Steps/s counts world-steps (a batch of 1024 stepping once is 1024 steps). "
        f"Command: `{command_line()}`.",
        "",
        "| env | ours (steps/s) | peer, same run (steps/s) | ours / peer steps/s (above 1: ours faster) |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
    ]
    if notes:
        lines += ["", *notes]
    if not args.no_write:
        write_section("bench_envs", "\n".join(lines))
        print("wrote section bench_envs of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
