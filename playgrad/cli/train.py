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

from agents.runner import CheckpointError, NonFiniteLossError  # noqa: E402
from envs.games import game_of_env  # noqa: E402
from playgrad.training import train  # noqa: E402
from rl import backend  # noqa: E402
from rl.experiment import ConfigError, RunDir  # noqa: E402


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
                        argv=["scripts/train.py", *(argv if argv is not None else sys.argv[1:])])
    except (ConfigError, CheckpointError, NonFiniteLossError, backend.BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (the loop saves and stops on the first one)
        print("\ninterrupted: the last checkpoint is kept; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
    if (run_dir / "eval.json").exists():  # finished (an interrupted run has printed how to continue)
        print(next_steps(run_dir))
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


if __name__ == "__main__":
    sys.exit(main())
