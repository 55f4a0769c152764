"""The main job (``make run``): train a self-driving car in MetaCar traffic, plot it, say how to watch it.

    python scripts/main_job.py [--runs-dir runs] [--set key=value ...]

Trains ``configs/metacar_level1_ppo.toml``: PPO on 16 batched MetaCar worlds of level1 (three bot
cars moving through the town) for 2M env steps with an annealed learning rate: 96 CPU-seconds measured with
the evaluation and the recording (3 minutes of wall time at a load of ~3, when other work shares the cores).
The car then averages over the experiment's target of 0.5 reward per step over 800-step episodes from
random starts (0.994 for the final weights of seeds 0-2 in docs/benchmarks.md). Then it writes
``RUN_DIR/curve.png`` (the learning curve) and ``RUN_DIR/episode.gif`` (one deterministic episode of the best
checkpoint, as ``scripts/record.py`` draws it) and prints the commands that open a window with the trained car
driving and the dashboard.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: threads only add overhead

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from agents.runner import CheckpointError, NonFiniteLossError, load_agent  # noqa: E402
from playgrad.curves import plot  # noqa: E402
from playgrad.recording import record  # noqa: E402
from playgrad.training import train  # noqa: E402
from rl import backend  # noqa: E402
from rl.experiment import ConfigError, RunDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the source checkout: its configs/ and, by default, runs/
CONFIG = ROOT / "configs" / "metacar_level1_ppo.toml"
GAME = "metacar"  # the play.py game of the config's env
TITLE = "PPO on MetaCar level1, in traffic"
TARGET_REWARD_PER_STEP = 0.5  # the config's stated target (an episode return of 400 over 800 steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="where the run directory goes")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides passed to train.py")
    args = parser.parse_args(argv)
    print(f"training {CONFIG.relative_to(ROOT)} (Ctrl-C stops and saves)")
    try:
        # train() names the run directory it wrote: looking it up by the config's name afterwards found an
        # older run (or none) when --set experiment.name=... changed the name.
        run_dir = Path(train(str(CONFIG), args.overrides, runs_dir=args.runs_dir,
                             argv=["scripts/main_job.py", *(argv if argv is not None else sys.argv[1:])]))
    except (ConfigError, CheckpointError, NonFiniteLossError, backend.BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    try:
        print(f"learning curve: {plot([str(run_dir)], run_dir / 'curve.png', title=TITLE)}")
    except ConfigError as exc:  # stopped before the first episode ended: nothing to draw yet
        print(f"no learning curve: {exc}")
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        # train() has printed the mean return; the config's target is stated per step, so say that figure.
        result = json.loads(eval_path.read_text())
        max_steps = RunDir.open(run_dir).read_config().get("env", {}).get("max_steps")
        if max_steps:
            print(f"that is {result['mean_return'] / max_steps:.3f} reward per step over {max_steps}-step episodes "
                  f"(the experiment's target: {TARGET_REWARD_PER_STEP})")
    try:
        # A recording shows the result where no window can open (a server, CI); play.py is the live view.
        gif = run_dir / "episode.gif"
        agent = load_agent(run_dir)
        # Full size: at half size (300 px wide) the status line under the map could not be read.
        record(agent, gif, seed=agent.experiment.seed + 1_000_000, max_steps=800)
        print(f"one episode of it, recorded: {gif}")
    except (CheckpointError, OSError, ValueError) as exc:  # the run is saved; only the recording is missing
        print(f"no recording: {exc}")
    print(f"watch it drive:  .venv/bin/python scripts/play.py {GAME} --agent {run_dir}")
    print(f"see inside it:   .venv/bin/python scripts/dashboard.py {run_dir.parent}   (then http://127.0.0.1:8050/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
