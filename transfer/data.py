"""Data for the transfer examples: image folders (one subfolder per class) and scikit-learn's digits.

Image folders::

    root/
      up/    img001.jpg img002.png ...
      down/  ...

Each subfolder is a class (sorted names give the label order); files are read with Pillow
(``.jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm``). An unreadable image is skipped with a
warning that names it; a class folder with no images, or a root where no image can be read, is an
error naming the folder. :func:`load_image_folder` returns uint8 RGB arrays at a fixed size or the
ImageNet-preprocessed float batch MobileNetV2 needs, plus a seeded train/validation split.

Digits: scikit-learn's bundled 1,797 8x8 digits (pixel values 0..16, no download), upscaled
bilinearly to 28x28 grey images in [0, 1] for the book's MNIST CNN (:func:`load_digits`), or to
224x224x3 ImageNet-normalized images for MobileNetV2 (:func:`digits_to_imagenet`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from transfer.preprocessing import IMAGENET_MEAN, IMAGENET_STD, ImageInputError, load_image
from transfer.preprocessing import preprocess as imagenet_preprocess

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "ImageFolder",
    "digits_to_imagenet",
    "load_digits",
    "load_image_folder",
    "split_indices",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class DataError(ValueError):
    """A data set that cannot be used as given (the message names the folder or file)."""


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


def split_indices(labels: np.ndarray, validation_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``labels (N,)``: ``round(fraction * n_c)`` of each class to validation.

    Returns sorted ``(train_idx, val_idx)``. A class with one sample stays wholly in training.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(int(round(validation_fraction * len(idx))), len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


def _read_image(path: Path, image_size: int, preprocess: bool) -> np.ndarray | None:
    """One image as ``load_image_folder`` stores it, or None (with a warning) if it cannot be read."""
    try:
        rgb = load_image(path)
    except ImageInputError as exc:
        warnings.warn(f"skipping unreadable image {path}: {exc}", stacklevel=3)
        return None
    if preprocess:
        # Here rather than on the whole list: a folder of photos would otherwise sit in memory at full size.
        return imagenet_preprocess(rgb, resize_size=round(image_size * 256 / 224), crop_size=image_size)[0]
    return np.asarray(rgb.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_image_folder(
    root: str | os.PathLike,
    image_size: int = 224,
    preprocess: bool = True,
    max_per_class: int | None = None,
) -> ImageFolder:
    """Read every image under ``root/<class>/``.

    Args:
        root: the folder holding one subfolder per class.
        image_size: with ``preprocess`` False, images are resized to ``image_size`` x ``image_size``
            (uint8 RGB); with ``preprocess`` True they go through the ImageNet pipeline (resize the
            shorter side to ``image_size * 256 / 224``, center-crop ``image_size``, normalize).
        preprocess: return float32 ImageNet-normalized images (MobileNetV2 input).
        max_per_class: read at most this many files per class (sorted by name).

    Raises:
        DataError: ``root`` missing or without class subfolders, a class folder without image
            files, or no readable image at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"image folder {root} has no class subfolders (expected {root}/<class>/<image files>)")
    images, labels, paths, skipped = [], [], [], []
    for label, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {folder} has no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
        if max_per_class is not None:
            files = files[:max_per_class]
        for path in files:
            arr = _read_image(path, image_size, preprocess)
            if arr is None:
                skipped.append(path)
                continue
            images.append(arr)
            labels.append(label)
            paths.append(path)
    if not images:
        raise DataError(f"no readable image under {root} ({len(skipped)} file(s) failed to open)")
    return ImageFolder(np.stack(images), np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs], paths,
                       skipped, preprocess)


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
