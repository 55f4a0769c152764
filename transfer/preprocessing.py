"""ImageNet input pipeline for the pretrained extractors, with Pillow and NumPy only.

It reproduces torchvision's ``ImageClassification`` preset (``docs/specs/formats.md`` §6.2), the
transform the published MobileNetV2 accuracies were measured with:

1. resize so the **shorter side** is ``resize_size`` (256), the longer side scaled and truncated to
   an int, with bilinear filtering — Pillow's ``BILINEAR`` resize antialiases when downscaling,
   which is what ``antialias=True`` asks torchvision for;
2. center-crop ``crop_size`` (224), the top-left corner at ``round((side - crop) / 2)`` as
   torchvision computes it (Python's round, half to even);
3. scale uint8 to float32 in [0, 1] and normalise per channel with the ImageNet mean and std.

The difference from torchvision is the layout: arrays come out **NHWC** (channels last), the layout
our ``rl`` core uses, like Keras and TF.js. ``np.transpose(x, (0, 3, 1, 2))`` gives torch's NCHW.

The 1000 class names, in torchvision's order (index 0 ``"tench"``), come from
:func:`imagenet_classes`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageInputError",
    "center_crop",
    "imagenet_classes",
    "load_image",
    "normalize",
    "preprocess",
    "resize_shorter_side",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CLASSES_FILE = Path(__file__).resolve().parent / "imagenet_classes.txt"

ImageLike = Image.Image | np.ndarray | str | os.PathLike


class ImageInputError(ValueError):
    """An image could not be read, or an input array has the wrong shape, dtype or channel count."""


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file and return it fully decoded in RGB mode (grayscale/RGBA/palette converted).

    Raises:
        ImageInputError: the file is missing, unreadable, not an image, or truncated; names the file.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageInputError(f"cannot read image {path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"cannot read image {path}: not an image format Pillow recognises") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's corrupt-data errors
        raise ImageInputError(f"cannot read image {path}: {exc}") from exc


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` px, keeping the aspect ratio (torchvision's rule:
    ``long_px = int(size * long / short)``), with Pillow's antialiased bilinear filter."""
    width, height = img.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) == (width, height):
        return img
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Crop the central ``size`` x ``size`` square; the image must be at least that large."""
    width, height = img.size
    if width < size or height < size:
        raise ImageInputError(f"image of {width}x{height} px is smaller than the {size}x{size} crop")
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def normalize(
    pixels_u8: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """uint8 RGB pixels ``(..., 3)`` -> float32 ``(x / 255 - mean) / std``, same shape.

    Computed in float32 in the order torchvision uses (divide, subtract, divide).
    """
    x = pixels_u8.astype(np.float32) / np.float32(255.0)
    return (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)


def _to_pil(image: ImageLike, index: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, str | os.PathLike):
        return load_image(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3 or image.size == 0:
            raise ImageInputError(
                f"image {index}: expected an RGB array of shape (H, W, 3) (channels last), got shape {image.shape}"
            )
        if image.dtype != np.uint8:
            raise ImageInputError(
                f"image {index}: expected uint8 pixels in [0, 255], got dtype {image.dtype} "
                "(convert with (x * 255).round().astype(np.uint8) if it is in [0, 1])"
            )
        return Image.fromarray(np.ascontiguousarray(image))
    raise ImageInputError(
        f"image {index}: expected a PIL image, a file path or a uint8 (H, W, 3) array, got {type(image).__name__}"
    )


def preprocess(
    images: ImageLike | Sequence[ImageLike],
    resize_size: int = 256,
    crop_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Turn images into a normalised ImageNet batch, channels last.

    Args:
        images: one image or a sequence of them; each a PIL image (any mode; converted to RGB), a
            file path, or a uint8 array ``(H, W, 3)``. A uint8 array ``(N, H, W, 3)`` is a batch.
        resize_size: shorter side after resizing, px (256 for torchvision's V1 weights, 232 for V2).
        crop_size: side of the center crop, px; at most ``resize_size``.
        mean, std: per-channel normalisation (RGB order).

    Returns:
        float32 array ``(N, crop_size, crop_size, 3)``.

    Raises:
        ImageInputError: an unreadable file or an array of the wrong shape/dtype; names which image.
    """
    if crop_size > resize_size:
        raise ValueError(f"crop_size {crop_size} must not exceed resize_size {resize_size}")
    if isinstance(images, np.ndarray) and images.ndim == 4:
        items: list[Any] = list(images)
    elif isinstance(images, np.ndarray) and images.ndim != 3:
        raise ImageInputError(
            f"expected an image array (H, W, 3) or a batch (N, H, W, 3), channels last; got shape {images.shape}"
        )
    elif isinstance(images, Image.Image | np.ndarray | str | os.PathLike):
        items = [images]
    else:
        items = list(images)
    if not items:
        raise ImageInputError("preprocess() got no images")
    batch = np.empty((len(items), crop_size, crop_size, 3), dtype=np.float32)
    for i, item in enumerate(items):
        img = center_crop(resize_shorter_side(_to_pil(item, i), resize_size), crop_size)
        batch[i] = normalize(np.asarray(img, dtype=np.uint8), mean, std)
    return batch


@cache
def _class_names() -> tuple[str, ...]:
    names = tuple(_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE} should hold 1000 class names, found {len(names)}")
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in torchvision's order (``[0] == "tench"``, ``[285] == "Egyptian cat"``)."""
    return list(_class_names())
