"""Many seeds of one PPO config at once: playgrad's stacked seeds beside PureJaxRL's ``vmap`` over seeds.

    python benchmarks/bench_seeds.py --jax-python /tmp/benchvenv/bin/python [--seeds 8] [--rounds 2]

Ways to train K seeds of ``configs/cartpole_ppo_fast.toml`` (the same settings and env-step budget):

* **playgrad, stacked**: the K agents built and trained in this process as one batched computation
  (:mod:`agents.ppo_seeds`, what ``train.py CONFIG --seeds 0-7`` runs);
* **playgrad, sequential**: the K agents built and trained one after another (what K ``train.py`` runs do,
  without their process starts);
* **PureJaxRL**: ``benchmarks/purejaxrl_ppo_peer.py --seeds K``, PureJaxRL's ``ppo.py`` multi-seed run,
  ``jax.jit(jax.vmap(train))`` over ``jax.random.split(rng, K)``, in a subprocess of the JAX venv; its time is
  the lowering and XLA compile plus one run of the compiled program (imports left out, as on our side);
* **user level**: what a user types, end to end (process start, imports, training, final evaluation, run
  directories in a temporary runs dir, ``--no-progress``): ``scripts/train.py CONFIG --seeds 0-7`` as one
  process against K ``scripts/train.py CONFIG --seed k`` processes one after another (issue 16's baseline,
  "8 sequential playgrad runs"). The in-process rows stay the strict comparison: they leave out everything
  but building and training;
* **all cores** (on a machine with more than one): ``sweep.py CONFIG --seeds 0-7 --workers 2``, which splits
  the grid point's seeds into two ``train.py --seeds`` processes of 4 (every seed still its single-seed run),
  and the same sweep with ``--no-stack-seeds`` (8 single-seed processes, two at a time), unpinned, against the
  K ``train.py --seed k`` runs one after another (the peer's vmapped program hangs when given more than one
  core on this JAX: no row).

A GEMM floor is timed too: the matrix products alone of one minibatch update and one collect step of K
stacked seeds (``numpy.matmul`` on arrays of the config's shapes), times the run's updates and steps. It is
arithmetic every seed needs however it is batched, so ``sequential / floor`` bounds the speedup stacking
can give.

Every side runs on one core (CPU affinity; OpenBLAS 1 thread; see :func:`run_peer_seeds` for why the peer is
pinned rather than given bench_purejaxrl's one-thread XLA flags). Each round runs the
peer, then stacked, then sequential, then the two user-level sides, so a shared machine's load falls on all;
medians over rounds. Targets
(issue 16 item 2): stacked in less wall time than the peer including its compile, and at least 4x faster
than sequential. Every seed's final deterministic mean return over 20 episodes is reported for each side
(not timed; 475+ is solved). The results replace the ``bench_seeds`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import os
import resource
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _benchlib import command_line, machine_description, verdict, write_section  # noqa: E402
from bench_agents import _Hooks, ppo_config, ppo_settings_text  # noqa: E402

from agents.ppo_seeds import PPOSeeds  # noqa: E402
from agents.runner import evaluate, make_agent  # noqa: E402
from rl.experiment import apply_overrides, load_toml  # noqa: E402

CONFIG = "cartpole_ppo_fast"
CORE = 0  # every side runs on this one core (CPU affinity), in turn
ALL_CORES = set(range(os.cpu_count() or 1))  # the machine's cores, for the rows that may use them all


def _agent(seed: int, total_steps: int):
    path = ROOT / "configs" / f"{CONFIG}.toml"
    return make_agent(apply_overrides(load_toml(path), [f"experiment.seed={seed}", "experiment.device='cpu'",
                                                        f"experiment.total_steps={total_steps}"]), where=str(path))


def _returns(agents: list) -> list[float]:
    return [evaluate(agent, episodes=20)["mean_return"] for agent in agents]


def run_peer_seeds(python: str, cfg: dict, seeds: int) -> dict:
    """One peer process training ``seeds`` seeds as one vmapped program: compile, one run; its JSON line.

    It runs on one core (CPU affinity), not under bench_purejaxrl's one-thread XLA flags: with those flags the
    vmapped program never returned from its run (JAX 0.10.2; its threads all waiting, for 4 minutes at 8
    seeds x 4,096 steps, where 2 seeds ran), while the same program pinned to one core runs.
    """
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("XLA_FLAGS", None)
    cmd = [python, str(ROOT / "benchmarks" / "purejaxrl_ppo_peer.py"), json.dumps(cfg), "--seeds", str(seeds)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, {CORE}))
    if done.returncode != 0:
        raise SystemExit(f"bench_seeds: the JAX peer failed ({python}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _train_py(args: list[str], runs_dir: str) -> tuple[float, float]:
    """One ``scripts/train.py`` process on core CORE; its wall and CPU seconds (from its start to its exit)."""
    return _timed([str(ROOT / "scripts" / "train.py"), str(ROOT / "configs" / f"{CONFIG}.toml"), *args,
                   "--no-progress", "--runs-dir", runs_dir], {CORE})


def _timed(args: list[str], cores: set[int]) -> tuple[float, float]:
    """One Python process (``args`` after the interpreter) on ``cores``, one BLAS thread in each process it
    starts; its wall and CPU seconds, its children's included (from its start to its exit)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench_seeds: {' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _eval_returns(runs_dir: str) -> list[float]:
    """The mean return in each run directory's eval.json, by seed."""
    found = {}
    for path in Path(runs_dir).iterdir():
        config = load_toml(path / "config.toml")
        found[int(config["experiment"]["seed"])] = json.loads((path / "eval.json").read_text())["mean_return"]
    return [found[s] for s in sorted(found)]


def run_cli_stacked(seeds: list[int], overrides: list[str]) -> dict:
    """``train.py CONFIG --seeds 0-(K-1)``: one process, end to end."""
    with tempfile.TemporaryDirectory(prefix="bench_seeds_") as runs:
        wall, cpu = _train_py(["--seeds", ",".join(map(str, seeds)), *overrides], runs)
        return {"wall_s": wall, "cpu_s": cpu, "returns": _eval_returns(runs)}


def run_cli_sequential(seeds: list[int], overrides: list[str]) -> dict:
    """K ``train.py CONFIG --seed k`` processes one after another, end to end."""
    wall = cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="bench_seeds_") as runs:
        for s in seeds:
            w, c = _train_py(["--seed", str(s), *overrides], runs)
            wall, cpu = wall + w, cpu + c
        return {"wall_s": wall, "cpu_s": cpu, "returns": _eval_returns(runs)}


def run_sweep(seeds: list[int], overrides: list[str], stack: bool) -> dict:
    """``sweep.py CONFIG --seeds ... --workers 2`` on every core: with ``stack`` two ``train.py --seeds``
    processes of half the seeds each (a grid point's seeds split over the workers), else one process per seed,
    two at a time; end to end."""
    with tempfile.TemporaryDirectory(prefix="bench_seeds_") as runs:
        wall, cpu = _timed([str(ROOT / "scripts" / "sweep.py"), str(ROOT / "configs" / f"{CONFIG}.toml"), "--seeds",
                            ",".join(map(str, seeds)), "--workers", "2", "--runs-dir", runs, *overrides,
                            *([] if stack else ["--no-stack-seeds"])], ALL_CORES)
        (sweep_dir,) = Path(runs).iterdir()
        return {"wall_s": wall, "cpu_s": cpu, "returns": _eval_returns(str(sweep_dir / "config"))}


def gemm_floor(cfg: dict, seeds: int, obs_dim: int = 4, actions: int = 2) -> float:
    """CPU seconds the matrix products alone of a K-seed run take: one minibatch update's (forward, weight and
    input gradients of both nets) and one collect step's (forward of both nets), each timed (process CPU time, as
    the other sides' CPU column; the wall clock moves with the machine's load) as stacked ``numpy.matmul`` calls
    on random float32 arrays of the config's shapes, times the run's updates and steps."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(0)

    def net(out: int) -> list[tuple[int, int, bool]]:  # (in, out, is first layer) of each Dense
        widths = [obs_dim, *cfg["hidden"], out]
        return [(i, o, k == 0) for k, (i, o) in enumerate(zip(widths[:-1], widths[1:]))]

    def products(rows: int, backward: bool) -> list:
        calls = []
        for i, o, first in net(actions) + net(1):
            x = rng.standard_normal((seeds, rows, i), dtype=np.float32)
            w = rng.standard_normal((seeds, i, o), dtype=np.float32)
            g = rng.standard_normal((seeds, rows, o), dtype=np.float32)
            calls.append((np.matmul, x, w))
            if backward:
                calls.append((np.matmul, np.swapaxes(x, -1, -2), g))  # the weight gradient
                if not first:  # the input gradient (none for the observations); a 1-column head's is g * w
                    calls.append((np.multiply if o == 1 else np.matmul, g, np.swapaxes(w, -1, -2)))
        return calls

    def timed(calls: list) -> float:
        runs = []
        for _ in range(30):
            start = time.process_time()
            for _ in range(10):
                for fn, a, b in calls:
                    fn(a, b)
            runs.append((time.process_time() - start) / 10)
        return statistics.median(runs[5:])

    rollout = cfg["num_envs"] * cfg["num_steps"]
    iterations = -(-cfg["total_steps"] // rollout)
    updates = iterations * cfg["num_epochs"] * max(1, round(rollout / cfg["batch_size"]))
    steps = iterations * (cfg["num_steps"] + 1)  # + the bootstrap value of each rollout
    return updates * timed(products(cfg["batch_size"], True)) + steps * timed(products(cfg["num_envs"], False))


def run_stacked(seeds: list[int], total_steps: int) -> dict:
    """The K seeds built and trained as one stack; wall and CPU seconds of building and training."""
    start, cpu_start = time.perf_counter(), time.process_time()
    agents = [_agent(s, total_steps) for s in seeds]
    PPOSeeds(agents).learn(total_steps, [_Hooks() for _ in seeds])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"wall_s": wall, "cpu_s": cpu, "returns": _returns(agents)}


def run_sequential(seeds: list[int], total_steps: int) -> dict:
    """The K seeds built and trained one after another; wall and CPU seconds of all of it."""
    agents, wall, cpu = [], 0.0, 0.0
    for s in seeds:
        start, cpu_start = time.perf_counter(), time.process_time()
        agent = _agent(s, total_steps)
        agent.learn(total_steps, _Hooks())
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - cpu_start
        agents.append(agent)
    return {"wall_s": wall, "cpu_s": cpu, "returns": _returns(agents)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jax-python", required=True, help="python of a venv with jax, gymnax, optax and flax")
    parser.add_argument("--seeds", type=int, default=8, help="seeds trained together (0..K-1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--total-steps", type=int, default=None, help="env steps per seed (default: the config's)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seeds < 1:
        parser.error("--rounds and --seeds must be at least 1")
    if not Path(args.jax_python).exists():
        parser.error(f"--jax-python {args.jax_python} does not exist")

    cfg = ppo_config(CONFIG)
    if args.total_steps is not None:
        cfg["total_steps"] = args.total_steps
    seeds = list(range(args.seeds))
    os.sched_setaffinity(0, {CORE})  # our sides on the peer's one core (and one BLAS thread)
    overrides = [] if args.total_steps is None else ["--set", f"experiment.total_steps={args.total_steps}"]
    peers, stacked, sequential, cli_stacked, cli_sequential, loads = [], [], [], [], [], []
    sweeps, sweeps_unstacked = [], []
    for i in range(args.rounds):
        peer = run_peer_seeds(args.jax_python, cfg, args.seeds)
        peers.append(peer)
        print(f"round {i}: peer compile {peer['compile_s']:.2f} s + run {peer['run_s'][0]:.2f} s", flush=True)
        if len(ALL_CORES) > 1:
            sweeps.append(run_sweep(seeds, overrides, stack=True))
            sweeps_unstacked.append(run_sweep(seeds, overrides, stack=False))
            print(f"round {i}: all cores: sweep stacked {sweeps[-1]['wall_s']:.2f} s, unstacked "
                  f"{sweeps_unstacked[-1]['wall_s']:.2f} s", flush=True)
        stacked.append(run_stacked(seeds, cfg["total_steps"]))
        print(f"round {i}: stacked {stacked[-1]['wall_s']:.2f} s", flush=True)
        sequential.append(run_sequential(seeds, cfg["total_steps"]))
        print(f"round {i}: sequential {sequential[-1]['wall_s']:.2f} s", flush=True)
        cli_stacked.append(run_cli_stacked(seeds, overrides))
        print(f"round {i}: train.py --seeds {cli_stacked[-1]['wall_s']:.2f} s", flush=True)
        cli_sequential.append(run_cli_sequential(seeds, overrides))
        print(f"round {i}: {args.seeds} train.py --seed k {cli_sequential[-1]['wall_s']:.2f} s", flush=True)
        loads.append(os.getloadavg()[0])
    floor = gemm_floor(cfg, args.seeds)

    med = statistics.median
    peer_total = med(p["compile_s"] + p["run_s"][0] for p in peers)
    peer_compile, peer_run = med(p["compile_s"] for p in peers), med(p["run_s"][0] for p in peers)
    peer_cpu = med(p["run_cpu_s"][0] for p in peers)
    ours, ours_cpu = med(r["wall_s"] for r in stacked), med(r["cpu_s"] for r in stacked)
    seq, seq_cpu = med(r["wall_s"] for r in sequential), med(r["cpu_s"] for r in sequential)
    vs_peer, speedup = ours / peer_total, seq / ours
    cli, cli_cpu = med(r["wall_s"] for r in cli_stacked), med(r["cpu_s"] for r in cli_stacked)
    cli_seq, cli_seq_cpu = med(r["wall_s"] for r in cli_sequential), med(r["cpu_s"] for r in cli_sequential)
    cli_speedup = cli_seq / cli

    same_runs = stacked[0]["returns"] == sequential[0]["returns"] and \
        cli_stacked[0]["returns"] == cli_sequential[0]["returns"] == sequential[0]["returns"]

    def listed(returns: list[float]) -> str:
        solved = sum(r >= 475 for r in returns)
        return f"{', '.join(f'{r:.0f}' for r in returns)} ({solved}/{len(returns)} solved)"

    def two_core_rows() -> list[str]:
        """The table of the sides that may use every core (none on a one-core machine)."""
        if not sweeps:
            return []
        sweep, sweep_cpu = med(r["wall_s"] for r in sweeps), med(r["cpu_s"] for r in sweeps)
        loose, loose_cpu = med(r["wall_s"] for r in sweeps_unstacked), med(r["cpu_s"] for r in sweeps_unstacked)
        gain = cli_seq / sweep
        return [
            "",
            f"With all {len(ALL_CORES)} cores (no CPU affinity; one BLAS thread per process): what a user runs to "
            f"spread the seeds over the machine, end to end, beside the same {args.seeds} `train.py --seed k` runs "
            f"one after another as above (they use one core whatever the machine has). The peer has no row here: "
            f"given more than one core (XLA's default threads), its vmapped program never returned from its run on "
            f"this JAX, its threads all waiting, as under the one-thread flags (see `run_peer_seeds`).",
            "",
            "| | wall s | CPU s | sequential / this |",
            "| --- | ---: | ---: | ---: |",
            f"| `sweep.py {CONFIG}.toml --seeds 0-{args.seeds - 1} --workers 2`: two `train.py --seeds` processes "
            f"of {args.seeds // 2} stacked seeds | {sweep:.2f} | {sweep_cpu:.2f} | **{gain:.1f}x** "
            f"({verdict(gain, 4.0, higher_is_better=True, unit='x')}) |",
            f"| `sweep.py ... --workers 2 --no-stack-seeds`: {args.seeds} `train.py --seed k` processes, two at a "
            f"time | {loose:.2f} | {loose_cpu:.2f} | {cli_seq / loose:.1f}x |",
            f"| {args.seeds} x `train.py --seed k`, one after another (the row above) | {cli_seq:.2f} | "
            f"{cli_seq_cpu:.2f} | 1 |",
            "",
            f"Returns (first round): sweep stacked {listed(sweeps[0]['returns'])}; sweep unstacked "
            f"{listed(sweeps_unstacked[0]['returns'])}"
            + (" (the same runs again)." if sweeps[0]["returns"] == sweeps_unstacked[0]["returns"] ==
               cli_sequential[0]["returns"] else "."),
        ]

    p0 = peers[0]
    lines = [
        "## Many seeds at once: stacked seeds vs PureJaxRL's vmap over seeds (`benchmarks/bench_seeds.py`)",
        "",
        f"Machine: {machine_description()}; each side on one core (CPU affinity: core {CORE}; OpenBLAS 1 thread; "
        "the peer without bench_purejaxrl's one-thread XLA flags, under which the vmapped program never returned "
        "from its run on this JAX). 1-minute load average after each round: "
        f"{', '.join(f'{x:.1f}' for x in loads)} "
        "(other work shares the cores: wall times move, the sides alternate within each round). "
        f"Command: `{command_line()}`.",
        "",
        f"{args.seeds} seeds (0-{args.seeds - 1}) of `configs/{CONFIG}.toml`: {ppo_settings_text(cfg)}, "
        f"{cfg['total_steps']:,} env steps each. playgrad stacked: `agents/ppo_seeds.py` (what `train.py CONFIG "
        f"--seeds 0-{args.seeds - 1}` runs), agents built and trained in one process; sequential: the same agents "
        f"built and trained one after another. Peer: `benchmarks/purejaxrl_ppo_peer.py --seeds {args.seeds}`, "
        f"PureJaxRL's "
        f"multi-seed run (`jax.jit(jax.vmap(train))` over split keys; gymnax CartPole-v1, flax, optax), JAX "
        f"{p0['jax']} on {p0['backend']}, one compile and one run per round. {args.rounds} rounds; medians.",
        "",
        "| | wall s | process CPU s | stacked / this |",
        "| --- | ---: | ---: | ---: |",
        f"| playgrad, {args.seeds} seeds stacked (build + train) | {ours:.2f} | {ours_cpu:.2f} | 1 |",
        f"| playgrad, {args.seeds} seeds one after another (build + train) | {seq:.2f} | {seq_cpu:.2f} | "
        f"**{ours / seq:.2f}x** = {speedup:.1f}x faster ({verdict(speedup, 4.0, higher_is_better=True, unit='x')}) |",
        f"| PureJaxRL vmap, compile + run | {peer_total:.2f} | | **{vs_peer:.2f}x** ({verdict(vs_peer, 1.0)}) |",
        f"| PureJaxRL vmap, compile only | {peer_compile:.2f} | | |",
        f"| PureJaxRL vmap, run after compile | {peer_run:.2f} | {peer_cpu:.2f} | {ours / peer_run:.2f}x |",
        f"| GEMM floor: the {args.seeds} seeds' matrix products alone | | {floor:.2f} | "
        f"{ours_cpu / floor:.2f}x (CPU) |",
        "",
        f"User level, end to end (process start, imports, training, final evaluation of {args.seeds} x 20 episodes, "
        "run directories in a temporary runs dir; `--no-progress`; each process on the same one core):",
        "",
        "| | wall s | CPU s | one process / this |",
        "| --- | ---: | ---: | ---: |",
        f"| `train.py {CONFIG}.toml --seeds 0-{args.seeds - 1}`, one process | {cli:.2f} | {cli_cpu:.2f} | 1 |",
        f"| {args.seeds} x `train.py {CONFIG}.toml --seed k`, one process after another | {cli_seq:.2f} | "
        f"{cli_seq_cpu:.2f} | **{cli / cli_seq:.2f}x** = {cli_speedup:.1f}x faster "
        f"({verdict(cli_speedup, 4.0, higher_is_better=True, unit='x')}) |",
        f"| PureJaxRL vmap, compile + run (imports left out) | {peer_total:.2f} | | {cli / peer_total:.2f}x |",
        *two_core_rows(),
        "",
        "Final deterministic mean return of each seed, 20 episodes (first round):",
        "",
        f"* playgrad stacked: {listed(stacked[0]['returns'])}",
        f"* playgrad sequential: {listed(sequential[0]['returns'])}",
        f"* PureJaxRL vmap: {listed(p0['eval_means'])}",
        f"* `train.py --seeds` (eval.json): {listed(cli_stacked[0]['returns'])}",
        f"* {args.seeds} x `train.py --seed k` (eval.json): {listed(cli_sequential[0]['returns'])}",
        "",
        ("The stacked seeds' returns are the sequential runs' returns, seed for seed: a stacked seed is its "
         "single-seed run, bit for bit (`agents/ppo_seeds.py`; every record, weight and optimizer state is "
         "compared in `tests/agents/test_ppo_seeds.py`). So the rows above time the same 8 runs."
         if same_runs else
         "**The stacked seeds' returns differ from the sequential runs' here**, though a stacked seed is meant to "
         "be its single-seed run bit for bit (`tests/agents/test_ppo_seeds.py`): this machine's BLAS or backend "
         "breaks that; the two columns are two samples of the same seeds' PPO."),
        "",
        f"Why not 4x in one process: stacking removes per-operation dispatch and per-seed host work (the K seeds' "
        f"envs run as one env of K x {cfg['num_envs']} worlds with one episode tracker), not arithmetic. The matrix "
        f"products alone take {floor:.2f} CPU s for {args.seeds} seeds (GEMM floor row: every seed's products, "
        f"whichever way they are batched), against {seq_cpu:.2f} CPU s for the sequential runs, so even a stacked "
        f"run that were nothing but its GEMMs would be at most {seq_cpu / floor:.1f}x faster than sequential. The "
        f"stacked run's other {ours_cpu - floor:.2f} CPU s are elementwise passes over K times larger arrays, the K x "
        f"{cfg['num_envs']} worlds' physics, draws from K generators and the Python of each minibatch step.",
        "",
        f"At user level each of the {args.seeds} separate processes pays "
        f"{(cli_seq_cpu - seq_cpu) / args.seeds:.2f} CPU s beyond its in-process build and training (interpreter "
        "start, imports, run directory, final evaluation), which one `--seeds` process pays once (and plays the K "
        "seeds' evaluation episodes in one merged env). The "
        "stacked run sets glibc's malloc to keep freed memory (`rl.stacked.keep_freed_memory`: its K times larger "
        "arrays would otherwise each be a fresh mapping); the in-process sequential runs come after it in this "
        "process and so run under that setting too, the separate `train.py --seed k` processes under glibc's "
        "default (a single seed's arrays, 64 KiB per hidden activation, stay below the 128 KiB mmap threshold).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_seeds", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
