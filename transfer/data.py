"""Data for the transfer examples: image folders (one subfolder per class) and scikit-learn's digits.

Image folders::

    root/
      up/    img001.jpg img002.png ...
      down/  ...

Each subfolder is a class (sorted names give the label order); files are read with Pillow
(``.jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm``) through :func:`rl.data.image_folder`. An
unreadable image is skipped with a warning that names it; a class folder with no images, or a root
where no image can be read, is an error naming the folder.

* :func:`imagenet_batches` streams a folder as ImageNet-normalized batches (a :class:`rl.data.Dataset`
  of ``(float32 (B, S, S, 3), int64 (B,))``), optionally with random crops and flips: memory stays at
  a few batches however large the folder is.
* :func:`load_image_folder` reads a small folder into memory (uint8 RGB arrays at a fixed size or the
  ImageNet-preprocessed float batch MobileNetV2 needs), plus a seeded train/validation split.

Digits: scikit-learn's bundled 1,797 8x8 digits (pixel values 0..16, no download), upscaled
bilinearly to 28x28 grey images in [0, 1] for the book's MNIST CNN (:func:`load_digits`), or to
224x224x3 ImageNet-normalized images for MobileNetV2 (:func:`digits_to_imagenet`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rl import data
from rl.data import IMAGE_SUFFIXES, DataError, split_indices
from transfer.preprocessing import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "ImageFolder",
    "digits_to_imagenet",
    "imagenet_batches",
    "load_digits",
    "load_image_folder",
    "split_indices",
]


@dataclass
class ImageFolder:
    """Images read from a class-per-subfolder tree.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB, or float32 ImageNet-normalized when ``preprocessed``.
        labels: ``(N,)`` int64 class indices into ``classes``.
        classes: class names (subfolder names, sorted).
        paths: the file of each image.
        skipped: files that could not be read.
        preprocessed: whether ``images`` went through :func:`transfer.preprocessing.preprocess`.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[Path]
    skipped: list[Path]
    preprocessed: bool

    def split(self, validation_fraction: float = 0.2, seed: int = 0) -> tuple[ImageFolder, ImageFolder]:
        """Seeded, stratified train/validation split (each class keeps at least one training image)."""
        train_idx, val_idx = split_indices(self.labels, validation_fraction, seed)
        return self.subset(train_idx), self.subset(val_idx)

    def subset(self, idx: np.ndarray) -> ImageFolder:
        """The images at ``idx`` (same classes)."""
        return ImageFolder(self.images[idx], self.labels[idx], self.classes, [self.paths[i] for i in idx],
                           self.skipped, self.preprocessed)

    def __len__(self) -> int:
        return len(self.labels)


def imagenet_resize_size(image_size: int) -> int:
    """The shorter side before the center crop, scaled as ImageNet's 256 -> 224."""
    return round(image_size * 256 / 224)


def _normalize_batch(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return normalize(images), labels


def _crop_and_flip(image: np.ndarray, label: Any, rng: np.random.Generator, size: int) -> tuple[np.ndarray, Any]:
    """A random ``size`` square of ``image (H, W, 3)``, mirrored left-right half of the time."""
    top = int(rng.integers(image.shape[0] - size + 1))
    left = int(rng.integers(image.shape[1] - size + 1))
    crop = image[top : top + size, left : left + size]
    return (crop[:, ::-1] if rng.random() < 0.5 else crop), label


class _Augment:
    """Picklable (for process workers) random crop + flip with the element's generator."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray, label: Any, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        return _crop_and_flip(image, label, rng, self.size)


def imagenet_batches(
    root: str | os.PathLike,
    image_size: int = 224,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 2,
    augment: bool = False,
    on_error: str = "skip",
    max_per_class: int | None = None,
    drop_remainder: bool = False,
    validation_split: float = 0.0,
    subset: str | None = None,
    split_seed: int = 0,
    jpeg_draft: bool = True,
) -> data.Dataset:
    """An image folder streamed as MobileNetV2 input: ``(float32 (B, S, S, 3), int64 (B,))`` batches.

    Each image is decoded by one of ``workers`` threads, its shorter side resized to
    ``round(S * 256 / 224)``, then center-cropped to ``S`` (or, with ``augment``, randomly cropped and
    flipped with a generator seeded from ``(seed, epoch, position)``, the same with any worker count),
    batched, and normalized with the ImageNet mean and std on the whole batch. ``validation_split``,
    ``subset`` and ``split_seed`` pick one side of a stratified split (see
    :func:`rl.data.image_folder`). ``jpeg_draft=False`` decodes every JPEG pixel before resizing,
    as torchvision does (slower for images over twice the resize size; see
    :func:`rl.data.read_image`). The returned dataset's ``classes`` and ``skipped`` are the folder's
    (see :func:`rl.data.image_folder`).
    """
    resize = imagenet_resize_size(image_size)
    images = data.image_folder(root, image_size=resize if augment else image_size, resize_size=resize,
                               shuffle=shuffle, seed=seed, workers=workers, on_error=on_error,
                               max_per_class=max_per_class, validation_split=validation_split, subset=subset,
                               split_seed=split_seed, jpeg_draft=jpeg_draft)
    ds = images
    if augment:
        ds = ds.map(_Augment(image_size), seed=seed, name=f"crop_and_flip({image_size})")
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(_normalize_batch, name="imagenet_normalize")
    ds.classes, ds.skipped, ds.files = images.classes, images.skipped, images.files  # type: ignore[attr-defined]
    return ds


def load_image_folder(
    root: str | os.PathLike,
    image_size: int = 224,
    preprocess: bool = True,
    max_per_class: int | None = None,
    workers: int = 2,
) -> ImageFolder:
    """Read every image under ``root/<class>/`` into memory (small folders; stream big ones with
    :func:`imagenet_batches`).

    Args:
        root: the folder holding one subfolder per class.
        image_size: side of the returned images: the shorter side is resized (to ``image_size``, or
            with ``preprocess`` to ``image_size * 256 / 224``) and the center square cropped.
        preprocess: return float32 ImageNet-normalized images (MobileNetV2 input) instead of uint8 RGB.
        max_per_class: read at most this many files per class (sorted by name).
        workers: decoding threads.

    Raises:
        DataError: ``root`` missing or without class subfolders, a class folder without image
            files, or no readable image at all.
    """
    ds = data.image_folder(root, image_size=image_size,
                           resize_size=imagenet_resize_size(image_size) if preprocess else image_size,
                           workers=workers, max_per_class=max_per_class)
    images, labels = [], []
    for image, label in ds:
        images.append(normalize(image) if preprocess else image)
        labels.append(label)
    skipped = [Path(p) for p in ds.skipped]
    if not images:
        raise DataError(f"no readable image under {root} ({len(skipped)} file(s) failed to open)")
    skipped_set = set(map(str, skipped))
    paths = [p for p in ds.files if str(p) not in skipped_set]
    return ImageFolder(np.stack(images), np.asarray(labels, dtype=np.int64), ds.classes, paths, skipped, preprocess)


# ============================================================================ digits
def _resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``images (N, h, w)`` float32 to ``(N, size, size)`` with Pillow's float mode."""
    out = np.empty((len(images), size, size), dtype=np.float32)
    for i, img in enumerate(images):
        grey = Image.fromarray(img.astype(np.float32), mode="F")
        out[i] = np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR))
    return out


def load_digits(image_size: int = 28, digits: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(N, image_size, image_size, 1)`` float32 in [0, 1] and labels ``(N,)``.

    Args:
        image_size: side after bilinear upscaling (28 matches the book's MNIST CNN; 8 keeps them as is).
        digits: keep only these digit values (e.g. ``range(5)``); labels stay the digit values.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("the digits data need scikit-learn: pip install 'playgrad[examples]'") from exc
    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    if digits is not None:
        keep = np.isin(y, np.asarray(list(digits)))
        x, y = x[keep], y[keep]
    if image_size != 8:
        x = np.clip(_resize_stack(x, image_size), 0.0, 1.0)
    return x[..., None], y


def digits_to_imagenet(images: np.ndarray, image_size: int = 224) -> np.ndarray:
    """Grey digits ``(N, h, w, 1)`` or ``(N, h, w)`` in [0, 1] -> ImageNet-normalized ``(N, S, S, 3)`` float32.

    Upscaled bilinearly, replicated to RGB, then normalized with the ImageNet mean and std, as a
    photo through :func:`transfer.preprocessing.preprocess` would be.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise DataError(f"digits_to_imagenet expects grey images (N, h, w) or (N, h, w, 1), got shape {x.shape}")
    big = np.clip(_resize_stack(x, image_size), 0.0, 1.0)
    rgb = np.repeat(big[..., None], 3, axis=-1)
    return ((rgb - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)).astype(np.float32)
