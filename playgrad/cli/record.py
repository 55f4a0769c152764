"""Record a trained agent playing, as an animated GIF or WebP, or an MP4 video.

    python scripts/record.py runs/cartpole_ppo-s0-20250101-120000                 # -> runs/.../episode.gif
    python scripts/record.py RUN_DIR --out level1.webp --episodes 3
    python scripts/record.py RUN_DIR --out episode.mp4      # needs the `video` extra: pip install -e '.[video]'

The agent plays deterministically with its best (or latest) checkpoint, as in ``evaluate.py``; the env
draws each step in its ``"rgb_array"`` render mode (no window is opened, so this works on a server), with
its own status line (step, return), and each episode's return is printed. GIF/WebP frames are mapped
onto one shared palette (taken from the first frame) so colours do not flicker between frames, and kept
as 1 byte per pixel while recording. Animated GIFs cannot show a frame for less than 20 ms (browsers
stretch shorter frames to 100 ms), so envs drawn at more than 50 frames per second keep every second
(or third...) frame unless ``--every`` says otherwise; an MP4 keeps every frame at the env's own speed.
Below ``--scale 0.75`` the status line gets hard to read.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: threads only add overhead

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from agents.originals import is_original_source  # noqa: E402
from playgrad.cli import add_checkpoint_option  # noqa: E402
from playgrad.recording import FORMATS, LEGIBLE_SCALE, MAX_STEPS, Episode, record, video_encoder  # noqa: E402
from playgrad.runs import load_agent_or_report  # noqa: E402
from rl.experiment import positive_int, seed_int  # noqa: E402


def positive_float(text: str) -> float:
    """argparse type: a float greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory written by scripts/train.py, or an original MetaCar demo "
                                        "agent (original:ddpg-traffic, ... or its .json file; see evaluate.py)")
    parser.add_argument("--out", help="output file, .gif, .webp or .mp4 (default: RUN_DIR/episode.gif)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes to record, one after another")
    add_checkpoint_option(parser)
    parser.add_argument("--seed", type=seed_int,
                        help="env seed of the first episode (default: the run's seed + 1,000,000)")
    parser.add_argument("--max-steps", type=positive_int, default=MAX_STEPS,
                        help=f"cut an episode after this many steps (default {MAX_STEPS:,})")
    parser.add_argument("--every", type=positive_int,
                        help="keep every n-th step (default: as many as the format can show at the env's speed)")
    parser.add_argument("--scale", type=positive_float, default=1.0,
                        help=f"resize frames by this factor (default 1; below {LEGIBLE_SCALE} the status line blurs)")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"],
                        help="array backend (default: the run's own; --device cpu plays a GPU run anywhere)")
    args = parser.parse_args(argv)
    original = is_original_source(args.run_dir)  # one of the original MetaCar demo's agents, not a run
    if not original and not Path(args.run_dir).is_dir():  # before --out's checks: its default folder is the run's
        parser.error(f"run directory {args.run_dir!r} does not exist (a folder written by scripts/train.py)")
    if original and not args.out:
        parser.error("an original agent has no run directory to write into: give --out, e.g. --out original.gif")
    out = Path(args.out) if args.out else Path(args.run_dir) / "episode.gif"
    if out.suffix.lower() not in FORMATS:
        parser.error(f"--out must end in one of {', '.join(FORMATS)}, got {out.name!r}")
    if not out.parent.is_dir():
        parser.error(f"--out: folder {str(out.parent)!r} does not exist")
    if out.suffix.lower() == ".mp4" and video_encoder() is None:
        parser.error("--out x.mp4 needs imageio-ffmpeg: pip install -e '.[video]' (or write a .gif or .webp)")
    agent = load_agent_or_report(args.run_dir, args.checkpoint, args.device)
    if agent is None:
        return 1

    seed = agent.experiment.seed + 1_000_000 if args.seed is None else args.seed
    log: list[Episode] = []
    count, frame_ms, every = record(agent, out, args.episodes, seed, args.max_steps, args.every, args.scale, log)
    for k, episode in enumerate(log, 1):
        print(f"episode {k}: {episode}")
    print(f"wrote {out} ({count} frames, {frame_ms} ms each, every {every} step(s); "
          f"{out.stat().st_size / 1024:.0f} KiB)")
    if args.scale < LEGIBLE_SCALE:
        print(f"note: at --scale {args.scale:g} the status line is hard to read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
