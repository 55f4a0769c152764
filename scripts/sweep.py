"""Run a config over several seeds (and a grid of overrides) in parallel, then print a summary.

    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0-4 --workers 2
    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0,1 \
        --grid agent.lr=3e-4,1e-3 --grid agent.num_epochs=10,20
    python scripts/sweep.py configs/cartpole_ppo.toml --seeds 0-9 --ray            # on a Ray cluster (pip install ray)

Every job is one ``scripts/train.py`` process, so jobs share nothing and a crash stays in its job.
Runs land in ``RUNS_DIR/sweep-<config>-<time>/<grid point>/``; the table shows each grid point's
final deterministic evaluation (mean and spread across seeds) and wall time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "scripts" / "train.py"
sys.path.insert(0, str(ROOT))

from rl.experiment import positive_int  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists may mix."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part.strip():
                seeds.append(int(part))
    except ValueError:
        raise SystemExit(f"--seeds: expected e.g. 0-4 or 0,1,2, got {text!r}") from None
    if not seeds:  # "4-0" or "," would run nothing and report success
        raise SystemExit(f"--seeds {text!r} names no seed; a range goes low-high, e.g. 0-4")
    return seeds


def grid_points(grid: list[str]) -> list[list[str]]:
    """``["agent.lr=1,2", "agent.x=a"]`` -> ``[["agent.lr=1", "agent.x=a"], ["agent.lr=2", "agent.x=a"]]``."""
    axes = []
    for item in grid:
        if "=" not in item:
            raise SystemExit(f"--grid {item!r} must look like section.key=v1,v2")
        key, values = item.split("=", 1)
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(p) for p in itertools.product(*axes)] if axes else [[]]


def config_errors(config: str, overrides: list[str], points: list[list[str]]) -> list[str]:
    """The config errors of the sweep's jobs, each once: ``config`` with ``overrides`` and each grid point,
    checked as train.py will (unknown tables and keys, wrong types, env options), before any job starts.

    A typo in a ``--grid`` or ``--set`` key used to run every job and print the same error for each. An error
    that only some grid points have names them. The seed is left out: ``--seeds`` are always valid ints.
    """
    from agents.runner import check_config  # noqa: PLC0415 - numpy and the agents only once a sweep runs
    from rl.experiment import ConfigError, apply_overrides, load_toml  # noqa: PLC0415

    try:
        base = load_toml(config)
    except ConfigError as exc:
        return [f"error: {exc}"]
    failing: dict[str, list[str]] = {}
    for point in points:
        try:
            check_config(apply_overrides(base, [*overrides, *point]), where=config)
        except ConfigError as exc:
            failing.setdefault(str(exc), []).append(" ".join(point))
    lines = []
    for message, where in failing.items():
        only = f" (grid point{'s' if len(where) > 1 else ''} {'; '.join(where)})" if len(where) < len(points) else ""
        lines.append(f"error: {message}{only}")
    return lines


def run_job(config: str, seed: int, overrides: list[str], runs_dir: str,
            python: str = sys.executable) -> dict[str, Any]:
    """Train one (grid point, seed) in a subprocess; returns its eval summary, wall time and log tail."""
    cmd = [python, str(TRAIN), config, "--seed", str(seed), "--runs-dir", runs_dir, "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall_s = time.perf_counter() - start
    result: dict[str, Any] = {"seed": seed, "overrides": overrides, "wall_s": wall_s, "returncode": proc.returncode}
    runs = sorted(Path(runs_dir).glob(f"*-s{seed}-*"))
    if runs:
        result["run_dir"] = str(runs[-1])
        eval_path = runs[-1] / "eval.json"
        if eval_path.exists():
            result["mean_return"] = json.loads(eval_path.read_text())["mean_return"]
    if proc.returncode != 0:
        result["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
    return result


def job_line(result: dict[str, Any]) -> str:
    """One finished job: its seed and grid point, then its evaluation and wall time, or why it failed."""
    what = " ".join([f"seed={result['seed']}", *result["overrides"]])
    if result["returncode"] != 0:
        return f"{what}: failed ({' '.join(result.get('error') or ['?'])})"
    score = f"mean return {result['mean_return']:.1f}" if "mean_return" in result else "no evaluation"
    return f"{what}: {score} ({result['wall_s']:.1f} s)"


def summarize(results: list[dict[str, Any]]) -> str:
    """A plain-text table, one row per grid point."""
    rows = [("grid point", "seeds", "eval mean", "min", "max", "median wall s", "failed")]
    by_point: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_point.setdefault(" ".join(r["overrides"]) or "(config)", []).append(r)
    for point, rs in by_point.items():
        scores = [r["mean_return"] for r in rs if "mean_return" in r]
        failed = sum(r["returncode"] != 0 for r in rs)
        rows.append((point, str(len(rs)), f"{statistics.mean(scores):.1f}" if scores else "-",
                     f"{min(scores):.1f}" if scores else "-", f"{max(scores):.1f}" if scores else "-",
                     f"{statistics.median(r['wall_s'] for r in rs):.1f}", str(failed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment TOML file")
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2,5 (default 0-4)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="values to sweep for one key (repeatable: the grid is their product)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed override for every job")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel local processes (default 2)")
    parser.add_argument("--runs-dir", default="runs", help="parent of the sweep directory")
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help="run the jobs as Ray tasks (ray.init(address=ADDRESS); default: auto)")
    args = parser.parse_args(argv)
    if not Path(args.config).exists():
        print(f"error: config file not found: {args.config}", file=sys.stderr)
        return 2
    if args.ray:  # before anything is announced: "N jobs -> dir" then "no Ray" read as a sweep that started
        try:
            import ray  # noqa: PLC0415
        except ImportError:
            print("error: --ray needs Ray: pip install 'playgrad[ray]' (or pip install ray)", file=sys.stderr)
            return 2
    seeds = parse_seeds(args.seeds)
    points = grid_points(args.grid)
    problems = config_errors(args.config, args.overrides, points)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print("no job was started", file=sys.stderr)
        return 2
    sweep_dir = Path(args.runs_dir) / f"sweep-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    jobs = []
    for i, point in enumerate(points):
        point_dir = sweep_dir / (f"p{i}-" + "-".join(o.split(".")[-1] for o in point) if point else "config")
        for seed in seeds:
            jobs.append((str(Path(args.config).resolve()), seed, [*args.overrides, *point], str(point_dir.resolve())))
    print(f"{len(jobs)} jobs -> {sweep_dir}", flush=True)
    results = []

    def finished(result: dict[str, Any]) -> None:
        # One line per job as it ends: a sweep of short jobs was silent until its table, a long one for hours.
        results.append(result)
        print(f"[{len(results)}/{len(jobs)}] {job_line(result)}", flush=True)

    if args.ray:
        ray.init(address=args.ray)
        remote = ray.remote(run_job)
        pending = [remote.remote(*job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            finished(ray.get(done[0]))
    else:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:  # threads wait on subprocesses
            for future in as_completed([pool.submit(run_job, *job) for job in jobs]):
                finished(future.result())
    order = {(job[1], tuple(job[2])): i for i, job in enumerate(jobs)}  # the table in the grid's own order
    results.sort(key=lambda r: order.get((r["seed"], tuple(r["overrides"])), len(order)))
    for r in results:
        if r["returncode"] != 0:
            print(f"job seed={r['seed']} {' '.join(r['overrides'])} failed: {r.get('error')}", file=sys.stderr)
    print(summarize(results))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    # Where it all went, and the one command that draws it: the run directories sit two levels down.
    print(f"runs and summary.json in {sweep_dir}; learning curves (one per grid point, a band over seeds):\n"
          f"  python scripts/plot.py {sweep_dir}/*/* --out {sweep_dir}/curves.png")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
