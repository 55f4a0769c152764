"""Write a synthetic, learnable image folder of any size: procedurally drawn objects with nuisance variation.

    python scripts/make_image_set.py OUT --gigabytes 0.5 --classes 10 [--size 320] [--workers 2] [--seed 0]

``OUT/<class>/<n>.jpg``: class ``k`` is a shape (circle, square, triangle, star, ring, cross,
hexagon, crescent) with a fill pattern (solid, stripes, dots, checker), so up to 32 classes. What
varies and must be ignored: the object's position, size, rotation and colour, the background (a
colour gradient with noise), clutter (random lines and a second, smaller object of another class),
and JPEG quality. The set is a function of ``--seed`` alone (image ``n`` of class ``k`` is drawn
from ``default_rng([seed, k, n])``), whatever the worker count.

Images are written by ``--workers`` processes into ``OUT.partial/`` and renamed to ``OUT`` at the
end, so an interrupted run leaves no half-made set under ``OUT`` (rerun it; ``OUT.partial`` is
replaced). The number of images is estimated from a first sample so the set totals about
``--gigabytes`` GiB; the last line reports the real count and size.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "crescent")
PATTERNS = ("solid", "stripes", "dots", "checker")
MAX_CLASSES = len(SHAPES) * len(PATTERNS)


def class_name(k: int) -> str:
    """The folder name of class ``k``: ``"<shape>_<pattern>"``."""
    return f"{SHAPES[k % len(SHAPES)]}_{PATTERNS[k // len(SHAPES)]}"


def _polygon(cx: float, cy: float, r: float, n: int, angle: float, inner: float | None = None) -> list[tuple]:
    """Vertices of a regular ``n``-gon (or an ``n``-pointed star with ``inner`` radius ratio)."""
    pts = []
    steps = 2 * n if inner else n
    for i in range(steps):
        rad = r * (inner if inner and i % 2 else 1.0)
        a = angle + 2 * math.pi * i / steps
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    """A white-on-black ``L`` mask of one shape."""
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=255)
    elif shape == "square":
        d.polygon(_polygon(cx, cy, r * 1.2, 4, angle), fill=255)
    elif shape == "triangle":
        d.polygon(_polygon(cx, cy, r * 1.2, 3, angle), fill=255)
    elif shape == "star":
        d.polygon(_polygon(cx, cy, r * 1.2, 5, angle, inner=0.45), fill=255)
    elif shape == "ring":
        d.ellipse(box, fill=255)
        d.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=0)
    elif shape == "cross":
        arm = r * 0.35
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy, dx
            corners = [(sx * r * dx + sa * arm * px, sx * r * dy + sa * arm * py)
                       for sx, sa in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
            d.polygon([(cx + u, cy + v) for u, v in corners], fill=255)
    elif shape == "hexagon":
        d.polygon(_polygon(cx, cy, r * 1.1, 6, angle), fill=255)
    else:  # crescent
        d.ellipse(box, fill=255)
        off = r * 0.5
        d.ellipse((cx - r + off * math.cos(angle), cy - r + off * math.sin(angle),
                   cx + r + off * math.cos(angle), cy + r + off * math.sin(angle)), fill=0)
    return mask


def _pattern(pattern: str, size: int, rng: np.random.Generator, color: np.ndarray, scale: int) -> np.ndarray:
    """An ``(size, size, 3)`` float texture: the object's colour with the class's pattern."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(8, 16) * scale / 256
    angle = rng.uniform(0, math.pi)
    if pattern == "solid":
        level = np.ones((size, size), np.float32)
    elif pattern == "stripes":
        level = 0.5 + 0.5 * (np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) > 0)
    elif pattern == "dots":
        u, v = (xx % period) / period - 0.5, (yy % period) / period - 0.5
        level = np.where(u * u + v * v < 0.08, 0.35, 1.0)
    else:  # checker
        level = 0.5 + 0.5 * (((xx // period) + (yy // period)) % 2)
    return level[..., None] * color[None, None, :]


@functools.cache
def _noise_bank(size: int) -> np.ndarray:
    """Fixed standard-normal pixel noise ``(2 * size, 2 * size, 3)`` float32; images take random windows
    of it (drawing fresh noise for every pixel was most of an image's cost)."""
    return np.random.default_rng(12345).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)


def _paste_object(canvas: Image.Image, shape: str, pattern: str, rng: np.random.Generator, r: float,
                  cx: float, cy: float) -> None:
    """Draw one patterned shape of radius ``r`` centred at ``(cx, cy)`` onto ``canvas`` (in its bounding box)."""
    size = canvas.size[0]
    box = int(math.ceil(2.5 * r))
    left, top = int(cx - box / 2), int(cy - box / 2)
    mask = _shape_mask(shape, box, cx - left, cy - top, r, rng.uniform(0, 2 * math.pi))
    texture = _pattern(pattern, box, rng, rng.uniform(30, 255, 3), size)
    canvas.paste(Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8)), (left, top), mask)


def draw_image(k: int, n: int, seed: int, size: int) -> tuple[bytes, str]:
    """Image ``n`` of class ``k`` as JPEG bytes (and its file name), drawn from ``default_rng([seed, k, n])``."""
    rng = np.random.default_rng([seed, k, n])
    shape, pattern = SHAPES[k % len(SHAPES)], PATTERNS[k // len(SHAPES)]
    # background: a random two-colour gradient with pixel noise
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    grad = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
    oy, ox = rng.integers(0, size, 2)
    noise = _noise_bank(size)[oy : oy + size, ox : ox + size]
    img = c0 * (1 - grad) + c1 * grad + noise * np.float32(rng.uniform(4, 20))
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 6))):  # clutter lines
        pts = [tuple(rng.uniform(0, size, 2)) for _ in range(2)]
        d.line(pts, fill=tuple(int(v) for v in rng.uniform(0, 255, 3)), width=int(rng.integers(1, 5)))
    if rng.random() < 0.5:  # a smaller distractor of another class
        other = int((k + rng.integers(1, MAX_CLASSES)) % MAX_CLASSES)
        r2 = rng.uniform(0.06, 0.12) * size
        cx2, cy2 = rng.uniform(r2, size - r2, 2)
        _paste_object(canvas, SHAPES[other % len(SHAPES)], PATTERNS[other // len(SHAPES)], rng, r2, cx2, cy2)
    r = rng.uniform(0.16, 0.3) * size
    cx, cy = rng.uniform(r * 1.1, size - r * 1.1, 2)
    _paste_object(canvas, shape, pattern, rng, r, cx, cy)
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    return buf.getvalue(), f"{n:06d}.jpg"


def _write_chunk(args: tuple[Path, int, int, int, int, int]) -> int:
    """Draw and write images ``start..stop-1`` of class ``k``; returns the bytes written."""
    out, k, start, stop, seed, size = args
    folder = out / class_name(k)
    total = 0
    for n in range(start, stop):
        jpeg, name = draw_image(k, n, seed, size)
        (folder / name).write_bytes(jpeg)
        total += len(jpeg)
    return total


def make_image_set(out: Path, gigabytes: float, classes: int, size: int = 320, workers: int = 2, seed: int = 0,
                   per_class: int | None = None, log=print) -> tuple[int, int]:
    """Write the set (see the module docstring); returns ``(images, bytes)``.

    ``per_class`` fixes the number of images per class instead of estimating it from ``gigabytes``.
    """
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"--classes must be in 1..{MAX_CLASSES} ({len(SHAPES)} shapes x {len(PATTERNS)} patterns)")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another OUT or delete it")
    if per_class is None:
        if gigabytes <= 0:
            raise ValueError(f"--gigabytes must be > 0, got {gigabytes}")
        sample = [len(draw_image(k % classes, 10**6 + k, seed, size)[0]) for k in range(24)]
        per_class = max(1, math.ceil(gigabytes * 2**30 / float(np.mean(sample)) / classes))
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    for k in range(classes):
        (partial / class_name(k)).mkdir(parents=True)
    chunk = 64
    jobs = [(partial, k, s, min(s + chunk, per_class), seed, size)
            for s in range(0, per_class, chunk) for k in range(classes)]
    start, written, done = time.perf_counter(), 0, 0
    total_images = per_class * classes
    with ProcessPoolExecutor(max(1, workers)) as pool:
        for job, nbytes in zip(jobs, pool.map(_write_chunk, jobs), strict=True):
            written += nbytes
            done += job[3] - job[2]
            elapsed = time.perf_counter() - start
            log(f"\r{done}/{total_images} images, {written / 2**30:.2f} GiB, {done / elapsed:.0f} images/s",
                end="", flush=True)
    os.rename(partial, out)
    log(f"\nwrote {total_images} images ({classes} classes x {per_class}), {written / 2**30:.2f} GiB "
        f"to {out} in {time.perf_counter() - start:.0f} s")
    return total_images, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--gigabytes", type=float, default=0.1, help="total size to aim for, GiB (default 0.1)")
    parser.add_argument("--classes", type=int, default=10, help=f"number of classes, 1..{MAX_CLASSES} (default 10)")
    parser.add_argument("--per-class", type=int, default=None, help="images per class (instead of --gigabytes)")
    parser.add_argument("--size", type=int, default=320, help="image side, px (default 320)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="writer processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        make_image_set(args.out, args.gigabytes, args.classes, args.size, args.workers, args.seed, args.per_class)
    except (ValueError, FileExistsError, OSError) as exc:
        print(f"make_image_set: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: nothing was written to {args.out} (the partial set is in {args.out}.partial)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
