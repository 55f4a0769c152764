"""Image-folder loading (errors, skipped files, split) and the sklearn digits helpers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transfer.data import (
    DataError,
    digits_to_imagenet,
    imagenet_batches,
    load_digits,
    load_image_folder,
    split_indices,
)


def _write(path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def folder(tmp_path):
    for i in range(3):
        _write(tmp_path / "cats" / f"c{i}.png", (200, 10 * i, 10))
        _write(tmp_path / "dogs" / f"d{i}.jpg", (10, 10 * i, 200))
    _write(tmp_path / "dogs" / "grey.bmp", (90, 90, 90))
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return tmp_path


def test_loads_classes_in_sorted_order_at_a_fixed_size(folder):
    data = load_image_folder(folder, image_size=16, preprocess=False)
    assert data.classes == ["cats", "dogs"]
    assert data.images.shape == (7, 16, 16, 3) and data.images.dtype == np.uint8
    assert list(data.labels) == [0, 0, 0, 1, 1, 1, 1]
    assert data.images[0, 8, 8, 0] == 200 and data.images[3, 8, 8, 2] == 200
    assert [p.name for p in data.paths][:2] == ["c0.png", "c1.png"]


def test_preprocessed_images_are_imagenet_normalized(folder):
    data = load_image_folder(folder, image_size=32, preprocess=True)
    assert data.images.shape == (7, 32, 32, 3) and data.images.dtype == np.float32
    red = (200 / 255 - 0.485) / 0.229
    assert data.images[0, 5, 5, 0] == pytest.approx(red, abs=1e-3)


def test_unreadable_image_is_skipped_with_a_warning_naming_it(folder):
    bad = folder / "cats" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="broken.png"):
        data = load_image_folder(folder, image_size=8, preprocess=False)
    assert bad in data.skipped and len(data) == 7


def test_decompression_bomb_is_skipped_like_any_unreadable_image(folder, monkeypatch):
    _write(folder / "cats" / "huge.png", (1, 2, 3), size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 64x64 > 2 * 2000: a "bomb"; 40x30 is not even warned of
    with pytest.warns(UserWarning, match="huge.png"):
        data = load_image_folder(folder, image_size=8, preprocess=False)
    assert [p.name for p in data.skipped] == ["huge.png"] and len(data) == 7


def test_errors_name_the_folder(tmp_path, folder):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    (folder / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class.*no image files"):
        load_image_folder(folder)
    junk = tmp_path / "junk"
    (junk / "a").mkdir(parents=True)
    (junk / "a" / "x.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no readable image"):
        load_image_folder(junk)
    flat = tmp_path / "flat"
    flat.mkdir()
    _write(flat / "x.png", (1, 2, 3))
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(flat)


def test_split_is_stratified_seeded_and_disjoint(folder):
    data = load_image_folder(folder, image_size=8, preprocess=False)
    train, val = data.split(0.34, seed=1)
    assert len(train) + len(val) == 7
    assert sorted(set(val.labels)) == [0, 1]  # each class gives one validation image
    assert not set(map(str, train.paths)) & set(map(str, val.paths))
    a, b = split_indices(data.labels, 0.34, seed=1)
    np.testing.assert_array_equal(a, split_indices(data.labels, 0.34, seed=1)[0])
    with pytest.raises(ValueError, match="validation_fraction"):
        split_indices(data.labels, 1.0)


def test_digits_upscaled_and_filtered():
    x, y = load_digits(28, digits=range(5))
    assert x.shape[1:] == (28, 28, 1) and x.dtype == np.float32
    assert set(np.unique(y)) == {0, 1, 2, 3, 4} and len(x) > 800
    assert x.min() >= 0.0 and x.max() <= 1.0
    x8, _ = load_digits(8)
    assert x8.shape == (1797, 8, 8, 1)


def test_digits_to_imagenet_layout_and_errors():
    x, _ = load_digits(8, digits=[0])
    big = digits_to_imagenet(x[:2], image_size=64)
    assert big.shape == (2, 64, 64, 3) and big.dtype == np.float32
    black = (0 - 0.485) / 0.229
    assert big[0, 0, 0, 0] == pytest.approx(black, abs=1e-3)  # the digit border is background
    with pytest.raises(DataError, match=r"\(N, h, w\)"):
        digits_to_imagenet(np.zeros((2, 8, 8, 3)))


def test_imagenet_batches_match_the_in_memory_preprocessing(folder):
    from transfer.preprocessing import preprocess

    ds = imagenet_batches(folder, image_size=16, batch_size=3, workers=2)
    batches = list(ds)
    assert ds.classes == ["cats", "dogs"] and [len(b[1]) for b in batches] == [3, 3, 1]
    x = np.concatenate([b[0] for b in batches])
    assert x.dtype == np.float32 and x.shape == (7, 16, 16, 3)
    pngs = sorted((folder / "cats").glob("*.png"))
    np.testing.assert_allclose(x[:3], preprocess([str(p) for p in pngs], resize_size=18, crop_size=16), atol=1e-6)


def test_imagenet_batches_augmentation_is_seeded_and_worker_independent(folder):
    def run(workers, seed=0, epoch=0):
        ds = imagenet_batches(folder, image_size=12, batch_size=4, shuffle=True, seed=seed, workers=workers,
                              augment=True)
        return np.concatenate([b[0] for b in ds.iterate(epoch=epoch)])

    a = run(1)
    np.testing.assert_array_equal(a, run(3))
    assert a.shape == (7, 12, 12, 3)
    assert not np.array_equal(a, run(1, epoch=1))  # another epoch, other crops and order
