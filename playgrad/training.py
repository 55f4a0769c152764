"""One training job: a TOML config (or a run to resume) in, a trained and evaluated run directory out.

:func:`train` is what ``python scripts/train.py`` (:mod:`playgrad.cli.train`), ``make run``
(:mod:`playgrad.cli.main_job`) and the benchmarks run. The run directory holds ``config.toml`` (resolved),
``command.txt``, ``info.json`` (versions, backend, seed), ``metrics.jsonl``, ``checkpoints/{latest,best}.safetensors``
and, at the end, ``eval.json`` (deterministic episodes). Ctrl-C saves at the next safe point; ``resume`` continues
exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agents.base import Agent
from agents.runner import (
    CheckpointError,
    Runner,
    evaluate,
    make_agent,
    resume_checkpoint,
)
from rl import backend
from rl import random as rl_random
from rl.console import ProgressTable
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
    """A setting as given: floats in their shortest exact form (gamma 0.995 is not "0.99", lr 2.5e-4 is 0.00025)."""
    return repr(value) if isinstance(value, float) else str(value)


def read_config(config_path: str | None, overrides: list[str], seed: int | None = None,
                device: str | None = None) -> dict:
    """The config a new run trains: ``config_path`` with ``--set`` overrides, ``--seed`` and ``--device`` applied
    (not yet validated against the agent: :func:`new_run` does that)."""
    if config_path is None:
        raise ConfigError(f"give a CONFIG file (or --resume RUN_DIR). The configs: {', '.join(list_configs())}")
    if not Path(config_path).exists():
        raise ConfigError(f"config file not found: {config_path}. The configs: {', '.join(list_configs())}")
    config = apply_overrides(load_toml(config_path), overrides)
    check_table_names(config, where=config_path)
    # As overrides: a config whose `experiment` is not a table is then refused by name (it was a TypeError).
    return apply_overrides(config, ([] if seed is None else [f"experiment.seed={seed}"])
                           + ([] if device is None else [f'experiment.device="{device}"']))


def new_run(config: dict, config_path: str, overrides: list[str], runs_dir: str,
            argv: list[str] | None) -> tuple[RunDir, Agent]:
    """Build the agent of ``config`` and create its run directory (config.toml with every default filled in,
    command.txt, info.json)."""
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
    return run, agent


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
        run, agent = new_run(read_config(config_path, overrides, seed, device), config_path, overrides, runs_dir, argv)
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


# ------------------------------------------------------------------------------------- many seeds at once
class SeedRunner(Runner):
    """The :class:`Runner` of one seed of a stacked run: its checkpoints hold that seed's default generator
    (what its single-seed run's would hold), not the process-wide one, which the last seed built set."""

    def __init__(self, *args, default_rng_state: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.default_rng_state = default_rng_state

    def state_dict(self) -> dict:
        return {**super().state_dict(), "default_rng": json.dumps(self.default_rng_state)}


def parse_seeds(text: str) -> list[int]:
    """``--seeds`` as a list: ``"0-7"`` (a range, both ends included), ``"0,3,5"`` or a mix ``"0-3,8"``.
    Raises ConfigError with a one-line reason (empty, not a number, a range that runs backwards, a repeat)."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ConfigError(f"--seeds {text!r}: {part.strip()!r} is not a seed or a range like 0-7 "
                              f"(non-negative integers)")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ConfigError(f"--seeds {text!r}: the range {low}-{high} runs backwards (write {high}-{low})")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} names a seed twice")
    return seeds


def train_seeds(config_path: str | None, overrides: list[str], seeds: list[int] | None = None,
                device: str | None = None, resume: list[str] | None = None, runs_dir: str = "runs",
                progress: bool = True, argv: list[str] | None = None) -> list[Path]:
    """Train several seeds of one config in one process as one batched computation (:mod:`agents.ppo_seeds`);
    returns their run directories, one per seed, each what ``train`` would have written for that seed.

    ``resume`` continues the run directories of a stacked run that was stopped (Ctrl-C) instead. A config the
    batched path cannot take (another agent, see :func:`agents.ppo_seeds.unstackable_reason`) trains seed after
    seed with :func:`train`, after a message saying why.
    """
    from agents.ppo_seeds import unstackable_reason  # noqa: PLC0415

    if resume:
        if overrides or seeds or config_path is not None:
            raise ConfigError("--resume continues runs with their saved configs; drop CONFIG, --set and --seeds")
        runs = [RunDir.open(path) for path in resume]
        named = [run.path.resolve() for run in runs]
        for k, path in enumerate(named):
            if path in named[:k]:  # two seeds of one stack would write into one run directory
                raise ConfigError(f"--resume names {runs[k].path} twice")
        finished = [run for run in runs if (run.path / "eval.json").exists()]
        if len(finished) == len(runs):  # as train() says for one run: nothing left to train
            print(f"{len(runs)} runs already finished; their evaluations are in their eval.json. Nothing to resume: "
                  f"to train longer, start new runs with --set experiment.total_steps=...")
            return [run.path for run in runs]
        if finished:  # e.g. one stack of several that stopped at different iterations already went on to its end
            print(f"{len(finished)} of these runs already finished (their evaluations are in their eval.json): "
                  f"continuing the other {len(runs) - len(finished)}", flush=True)
            runs = [run for run in runs if run not in finished]
        configs = [apply_overrides(run.read_config(), [] if device is None else [f'experiment.device="{device}"'])
                   for run in runs]
        _check_one_config(configs, [str(run.path) for run in runs])
        agents, states = [], []
        for run, config in zip(runs, configs):
            agent = make_agent(config, where=str(run.config_path))
            state = resume_checkpoint(run)
            try:
                agent.load_state_dict(state["agent"])
            except (KeyError, ValueError) as exc:
                raise CheckpointError(f"{run.checkpoints / 'latest.safetensors'} does not fit the agent in "
                                      f"{run.config_path}: {exc}") from None
            agents.append(agent)
            states.append(state["runner"])
        reason = unstackable_reason(agents[0])
        if reason is not None:  # as a new run of such a config trains: seed after seed
            print(f"{len(runs)} runs one after another: {reason}", flush=True)
            return [train(None, [], device=device, resume=str(run.path), progress=progress) for run in runs]
        default_rngs = [json.loads(s["default_rng"]) for s in states]
    else:
        if not seeds:
            raise ConfigError("--seeds needs at least one seed")
        probe = make_agent(read_config(config_path, overrides, seeds[0], device), where=str(config_path))
        reason = unstackable_reason(probe)
        if reason is not None:
            print(f"{len(seeds)} seeds one after another: {reason}", flush=True)
            return [train(config_path, overrides, seed=s, device=device, runs_dir=runs_dir, progress=progress,
                          argv=argv) for s in seeds]
        runs, agents, default_rngs, states = [], [], [], [None] * len(seeds)
        for seed in seeds:
            run, agent = new_run(read_config(config_path, overrides, seed, device), str(config_path), overrides,
                                 runs_dir, argv)
            runs.append(run)
            agents.append(agent)
            # the agent seeded the default generator to draw its weights; its single-seed run saves it from here
            default_rngs.append(rl_random.default_generator().get_state())

    paths = [run.path for run in runs]
    groups: dict[int, list[int]] = {}  # the runs at each iteration: a stack's seeds move in step
    for k, agent in enumerate(agents):
        groups.setdefault(agent.iteration, []).append(k)
    if len(groups) > 1:
        print(f"these {len(runs)} runs stopped at {len(groups)} different iterations "
              f"({', '.join(map(str, sorted(groups)))}): each group continues as its own stack, one after another "
              f"(a seed's run is the same in any stack)", flush=True)
    for group in groups.values():
        if not _train_stack([runs[k] for k in group], [agents[k] for k in group], [states[k] for k in group],
                            [default_rngs[k] for k in group], progress):
            left = [str(p) for p in paths if not (p / "eval.json").exists()]
            print(f"\nstopped; checkpoints saved. Continue with: python scripts/train.py --resume {' '.join(left)}")
            return paths
    return paths


def _train_stack(runs: list[RunDir], agents: list[Agent], states: list[dict | None], default_rngs: list[dict],
                 progress: bool) -> bool:
    """Train the seeds of ``agents`` (at one iteration) as one stack to the end of their budget and evaluate
    them, each into its run directory; False when Ctrl-C stopped them first (their checkpoints saved)."""
    from agents.ppo_seeds import PPOSeeds  # noqa: PLC0415

    stack = PPOSeeds(agents)
    experiment = agents[0].experiment
    print(f"{len(agents)} seed{'s' if len(agents) > 1 else ''} ({', '.join(str(a.experiment.seed) for a in agents)}) "
          f"of {experiment.name} as one batched computation; run directories:\n  "
          + "\n  ".join(str(run.path) for run in runs), flush=True)
    runners = []
    for k, (run, agent, state, rng) in enumerate(zip(runs, agents, states, default_rngs)):
        shown = progress and k == 0  # one bar (seed 0's): the seeds move in step
        runners.append(SeedRunner(run, agent.experiment, resume=state, progress=shown, default_rng_state=rng))
    try:
        for runner, agent in zip(runners, agents):
            runner.watch(agent)
        with runners[0].sigint_stops():
            stack.learn(experiment.total_steps, runners)
        if runners[0].interrupted:
            for runner in runners[1:]:
                runner.request_stop()
        for runner, agent in zip(runners, agents):
            runner.finish(agent)
    finally:
        for runner in runners:
            runner.close()
    if runners[0].interrupted:
        return False
    for run, result in zip(runs, stack.evaluate(episodes=experiment.eval_episodes)):  # all seeds at once
        run.write_json("eval.json", result)
        print(f"{run.path}: evaluation over {result['episodes']} episodes: mean return {result['mean_return']:.1f} "
              f"(min {result['min_return']:.1f}, max {result['max_return']:.1f})")
    return True


def _check_one_config(configs: list[dict], where: list[str]) -> None:
    """Refuse runs to resume together whose configs differ in more than the seed."""
    def without_seed(config: dict) -> dict:
        return {**config, "experiment": {k: v for k, v in config.get("experiment", {}).items() if k != "seed"}}

    for config, path in zip(configs[1:], where[1:]):
        if without_seed(config) != without_seed(configs[0]):
            raise ConfigError(f"--resume of several runs continues the seeds of one config; {path} has another "
                              f"config than {where[0]}")
