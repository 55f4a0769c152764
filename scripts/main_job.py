"""The main job (``make run``): train a self-driving car in MetaCar traffic, plot it, say how to watch it.

    python scripts/main_job.py [--runs-dir runs] [--set key=value ...]

Trains ``configs/metacar_level1_ppo.toml``: PPO on 16 batched MetaCar worlds of level1 (three bot
cars moving through the town) for 1M env steps with an annealed learning rate, about half a minute on
two CPU cores. The car then averages well over the experiment's target of 0.5 reward per step over
800-step episodes (0.96-0.99 for seeds 0-2). Then it writes ``RUN_DIR/curve.png`` and prints the
command that opens a window with the trained car driving.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: threads only add overhead

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import plot as plot_script  # noqa: E402
import train as train_script  # noqa: E402

CONFIG = ROOT / "configs" / "metacar_level1_ppo.toml"
GAME = "metacar"  # the play.py game of the config's env
TITLE = "PPO on MetaCar level1, in traffic"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="where the run directory goes")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides passed to train.py")
    args = parser.parse_args(argv)
    print(f"training {CONFIG.relative_to(ROOT)} (Ctrl-C stops and saves)")
    code = train_script.main([str(CONFIG), "--runs-dir", args.runs_dir, *sum((["--set", o] for o in args.overrides),
                                                                              [])])
    if code != 0:
        return code
    runs = sorted(Path(args.runs_dir).glob(f"{CONFIG.stem}-s*"), key=lambda p: p.stat().st_mtime)
    run_dir = runs[-1]
    png = plot_script.plot([str(run_dir)], run_dir / "curve.png", title=TITLE)
    print(f"learning curve: {png}")
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        result = json.loads(eval_path.read_text())
        print(f"deterministic evaluation: mean return {result['mean_return']:.1f} over {result['episodes']} episodes")
    print(f"watch it drive:  .venv/bin/python scripts/play.py {GAME} --agent {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
