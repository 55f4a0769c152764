"""Draw learning curves (episode return against environment steps) of one or more runs to a PNG.

    python scripts/plot.py runs/cartpole_ppo-s0-* --out ppo.png

Runs of the same config name (``experiment.name``) and the same ``--set`` overrides are one curve:
their returns are interpolated on a common step grid and drawn as the mean with a min-max band across
seeds. Runs of different configs, or of different overrides (a sweep's grid points), get one curve
each, labelled with the overrides that tell them apart:

    python scripts/plot.py runs/sweep-cartpole_ppo-*/*/* --out sweep.png

Each run's curve is its episode returns smoothed by a moving average (``--window`` episodes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playgrad.curves import plot
from rl.experiment import ConfigError, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="run directories written by scripts/train.py")
    parser.add_argument("--out", help="PNG file (default: RUN_DIR/curve.png for one run, curves.png otherwise)")
    parser.add_argument("--window", type=positive_int, default=20, help="moving-average window in episodes")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)
    out = args.out or (Path(args.run_dirs[0]) / "curve.png" if len(args.run_dirs) == 1 else Path("curves.png"))
    try:
        path = plot(args.run_dirs, out, window=args.window, title=args.title)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
