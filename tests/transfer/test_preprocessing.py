"""Tests for transfer/preprocessing.py: torchvision's ImageClassification preset, channels last."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transfer.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageInputError,
    center_crop,
    imagenet_classes,
    load_image,
    normalize,
    preprocess,
    resize_shorter_side,
)


def _gradient(width: int, height: int) -> np.ndarray:
    """uint8 (H, W, 3) whose pixels encode their own coordinates, to check crop offsets exactly."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)


def test_constant_image_normalises_exactly():
    img = Image.new("RGB", (300, 400), (255, 128, 0))
    out = preprocess(img)
    assert out.shape == (1, 224, 224, 3) and out.dtype == np.float32
    expected = (np.array([255, 128, 0], np.float32) / np.float32(255) - np.float32(IMAGENET_MEAN)) / np.float32(
        IMAGENET_STD
    )
    np.testing.assert_allclose(out[0, 100, 100], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=0, atol=1e-6)


def test_crop_offsets_match_torchvision_rounding():
    # Shorter side already 256, so there is no resize: the crop must start at
    # left = round((341 - 224) / 2) = round(58.5) = 58 (half to even), top = 16.
    pixels = _gradient(341, 256)
    out = preprocess(pixels)[0]
    np.testing.assert_array_equal(out, normalize(pixels[16:240, 58:282]))
    pixels = _gradient(256, 343)  # top = round(59.5) = 60
    np.testing.assert_array_equal(preprocess(pixels)[0], normalize(pixels[60:284, 16:240]))


def test_resize_sizes_follow_torchvision():
    assert resize_shorter_side(Image.new("RGB", (600, 400)), 256).size == (384, 256)
    assert resize_shorter_side(Image.new("RGB", (400, 601)), 256).size == (256, 384)  # int(384.64)
    assert resize_shorter_side(Image.new("RGB", (100, 50)), 256).size == (512, 256)  # upscales too
    assert center_crop(Image.new("RGB", (384, 256)), 224).size == (224, 224)


def test_downscale_is_antialiased():
    # A 1-px checkerboard shrunk 4x: an antialiased filter averages it to mid-grey, point
    # sampling (no antialias) would keep pure black/white.
    board = ((np.indices((1024, 1024)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = resize_shorter_side(Image.fromarray(np.repeat(board[..., None], 3, axis=-1)), 256)
    pixels = np.asarray(out, dtype=np.float32)
    assert np.all(np.abs(pixels[8:-8, 8:-8] - 127.5) < 2)


def test_batch_inputs_of_mixed_kinds(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_gradient(320, 240)).save(path)
    gray = Image.new("L", (256, 256), 77)
    out = preprocess([path, gray, _gradient(500, 256)])
    assert out.shape == (3, 224, 224, 3)
    # Grayscale becomes RGB with equal channels before per-channel normalisation.
    np.testing.assert_allclose(out[1, 0, 0], normalize(np.array([77, 77, 77], np.uint8)), atol=1e-6)
    batch = np.stack([_gradient(256, 256)] * 2)
    assert preprocess(batch).shape == (2, 224, 224, 3)
    assert preprocess(_gradient(300, 300), resize_size=232).shape == (1, 224, 224, 3)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((256, 256, 4), np.uint8), r"expected an RGB array of shape \(H, W, 3\).*\(256, 256, 4\)"),
        (np.zeros((3, 256, 256), np.uint8), r"channels last.*\(3, 256, 256\)"),
        (np.zeros((256, 256), np.uint8), r"expected an image array \(H, W, 3\).*\(256, 256\)"),
        (np.zeros((256, 256, 3), np.float32), "expected uint8 pixels"),
        (np.zeros((2, 256, 256, 1), np.uint8), r"image 0: expected an RGB array"),
        (np.zeros((0, 256, 3), np.uint8), r"image 0: expected an RGB array.*\(0, 256, 3\)"),  # was ZeroDivisionError
    ],
)
def test_bad_arrays_say_what_was_expected(array, match):
    with pytest.raises(ImageInputError, match=match):
        preprocess(array)


def test_crop_larger_than_resize_refused():
    with pytest.raises(ValueError, match="crop_size 300 must not exceed resize_size 256"):
        preprocess(_gradient(256, 256), crop_size=300)


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(ImageInputError, match=r"missing\.jpg: no such file"):
        load_image(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a png")
    with pytest.raises(ImageInputError, match=r"junk\.png"):
        load_image(junk)
    good = tmp_path / "good.png"
    noise = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)  # incompressible
    Image.fromarray(noise).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageInputError, match=r"truncated\.png"):
        load_image(truncated)
    with pytest.raises(ImageInputError, match=r"junk\.png"):
        preprocess([good, junk])


def test_decompression_bomb_is_an_image_input_error(tmp_path, monkeypatch):
    # Pillow raises DecompressionBombError (not an OSError) past twice MAX_IMAGE_PIXELS.
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageInputError, match=r"big\.png.*decompression bomb"):
        load_image(path)


def test_load_image_converts_to_rgb(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (10, 12), (1, 2, 3, 4)).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (10, 12) and img.getpixel((0, 0)) == (1, 2, 3)


def test_imagenet_classes_in_torchvision_order():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[1] == "goldfish"
    assert names[281] == "tabby" and names[285] == "Egyptian cat"
    assert names[967] == "espresso" and names[999] == "toilet tissue"
