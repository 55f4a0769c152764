"""Train an agent from a TOML config and write a run directory.

    python scripts/train.py configs/cartpole_ppo.toml
    python scripts/train.py configs/cartpole_ppo.toml --set agent.lr=3e-4 --seed 1 --runs-dir runs
    python scripts/train.py --resume runs/cartpole_ppo-s0-20250101-120000
    python scripts/train.py configs/cartpole_ppo_fast.toml --seeds 0-7   # 8 seeds in one batched process

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

from agents.runner import CheckpointError, NonFiniteLossError  # noqa: E402
from envs.games import game_of_env  # noqa: E402
from playgrad.training import parse_seeds, train, train_seeds  # noqa: E402
from rl import backend  # noqa: E402
from rl.experiment import ConfigError, RunDir, seed_int  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="experiment TOML file (configs/*.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set agent.lr=3e-4 (repeatable)")
    parser.add_argument("--seed", type=seed_int, help="experiment seed (overrides experiment.seed)")
    parser.add_argument("--seeds", metavar="LIST",
                        help="train several seeds of the config in this process as one batched computation "
                             "(PPO; other agents run them one after another), e.g. 0-7 or 0,2,5; one run "
                             "directory per seed, each the run --seed would give (bit for bit on the CPU; to "
                             "spread seeds over several cores: sweep.py --seeds 0-7 --workers N)")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"], help="array backend")
    parser.add_argument("--resume", metavar="RUN_DIR", nargs="+",
                        help="continue an interrupted run from its latest checkpoint (several: the run "
                             "directories of an interrupted --seeds run, continued together)")
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
    command = ["scripts/train.py", *(argv if argv is not None else sys.argv[1:])]
    try:
        if args.seeds is not None or (args.resume and len(args.resume) > 1):
            if args.seed is not None:
                raise ConfigError("give --seed or --seeds, not both")
            seeds = parse_seeds(args.seeds) if args.seeds is not None else None
            run_dirs = train_seeds(args.config, args.overrides, seeds, device=args.device, resume=args.resume,
                                   runs_dir=args.runs_dir, progress=not args.no_progress, argv=command)
        else:
            run_dirs = [train(args.config, args.overrides, seed=args.seed, device=args.device,
                              resume=args.resume[0] if args.resume else None, runs_dir=args.runs_dir,
                              progress=not args.no_progress, argv=command)]
    except (ConfigError, CheckpointError, NonFiniteLossError, backend.BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (the loop saves and stops on the first one)
        print("\ninterrupted: the last checkpoint is kept; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
    if all((run_dir / "eval.json").exists() for run_dir in run_dirs):  # finished (else it said how to continue)
        print(next_steps(run_dirs[0]) if len(run_dirs) == 1 else seeds_next_steps(run_dirs))
    return 0


def next_steps(run_dir: Path) -> str:
    """The commands a newcomer runs on a finished run: evaluate it, watch it play, plot its curve."""
    env_id = RunDir.open(run_dir).read_config().get("experiment", {}).get("env_id", "")
    game = game_of_env(env_id)
    lines = ["next:", f"  python scripts/evaluate.py {run_dir}   # more evaluation episodes"]
    if game is not None:
        lines.append(f"  python scripts/play.py {game} --agent {run_dir}   # watch it play, in a window")
    lines.append(f"  python scripts/plot.py {run_dir}   # its learning curve, as RUN_DIR/curve.png")
    lines.append(f"  python scripts/dashboard.py {run_dir.parent}   # live curves, config diffs, episodes, internals")
    return "\n".join(lines)


def seeds_next_steps(run_dirs: list[Path]) -> str:
    """What to run on the finished seeds of one config: their curves together, one of them played."""
    env_id = RunDir.open(run_dirs[0]).read_config().get("experiment", {}).get("env_id", "")
    game = game_of_env(env_id)
    lines = ["next:", f"  python scripts/plot.py {' '.join(map(str, run_dirs))} --out curve.png   # mean and spread"]
    if game is not None:
        lines.append(f"  python scripts/play.py {game} --agent {run_dirs[0]}   # watch one seed play")
    lines.append(f"  python scripts/dashboard.py {run_dirs[0].parent}   # live curves, episodes, internals")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
