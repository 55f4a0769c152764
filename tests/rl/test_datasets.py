"""rl.data: sources, transforms, determinism across worker counts, resumable positions, bad input,
bounded memory, the on-disk cache and the device edge of prefetch."""

import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from rl import backend, data
from rl.data import CacheMismatchError, DataError


def _take_all(it):
    return list(it)


def _same(a, b):
    """Element streams equal (arrays compared by value, structure by type)."""
    assert len(a) == len(b), (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        xs, ys = [], []
        data._map_structure(xs.append, x)
        data._map_structure(ys.append, y)
        assert type(x) is type(y), i
        for u, v in zip(xs, ys, strict=True):
            np.testing.assert_array_equal(backend.to_numpy(u), backend.to_numpy(v), err_msg=f"element {i}")


def _augment(x, y, rng):
    return x + rng.normal(size=x.shape).astype(np.float32), y


# ============================================================================ sources and transforms
def test_from_arrays_batch_and_length():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    ds = data.from_arrays(x, y).batch(4)
    batches = list(ds)
    assert len(ds) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    assert len(data.from_arrays(x, y).batch(4, drop_remainder=True)) == 2
    assert [len(b[0]) for b in data.from_arrays(x, y).batch(4, drop_remainder=True)] == [4, 4]
    dicts = list(data.from_arrays({"a": x, "b": y}).batch(5))
    assert set(dicts[0]) == {"a", "b"} and dicts[0]["a"].shape == (5, 3)
    with pytest.raises(DataError, match="different lengths"):
        data.from_arrays(x, y[:3])


def test_transforms_compose_like_tf_data():
    ds = data.from_arrays(np.arange(10))
    assert [int(v) for v in ds.filter(lambda v: v % 2 == 0)] == [0, 2, 4, 6, 8]
    assert [int(v) for v in ds.skip(7)] == [7, 8, 9] and len(ds.skip(7)) == 3
    assert [int(v) for v in ds.take(3)] == [0, 1, 2] and len(ds.take(30)) == 10
    assert [int(v) for v in ds.take(2).repeat(3)] == [0, 1, 0, 1, 0, 1]
    assert [int(v) for v in ds.map(lambda v: v * 10).take(3)] == [0, 10, 20]
    zipped = list(ds.zip(data.from_arrays(np.arange(100, 104))))
    assert [(int(a), int(b)) for a, b in zipped] == [(0, 100), (1, 101), (2, 102), (3, 103)]
    # interleave: blocks of 2 from 2 open sub-datasets at a time, tf.data's order
    inter = data.from_arrays(np.arange(3)).interleave(
        lambda k: data.from_arrays(np.arange(3) + 10 * int(k)), cycle_length=2, block_length=2)
    assert [int(v) for v in inter] == [0, 1, 10, 11, 2, 12, 20, 21, 22]
    assert [int(v) for v in ds.batch(4).unbatch()] == list(range(10))
    assert list(data.from_arrays(np.arange(0)).repeat()) == []  # empty forever ends instead of hanging


def test_shuffle_is_a_seeded_permutation_reshuffled_per_epoch():
    ds = data.from_arrays(np.arange(50)).shuffle(50, seed=3)
    e0 = [int(v) for v in ds.iterate(epoch=0)]
    assert sorted(e0) == list(range(50)) and e0 != list(range(50))
    assert e0 == [int(v) for v in ds.iterate(epoch=0)]
    assert e0 != [int(v) for v in ds.iterate(epoch=1)]
    small = [int(v) for v in data.from_arrays(np.arange(50)).shuffle(4, seed=3)]
    assert sorted(small) == list(range(50))
    assert all(abs(v - i) <= 50 for i, v in enumerate(small)) and small[0] < 4  # a 4-slot window at the start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_seed_same_stream_with_any_worker_count(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 60))
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)

    def pipeline(workers, processes=False):
        return (data.from_arrays(x, y).shuffle(int(rng_buffer), seed=seed)
                .map(_augment, workers=workers, processes=processes, seed=seed + 7)
                .batch(4).prefetch(2))

    rng_buffer = int(rng.integers(1, 30))
    reference = _take_all(pipeline(1))
    for workers in (2, 3, 8):
        _same(reference, _take_all(pipeline(workers)))
    _same(reference, _take_all(pipeline(2, processes=True)))


# ============================================================================ checkpoint / resume
def _pipelines(x, y, seed):
    yield "shuffle-map-batch-prefetch", (data.from_arrays(x, y).shuffle(7, seed=seed)
                                         .map(_augment, workers=3, seed=seed).batch(3).prefetch(3))
    yield "repeat-filter-unbatch", (data.from_arrays(x, y).repeat(3).shuffle(5, seed=seed)
                                    .filter(lambda a, b: b != 1).batch(4).unbatch().batch(2))
    yield "interleave-take-skip", (data.from_arrays(np.arange(6)).interleave(
        lambda k: data.from_arrays(x[: int(k) + 2], y[: int(k) + 2]), cycle_length=3, block_length=2)
        .skip(2).take(25).batch(2))
    yield "zip-generator", (data.from_generator(lambda: iter(x)).zip(data.from_arrays(y))
                            .map(lambda a, b: (a * 2, b), workers=2).shuffle(4, seed=seed).batch(5))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_resume_continues_with_the_exact_next_batch(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 30))
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for name, ds in _pipelines(x, y, seed):
        full = _take_all(ds.iterate(epoch=2))
        cut = int(rng.integers(0, len(full) + 1))
        it = ds.iterate(epoch=2)
        head = [next(it) for _ in range(cut)]
        path = tmp_path / f"{name}.npz"
        data.save_state(path, it.state_dict())
        rest_same_iterator = _take_all(it)
        resumed = ds.iterate(state=data.load_state(path))
        try:
            _same(full, head + _take_all(resumed))
            _same(full, head + rest_same_iterator)  # taking the state did not disturb the stream
        except AssertionError as exc:
            raise AssertionError(f"pipeline {name}, seed {seed}, cut after {cut} of {len(full)}: {exc}") from None


def test_state_of_another_pipeline_is_refused():
    a = data.from_arrays(np.arange(5)).shuffle(5, seed=0)
    b = data.from_arrays(np.arange(5)).shuffle(5, seed=1)
    state = a.iterate().state_dict()
    with pytest.raises(DataError, match="different pipeline"):
        b.iterate(state=state)


# ============================================================================ files
def _image_folder(root, classes=("cat", "dog"), per_class=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.jpg" if i % 2 == 0 else root / c / f"{i}.png")
    return root


def test_image_folder_streams_labelled_images(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    ds = data.image_folder(root, image_size=16, workers=2)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    items = list(ds)
    assert [int(label) for _, label in items] == [0, 0, 0, 1, 1, 1]
    assert all(img.shape == (16, 16, 3) and img.dtype == np.uint8 for img, _ in items)
    png = np.asarray(Image.open(root / "cat" / "1.png").convert("RGB").resize((21, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(items[1][0], png[:, 2:18])  # shorter side to 16, center crop
    shuffled = [int(label) for _, label in data.image_folder(root, image_size=16, shuffle=True, seed=1)]
    assert sorted(shuffled) == [0, 0, 0, 1, 1, 1]


def test_large_jpegs_decode_at_a_reduced_scale_unless_asked_for_every_pixel(tmp_path):
    (tmp_path / "big").mkdir()
    path = tmp_path / "big" / "photo.jpg"
    yy, xx = np.mgrid[0:520, 0:600]
    smooth = np.stack([xx * 255 // 600, yy * 255 // 520, (xx + yy) * 255 // 1120], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).save(path, quality=92)
    # the oracle: torchvision's Resize(64) on the fully decoded image (shorter side 64, longer truncated)
    # then CenterCrop(56)
    full = Image.open(path).convert("RGB").resize((73, 64), Image.Resampling.BILINEAR)
    expected = np.asarray(full)[4:60, 8:64]
    np.testing.assert_array_equal(data.read_image(path, 56, 64, jpeg_draft=False), expected)
    drafted = data.read_image(path, 56, 64)  # 520 px is >= 2x 64: decoded at 1/4 scale (130 px) first
    assert drafted.shape == expected.shape and not np.array_equal(drafted, expected)
    assert np.abs(drafted.astype(int) - expected).mean() < 3  # the same picture
    a, b = data.image_folder(tmp_path, 56, 64), data.image_folder(tmp_path, 56, 64, jpeg_draft=False)
    assert a.fingerprint() != b.fingerprint()  # a cache of one is never read for the other
    np.testing.assert_array_equal(next(iter(b))[0], expected)


def test_image_folder_reports_unreadable_files_by_path(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    bad = root / "dog" / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated JPEG
    (root / "cat" / "9.png").write_bytes(b"not an image")
    ds = data.image_folder(root, image_size=16, workers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = list(ds)
    assert len(items) == 5 and sorted(ds.skipped) == sorted([str(root / "cat" / "9.png"), str(bad)])
    assert any(str(bad) in str(w.message) for w in caught)
    with pytest.raises(TypeError, match="not known"):
        len(ds)  # a skipped file is never a silent hole in the count
    (root / "cat" / "9.png").unlink()
    with pytest.raises(DataError, match=r"cannot read image .*dog/2.jpg"):
        list(data.image_folder(root, image_size=16, on_error="raise"))


def test_image_folder_bad_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.image_folder(tmp_path / "nope")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        data.image_folder(tmp_path / "empty_root")
    root = _image_folder(tmp_path / "imgs")
    (root / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra has no image files"):
        data.image_folder(root)


def test_csv_rows_resume_and_bad_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3.5,4,1\n\n5,6,2\n")
    ds = data.csv(path, label_column="label")
    rows = list(ds)
    assert [list(f) for f, _ in rows] == [[1, 2], [3.5, 4], [5, 6]] and [int(lab) for _, lab in rows] == [0, 1, 2]
    it = ds.iterate()
    next(it)
    resumed = ds.iterate(state=it.state_dict())
    assert [int(lab) for _, lab in resumed] == [1, 2]
    path.write_text("a,b,label\n1,2,0\n3,x,1\n")
    with pytest.raises(DataError, match=r"t.csv, row 3, column 'b': 'x' is not a number"):
        list(data.csv(path, label_column="label"))
    path.write_text("a,b,label\n1,2,0\n3,1\n")
    with pytest.raises(DataError, match=r"t.csv, row 3: 2 fields, the header has 3"):
        list(data.csv(path, label_column="label"))
    with pytest.raises(DataError, match="no column 'y'"):
        data.csv(path, label_column="y")
    with pytest.raises(DataError, match="does not exist"):
        data.csv(tmp_path / "missing.csv")


def test_npy_shards(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"x_{i}.npy", np.arange(4 * i, 4 * i + 4 + i).reshape(-1, 1))
    ds = data.npy_shards(str(tmp_path / "x_*.npy"))
    assert len(ds) == 4 + 5 + 6
    assert [int(v[0]) for v in ds][:6] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(DataError, match="no file matches"):
        data.npy_shards(str(tmp_path / "y_*.npy"))


def test_generator_spec_names_the_bad_element():
    def gen():
        yield np.zeros(3, np.float32)
        yield np.zeros(4, np.float32)

    with pytest.raises(DataError, match=r"element 1: expected shape \(3,\)"):
        list(data.from_generator(gen, spec=((3,), "float32")))


# ============================================================================ cache
def test_cache_written_once_atomically_then_read_and_checked(tmp_path):
    calls = []

    def embed(x, y):
        calls.append(1)
        return x * 2.0, y

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    path = tmp_path / "emb"
    ds = data.from_arrays(x, y).map(embed, workers=2).cache(path, key="backbone-A")
    it = ds.iterate()
    next(it)
    it.close()  # an interrupted first pass leaves nothing behind
    assert not path.exists() and list(tmp_path.iterdir()) == []
    calls.clear()
    first = list(ds)
    assert path.is_dir() and len(calls) == 6
    second = list(ds.shuffle(6, seed=0))
    assert len(calls) == 6 and len(ds) == 6  # read from disk
    _same(first, list(ds))
    assert sorted(int(b) for _, b in second) == list(range(6))
    assert isinstance(np.load(path / "0.npy", mmap_mode="r"), np.memmap)
    with pytest.raises(CacheMismatchError, match="emb was written by another pipeline or key"):
        list(data.from_arrays(x, y).map(embed).cache(path, key="backbone-B"))
    with pytest.raises(CacheMismatchError):
        list(data.from_arrays(x + 1, y).map(embed).cache(path, key="backbone-A"))


# ============================================================================ memory
def test_memory_is_bounded_by_the_buffers_not_the_data():
    item_bytes = 2 * 2**20

    def peak_streaming(n_items):
        def big_items():
            for i in range(n_items):
                yield np.full(item_bytes // 8, i, dtype=np.float64)

        ds = data.from_generator(big_items).map(lambda a: a + 1, workers=2).batch(2).prefetch(2)
        tracemalloc.start()
        try:
            total = 0
            for batch in ds:
                total += int(batch[:, 0].sum())
                del batch
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == sum(range(1, n_items + 1))
        return peak / item_bytes

    small, large = peak_streaming(40), peak_streaming(200)  # 80 MiB and 400 MiB streamed
    # buffers: 4 inputs and 4 outputs in the map, a batch being stacked, 2 queued: ~12 items, whatever the data
    assert large < 20 and abs(large - small) < 2, f"peak {small:.1f} items for 40, {large:.1f} items for 200"


# ============================================================================ device edge
def test_prefetch_to_the_active_device(device):
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    batches = list(data.from_arrays(x, np.arange(4)).batch(2).prefetch(2, device="active"))
    xp = device
    assert all(isinstance(b[0], xp.ndarray) for b in batches)
    np.testing.assert_array_equal(np.concatenate([backend.to_numpy(b[0]) for b in batches]), x)
    it = data.from_arrays(x).batch(2).prefetch(2, device="active").iterate()
    next(it)
    state = it.state_dict()  # queued device batches are saved as host arrays
    assert all(isinstance(e, np.ndarray) for e in state["nodes"]["queue"])
    if backend.current().device != "gpu":
        with pytest.raises(DataError, match="needs the GPU backend"):
            data.from_arrays(x).prefetch(2, device="gpu")


# ============================================================================ Model.fit / evaluate / predict
def _model(seed=0):
    import rl
    from rl.layers import Dense

    rl.seed(seed)
    model = rl.Sequential([Dense(16, activation="relu", input_shape=(2,)), Dense(2)])
    model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  loss_options={"from_logits": True}, lr=1e-2)
    return model


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, 2)) + 2.5 * y[:, None] - 1.2).astype(np.float32)
    return x, y


def test_fit_on_a_dataset_matches_fit_on_arrays(device):
    x, y = _blobs()
    a, b = _model(), _model()
    hist_arrays = a.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    hist_ds = b.fit(data.from_arrays(x, y).batch(16).prefetch(2, device="active"), epochs=3, verbose=0)
    np.testing.assert_allclose(hist_arrays.history["loss"], hist_ds.history["loss"], rtol=1e-5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(backend.to_numpy(p.data), backend.to_numpy(q.data), rtol=1e-5, atol=1e-6)
    ds_eval = b.evaluate(data.from_arrays(x, y).batch(10), return_dict=True)
    assert ds_eval == pytest.approx(b.evaluate(x, y, batch_size=10, return_dict=True), rel=1e-5)
    np.testing.assert_allclose(b.predict(data.from_arrays(x).batch(7)), b.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.predict(data.from_arrays(x, y).batch(7)), b.predict(x), rtol=1e-5, atol=1e-6)


def test_fit_streams_a_shuffled_generator_and_learns():
    x, y = _blobs(256, seed=1)
    xv, yv = _blobs(128, seed=2)

    def stream():  # unknown length: a generator
        yield from zip(x, y, strict=True)

    model = _model()
    ds = data.from_generator(stream).shuffle(64, seed=0).batch(16)
    hist = model.fit(ds, epochs=5, verbose=0, validation_data=data.from_arrays(xv, yv).batch(64))
    assert hist.history["val_accuracy"][-1] > 0.9, hist.history
    with pytest.raises(ValueError, match=r"must yield \(x_batch, y_batch\) tuples"):
        model.fit(data.from_arrays(x), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="y and validation_split are not used"):
        model.fit(data.from_arrays(x, y).batch(4), y, verbose=0)


def test_image_folder_split_is_stratified_disjoint_and_complete(tmp_path):
    root = _image_folder(tmp_path / "imgs", per_class=5)
    train = data.image_folder(root, image_size=8, validation_split=0.4, subset="training", split_seed=3)
    val = data.image_folder(root, image_size=8, validation_split=0.4, subset="validation", split_seed=3)
    assert len(train) == 6 and len(val) == 4
    assert not set(train.files) & set(val.files) and len(set(train.files) | set(val.files)) == 10
    assert sorted(int(label) for _, label in val) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="subset="):
        data.image_folder(root, validation_split=0.4)


def test_fit_verbose_2_prints_one_keras_line_per_epoch(capsys):
    x, y = _blobs(32)
    _model().fit(data.from_arrays(x, y).batch(8), epochs=3, verbose=2,
                 validation_data=data.from_arrays(x, y).batch(16))
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all(" - loss: " in line and " - val_accuracy: " in line for line in lines)
