"""Recordings of an agent playing: deterministic episodes drawn in the env's ``"rgb_array"`` mode, written as an
animated GIF or WebP (Pillow) or an MP4 video (imageio-ffmpeg, the ``video`` extra).

:func:`record` is what ``python scripts/record.py`` (:mod:`playgrad.cli.record`) and ``make run``
(:mod:`playgrad.cli.main_job`) write. GIF/WebP frames share one palette (taken from the first frame) so colours do
not flicker, kept at 1 byte per pixel while recording; GIFs cannot show a frame for less than 20 ms, so envs drawn
at more than 50 frames per second keep every second (or third...) frame (:func:`default_every`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agents.base import Agent
from rl.console import format_number

MAX_STEPS = 2_000  # steps after which a recorded episode is cut: a GIF of an endless episode is no use
MIN_FRAME_MS = 20  # the shortest frame duration browsers honour in a GIF
LEGIBLE_SCALE = 0.75  # below this the envs' status lines (14-26 px fonts) blur into a grey smear
FORMATS = (".gif", ".webp", ".mp4")


class Episode:
    """What one recorded episode did: its ``steps``, ``total`` return and how it ended (``ending``)."""

    def __init__(self) -> None:
        self.steps, self.total, self.ending = 0, 0.0, "running"

    def __str__(self) -> str:
        return f"return {format_number(self.total)} after {self.steps} steps ({self.ending})"


def frames_of_episodes(
    agent: Agent, episodes: int, seed: int, max_steps: int = MAX_STEPS, every: int = 1,
    log: list[Episode] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the env's ``(H, W, 3)`` uint8 picture for every ``every``-th step of ``episodes`` deterministic
    episodes; the first and last frame of each episode are always kept, so how it ended is in the recording.
    Episode ``k`` uses seed ``seed + k``; ``log`` gets an :class:`Episode` per episode played."""
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415

    env = gym.make(agent.experiment.env_id, render_mode="rgb_array", **agent.experiment.env)
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            episode = Episode()
            if log is not None:
                log.append(episode)
            yield env.render()
            while episode.ending == "running":
                action = agent.act(np.asarray(obs)[None], deterministic=True)[0]
                obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
                episode.total += float(reward)
                episode.steps += 1
                if terminated or truncated or episode.steps == max_steps:
                    episode.ending = "terminated" if terminated else "truncated" if truncated else \
                        f"cut at --max-steps {max_steps}"
                if episode.ending != "running" or episode.steps % every == 0:
                    yield env.render()
    finally:
        env.close()


def to_image(frame: np.ndarray, scale: float):
    """A Pillow RGB image of ``frame`` ``(H, W, 3)`` uint8, scaled by ``scale``."""
    from PIL import Image  # noqa: PLC0415

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"the env's rgb_array frame should be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    picture = Image.fromarray(frame)
    if scale != 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)
    return picture


def _temporary(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


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
    tmp = _temporary(out)
    try:
        kind = "GIF" if out.suffix.lower() == ".gif" else "WEBP"
        frames[0].save(tmp, format=kind, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frames)


def video_encoder():
    """imageio-ffmpeg (the `video` extra: a wheel with its own ffmpeg binary), or None when not installed."""
    try:
        import imageio_ffmpeg  # noqa: PLC0415
    except ImportError:
        return None
    return imageio_ffmpeg


def write_video(images: Iterator, out: Path, fps: float) -> int:
    """Write RGB Pillow ``images`` to ``out`` as an H.264 MP4 at ``fps`` frames per second (yuv420p, which every
    player reads; odd sizes are padded by one pixel); atomically, like :func:`write_animation`."""
    encoder = video_encoder()
    if encoder is None:
        raise ValueError("MP4 needs imageio-ffmpeg: pip install -e '.[video]' (or write a .gif/.webp)")
    first = next(images, None)
    if first is None:
        raise ValueError("no frames to write")
    width, height = first.width + first.width % 2, first.height + first.height % 2
    tmp = _temporary(out)
    count = 0
    try:
        writer = encoder.write_frames(str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                      macro_block_size=1, quality=8, ffmpeg_log_level="error",
                                      output_params=["-f", "mp4", "-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            for image in itertools.chain([first], images):
                frame = np.zeros((height, width, 3), np.uint8)
                frame[: image.height, : image.width] = np.asarray(image.convert("RGB"))
                writer.send(frame)
                count += 1
        finally:
            writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def default_every(render_fps: float) -> int:
    """Keep every n-th step so a frame lasts at least ``MIN_FRAME_MS`` at the env's own speed."""
    return max(1, math.ceil(MIN_FRAME_MS * render_fps / 1000))


def record(
    agent: Agent, out: Path, episodes: int = 1, seed: int = 0, max_steps: int = MAX_STEPS,
    every: int | None = None, scale: float = 1.0, log: list[Episode] | None = None,
) -> tuple[int, int, int]:
    """Write ``episodes`` deterministic episodes of ``agent`` to ``out``; returns (frames, ms per frame, every).

    ``every=None`` keeps as many steps as the format can show at the env's own speed (:func:`default_every`
    for GIF/WebP, every step for MP4). ``log`` gets an :class:`Episode` per episode.
    """
    render_fps = _render_fps(agent)
    video = out.suffix.lower() == ".mp4"
    every = every or (1 if video else default_every(render_fps))
    frame_ms = round(1000 * every / render_fps) if video else max(MIN_FRAME_MS, round(1000 * every / render_fps))
    images = (to_image(frame, scale) for frame in frames_of_episodes(agent, episodes, seed, max_steps, every, log))
    if video:
        count = write_video(images, out, fps=render_fps / every)  # exact: 60 fps, not 1000 / 17 ms
    else:
        count = write_animation(images, out, frame_ms)
    return count, frame_ms, every


def _render_fps(agent: Agent) -> float:
    """The env's own drawing speed (``metadata["render_fps"]``), 30 when it does not say."""
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415

    env = gym.make(agent.experiment.env_id, **agent.experiment.env)
    try:
        return float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
