"""One training job: a TOML config (or a run to resume) in, a trained and evaluated run directory out.

:func:`train` is what ``python scripts/train.py`` (:mod:`playgrad.cli.train`), ``make run``
(:mod:`playgrad.cli.main_job`) and the benchmarks run. The run directory holds ``config.toml`` (resolved),
``command.txt``, ``info.json`` (versions, backend, seed), ``metrics.jsonl``, ``checkpoints/{latest,best}.safetensors``
and, at the end, ``eval.json`` (deterministic episodes). Ctrl-C saves at the next safe point; ``resume`` continues
exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agents.runner import (
    CheckpointError,
    Runner,
    evaluate,
    make_agent,
    resume_checkpoint,
)
from rl import backend
from rl.console import ProgressTable, format_number
from rl.experiment import ConfigError, RunDir, apply_overrides, load_toml


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


CONFIGS = Path(__file__).resolve().parent.parent / "configs"  # the source checkout's configs/


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
