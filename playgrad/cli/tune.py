"""Search hyperparameters of a config with Optuna: TPE sampling, pruning on the runs' curves, a best config.

    python scripts/tune.py configs/cartpole_ppo.toml --space 'agent.lr=loguniform(1e-4,3e-3)' \
        --space 'agent.num_epochs=int(3,20)' --trials 30
    python scripts/tune.py configs/cartpole_ppo.toml --space ... --trials 100 --ray HEAD:6379 --workers 16
    python scripts/tune.py --resume runs/tune-cartpole_ppo-20261207-120000 --trials 50   # continue a study

Search-space forms: loguniform(low,high), uniform(low,high), int(low,high), logint(low,high),
categorical(v1,v2,...) (values as TOML: numbers, true/false, "strings").

Each trial is one training run with the sampled values as --set overrides (see playgrad.tuning). While it
trains, its 20-episode mean return is reported every --report-every env steps (default: a tenth of the
budget) and the pruner (median: below the median of earlier trials at the same step; halving: successive
halving; none) may stop it early. A finished trial scores its final deterministic evaluation.

Writes RUNS_DIR/tune-<config>-<time>/: study.db (the Optuna study, SQLite: --resume continues it),
trials/<trial>/<run>/ (every trial's run directory, pruned ones included), trials.json, history.png (each
trial's score, the best so far, pruned trials marked) and best.toml, the config with the best values, ready
for `python scripts/train.py RUNS_DIR/tune-.../best.toml`. Needs `pip install 'playgrad[tune]'` (Optuna),
and Ray for --ray.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from playgrad.sweeps import (
    JobResult,
    JobSpec,
    Storage,
    SweepError,
    config_errors,
    connect_ray,
    deliver_archive,
)
from playgrad.tuning import Oracle, overrides_of, parse_space, run_study
from rl.experiment import apply_overrides, atomic_write_text, dump_toml, load_toml, positive_int, seed_int


def representative_points(dims: list[Any]) -> list[list[str]]:
    """Overrides at each dimension's ends (each category), to check the config accepts them before any trial."""
    points = []
    for d in dims:
        values = d.args if d.kind == "categorical" else (d.args[0], d.args[1])
        points += [overrides_of({d.key: v}) for v in values]
    return points


def history_plot(trials: list[dict[str, Any]], path: Path) -> None:
    """Each finished trial's score, the best so far as a line, pruned trials as crosses at their last report."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=100)
    done = [t for t in trials if t["state"] == "COMPLETE"]
    ax.scatter([t["number"] for t in done], [t["value"] for t in done], color="tab:blue", label="trial score", zorder=3)
    best, xs, ys = float("-inf"), [], []
    for t in sorted(done, key=lambda t: t["number"]):
        best = max(best, t["value"])
        xs.append(t["number"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="tab:orange", label="best so far")
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    if pruned:
        ax.scatter([t["number"] for t in pruned], [t["last_value"] for t in pruned], marker="x",
                   color="tab:red", label="pruned (last reported mean)", zorder=3)
    ax.set_xlabel("trial")
    ax.set_ylabel("evaluation mean return")
    ax.set_title(f"{len(done)} finished, {len(pruned)} pruned of {len(trials)} trials", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def table(trials: list[dict[str, Any]], keys: list[str]) -> str:
    """One row per trial, best first, then pruned and failed ones; the last pruning report of each."""
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3}

    def shown(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)

    rows = [("trial", "state", "score", "last report (mean @ step)", *keys)]
    for t in sorted(trials, key=lambda t: (order.get(t["state"], 4), -(t["value"] or 0))):
        score = f"{t['value']:.1f}" if t["state"] == "COMPLETE" else "-"
        report = f"{t['last_value']:.1f} @ {t['last_step']}" if t["last_step"] is not None else "-"
        rows.append((str(t["number"]), t["state"].lower(), score, report, *(shown(t["params"].get(k)) for k in keys)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="experiment TOML file")
    parser.add_argument("--space", action="append", default=[], metavar="KEY=FORM(...)",
                        help="a searched key and its distribution (repeatable), e.g. agent.lr=loguniform(1e-4,3e-3)")
    parser.add_argument("--trials", type=positive_int, default=20, help="trials the study should hold (default 20)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed override for every trial")
    parser.add_argument("--pruner", choices=["median", "halving", "none"], default="median",
                        help="how trials are stopped early (default median)")
    parser.add_argument("--report-every", type=positive_int, metavar="STEPS",
                        help="env steps between pruning reports (default: a tenth of experiment.total_steps)")
    parser.add_argument("--startup-trials", type=positive_int, default=5,
                        help="trials sampled at random and never pruned before TPE and the pruner start (default 5)")
    parser.add_argument("--seed", type=seed_int, default=0, help="the sampler's seed (training uses the config's seed)")
    parser.add_argument("--workers", type=positive_int, default=2, help="trials at once (default 2)")
    parser.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help="run trials as Ray tasks: 'auto', HOST:PORT of a head, or 'local'")
    parser.add_argument("--storage", metavar="PATH_OR_URI", help="deliver trial run directories here (as sweep.py)")
    parser.add_argument("--runs-dir", default="runs", help="parent of the study folder")
    parser.add_argument("--resume", metavar="TUNE_DIR", help="continue the study of an earlier tune.py run")
    args = parser.parse_args(argv)
    try:
        import optuna  # noqa: F401, PLC0415 - say so before anything else
    except ImportError:
        print("error: tune.py needs Optuna: pip install 'playgrad[tune]'", file=sys.stderr)
        return 2
    try:
        if args.resume:
            if args.config or args.space or args.overrides:
                raise SweepError("--resume continues the study as it was asked; drop CONFIG, --space and --set")
            tune_dir = Path(args.resume)
            try:
                manifest = json.loads((tune_dir / "tune.json").read_text())
            except (OSError, ValueError) as exc:
                raise SweepError(f"--resume {tune_dir}: no readable tune.json ({exc})") from None
        else:
            if args.config is None or not Path(args.config).is_file():
                raise SweepError(f"config file not found: {args.config}" if args.config else "give a CONFIG file")
            dims = parse_space(args.space)
            problems = config_errors(args.config, args.overrides, representative_points(dims))
            if problems:
                raise SweepError("\n".join(problems))
            config = apply_overrides(load_toml(args.config), args.overrides)
            budget = int(config.get("experiment", {}).get("total_steps", 100_000))
            tune_dir = Path(args.runs_dir) / f"tune-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
            manifest = {"config_name": Path(args.config).name, "config_text": Path(args.config).read_text(),
                        "space": args.space, "overrides": args.overrides, "pruner": args.pruner,
                        "report_every": args.report_every or max(1, budget // 10), "seed": args.seed,
                        "startup_trials": args.startup_trials, "storage": args.storage, "argv": sys.argv}
        dims = parse_space(manifest["space"])
        storage = args.storage or manifest.get("storage")
        if storage:
            Storage(storage).check()
        ray = connect_ray(args.ray) if args.ray else None
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("no trial was started", file=sys.stderr)
        return 2
    tune_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        atomic_write_text(tune_dir / "tune.json", json.dumps(manifest, indent=2) + "\n")
    db = f"sqlite:///{(tune_dir / 'study.db').resolve()}"
    oracle_args = (db, "playgrad", dims, manifest["pruner"], int(manifest["seed"]), int(manifest["startup_trials"]),
                   3 * int(manifest["report_every"]))
    if ray is not None:  # the study stays on this machine: the actor runs where tune.py runs
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        oracle = ray.remote(num_cpus=0)(Oracle).options(scheduling_strategy=here).remote(*oracle_args)
    else:
        oracle = Oracle(*oracle_args)
    config = tomllib.loads(manifest["config_text"])  # the study keeps the config as text: it resumes without the file
    seed = int(config.get("experiment", {}).get("seed", 0))
    base = JobSpec(manifest["config_text"], manifest["config_name"], seed, tuple(manifest["overrides"]), "trial")
    print(f"study {tune_dir} ({db}): up to {args.trials} trials, {args.workers} at once"
          f"{' on Ray' if ray else ''}; pruner {manifest['pruner']} every {manifest['report_every']} steps", flush=True)

    def finished(number: int, params: dict[str, Any], result: JobResult) -> None:
        if result.archive is not None:
            result.location = str(deliver_archive(result.archive, tune_dir / "trials" / result.point))
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        outcome = (f"score {result.mean_return:.1f}" if result.status == "finished" else
                   "pruned" if result.status == "stopped" else f"{result.status}: {result.error}")
        print(f"trial {number}: {shown}: {outcome} ({result.wall_s:.1f} s)", flush=True)

    run_study(oracle, args.trials, base, int(manifest["report_every"]), parallel=args.workers, storage_url=storage,
              study_dir_name=tune_dir.name, ray_module=ray, on_result=finished)
    trials = ray.get(oracle.summary.remote()) if ray else oracle.summary()
    atomic_write_text(tune_dir / "trials.json", json.dumps(trials, indent=2) + "\n")
    print(table(trials, [d.key for d in dims]))
    history_plot(trials, tune_dir / "history.png")
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    if not complete:
        print(f"no trial finished; see {tune_dir}/trials", file=sys.stderr)
        return 1
    best = max(complete, key=lambda t: t["value"])
    best_config = apply_overrides(config, [*manifest["overrides"], *overrides_of(best["params"])])
    header = (f"# best of {len(complete)} finished trials of {tune_dir.name} (trial {best['number']}: evaluation "
              f"mean return {best['value']:.1f})\n# searched: {'; '.join(manifest['space'])}\n")
    atomic_write_text(tune_dir / "best.toml", header + dump_toml(best_config))
    print(f"best: trial {best['number']}, score {best['value']:.1f}; wrote {tune_dir / 'best.toml'} and "
          f"{tune_dir / 'history.png'}\n  python scripts/train.py {tune_dir / 'best.toml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
