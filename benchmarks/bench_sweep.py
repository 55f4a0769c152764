"""What Ray adds per job: the same 20-job CartPole sweep on local processes and on a local two-node Ray cluster.

    python benchmarks/bench_sweep.py [--jobs 20] [--rounds 3] [--no-write]

Both sides run the same jobs (the tiny REINFORCE CartPole config of the sweep tests, one seed per job) through
the same code (playgrad.sweeps.run_jobs), two at a time: two local worker threads each waiting on a train.py
process, or two Ray nodes of one CPU each (both on this machine, on loopback). Rounds alternate local/Ray.
Reported: the sweep's wall time, and the overhead per job — the time from a job's submission to its result
on the head minus the job's own training time — which holds dispatch, the scratch folder, packing the run
directory and unpacking it on the head (and, on Ray, scheduling, the worker and the object transfer). The
cluster's start (once per session) is reported apart. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray's sockets on loopback
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _benchlib import command_line, machine_description, write_section

from playgrad.sweeps import JobSpec, deliver_archive, run_jobs

TINY = """[experiment]
name = "tiny"
agent = "reinforce"
eval_episodes = 2
device = "cpu"

[env]
variant = "book"

[agent]
iterations = 2
games_per_iteration = 3
"""


def one_sweep(jobs: int, ray_module, out: Path, train_all: list[float]) -> tuple[float, list[float]]:
    """Run ``jobs`` jobs two at a time; returns (wall s, [machinery s per job]); appends job times to ``train_all``."""
    specs = [JobSpec(TINY, "tiny.toml", seed, (), "config") for seed in range(jobs)]
    train_s: list[float] = []

    def arrived(result) -> None:
        if result.archive is not None:
            deliver_archive(result.archive, out / result.point)
        train_s.append(result.wall_s)  # the train.py process's own wall time

    start = time.perf_counter()
    results = run_jobs(specs, storage_url=None, sweep_name="bench", retries=0, workers=2, ray_module=ray_module,
                       on_result=arrived)
    wall = time.perf_counter() - start
    if any(r.status != "finished" for r in results):
        raise SystemExit(f"a job failed: {[r.error for r in results if r.status != 'finished']}")
    train_all.extend(train_s)
    # Two slots: with no machinery the sweep would take sum(train) / 2. What is left, per job, is its cost.
    return wall, [(2 * wall - sum(train_s)) / jobs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    import ray  # noqa: PLC0415 - a benchmark-only requirement (the `ray` extra)
    from ray.cluster_utils import Cluster  # noqa: PLC0415

    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    cluster_start_s = time.perf_counter() - start
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    train_all: list[float] = []
    per_job: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for side in ("local", "ray"):
                    wall, over = one_sweep(args.jobs, ray if side == "ray" else None, Path(tmp) / f"{side}{r}",
                                          train_all)
                    walls[side].append(wall)
                    per_job[side].extend(over)
                    print(f"round {r} {side}: {wall:.1f} s, machinery {over[0] * 1000:.0f} ms/job", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
    med = {k: statistics.median(v) for k, v in walls.items()}
    over = {k: statistics.median(v) for k, v in per_job.items()}
    load = os.getloadavg()[0]
    local_ms, ray_ms = over["local"] * 1000, over["ray"] * 1000
    job_s = statistics.median(train_all)
    section = f"""## Sweeps on Ray (`benchmarks/bench_sweep.py`)

`{command_line(argv and ["benchmarks/bench_sweep.py", *argv])}` on {machine_description()} (1-minute load average
{load:.1f} at the end: other work shared the machine, so compare the two columns, which alternated, rather than
the absolute times). {args.jobs} jobs of the tiny REINFORCE CartPole config, two at a time, through the same
`playgrad.sweeps.run_jobs`: two local processes vs a local two-node Ray cluster (one CPU per node, loopback).
Medians of {args.rounds} alternating rounds.

| | local processes | Ray, 2 nodes | Ray / local |
| --- | --- | --- | --- |
| sweep wall time | {med['local']:.1f} s | {med['ray']:.1f} s | {med['ray'] / med['local']:.2f}x |
| machinery per job (2 x wall - training) / jobs | {local_ms:.0f} ms | {ray_ms:.0f} ms | +{ray_ms - local_ms:.0f} ms |

Ray's cluster start (two nodes, once per session): {cluster_start_s:.1f} s. Both sides include a scratch folder
per job and packing its run directory for the head; Ray adds task scheduling, a worker process per node and the
transfer of the packed run back: {ray_ms - local_ms:+.0f} ms per job measured here, against jobs of
{job_s:.1f} s (median train.py time), i.e. {(ray_ms - local_ms) / 10 / job_s:.0f}% of such a short job; the jobs
of a real sweep run for minutes.
"""
    print(section)
    if not args.no_write:
        write_section("bench_sweep", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
