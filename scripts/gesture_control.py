"""Steer Snake with gestures: the book's webcam Pac-Man, on MobileNetV2 embeddings.

    python scripts/gesture_control.py [configs/gesture_control.toml] [--source camera|folder|synthetic]
                                      [--folder DIR] [--frames N] [--headless]

The flow of ``tfjs-examples/webcam-transfer-learning``:

1. **Collect**: frames labelled ``up``, ``down``, ``left``, ``right`` (the book's labels 0-3). Each
   frame goes through the frozen MobileNetV2 at once and only its embedding is kept (the book
   keeps the activation, not the image). Sources:

   * ``camera`` — a webcam through ``pygame.camera``: hold an arrow key to record frames for that
     direction, press ``T`` to train and play (``Esc`` quits);
   * ``folder`` — an image folder with subfolders ``up/ down/ left/ right/``; the play phase
     cycles through its images;
   * ``synthetic`` — generated frames (a bright hand-like blob on the side of the direction, over
     noise), for demos and tests without a camera; while playing, a simulated user gestures
     towards the fruit.

2. **Train** the head (the book's: dense ``hidden_units`` relu, then dense 4 softmax without bias;
   Adam at ``lr``; batch = ``batch_fraction`` of the data; ``epochs``) on the embeddings.
3. **Play** ``envs/Snake-v0``: every frame is classified; the predicted screen direction becomes
   the relative action that heads that way (the game only knows straight / left / right, and a
   U-turn means straight). The window shows the frame, the board, and the predicted direction
   with its probability. ``--frames N`` stops after N game steps (headless with ``--headless``
   or ``SDL_VIDEODRIVER=dummy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import rl
from rl import backend, data
from rl.experiment import ConfigError, load_tables
from rl.layers import Dense
from transfer.api import EmbeddingCache
from transfer.data import DataError, load_image_folder
from transfer.mobilenet_v2 import mobilenet_v2
from transfer.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from transfer.weights import WeightsError

CONTROLS = ("up", "down", "left", "right")  # the book's ui.js CONTROLS, labels 0..3


@dataclasses.dataclass
class GestureConfig:
    """The ``[gesture]`` table: where the labelled frames come from and the backbone that embeds them."""

    source: str = "synthetic"  # camera | folder | synthetic
    folder: str = ""  # for source = "folder": subfolders up/ down/ left/ right/
    samples_per_class: int = 20  # frames collected per direction (synthetic)
    image_size: int = 224  # MobileNetV2 input side
    weights: str = "imagenet"  # or a .pth path, or "random" (untrained backbone)


@dataclasses.dataclass
class HeadConfig:
    """The ``[head]`` table: the classifier trained on the embeddings (the book's defaults)."""

    hidden_units: int = 100  # the book's default
    lr: float = 1e-3  # the book offers 1e-5 .. 3e-2 (default 1e-4, with 12,544 inputs)
    batch_fraction: float = 0.4  # the book's default: batch = floor(N * fraction)
    epochs: int = 20


@dataclasses.dataclass
class PlayConfig:
    """The ``[play]`` table: how long and how fast Snake is played, and its board side in tiles."""

    frames: int = 300  # game steps before stopping (0 = until the window closes)
    fps: float = 5.0  # game steps per second in a window (unlimited when headless)
    board: int = 9


@dataclasses.dataclass
class ExperimentConfig:
    """The ``[experiment]`` table: the seed of the frames, the head and the game."""

    seed: int = 0


def load_config(path: str | None, overrides: list[str]) -> dict:
    """Read the TOML (if any), apply overrides, validate each table (errors name the key)."""
    tables = {"experiment": ExperimentConfig, "gesture": GestureConfig, "head": HeadConfig, "play": PlayConfig}
    cfg = load_tables(path, overrides, tables)
    if cfg["gesture"].source not in ("camera", "folder", "synthetic"):
        raise ConfigError(f"[gesture] source {cfg['gesture'].source!r}; valid: 'camera', 'folder', 'synthetic'")
    if cfg["gesture"].source == "folder" and not cfg["gesture"].folder:
        raise ConfigError("[gesture] source = 'folder' needs folder = 'DIR' (or --folder DIR)")
    return cfg


# ============================================================================ frame sources
def normalize_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(N, S, S, 3)`` -> ImageNet-normalized float32 (the frames are already S x S)."""
    x = frames.astype(np.float32) / 255.0
    return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


class SyntheticFrames:
    """Stand-in camera: a bright skin-coloured blob on the side of the gestured direction, over noise.

    ``frame(label)`` -> uint8 ``(size, size, 3)``; the position jitters and the background varies, so
    the head has something to learn rather than memorise.
    """

    def __init__(self, size: int = 224, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:size, 0:size]
        self._grid = (yy.astype(np.float32), xx.astype(np.float32))

    def frame(self, label: int) -> np.ndarray:
        """One uint8 ``(size, size, 3)`` frame gesturing ``CONTROLS[label]``."""
        s, rng = self.size, self.rng
        base = rng.uniform(40, 90, 3)
        img = base + rng.normal(0, 12, (s, s, 3))
        centers = {0: (0.2, 0.5), 1: (0.8, 0.5), 2: (0.5, 0.2), 3: (0.5, 0.8)}  # (row, col) fractions
        cy, cx = centers[label]
        cy, cx = (cy + rng.uniform(-0.06, 0.06)) * s, (cx + rng.uniform(-0.06, 0.06)) * s
        yy, xx = self._grid
        blob = np.exp(-(((yy - cy) / (0.12 * s)) ** 2 + ((xx - cx) / (0.12 * s)) ** 2))
        img = img + blob[..., None] * (np.array([230.0, 180.0, 150.0]) - base)
        return np.clip(img, 0, 255).astype(np.uint8)

    def collect(self, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        """``per_class`` frames per direction: uint8 ``(4 * per_class, size, size, 3)``, labels ``(4 * per_class,)``."""
        labels = np.repeat(np.arange(len(CONTROLS)), per_class)
        return np.stack([self.frame(int(c)) for c in labels]), labels


class FolderFrames:
    """Frames from ``root/{up,down,left,right}/``; ``play_frames`` cycles through them in a seeded order
    (a new one each pass)."""

    def __init__(self, root: str, size: int, seed: int = 0):
        folder = load_image_folder(root, image_size=size, preprocess=False)
        missing = [c for c in CONTROLS if c not in folder.classes]
        if missing or len(folder.classes) != len(CONTROLS):
            raise DataError(f"gesture folder {root} needs exactly the subfolders {list(CONTROLS)}; "
                            f"found {folder.classes}")
        order = [folder.classes.index(c) for c in CONTROLS]
        remap = np.empty(len(order), np.int64)
        remap[order] = np.arange(len(order))
        self.images, self.labels = folder.images, remap[folder.labels]
        self.seed = seed

    def collect(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image, uint8 ``(N, size, size, 3)``, and its label ``(N,)`` (0-3 in ``CONTROLS`` order)."""
        return self.images, self.labels

    def dataset(self) -> data.Dataset:
        """Endless ``(frame uint8 (S, S, 3), label)`` pairs: the images in a new seeded order each pass."""
        return data.from_arrays(self.images, self.labels).shuffle(len(self.images), seed=self.seed).repeat()

    def play_frames(self) -> Iterator[tuple[np.ndarray, int]]:
        """Iterate :meth:`dataset` as ``(frame, int label)``."""
        return ((frame, int(label)) for frame, label in self.dataset())


class CameraFrames:
    """A webcam through ``pygame.camera`` (frames center-cropped and resized to ``size``)."""

    def __init__(self, size: int):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's banner is not this script's output
        import pygame
        import pygame.camera

        pygame.camera.init()
        cams = pygame.camera.list_cameras()
        if not cams:
            raise DataError("no camera found by pygame.camera; use --source folder or --source synthetic")
        self.cam = pygame.camera.Camera(cams[0])
        self.cam.start()
        self.size = size

    def grab(self) -> np.ndarray:
        """The current camera frame, center-cropped to a square and resized: uint8 ``(size, size, 3)``."""
        import pygame

        surf = self.cam.get_image()
        arr = np.transpose(pygame.surfarray.array3d(surf), (1, 0, 2))
        h, w = arr.shape[:2]
        side = min(h, w)
        arr = arr[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        from PIL import Image

        return np.asarray(Image.fromarray(arr).resize((self.size, self.size), Image.BILINEAR), dtype=np.uint8)

    def dataset(self) -> data.Dataset:
        """The webcam as an endless :class:`rl.data.Dataset` of frames ``uint8 (size, size, 3)`` (tfjs-data's
        ``webcam``): each element is grabbed when it is asked for."""
        return data.from_generator(lambda: (self.grab() for _ in iter(int, 1)), name="webcam")

    def close(self) -> None:
        """Stop the camera."""
        self.cam.stop()


# ============================================================================ the head
def build_head(cfg: HeadConfig) -> rl.Sequential:
    """The book's head: dense ``hidden_units`` relu, dense 4 softmax (no bias), variance-scaling init."""
    return rl.Sequential([
        Dense(cfg.hidden_units, activation="relu", kernel_initializer="variance_scaling"),
        Dense(len(CONTROLS), activation="softmax", use_bias=False, kernel_initializer="variance_scaling"),
    ], name="gesture_head")


def train_head(emb: np.ndarray, labels: np.ndarray, cfg: HeadConfig, seed: int) -> tuple[rl.Sequential, float]:
    """Fit the head on embeddings ``(N, 1280)``; returns the head and its final training loss."""
    batch = int(len(emb) * cfg.batch_fraction)
    if batch < 1:
        raise ValueError(f"batch_fraction {cfg.batch_fraction} of {len(emb)} samples is a batch of 0; "
                         "collect more frames or raise it")
    rl.seed(seed)
    head = build_head(cfg)
    with rl.no_grad():
        head(emb[:1])  # build the weights so compile sees them
    head.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=cfg.lr)
    hist = head.fit(emb, labels, epochs=cfg.epochs, batch_size=batch, verbose=0, seed=seed)
    return head, float(hist.history["loss"][-1])


# ============================================================================ playing
def wanted_direction_towards_fruit(env: Any) -> int:
    """The simulated user's gesture (a book label): towards the fruit, never into a wall or backwards."""
    from envs.snake.core import DOWN, LEFT, RIGHT, UP

    core = env.unwrapped.core
    hy, hx = int(core.head_y[0]), int(core.head_x[0])
    fruit = np.flatnonzero(backend.to_numpy(core.fruit[0]))
    fy, fx = (int(fruit[0] // core.width), int(fruit[0] % core.width)) if len(fruit) else (hy, hx)
    label_dir = (UP, DOWN, LEFT, RIGHT)
    step = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
    heading = int(core.direction[0])

    def score(label: int) -> tuple[int, int]:
        d = label_dir[label]
        ny, nx = hy + step[d][0], hx + step[d][1]
        blocked = not (0 <= ny < core.height and 0 <= nx < core.width) or (d - heading) % 4 == 2
        return (int(blocked), abs(fy - ny) + abs(fx - nx))

    return min(range(len(CONTROLS)), key=score)


def label_to_action(env: Any, label: int) -> int:
    """Map an absolute screen direction (book label) to Snake's relative action for the current heading."""
    from envs.snake.controls import relative_action
    from envs.snake.core import DOWN, LEFT, RIGHT, UP

    direction = (UP, DOWN, LEFT, RIGHT)[label]
    return relative_action(int(env.unwrapped.core.direction[0]), direction)


class GameWindow:
    """The play window: the camera frame on the left, the board on the right, the prediction on top."""

    def __init__(self, frame_px: int, board_img: np.ndarray):
        import pygame

        # Only what the window uses: pygame.init() also opens the audio device, which prints a screen of ALSA
        # errors on a machine without a sound card.
        pygame.display.init()
        pygame.font.init()
        self.pygame = pygame
        self.frame_px = frame_px
        bh, bw = board_img.shape[:2]
        self.size = (frame_px + bw + 30, max(frame_px + 60, bh + 20))
        self.screen = pygame.display.set_mode(self.size)
        pygame.display.set_caption("playgrad: gesture control (MobileNetV2)")
        self.font = pygame.font.Font(None, 30)

    def draw(self, frame: np.ndarray, board: np.ndarray, label: int, prob: float, info: str) -> bool:
        """Draw one step; returns False when the user closed the window or pressed Esc."""
        pg = self.pygame
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                return False
        self.screen.fill((245, 245, 245))
        surf = pg.transform.scale(pg.surfarray.make_surface(np.transpose(frame, (1, 0, 2))),
                                  (self.frame_px, self.frame_px))
        self.screen.blit(surf, (10, 50))
        self.screen.blit(pg.surfarray.make_surface(np.transpose(board, (1, 0, 2))), (self.frame_px + 20, 10))
        text = self.font.render(f"{CONTROLS[label].upper()}  {prob:.0%}", True, (200, 60, 20))
        self.screen.blit(text, (10, 12))
        small = pg.font.Font(None, 22).render(info, True, (40, 40, 40))
        self.screen.blit(small, (10, self.frame_px + 55))
        pg.display.flip()
        return True

    def screenshot(self, path: str) -> None:
        """Save the window's current picture (PNG by the file name)."""
        self.pygame.image.save(self.screen, path)


def play(cfg: dict, cache: EmbeddingCache, head: rl.Sequential, frames_iter: Any, synthetic: SyntheticFrames | None,
         frames: int, headless: bool, screenshot: str | None = None) -> dict[str, float]:
    """Run Snake from live predictions for ``frames`` steps; returns counts and the prediction accuracy."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers envs/Snake-v0

    pc = cfg["play"]
    env = gym.make("envs/Snake-v0", height=pc.board, width=pc.board, render_mode="rgb_array")
    env.reset(seed=cfg["experiment"].seed)
    window = GameWindow(min(cfg["gesture"].image_size, 320), env.render())
    stats = {"steps": 0, "episodes": 1, "fruits": 0, "correct": 0, "known": 0}
    t_net = 0.0
    step = 0
    try:
        while frames <= 0 or step < frames:
            if synthetic is not None:
                truth = wanted_direction_towards_fruit(env)
                frame = synthetic.frame(truth)
            else:
                frame, truth = next(frames_iter)
            t0 = time.perf_counter()
            emb = cache.compute(normalize_frames(frame[None]))
            with rl.no_grad(), rl.using_config("train", False):
                probs = head(rl.Tensor(emb)).numpy()[0]
            t_net += time.perf_counter() - t0
            label = int(np.argmax(probs))
            if truth is not None:
                stats["known"] += 1
                stats["correct"] += int(label == truth)
            _, reward, terminated, truncated, info = env.step(label_to_action(env, label))
            stats["fruits"] += int(reward > 0)
            step += 1
            stats["steps"] = step
            text = f"step {step}  fruits {stats['fruits']}  games {stats['episodes']}  len {info['length']}"
            if not window.draw(frame, env.render(), label, float(probs[label]), text):
                break
            if terminated or truncated:
                env.reset()
                stats["episodes"] += 1
            if not headless and pc.fps > 0:
                time.sleep(max(0.0, 1.0 / pc.fps - (time.perf_counter() - t0)))
        if screenshot:
            window.screenshot(screenshot)
    finally:
        env.close()
        window.pygame.quit()
    stats["ms_per_prediction"] = 1000 * t_net / max(step, 1)
    stats["accuracy"] = stats["correct"] / stats["known"] if stats["known"] else float("nan")
    return stats


def collect_camera(camera: CameraFrames, cache: EmbeddingCache) -> tuple[np.ndarray, np.ndarray]:
    """Hold an arrow key to add frames to that direction; ``T`` trains. Returns embeddings and labels."""
    import pygame

    pygame.display.init()  # not pygame.init(): no audio device (see GameWindow)
    pygame.font.init()
    screen = pygame.display.set_mode((camera.size + 20, camera.size + 80))
    font = pygame.font.Font(None, 24)
    keys = {pygame.K_UP: 0, pygame.K_DOWN: 1, pygame.K_LEFT: 2, pygame.K_RIGHT: 3}
    embs: list[np.ndarray] = []
    labels: list[int] = []
    while True:
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                raise SystemExit(0)
            if event.type == pygame.KEYDOWN and event.key == pygame.K_t and len(set(labels)) == len(CONTROLS):
                return np.concatenate(embs), np.asarray(labels)
        frame = camera.grab()
        pressed = pygame.key.get_pressed()
        for key, label in keys.items():
            if pressed[key]:
                embs.append(cache.compute(normalize_frames(frame[None])))  # the activation, not the image
                labels.append(label)
        counts = ", ".join(f"{c} {labels.count(i)}" for i, c in enumerate(CONTROLS))
        screen.fill((245, 245, 245))
        screen.blit(pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2))), (10, 10))
        screen.blit(font.render(counts, True, (20, 20, 20)), (10, camera.size + 20))
        screen.blit(font.render("hold arrows to record, T to train and play", True, (20, 20, 20)),
                    (10, camera.size + 45))
        pygame.display.flip()


def run(cfg: dict, frames: int, headless: bool, screenshot: str | None = None, verbose: bool = True) -> dict:
    """Collect, train, play ``frames`` steps (0: until the window closes); returns the play statistics plus
    ``train_loss``. A headless run needs ``frames`` > 0: it has no window to close."""
    if frames < 0 or (headless and frames == 0):
        raise ValueError(f"frames must be {'> 0 in a headless run' if headless else '>= 0'}, got {frames}")
    g, seed = cfg["gesture"], cfg["experiment"].seed
    backbone = mobilenet_v2(weights=None if g.weights == "random" else g.weights, cut_at="embedding",
                            input_shape=(g.image_size, g.image_size, 3))
    cache = EmbeddingCache(backbone, batch_size=16)
    synthetic = frames_iter = camera = None
    t0 = time.perf_counter()
    if g.source == "synthetic":
        synthetic = SyntheticFrames(g.image_size, seed)
        images, labels = synthetic.collect(g.samples_per_class)
        emb = cache.compute(normalize_frames(images))
    elif g.source == "folder":
        source = FolderFrames(g.folder, g.image_size, seed)
        images, labels = source.collect()
        emb = cache.compute(normalize_frames(images))
        frames_iter = source.play_frames()
    else:
        camera = CameraFrames(g.image_size)
        emb, labels = collect_camera(camera, cache)
        frames_iter = ((frame, None) for frame in camera.dataset())
    if verbose:
        counts = ", ".join(f"{c} {int((labels == i).sum())}" for i, c in enumerate(CONTROLS))
        print(f"collected {len(labels)} frames ({counts}), embedded in {time.perf_counter() - t0:.1f} s")
    head, loss = train_head(emb, labels, cfg["head"], seed)
    if verbose:
        print(f"trained the head: final loss {loss:.4f}")
    try:
        stats = play(cfg, cache, head, frames_iter, synthetic, frames, headless, screenshot)
    finally:
        if camera is not None:
            camera.close()
    stats["train_loss"] = loss
    if verbose:
        acc = f", predicted the gestured direction {stats['accuracy']:.0%} of the time" if stats["known"] else ""
        print(f"played {stats['steps']} steps in {stats['episodes']} game(s), {stats['fruits']} fruit(s){acc}; "
              f"{stats['ms_per_prediction']:.0f} ms per prediction")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=None, help="TOML config (default: built-in defaults)")
    parser.add_argument("--source", choices=["camera", "folder", "synthetic"], default=None,
                        help="where the labelled frames come from (default: the config's [gesture] source)")
    parser.add_argument("--folder", default=None, help="image folder with up/ down/ left/ right/")
    parser.add_argument("--frames", type=int, default=None, help="game steps to play (0: until the window closes)")
    parser.add_argument("--headless", action="store_true", help="no real window (SDL dummy driver), no frame delay")
    parser.add_argument("--screenshot", default=None, help="save the last window frame as this PNG")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override one config value, e.g. --set head.epochs=5 (repeatable)")
    args = parser.parse_args(argv)
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    overrides = list(args.overrides)
    if args.source:
        overrides.append(f'gesture.source="{args.source}"')
    if args.folder:
        # a TOML string: JSON escapes quotes and backslashes the way TOML reads them
        overrides.append(f"gesture.folder={json.dumps(str(Path(args.folder)), ensure_ascii=False)}")
    try:
        cfg = load_config(args.config, overrides)
        frames = cfg["play"].frames if args.frames is None else args.frames
        run(cfg, frames, args.headless or os.environ.get("SDL_VIDEODRIVER") == "dummy", args.screenshot)
    except (ConfigError, DataError, WeightsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
