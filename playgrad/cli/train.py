"""Train an agent from a TOML config and write a run directory.

    python scripts/train.py configs/cartpole_ppo.toml
    python scripts/train.py configs/cartpole_ppo.toml --set agent.lr=3e-4 --seed 1 --runs-dir runs
    python scripts/train.py --resume runs/cartpole_ppo-s0-20250101-120000

The run directory holds ``config.toml`` (resolved), ``command.txt``, ``info.json`` (versions, backend,
seed), ``metrics.jsonl``, ``checkpoints/{latest,best}.safetensors`` and, at the end, ``eval.json``
(deterministic episodes). Ctrl-C saves at the next safe point; ``--resume`` continues exactly.
"""

from __future__ import annotations

import os

# Tiny networks: BLAS threads cost more in synchronisation than they save (and fight each other
# when several runs share the cores), so one thread unless the user asked otherwise. Set before
# NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.runner import (  # noqa: E402
    CheckpointError,
    NonFiniteLossError,
    Runner,
    evaluate,
    make_agent,
    resume_checkpoint,
)
from rl import backend  # noqa: E402
from rl.console import ProgressTable, format_number  # noqa: E402
from rl.experiment import ConfigError, RunDir, apply_overrides, load_toml  # noqa: E402


class TableRunner(Runner):
    """The :class:`Runner` of ``--no-progress``: instead of a progress bar, a plain-text table of the run's
    progress every ``every_s`` seconds and at the end (what logs and CI keep; SB3's logger prints the same)."""

    def __init__(self, *args, every_s: float = 10.0, **kwargs):
        super().__init__(*args, progress=False, **kwargs)
        self.table = ProgressTable(every_s=every_s, start_steps=self.env_steps)

    def log(self, record) -> None:
        super().log(record)
        self.table.update(record)

    def close(self) -> None:
        self.table.flush()
        super().close()


CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def list_configs() -> list[str]:
    """The training configs in configs/ (those with an [experiment] agent), as paths to type."""
    import tomllib  # noqa: PLC0415

    found = []
    for path in sorted(CONFIGS.glob("*.toml")):
        try:
            if "agent" in tomllib.loads(path.read_text()).get("experiment", {}):
                found.append(f"configs/{path.name}")
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return found


def check_table_names(config: dict, where: str) -> None:
    """Refuse a key outside the [experiment], [env] and [agent] tables (``--set lr=1e-3``), naming the table
    that has it when exactly one does."""
    import dataclasses  # noqa: PLC0415

    from agents.base import ExperimentConfig, get_agent_module  # noqa: PLC0415
    from agents.runner import check_env_kwargs  # noqa: PLC0415

    tables = ("experiment", "env", "agent")
    for key in [k for k in config if k not in tables]:
        exp = config.get("experiment", {})
        has = []
        if key in {f.name for f in dataclasses.fields(ExperimentConfig)}:
            has.append("experiment")
        try:
            check_env_kwargs(exp.get("env_id", ExperimentConfig.env_id), {key: None}, where)
            has.append("env")
        except ConfigError:
            pass
        try:
            agent_config = get_agent_module(exp.get("agent", ExperimentConfig.agent)).Config
            if key in {f.name for f in dataclasses.fields(agent_config)}:
                has.append("agent")
        except ValueError:  # an unknown agent: make_agent says so
            pass
        hint = f"; did you mean {has[0]}.{key}?" if len(has) == 1 else \
            f"; it is a key of {' and '.join(has)}: say which, e.g. {has[0]}.{key}" if has else \
            "; keys go in a table: experiment.KEY, env.KEY or agent.KEY"
        raise ConfigError(f"{where}: {key!r} is not a table{hint}")


def start_summary(run: RunDir, config: dict, agent) -> str:
    """What a run starts with: its directory, the agent and env, and every setting that differs from the code's
    defaults (the whole resolved config is in RUN_DIR/config.toml)."""
    import dataclasses  # noqa: PLC0415

    from agents.base import ExperimentConfig  # noqa: PLC0415

    exp = config["experiment"]
    changed = []
    defaults = {"experiment": dataclasses.asdict(ExperimentConfig()), "agent": _defaults(type(agent.config))}
    for table in ("experiment", "agent"):
        for key, value in config.get(table, {}).items():
            if key in ("name", "agent", "env_id", "seed", "total_steps", "env"):
                continue  # said in the first lines
            if key not in defaults[table] or defaults[table][key] != value:
                changed.append(f"{table}.{key}={_show(value)}")
    changed += [f"env.{key}={_show(value)}" for key, value in config.get("env", {}).items()]
    lines = [f"run directory: {run.path}",
             f"{exp['agent']} on {exp['env_id']}, seed {exp['seed']}, {exp['total_steps']:,} env steps "
             f"(resolved config: {run.config_path})"]
    line = "settings:"
    for item in changed:  # wrapped at 100 columns
        if len(line) + 1 + len(item) > 100:
            lines.append(line)
            line = "   "
        line += " " + item
    lines.append(line if changed else "settings: all defaults")
    return "\n".join(lines)


def _defaults(config_class) -> dict:
    import dataclasses  # noqa: PLC0415

    try:
        return dataclasses.asdict(config_class())
    except TypeError:  # a config with required fields: call every key a setting
        return {}


def _show(value) -> str:
    return format_number(value) if isinstance(value, float) else str(value)


def train(config_path: str | None, overrides: list[str], seed: int | None = None, device: str | None = None,
          resume: str | None = None, runs_dir: str = "runs", progress: bool = True,
          argv: list[str] | None = None) -> Path:
    """Run one training job; returns the run directory. Raises ConfigError/NonFiniteLossError/CheckpointError."""
    if resume is not None:
        if overrides or seed is not None or config_path is not None:
            raise ConfigError("--resume continues a run with its saved config; drop CONFIG, --set and --seed")
        run = RunDir.open(resume)  # a mistyped path raises RunNotFoundError (a ConfigError) and creates nothing
        if (run.path / "eval.json").exists():
            # eval.json is written only after the budget is spent (never on Ctrl-C): resuming used to print the
            # same evaluation again as if it had trained. The budget comes from the saved config, so say how to
            # train longer instead.
            print(f"{run.path} already finished; its evaluation is in {run.path / 'eval.json'}. Nothing to "
                  f"resume: to train longer, start a new run with --set experiment.total_steps=...")
            return run.path
        config = apply_overrides(run.read_config(), [] if device is None else [f'experiment.device="{device}"'])
        where = str(run.config_path)
        agent = make_agent(config, where=where)
        latest = run.checkpoints / "latest.safetensors"
        state = resume_checkpoint(run)  # a run stopped before its first save is told to start again
        try:
            agent.load_state_dict(state["agent"])
            runner_state = state["runner"]
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{latest} does not fit the agent in {run.config_path}: {exc}") from None
    else:
        if config_path is None:
            raise ConfigError(f"give a CONFIG file (or --resume RUN_DIR). The configs: {', '.join(list_configs())}")
        if not Path(config_path).exists():
            raise ConfigError(f"config file not found: {config_path}. The configs: {', '.join(list_configs())}")
        config = apply_overrides(load_toml(config_path), overrides)
        check_table_names(config, where=config_path)
        # As overrides: a config whose `experiment` is not a table is then refused by name (it was a TypeError).
        config = apply_overrides(config, ([] if seed is None else [f"experiment.seed={seed}"])
                                 + ([] if device is None else [f'experiment.device="{device}"']))
        agent = make_agent(config, where=config_path)
        # Store the config with every default filled in, so the run says exactly what ran.
        import dataclasses  # noqa: PLC0415

        exp = dataclasses.asdict(agent.experiment)
        env_table = exp.pop("env")
        config = {"experiment": exp, "env": env_table, "agent": agent.hyperparameters()}
        run = RunDir.create(runs_dir, agent.experiment.name, agent.experiment.seed)
        run.write_start(config, argv or sys.argv, {
            "seed": agent.experiment.seed, "backend": backend.current().description,
            "device": backend.current().device, "config_file": str(config_path), "overrides": overrides,
        })
        runner_state = None

    experiment = agent.experiment
    print(start_summary(run, run.read_config(), agent), flush=True)
    if progress:
        runner = Runner(run, experiment, resume=runner_state, progress=True)
    else:
        runner = TableRunner(run, experiment, resume=runner_state)
    try:
        runner.watch(agent)  # model.json; histograms and TensorBoard files when the experiment asks (dashboard)
        with runner.sigint_stops():
            agent.learn(experiment.total_steps, runner)
        runner.finish(agent)  # after Ctrl-C: a "latest" that moves neither the checkpoint schedule nor "best"
    finally:
        runner.close()
    if runner.interrupted:
        print(f"\nstopped; checkpoint saved. Continue with: python scripts/train.py --resume {run.path}")
        return run.path
    result = evaluate(agent, episodes=experiment.eval_episodes)
    run.write_json("eval.json", result)
    print(f"{run.path}: evaluation over {result['episodes']} episodes: mean return {result['mean_return']:.1f} "
          f"(min {result['min_return']:.1f}, max {result['max_return']:.1f})")
    return run.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="experiment TOML file (configs/*.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set agent.lr=3e-4 (repeatable)")
    parser.add_argument("--seed", type=int, help="experiment seed (overrides experiment.seed)")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"], help="array backend")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    parser.add_argument("--runs-dir", default="runs", help="where new run directories go (default: runs)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a plain-text table of steps, episodes, mean return, losses and speed "
                             "every 10 s (for logs)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files to RUN_DIR/tensorboard (experiment.tensorboard; "
                             "needs pip install 'playgrad[tensorboard]')")
    args = parser.parse_args(argv)
    if args.tensorboard:
        if args.resume:
            print("error: --tensorboard applies to a new run; a resumed run keeps its config's experiment.tensorboard",
                  file=sys.stderr)
            return 2
        args.overrides.append("experiment.tensorboard=true")
    try:
        run_dir = train(args.config, args.overrides, seed=args.seed, device=args.device, resume=args.resume,
                        runs_dir=args.runs_dir, progress=not args.no_progress,
                        argv=["scripts/train.py", *(argv or sys.argv[1:])])
    except (ConfigError, CheckpointError, NonFiniteLossError, backend.BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    if (run_dir / "eval.json").exists():  # finished (an interrupted run has printed how to continue)
        print(next_steps(run_dir))
    return 0


def next_steps(run_dir: Path) -> str:
    """The commands a newcomer runs on a finished run: evaluate it, watch it play, plot its curve."""
    from scripts.play import GAMES  # noqa: PLC0415  (play.py's table of games: name -> (env id, controls))

    env_id = RunDir.open(run_dir).read_config().get("experiment", {}).get("env_id", "")
    game = next((name for name, (game_env_id, _) in GAMES.items() if game_env_id == env_id), None)
    lines = ["next:", f"  python scripts/evaluate.py {run_dir}   # more evaluation episodes"]
    if game is not None:
        lines.append(f"  python scripts/play.py {game} --agent {run_dir}   # watch it play, in a window")
    lines.append(f"  python scripts/plot.py {run_dir}   # its learning curve, as RUN_DIR/curve.png")
    lines.append(f"  python scripts/dashboard.py {run_dir.parent}   # live curves, config diffs, episodes, internals")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
