"""What one frame of the book's snake DQN costs, and what 1e6 frames would take; section ``bench_snake_dqn``.

    python benchmarks/bench_snake_dqn.py                  # the CPU, and the GPU when one is usable
    python benchmarks/bench_snake_dqn.py --device gpu --no-write

``configs/snake_dqn.toml`` is the book's snake-dqn: a 1.12 M-weight conv net (128-256-256 filters on the
9x9x2 board), one Adam step on a replay batch of 64 for every frame, up to 1e6 frames, stopping when the
100-game mean reward reaches 100. Training it to the stopping rule takes hours, so this benchmark times
the parts of one frame instead, on the config's own agent: a gradient step (online forward and backward,
target forward, Adam), a greedy action for one board, and one env step. Their sum times 1e6 is the
projected wall time of the book's whole frame budget; the stopping rule may come earlier (the book gives
no frame count for it). The replay memory is filled with random boards: the step costs the same.
"""

from __future__ import annotations

import _benchlib

_benchlib.one_compute_thread()  # one core, as the training scripts run

import argparse
import os
import sys
import tomllib

import numpy as np

from agents.runner import make_agent
from rl import backend

CONFIG = _benchlib.ROOT / "configs" / "snake_dqn.toml"
FRAME_BUDGET = 1_000_000  # the book's --maxNumFrames


def frame_costs(device: str, repeats: int) -> dict[str, float]:
    """Median seconds of the three parts of one training frame of the book's agent on ``device``."""
    config = tomllib.loads(CONFIG.read_text())
    config["experiment"]["device"] = device
    agent = make_agent(config, where=str(CONFIG))
    rng = np.random.default_rng(0)
    n = 2 * agent.config.batch_size * 8
    boards = (rng.random((n, *agent.obs_shape)) < 0.2).astype(np.float32)
    agent.replay.add(boards, rng.integers(0, agent.num_actions, n), rng.standard_normal(n).astype(np.float32),
                     boards[::-1].copy(), np.zeros(n, dtype=bool))
    obs, _ = agent.envs.reset(seed=0)

    def update() -> None:
        agent.update().item()  # .item() waits for the device, so the GPU's time is counted

    def act() -> None:
        agent._epsilon_greedy(obs, 0.0)  # greedy: the online net on one board, back on the host

    def env_step() -> None:
        next_obs = agent.envs.step(np.zeros(agent.config.num_envs, dtype=np.int64))[0]
        # One element back to the host waits for a device env's kernels, so its time is counted (no-op on NumPy).
        backend.to_numpy(next_obs.reshape(-1)[:1])

    return {name: _benchlib.median_time(fn, repeats=repeats, inner=5, warmup=3)
            for name, fn in (("update", update), ("act", act), ("env_step", env_step))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu", "both"], default="both",
                        help="both: the CPU, and the GPU when one is usable")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    devices = ["cpu", "gpu"] if args.device == "both" else [args.device]
    gpu_ok, gpu_why = backend.gpu_status()
    rows, notes = [], []
    for device in devices:
        if device == "gpu" and not gpu_ok:
            notes.append(f"GPU: not measured ({gpu_why}).")
            continue
        where = backend.use_device(device).description if device == "gpu" else "NumPy, 1 BLAS thread"
        c = frame_costs(device, args.repeats)
        frame_s = c["update"] + c["act"] + c["env_step"]
        rows.append(f"| {device} ({where}) | {c['update'] * 1e3:.2f} | {c['act'] * 1e3:.3f} | "
                    f"{c['env_step'] * 1e3:.3f} | {1 / frame_s:,.0f} | {frame_s * FRAME_BUDGET / 3600:.1f} |")
        print(rows[-1], flush=True)
    backend.use_device("cpu")
    text = "\n".join([
        "## The book's snake DQN, per frame (`benchmarks/bench_snake_dqn.py`)",
        "",
        f"Machine: {_benchlib.machine_description()}. Load average at the end: {os.getloadavg()[0]:.1f}. "
        f"Command: `{_benchlib.command_line()}`. "
        f"Medians of {args.repeats} rounds of 5 calls. `configs/snake_dqn.toml` (1.12 M weights, batch 64, one "
        "gradient step per frame) timed part by part on the config's own agent; the projection multiplies one "
        f"frame by the book's {FRAME_BUDGET:,}-frame budget (the stopping rule, a 100-game mean of 100, may "
        "come earlier). No peer: the book's TensorFlow.js run publishes no timings.",
        "",
        "| device | gradient step (ms) | greedy action (ms) | env step (ms) | frames/s | 1e6 frames (h) |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        *notes,
    ]).rstrip() + "\n"
    print(text)
    if not args.no_write:
        _benchlib.write_section("bench_snake_dqn", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
