"""Record a trained agent playing, as an animated GIF or WebP you can share or put in a page.

    python scripts/record.py runs/cartpole_ppo-s0-20250101-120000                 # -> runs/.../episode.gif
    python scripts/record.py RUN_DIR --out level1.webp --episodes 3 --scale 0.5

The agent plays deterministically with its best (or latest) checkpoint, as in ``evaluate.py``; the env
draws each step in its ``"rgb_array"`` render mode (no window is opened, so this works on a server),
and a caption under each frame gives the episode, the step and the return so far. Frames are mapped
onto one shared palette (taken from the first frame) so colours do not flicker between frames, and
kept as 1 byte per pixel while recording. Animated GIFs cannot show a frame for less than 20 ms
(browsers stretch shorter frames to 100 ms), so envs drawn at more than 50 frames per second keep
every second (or third...) frame unless ``--every`` says otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: threads only add overhead

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import load_agent_or_report  # noqa: E402

from agents.base import Agent  # noqa: E402
from rl.experiment import positive_int  # noqa: E402

MAX_STEPS = 2_000  # steps after which a recorded episode is cut: a GIF of an endless episode is no use
MIN_FRAME_MS = 20  # the shortest frame duration browsers honour in a GIF
CAPTION_PX = 18  # height of the caption band under each frame
FORMATS = (".gif", ".webp")


def frames_of_episodes(
    agent: Agent, episodes: int, seed: int, max_steps: int = MAX_STEPS, every: int = 1
) -> Iterator[tuple[np.ndarray, str]]:
    """Yield ``(frame, caption)`` for every ``every``-th step of ``episodes`` deterministic episodes.

    ``frame`` is the env's ``(H, W, 3)`` uint8 picture; the first and last frame of each episode are
    always kept, so how it ended is in the recording. Episode ``k`` uses seed ``seed + k``.
    """
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415

    env = gym.make(agent.experiment.env_id, render_mode="rgb_array", **agent.experiment.env)
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            total, steps, done = 0.0, 0, False
            yield env.render(), f"episode {k + 1}  step 0  return 0"
            while not done and steps < max_steps:
                action = agent.act(np.asarray(obs)[None], deterministic=True)[0]
                obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
                total += float(reward)
                steps += 1
                done = terminated or truncated or steps == max_steps
                if done or steps % every == 0:
                    end = " (terminated)" if terminated else " (truncated)" if truncated else " (cut)" if done else ""
                    yield env.render(), f"episode {k + 1}  step {steps}  return {total:g}{end}"
    finally:
        env.close()


def to_image(frame: np.ndarray, caption: str, scale: float):
    """A Pillow RGB image of ``frame`` ``(H, W, 3)`` uint8, scaled, with ``caption`` in a band below it."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"the env's rgb_array frame should be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    picture = Image.fromarray(frame)
    if scale != 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    image = Image.new("RGB", (picture.width, picture.height + CAPTION_PX), (255, 255, 255))
    image.paste(picture, (0, 0))
    ImageDraw.Draw(image).text((4, picture.height + 3), caption, fill=(20, 20, 20))
    return image


def write_animation(images: Iterator, out: Path, frame_ms: int) -> int:
    """Write RGB Pillow ``images`` to ``out`` (.gif or .webp) at ``frame_ms`` per frame; returns the frame count.

    Every frame is quantized to the first frame's palette (256 colours, no dithering): env pictures are
    flat-coloured, and one palette keeps a colour the same from frame to frame. The file is written to a
    temporary name first and renamed, so an interrupted recording leaves no half-written file behind.
    """
    from PIL import Image  # noqa: PLC0415

    first = next(images, None)
    if first is None:
        raise ValueError("no frames to write")
    palette = first.quantize(colors=256, dither=Image.Dither.NONE)
    frames = [palette] + [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        kind = "GIF" if out.suffix.lower() == ".gif" else "WEBP"
        frames[0].save(tmp, format=kind, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frames)


def default_every(render_fps: float) -> int:
    """Keep every n-th step so a frame lasts at least ``MIN_FRAME_MS`` at the env's own speed."""
    return max(1, math.ceil(MIN_FRAME_MS * render_fps / 1000))


def record(
    agent: Agent, out: Path, episodes: int = 1, seed: int = 0, max_steps: int = MAX_STEPS,
    every: int | None = None, scale: float = 1.0,
) -> tuple[int, int, int]:
    """Write ``episodes`` deterministic episodes of ``agent`` to ``out``; returns (frames, ms per frame, every).

    ``every=None`` keeps as many steps as a GIF can show at the env's own speed (:func:`default_every`).
    """
    render_fps = _render_fps(agent)
    every = every or default_every(render_fps)
    frame_ms = max(MIN_FRAME_MS, round(1000 * every / render_fps))
    frames = frames_of_episodes(agent, episodes, seed, max_steps, every)
    count = write_animation((to_image(frame, caption, scale) for frame, caption in frames), out, frame_ms)
    return count, frame_ms, every


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory written by scripts/train.py")
    parser.add_argument("--out", help="output file, .gif or .webp (default: RUN_DIR/episode.gif)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes to record, one after another")
    parser.add_argument("--checkpoint", default="best", choices=["best", "latest"], help="which checkpoint")
    parser.add_argument("--seed", type=int, help="env seed of the first episode (default: the run's seed + 1,000,000)")
    parser.add_argument("--max-steps", type=positive_int, default=MAX_STEPS,
                        help=f"cut an episode after this many steps (default {MAX_STEPS:,})")
    parser.add_argument("--every", type=positive_int,
                        help="keep every n-th step (default: as many as a GIF can show at the env's speed)")
    parser.add_argument("--scale", type=positive_float, default=1.0, help="resize frames by this factor")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"],
                        help="array backend (default: the run's own; --device cpu plays a GPU run anywhere)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.run_dir) / "episode.gif"
    if out.suffix.lower() not in FORMATS:
        parser.error(f"--out must end in one of {', '.join(FORMATS)}, got {out.name!r}")
    if not out.parent.is_dir():
        parser.error(f"--out: folder {str(out.parent)!r} does not exist")
    agent = load_agent_or_report(args.run_dir, args.checkpoint, args.device)
    if agent is None:
        return 1

    seed = agent.experiment.seed + 1_000_000 if args.seed is None else args.seed
    count, frame_ms, every = record(agent, out, args.episodes, seed, args.max_steps, args.every, args.scale)
    print(f"wrote {out} ({count} frames, {frame_ms} ms each, every {every} step(s); "
          f"{out.stat().st_size / 1024:.0f} KiB)")
    return 0


def _render_fps(agent: Agent) -> float:
    """The env's own drawing speed (``metadata["render_fps"]``), 30 when it does not say."""
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415

    env = gym.make(agent.experiment.env_id, **agent.experiment.env)
    try:
        return float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
