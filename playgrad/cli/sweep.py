"""Run a config over several seeds (and a grid of overrides) in parallel, then print a summary.

    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0-4 --workers 2
    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0,1 \
        --grid agent.lr=3e-4,1e-3 --grid agent.num_epochs=10,20
    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0-9 --ray              # the Ray cluster this machine
                                                                                  # belongs to (ray start ...)
    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0-9 --ray HEAD:6379 --storage s3://bucket/sweeps
    python scripts/sweep.py --resume runs/sweep-cartpole_ppo-20261207-120000     # only the jobs not finished

Every job is one ``scripts/train.py`` process, so jobs share nothing and a crash stays in its job; where the
agent trains several seeds as one batched computation (PPO: ``train.py --seeds``), the seeds of one grid point
share one process, or are split over ``--workers`` processes when there are fewer grid points than workers
(``--no-stack-seeds``: one process per seed); each seed is still reported as its own job, and trains the same
whichever seeds share its process.
Wherever a job runs (a local process, or a Ray task on any node), it trains in a scratch folder and its run directory is
then delivered: to ``--storage`` (a shared folder or an fsspec URI) or, by default, sent back here into
``RUNS_DIR/sweep-<config>-<time>/<grid point>/``. A failed job is retried ``--retries`` times (default 1);
every failed attempt's partial run is kept, marked by its ``job.json``. The table shows each grid point's final
deterministic evaluation (mean and spread across seeds) and wall time; ``sweep.json`` records what was asked,
``jobs.jsonl`` every attempt, ``summary.json`` the last attempt of each job.

On a real cluster, every node needs playgrad installed at the same version (``pip install -e .`` in the same
path, or a shared environment); then ``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on
the others, and ``--ray HEAD:6379`` here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playgrad import training
from playgrad.sweeps import (
    JobResult,
    JobSpec,
    Storage,
    SweepError,
    config_errors,
    connect_ray,
    deliver_archive,
    finished_jobs,
    run_jobs,
)
from rl.experiment import ConfigError, atomic_write_text, positive_int


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists may mix (train.py's rules)."""
    try:
        return training.parse_seeds(text)
    except ConfigError as exc:  # "4-0" or "," would run nothing and report success
        raise SystemExit(str(exc)) from None


def grid_points(grid: list[str]) -> list[list[str]]:
    """``["agent.lr=1,2", "agent.x=a"]`` -> ``[["agent.lr=1", "agent.x=a"], ["agent.lr=2", "agent.x=a"]]``."""
    axes = []
    for item in grid:
        if "=" not in item:
            raise SystemExit(f"--grid {item!r} must look like section.key=v1,v2")
        key, values = item.split("=", 1)
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(p) for p in itertools.product(*axes)] if axes else [[]]


def point_name(index: int, point: list[str]) -> str:
    """The grid point's folder: ``p0-lr=3e-4-num_epochs=10`` (``config`` when there is no grid)."""
    if not point:
        return "config"
    return f"p{index}-" + "-".join(f"{key.split('.')[-1]}={value}" for key, value in (o.split("=", 1) for o in point))


def job_line(result: dict[str, Any]) -> str:
    """One finished attempt: its seed and grid point, then its evaluation and wall time, or why it failed."""
    what = " ".join([f"seed={result['seed']}", *result["overrides"]])
    if result["status"] != "finished":
        retry = f" (attempt {result['attempt']})" if result["attempt"] > 1 else ""
        last = (result.get("error") or "?").splitlines()[-1]
        return f"{what}: {result['status']}{retry} ({last})"
    return f"{what}: mean return {result['mean_return']:.1f} ({result['wall_s']:.1f} s on {result['node']})"


def summarize(results: list[dict[str, Any]]) -> str:
    """A plain-text table, one row per grid point."""
    rows = [("grid point", "seeds", "eval mean", "min", "max", "median wall s", "failed")]
    by_point: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_point.setdefault(" ".join(r["overrides"]) or "(config)", []).append(r)
    for point, rs in by_point.items():
        scores = [r["mean_return"] for r in rs if r.get("mean_return") is not None]
        failed = sum(r["status"] != "finished" for r in rs)
        rows.append((point, str(len(rs)), f"{statistics.mean(scores):.1f}" if scores else "-",
                     f"{min(scores):.1f}" if scores else "-", f"{max(scores):.1f}" if scores else "-",
                     f"{statistics.median(r['wall_s'] for r in rs):.1f}", str(failed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def plan(config_text: str, config_name: str, seeds: list[int], overrides: list[str],
         points: list[list[str]]) -> list[JobSpec]:
    """Every job of the sweep, grid point by grid point, seed by seed."""
    return [JobSpec(config_text, config_name, seed, (*overrides, *point), point_name(i, point))
            for i, point in enumerate(points) for seed in seeds]


def new_sweep(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Check a new sweep's arguments and configs; returns its folder (not made yet) and its manifest."""
    if args.config is None:
        raise SweepError("give a CONFIG file, or --resume SWEEP_DIR")
    if not Path(args.config).is_file():
        raise SweepError(f"config file not found: {args.config}")
    points = grid_points(args.grid)
    problems = config_errors(args.config, args.overrides, points)
    if problems:
        raise SweepError("\nerror: ".join(problems))  # printed after "error: ", one error a line
    sweep_dir = Path(args.runs_dir) / f"sweep-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    manifest = {"config_name": Path(args.config).name, "config_text": Path(args.config).read_text(),
                "seeds": parse_seeds(args.seeds), "overrides": args.overrides, "points": points,
                "storage": args.storage, "retries": args.retries, "argv": sys.argv}
    return sweep_dir, manifest


def open_sweep(sweep_dir: Path) -> dict[str, Any]:
    """The manifest of an existing sweep folder, or SweepError naming what is wrong with it."""
    path = sweep_dir / "sweep.json"
    if not path.is_file():
        raise SweepError(f"--resume {sweep_dir}: no sweep.json there (is it a sweep folder made by sweep.py?)")
    try:
        manifest = json.loads(path.read_text())
        manifest["config_text"], manifest["config_name"]  # noqa: B018 - the keys every resume needs
        [int(s) for s in manifest["seeds"]], [list(p) for p in manifest["points"]]  # noqa: B018
    except (ValueError, KeyError, TypeError) as exc:
        raise SweepError(f"{path} is damaged ({type(exc).__name__}: {exc}); start the sweep again") from None
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="experiment TOML file")
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2,5 (default 0-4)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="values to sweep for one key (repeatable: the grid is their product)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed override for every job")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel local processes (default 2)")
    parser.add_argument("--runs-dir", default="runs", help="parent of the sweep directory")
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help="run the jobs as Ray tasks: 'auto' (default: the cluster this machine joined), "
                             "HOST:PORT of a head, or 'local' for a one-machine Ray instance")
    parser.add_argument("--storage", metavar="PATH_OR_URI",
                        help="deliver run directories here (a shared folder, or s3://..., gs://... via fsspec) "
                             "instead of sending them back into the sweep folder")
    parser.add_argument("--retries", type=int, default=1, help="extra attempts for a failed job (default 1)")
    parser.add_argument("--resume", metavar="SWEEP_DIR", help="run the jobs of an earlier sweep not yet finished")
    parser.add_argument("--no-stack-seeds", action="store_true",
                        help="one process per seed, even where the agent can train a grid point's seeds as one "
                             "batched process (train.py --seeds; PPO)")
    args = parser.parse_args(argv)
    try:
        if args.retries < 0:
            raise SweepError(f"--retries must be >= 0, got {args.retries}")
        if args.resume:
            if args.config or args.grid or args.overrides:
                raise SweepError("--resume runs the sweep as it was asked; drop CONFIG, --grid and --set")
            sweep_dir = Path(args.resume)
            manifest = open_sweep(sweep_dir)
            storage = args.storage or manifest.get("storage")
        else:
            sweep_dir, manifest = new_sweep(args)
            storage = args.storage
        if storage:
            Storage(storage).check()
        ray = connect_ray(args.ray) if args.ray else None  # before anything is announced or written
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("no job was started", file=sys.stderr)
        return 2
    specs = plan(manifest["config_text"], manifest["config_name"], [int(s) for s in manifest["seeds"]],
                 list(manifest["overrides"]), [list(p) for p in manifest["points"]])
    jobs_log = sweep_dir / "jobs.jsonl"
    done = finished_jobs(jobs_log)
    todo = [s for s in specs if s.key not in done]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        atomic_write_text(sweep_dir / "sweep.json", json.dumps(manifest, indent=2) + "\n")
    where = f" on Ray ({args.ray})" if ray else f" on {args.workers} local processes"
    skipped = f" ({len(specs) - len(todo)} already finished)" if args.resume else ""
    print(f"{len(todo)} jobs{skipped}{where} -> {sweep_dir}", flush=True)
    attempts = 0

    def record(result: JobResult) -> None:
        # Every attempt: its run directory comes home (or is already in storage), then one line of JSON and one
        # of text. A sweep of short jobs was silent until its table; a long one for hours.
        nonlocal attempts
        attempts += 1
        if result.archive is not None:
            result.location = str(deliver_archive(result.archive, sweep_dir / result.point))
        with jobs_log.open("a") as log:
            log.write(json.dumps(result.record()) + "\n")
        print(f"[{attempts}/{len(todo)}] {job_line(result.record())}", flush=True)

    run_jobs(todo, storage_url=storage, sweep_name=sweep_dir.name, retries=int(manifest.get("retries", 1))
             if args.resume else args.retries, workers=args.workers, ray_module=ray, on_result=record,
             stack_seeds=not args.no_stack_seeds)
    last: dict[str, dict[str, Any]] = {}
    for line in jobs_log.read_text().splitlines():
        record_ = json.loads(line)
        if record_.get("key") not in last or last[record_["key"]]["status"] != "finished":
            last[record_["key"]] = record_
    results = [dict(last[s.key], run_dir=last[s.key].get("location")) for s in specs if s.key in last]
    for r in results:
        if r["status"] != "finished":
            print(f"job seed={r['seed']} {' '.join(r['overrides'])} {r['status']}: {r.get('error')}", file=sys.stderr)
    print(summarize(results))
    atomic_write_text(sweep_dir / "summary.json", json.dumps(results, indent=2) + "\n")
    runs = f"{sweep_dir}/*/*" if not storage else f"{storage}/{sweep_dir.name}/*/*"
    # Where it all went, and the one command that draws it: the run directories sit two levels down.
    print(f"runs and summary.json in {sweep_dir}; learning curves (one per grid point, a band over seeds):\n"
          f"  python scripts/plot.py {runs} --out {sweep_dir}/curves.png")
    unfinished = [r for r in results if r["status"] != "finished"]
    if unfinished:
        print(f"{len(unfinished)} job(s) did not finish; after fixing the cause: "
              f"python scripts/sweep.py --resume {sweep_dir}", file=sys.stderr)
    return 0 if not unfinished and len(results) == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
