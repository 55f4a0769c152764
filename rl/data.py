"""Input pipelines that stream: ``rl.data.Dataset``, in the spirit of tf.data and tfjs-data, on NumPy.

A :class:`Dataset` describes a stream of *elements* (an array, a tuple of arrays or a dict of
arrays); nothing is read until it is iterated. Sources and transforms compose::

    from rl import data
    ds = (data.image_folder("photos/", image_size=224, shuffle=True, seed=0, workers=4)  # (uint8 HxWx3, label)
              .batch(32)
              .map(lambda x, y: (normalize(x), y))       # on whole batches: vectorized
              .prefetch(2))                               # a background thread keeps 2 batches ready
    model.fit(ds, epochs=5)

Sources: :func:`from_arrays`, :func:`from_generator`, :func:`image_folder`, :func:`csv`,
:func:`npy_shards`. Transforms (methods): ``map(fn, workers=N)``, ``filter``, ``shuffle(buffer_size,
seed)``, ``batch(n, drop_remainder)``, ``prefetch(n, device=...)``, ``cache(path)``, ``repeat``,
``take``, ``skip``, ``zip``, ``interleave``.

Three promises, each kept by construction rather than by care:

* **Deterministic.** Randomness comes only from seeds: ``shuffle`` draws from
  ``numpy.random.default_rng([seed, *epoch])`` and a seeded ``map`` hands element ``i`` the generator
  ``default_rng([seed, *epoch, i])``. Parallel ``map`` keeps input order, so the same seed gives the
  same stream with any worker count. ``ds.iterate(epoch=e)`` is the stream of epoch ``e`` (``repeat``
  extends the epoch with the pass number), so epoch ``e`` is the same whether or not a run was resumed.
* **Checkpointable.** ``it = ds.iterate()``; ``state = it.state_dict()`` captures the position (each
  node's counters, a shuffle buffer's contents and generator state, elements in flight in a parallel
  map or a prefetch queue); ``ds.iterate(state=state)`` (or ``it.load_state_dict(state)``) continues
  with exactly the next element. :func:`save_state` / :func:`load_state` write it to disk as JSON plus
  an ``.npz`` (no pickle).
* **Bounded memory.** Every node holds at most its buffer: ``shuffle`` its ``buffer_size`` elements,
  ``map`` ``2 * workers`` in flight, ``prefetch`` ``n`` batches, ``batch`` one batch. ``cache`` streams
  to a memory-mapped ``.npy`` on disk. A pipeline's peak memory is its buffers, not its data.

``cache(path, key=...)`` stores the elements once, written atomically (to a temporary folder renamed
into place at the end of the first complete pass), with a fingerprint of the pipeline above it and of
``key`` (say, the backbone's weights); a cache written by another pipeline or key is refused with a
:class:`CacheMismatchError` naming the file.

Only :mod:`rl.backend` is imported here; Pillow is imported when an image is decoded.
"""

from __future__ import annotations

import csv as _csv
import glob
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend
from rl.errors import PlaygradError

__all__ = [
    "IMAGE_SUFFIXES",
    "CacheMismatchError",
    "DataError",
    "Dataset",
    "DatasetIterator",
    "csv",
    "from_arrays",
    "from_generator",
    "image_folder",
    "load_state",
    "npy_shards",
    "read_image",
    "save_state",
    "split_indices",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class DataError(PlaygradError, ValueError):
    """A data source cannot be used as given; the message names the folder or file (and row)."""


class CacheMismatchError(DataError):
    """A cache on disk was written by another pipeline or with another key (e.g. another backbone)."""


Epoch = tuple[int, ...]


# ============================================================================ element structures
def _map_structure(fn: Callable[..., Any], *elements: Any) -> Any:
    """Apply ``fn`` leaf-wise over elements of the same structure (array, tuple or dict of arrays)."""
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_map_structure(fn, *parts) for parts in zip(*elements, strict=True))
    if isinstance(first, dict):
        return {k: _map_structure(fn, *(e[k] for e in elements)) for k in first}
    return fn(*elements)


def _stack(elements: list[Any]) -> Any:
    """Stack same-structured elements along a new leading axis: a list of ``(H, W)`` -> ``(n, H, W)``."""
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_stack([e[i] for e in elements]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack([e[k] for e in elements]) for k in first}
    return np.stack([np.asarray(e) for e in elements])


def _call(fn: Callable[..., Any], element: Any, **kwargs: Any) -> Any:
    # tf.data's convention: a tuple element is spread over the function's arguments.
    return fn(*element, **kwargs) if isinstance(element, tuple) else fn(element, **kwargs)


def _fn_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _rng(seed: int, epoch: Epoch, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *epoch, *more])


# ============================================================================ iterators
class _Iter(Iterator[Any]):
    """One node's iterator: ``__next__``, ``state_dict()`` and ``close()``. Built from a state to resume."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release threads and files (children too)."""


class DatasetIterator(Iterator[Any]):
    """What ``iter(ds)`` / ``ds.iterate(epoch)`` returns: elements plus a checkpointable position.

    ``state_dict()`` is a nested dict of ints, strings, lists and NumPy arrays (see :func:`save_state`);
    ``load_state_dict(state)`` moves this iterator to that position (same pipeline required).
    """

    def __init__(self, dataset: Dataset, epoch: int | Epoch = 0, state: Mapping[str, Any] | None = None):
        self.dataset = dataset
        self._fingerprint = dataset.fingerprint()
        self._inner: _Iter | None = None
        if state is not None:
            self.load_state_dict(state)
        else:
            self.epoch = _as_epoch(epoch)
            self._inner = dataset._iter(self.epoch, None)

    def __next__(self) -> Any:
        assert self._inner is not None
        return next(self._inner)

    def state_dict(self) -> dict[str, Any]:
        """The position: the next ``__next__`` after loading it returns the element this one would."""
        assert self._inner is not None
        return {"fingerprint": self._fingerprint, "epoch": list(self.epoch), "nodes": self._inner.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of an iterator over the same pipeline)."""
        if state.get("fingerprint") != self._fingerprint:
            raise DataError("this iterator state was saved from a different pipeline (fingerprint "
                            f"{state.get('fingerprint')!r}, this one is {self._fingerprint!r})")
        self.close()
        self.epoch = _as_epoch(state["epoch"])
        self._inner = self.dataset._iter(self.epoch, state["nodes"])

    def close(self) -> None:
        """Stop background threads and pools now (they also stop when the iterator is garbage-collected)."""
        if self._inner is not None:
            self._inner.close()

    def __del__(self) -> None:
        self.close()


def _as_epoch(epoch: int | Sequence[int]) -> Epoch:
    return (int(epoch),) if isinstance(epoch, int | np.integer) else tuple(int(e) for e in epoch)


# ============================================================================ Dataset
class Dataset:
    """A lazily evaluated, re-iterable stream of elements; build one with the module's sources.

    ``len(ds)`` is known when every node above knows it (arrays, image folders, ``batch``, ``take``,
    ``map``) and raises ``TypeError`` otherwise (generators, ``filter``, ``interleave``).
    """

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        raise NotImplementedError

    def _describe(self) -> str:
        """A description of this node and those above it; :meth:`fingerprint` hashes it."""
        raise NotImplementedError

    def _length(self) -> int | None:
        return None

    # ------------------------------------------------------------------------------ iteration
    def iterate(self, epoch: int | Sequence[int] = 0, state: Mapping[str, Any] | None = None) -> DatasetIterator:
        """An iterator over epoch ``epoch``'s stream, or resumed at ``state`` (from ``state_dict()``)."""
        return DatasetIterator(self, epoch, state)

    def __iter__(self) -> DatasetIterator:
        return self.iterate(0)

    def __len__(self) -> int:
        n = self._length()
        if n is None:
            raise TypeError(f"the length of this dataset is not known before iterating it: {self._describe()[:200]}")
        return n

    def fingerprint(self) -> str:
        """A short hash of the pipeline's description (sources, functions, parameters)."""
        return hashlib.sha1(self._describe().encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<Dataset {self._describe()[:300]}>"

    # ------------------------------------------------------------------------------ transforms
    def map(self, fn: Callable[..., Any], workers: int = 1, processes: bool = False, seed: int | None = None,
            name: str | None = None) -> Dataset:
        """Apply ``fn`` to every element (a tuple element is spread over its arguments).

        Args:
            workers: elements computed at once, in order; threads suit work that releases the GIL
                (Pillow decode/resize, NumPy on big arrays), ``processes=True`` a pure-Python ``fn``
                (it must then be picklable). At most ``2 * workers`` elements are in flight.
            seed: when given, ``fn`` also receives ``rng=`` a NumPy Generator seeded from
                ``(seed, epoch, element index)``: random augmentation that does not depend on
                which worker ran it.
            name: what the fingerprint records for ``fn`` (default: its module and qualified name;
                give one for lambdas whose meaning a cache should tell apart).
        """
        if workers < 1:
            raise ValueError(f"map: workers must be >= 1, got {workers}")
        return _Map(self, fn, int(workers), bool(processes), seed, name or _fn_name(fn))

    def filter(self, predicate: Callable[..., bool], name: str | None = None) -> Dataset:
        """Keep the elements for which ``predicate(element)`` is true."""
        return _Filter(self, predicate, name or _fn_name(predicate))

    def shuffle(self, buffer_size: int, seed: int = 0) -> Dataset:
        """Shuffle through a buffer of ``buffer_size`` elements (tf.data's algorithm): each output is a
        uniformly drawn buffer slot, refilled from upstream. Reshuffled every epoch (the seed is
        combined with the epoch). ``buffer_size >= len(ds)`` gives a uniform permutation."""
        if buffer_size < 1:
            raise ValueError(f"shuffle: buffer_size must be >= 1, got {buffer_size}")
        return _Shuffle(self, int(buffer_size), int(seed))

    def batch(self, batch_size: int, drop_remainder: bool = False) -> Dataset:
        """Stack ``batch_size`` consecutive elements (leaf by leaf) into arrays ``(batch_size, ...)``."""
        if batch_size < 1:
            raise ValueError(f"batch: batch_size must be >= 1, got {batch_size}")
        return _Batch(self, int(batch_size), bool(drop_remainder))

    def prefetch(self, buffer_size: int = 2, device: str | None = None) -> Dataset:
        """Compute up to ``buffer_size`` elements ahead in a background thread.

        ``device="active"`` (or ``"gpu"``) also copies every leaf array to the active
        :mod:`rl.backend` device in that thread, so on a GPU the next batch is copied while the
        current one trains; ``None`` keeps host arrays.
        """
        if buffer_size < 1:
            raise ValueError(f"prefetch: buffer_size must be >= 1, got {buffer_size}")
        if device not in (None, "cpu", "active", "gpu"):
            raise ValueError(f"prefetch: device must be None, 'cpu', 'active' or 'gpu', got {device!r}")
        if device == "gpu" and backend.current().device != "gpu":
            raise DataError("prefetch(device='gpu') needs the GPU backend to be active "
                            f"(it is {backend.current().description}); use device='active' to follow it")
        return _Prefetch(self, int(buffer_size), None if device == "cpu" else device)

    def cache(self, path: str | os.PathLike, key: str = "") -> Dataset:
        """Store the elements on disk at ``path`` (a folder of memory-mapped ``.npy``) during the first
        complete pass and read them from there afterwards.

        ``key`` joins the pipeline's fingerprint (give what the description cannot see, e.g. the
        backbone's weights hash); a cache with another fingerprint raises :class:`CacheMismatchError`.
        Elements must be arrays (or tuples/dicts of arrays) of one shape and dtype per leaf.
        ``ds.cache(path).build()`` writes it now (a no-op when it is on disk already).
        """
        return _Cache(self, Path(path), str(key))

    def repeat(self, count: int | None = None) -> Dataset:
        """Iterate the dataset ``count`` times (forever with None); pass ``k`` uses epoch ``(*epoch, k)``."""
        if count is not None and count < 0:
            raise ValueError(f"repeat: count must be >= 0 or None, got {count}")
        return _Repeat(self, count)

    def take(self, count: int) -> Dataset:
        """The first ``count`` elements."""
        return _Take(self, int(count))

    def skip(self, count: int) -> Dataset:
        """All but the first ``count`` elements."""
        return _Skip(self, int(count))

    def zip(self, *others: Dataset) -> Dataset:
        """Tuples ``(a, b, ...)`` of elements of this dataset and ``others``; ends with the shortest."""
        return _Zip((self, *others))

    def interleave(self, fn: Callable[..., Dataset], cycle_length: int = 2, block_length: int = 1,
                   name: str | None = None) -> Dataset:
        """``fn(element)`` makes a dataset per element; take ``block_length`` elements from each of
        ``cycle_length`` open ones in turn (tf.data's ``interleave``, sequential and deterministic)."""
        if cycle_length < 1 or block_length < 1:
            raise ValueError("interleave: cycle_length and block_length must be >= 1")
        return _Interleave(self, fn, int(cycle_length), int(block_length), name or _fn_name(fn))

    def unbatch(self) -> Dataset:
        """Split batches ``(n, ...)`` back into elements."""
        return _Unbatch(self)


# ============================================================================ sources
class _IndexIter(_Iter):
    """Elements ``get(order[i])`` for i = 0, 1, ...; the state is ``i``."""

    def __init__(self, get: Callable[[int], Any], order: Sequence[int] | np.ndarray, state: Any):
        self.get, self.order = get, order
        self.i = int(state["i"]) if state else 0

    def __next__(self) -> Any:
        if self.i >= len(self.order):
            raise StopIteration
        element = self.get(int(self.order[self.i]))
        self.i += 1
        return element

    def state_dict(self) -> dict[str, Any]:
        return {"i": self.i}


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return f"{a.dtype}{a.shape}:{hashlib.sha1(a.view(np.uint8).reshape(-1)).hexdigest()[:16]}"


class _Arrays(Dataset):
    def __init__(self, arrays: Any):
        self.arrays = arrays
        leaves: list[np.ndarray] = []
        _map_structure(leaves.append, arrays)
        lengths = {len(a) for a in leaves}
        if len(lengths) != 1:
            raise DataError(f"from_arrays: the arrays have different lengths {sorted(lengths)}")
        self.n = lengths.pop()
        self._description: str | None = None

    def _get(self, i: int) -> Any:
        return _map_structure(lambda a: a[i], self.arrays)

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _IndexIter(self._get, range(self.n), state)

    def _length(self) -> int:
        return self.n

    def _describe(self) -> str:
        # Hashed once (every iterate() asks): the arrays are taken to stay as they were given.
        if self._description is None:
            digests: list[str] = []
            _map_structure(lambda a: digests.append(_array_digest(np.asarray(a))), self.arrays)
            self._description = f"from_arrays({', '.join(digests)})"
        return self._description


def from_arrays(*arrays: Any) -> Dataset:
    """Rows of arrays: ``from_arrays(x)`` yields ``x[i]``, ``from_arrays(x, y)`` yields ``(x[i], y[i])``;
    a dict or tuple of arrays yields dicts or tuples of rows. All arrays ``(N, ...)`` share ``N``.

    The arrays are not copied; change them and make a new dataset (the fingerprint that caches and
    saved positions are checked against is computed once, from their content).
    """
    if not arrays:
        raise ValueError("from_arrays needs at least one array")
    structure = arrays[0] if len(arrays) == 1 else tuple(arrays)
    structure = _map_structure(lambda a: a if isinstance(a, np.ndarray) else np.asarray(a), structure)
    return _Arrays(structure)


class _GeneratorIter(_Iter):
    def __init__(self, node: _Generator, state: Any):
        self.node = node
        self.it = iter(node.fn())
        self.n = 0
        for _ in range(int(state["n"]) if state else 0):  # a generator can only be replayed
            self._pull()

    def _pull(self) -> Any:
        element = next(self.it)
        if self.node.spec is not None:
            _check_spec(element, self.node.spec, f"from_generator({self.node.name}) element {self.n}")
        self.n += 1
        return element

    def __next__(self) -> Any:
        return self._pull()

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n}


def _check_spec(element: Any, spec: Any, where: str) -> None:
    """Raise DataError unless each leaf of ``element`` has the ``(shape, dtype)`` of ``spec``'s leaf."""
    def check(leaf: Any, leaf_spec: Any) -> None:
        shape, dtype = leaf_spec
        a = np.asarray(leaf)
        if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
            raise DataError(f"{where}: expected shape {tuple(shape)} dtype {np.dtype(dtype)}, "
                            f"got shape {a.shape} dtype {a.dtype}")
    try:
        _map_structure(check, element, spec)
    except (TypeError, KeyError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{where}: its structure does not match the spec {spec!r}") from None


class _Generator(Dataset):
    def __init__(self, fn: Callable[[], Iterable[Any]], spec: Any, name: str):
        self.fn, self.spec, self.name = fn, spec, name

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _GeneratorIter(self, state)

    def _describe(self) -> str:
        return f"from_generator({self.name}, spec={self.spec!r})"


def from_generator(fn: Callable[[], Iterable[Any]], spec: Any = None, name: str | None = None) -> Dataset:
    """Elements of ``fn()`` (called again for every iteration).

    ``spec``: optional structure of ``(shape, dtype)`` pairs every element must match, e.g.
    ``((64, 64, 3), "uint8"), ((), "int64"))``; a mismatch is a :class:`DataError` naming the element.
    Resuming from a state calls ``fn()`` and skips the elements already delivered (a generator cannot
    seek), so ``fn`` must replay the same stream.
    """
    return _Generator(fn, spec, name or _fn_name(fn))


# ---------------------------------------------------------------------------- image folders
def read_image(path: str | os.PathLike, image_size: int | None = 224, resize_size: int | None = None,
               jpeg_draft: bool = True) -> np.ndarray:
    """Decode one image file to uint8 RGB ``(image_size, image_size, 3)``.

    The shorter side is resized (bilinear, antialiased) to ``resize_size`` (default ``image_size``),
    then the center ``image_size`` square is cropped: ImageNet's evaluation transform with
    ``resize_size=256, image_size=224``. ``image_size=None`` returns the full image. With
    ``jpeg_draft``, JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that is still at
    least the target size (Pillow's ``draft``), which is most of a large photo's decode time saved;
    the pixels then differ slightly from a full decode resized (what torchvision's ``Resize`` does).

    Raises:
        DataError: the file is missing, not an image, or truncated; the message names it.
    """
    from PIL import Image  # noqa: PLC0415 - only pipelines that decode images need Pillow

    resize_to = resize_size or image_size
    try:
        with Image.open(path) as img:
            if jpeg_draft and image_size is not None and img.format == "JPEG":
                w, h = img.size
                scale = resize_to / min(w, h)
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            rgb = img.convert("RGB")  # decodes the whole file: a truncated JPEG fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    if image_size is None:
        return np.asarray(rgb, dtype=np.uint8)
    w, h = rgb.size
    if (w, h) != (resize_to, resize_to) or resize_to != image_size:
        scale = resize_to / min(w, h)
        # torchvision's rule: the shorter side is exactly resize_to, the longer scaled and truncated
        size = (resize_to, max(resize_to, int(h * scale))) if w <= h else (max(resize_to, int(w * scale)), resize_to)
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        left = int(round((size[0] - image_size) / 2.0))
        top = int(round((size[1] - image_size) / 2.0))
        rgb = rgb.crop((left, top, left + image_size, top + image_size))
    return np.asarray(rgb, dtype=np.uint8)


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


class _Skipped:
    """What the decoding map yields for an unreadable file under ``on_error="skip"`` (then filtered)."""

    def __init__(self, path: str):
        self.path = path


class _ImageDecoder:
    """Picklable decode function of :func:`image_folder` (so ``processes=True`` works too)."""

    def __init__(self, image_size: int | None, resize_size: int | None, on_error: str,
                 skipped: list[str] | None, jpeg_draft: bool = True):
        self.image_size, self.resize_size, self.on_error = image_size, resize_size, on_error
        self.skipped, self.jpeg_draft = skipped, jpeg_draft

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "skipped": None}  # the list of skipped files stays in the parent

    def __call__(self, path: str, label: Any) -> Any:
        try:
            return read_image(path, self.image_size, self.resize_size, self.jpeg_draft), label
        except DataError as exc:
            if self.on_error == "raise":
                raise
            warnings.warn(f"skipping {exc}", stacklevel=2)
            if self.skipped is not None and path not in self.skipped:  # each epoch meets it again
                self.skipped.append(path)
            return _Skipped(path)


class _Files(Dataset):
    """``(path, label)`` pairs of an image folder, optionally in a seeded order per epoch."""

    def __init__(self, root: Path, files: list[str], labels: np.ndarray, shuffle: bool, seed: int):
        self.root, self.files, self.labels, self.shuffle, self.seed = root, files, labels, shuffle, seed
        self._description: str | None = None

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        order = _rng(self.seed, epoch).permutation(len(self.files)) if self.shuffle else range(len(self.files))
        return _IndexIter(lambda i: (self.files[i], self.labels[i]), order, state)

    def _length(self) -> int:
        return len(self.files)

    def _describe(self) -> str:
        if self._description is None:  # a stat per file: once per dataset, not once per epoch
            listing = hashlib.sha1()
            for f in self.files:
                listing.update(f.encode())
                listing.update(str(os.path.getsize(f)).encode())
            self._description = (f"image_files({self.root.resolve()}, n={len(self.files)}, "
                                 f"listing={listing.hexdigest()[:16]}, shuffle={self.shuffle}, seed={self.seed})")
        return self._description


class _ImageFolder(Dataset):
    """The dataset :func:`image_folder` returns: ``(image, label)``; ``classes``, ``files``, ``skipped``."""

    def __init__(self, files: _Files, classes: list[str], decoder: _ImageDecoder, workers: int, processes: bool):
        self.classes = classes
        self.files = [Path(f) for f in files.files]
        self.labels = files.labels
        self.skipped: list[str] = decoder.skipped if decoder.skipped is not None else []
        # full decodes give other pixels, so they must give another fingerprint (caches); the
        # default's name is unchanged, so caches written before the option existed stay valid
        full = "" if decoder.jpeg_draft else ", jpeg_draft=False"
        self._pipeline = files.map(decoder, workers=workers, processes=processes,
                                   name=f"read_image({decoder.image_size}, {decoder.resize_size}{full})")
        self._pipeline = self._pipeline.filter(lambda *e: not isinstance(e[0], _Skipped), name="readable")
        self._n = len(files)

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return self._pipeline._iter(epoch, state)

    def _length(self) -> int | None:
        # Known only while nothing was skipped: a skipped file shortens the stream, never silently.
        return None if self.skipped else self._n

    def _describe(self) -> str:
        return self._pipeline._describe()


def image_folder(
    root: str | os.PathLike,
    image_size: int | None = 224,
    resize_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 1,
    processes: bool = False,
    on_error: str = "skip",
    max_per_class: int | None = None,
    validation_split: float = 0.0,
    subset: str | None = None,
    split_seed: int = 0,
    jpeg_draft: bool = True,
) -> Dataset:
    """``(image uint8 (S, S, 3), label int64)`` from ``root/<class>/<image files>``, streamed.

    The folder is listed now (sorted class folders give the label order, files sorted by name);
    images are decoded while iterating by ``workers`` threads (or processes), through
    :func:`read_image` (``image_size``, ``resize_size``).

    Args:
        shuffle: visit the files in a seeded random order, a new one every epoch (cheap: only the
            list of names is permuted, no image is buffered).
        on_error: ``"skip"`` warns with the path of an unreadable file and leaves it out (the paths
            collect in ``ds.skipped``, and ``len(ds)`` becomes unknown); ``"raise"`` stops with a
            :class:`DataError` naming it.
        max_per_class: at most this many files per class (the first by name).
        validation_split, subset, split_seed: Keras' ``image_dataset_from_directory`` split:
            ``subset="training"`` or ``"validation"`` keeps that part of a stratified, seeded split
            (:func:`split_indices`) holding out ``validation_split`` of each class.
        jpeg_draft: decode large JPEGs at a reduced DCT scale (see :func:`read_image`); False
            decodes every pixel, as torchvision's transforms do.

    Raises:
        DataError: ``root`` missing or without class subfolders, or a class folder without image
            files (each message names the folder).
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"image folder {root} has no class subfolders (expected {root}/<class>/<image files>)")
    files: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        found = sorted(e.path for e in os.scandir(folder)
                       if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"class folder {folder} has no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
        found = found[:max_per_class] if max_per_class is not None else found
        files.extend(found)
        labels.extend([label] * len(found))
    label_array = np.asarray(labels, dtype=np.int64)
    if subset is not None or validation_split:
        if subset not in ("training", "validation") or not 0.0 < validation_split < 1.0:
            raise ValueError("image_folder: give validation_split in (0, 1) with subset='training' or "
                             f"'validation' (got {validation_split}, {subset!r})")
        train_idx, val_idx = split_indices(label_array, validation_split, split_seed)
        keep = train_idx if subset == "training" else val_idx
        files, label_array = [files[i] for i in keep], label_array[keep]
    source = _Files(root, files, label_array, shuffle, seed)
    decoder = _ImageDecoder(image_size, resize_size, on_error, [], jpeg_draft)
    return _ImageFolder(source, [d.name for d in class_dirs], decoder, workers, processes)


# ---------------------------------------------------------------------------- CSV
class _CsvIter(_Iter):
    def __init__(self, node: _Csv, state: Any):
        self.node = node
        self.file = open(node.path, "rb")  # noqa: SIM115 - closed in close(); binary for exact offsets
        if state:
            self.file.seek(int(state["offset"]))
            self.row = int(state["row"])
        else:
            self.file.readline()  # the header, read by the constructor already
            self.row = 1

    def __next__(self) -> Any:
        while True:
            line = self.file.readline()
            if not line:
                self.close()
                raise StopIteration
            self.row += 1
            if line.strip():
                return self.node.parse(line, self.row)

    def state_dict(self) -> dict[str, Any]:
        return {"offset": self.file.tell() if not self.file.closed else os.path.getsize(self.node.path),
                "row": self.row}

    def close(self) -> None:
        self.file.close()


class _Csv(Dataset):
    def __init__(self, path: Path, label_column: str | None, columns: Sequence[str] | None, dtype: Any):
        self.path, self.label_column, self.dtype = path, label_column, np.dtype(dtype)
        if not path.is_file():
            raise DataError(f"CSV file {path} does not exist")
        with open(path, encoding="utf-8", newline="") as f:
            header = next(_csv.reader([f.readline()]), [])
        header = [h.strip() for h in header]
        if not header or not any(header):
            raise DataError(f"{path}, row 1: expected a header row with the column names")
        self.header = header
        wanted = list(columns) if columns is not None else [h for h in header if h != label_column]
        for name in [*wanted, *([label_column] if label_column else [])]:
            if name not in header:
                raise DataError(f"{path}: no column {name!r} (the header has {', '.join(header)})")
        self.columns = wanted
        self.feature_idx = [header.index(c) for c in wanted]
        self.label_idx = header.index(label_column) if label_column else None

    def parse(self, line: bytes, row: int) -> Any:
        try:
            fields = next(_csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, _csv.Error) as exc:
            raise DataError(f"{self.path}, row {row}: cannot parse the line: {exc}") from None
        if len(fields) != len(self.header):
            raise DataError(f"{self.path}, row {row}: {len(fields)} fields, the header has {len(self.header)}")
        values = np.empty(len(self.feature_idx), dtype=self.dtype)
        for k, i in enumerate(self.feature_idx):
            try:
                values[k] = float(fields[i])
            except ValueError:
                raise DataError(f"{self.path}, row {row}, column {self.header[i]!r}: "
                                f"{fields[i]!r} is not a number") from None
        if self.label_idx is None:
            return values
        label = fields[self.label_idx].strip()
        try:
            return values, np.int64(label) if label.lstrip("-").isdigit() else np.float32(label)
        except ValueError:
            raise DataError(f"{self.path}, row {row}, column {self.label_column!r}: "
                            f"{label!r} is not a number") from None

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _CsvIter(self, state)

    def _describe(self) -> str:
        st = self.path.stat()
        return f"csv({self.path.resolve()}, size={st.st_size}, columns={self.columns}, label={self.label_column})"


def csv(path: str | os.PathLike, label_column: str | None = None, columns: Sequence[str] | None = None,
        dtype: Any = np.float32) -> Dataset:
    """Rows of a CSV file with a header, streamed: ``features (F,)`` or ``(features (F,), label)``.

    ``columns`` picks the feature columns (default: all but ``label_column``); every feature field
    must be a number. The label is int64 when it is an integer, else float32. A row with the wrong
    number of fields or a non-number is a :class:`DataError` naming the file, the row (1 = header)
    and the column. Fields must not contain line breaks (each line is a row; that keeps positions
    checkpointable as byte offsets).
    """
    return _Csv(Path(path), label_column, columns, dtype)


# ---------------------------------------------------------------------------- npy shards
class _NpyShards(Dataset):
    def __init__(self, pattern: str):
        self.pattern = pattern
        self.paths = sorted(glob.glob(pattern))
        if not self.paths:
            raise DataError(f"npy_shards: no file matches {pattern}")
        self.lengths = []
        for p in self.paths:
            try:
                self.lengths.append(len(np.load(p, mmap_mode="r")))
            except (OSError, ValueError) as exc:
                raise DataError(f"npy_shards: cannot read {p}: {exc}") from None
        self.offsets = np.cumsum([0, *self.lengths])

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        cache: dict[int, np.ndarray] = {}

        def get(i: int) -> np.ndarray:
            shard = int(np.searchsorted(self.offsets, i, side="right") - 1)
            if shard not in cache:
                cache.clear()  # one shard mapped at a time
                cache[shard] = np.load(self.paths[shard], mmap_mode="r")
            return np.array(cache[shard][i - self.offsets[shard]])

        return _IndexIter(get, range(int(self.offsets[-1])), state)

    def _length(self) -> int:
        return int(self.offsets[-1])

    def _describe(self) -> str:
        sizes = [os.path.getsize(p) for p in self.paths]
        return f"npy_shards({[str(Path(p).resolve()) for p in self.paths]}, sizes={sizes})"


def npy_shards(pattern: str) -> Dataset:
    """Rows of the ``.npy`` files matching the glob ``pattern`` (sorted by name), memory-mapped.

    Zip two of them for ``(x, y)`` pairs: ``npy_shards("x_*.npy").zip(npy_shards("y_*.npy"))``.
    """
    return _NpyShards(pattern)


# ============================================================================ transforms
class _Unary(Dataset):
    parent: Dataset

    def _length(self) -> int | None:
        return self.parent._length()


class _MapIter(_Iter):
    def __init__(self, node: _Map, epoch: Epoch, state: Any):
        self.node, self.epoch = node, epoch
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        self.index = int(state["index"]) if state else 0  # index of the next input pulled
        self.pool: Executor | None = None
        if node.workers > 1:
            self.pool = (ProcessPoolExecutor if node.processes else ThreadPoolExecutor)(node.workers)
        self.window = 2 * node.workers
        self.pending: deque[tuple[int, Any, Any]] = deque()  # (index, input, future)
        for idx, element in state["pending"] if state else []:
            self._submit(int(idx), _restore_tuples(element))
        self.exhausted = False

    def _kwargs(self, idx: int) -> dict[str, Any]:
        return {} if self.node.seed is None else {"rng": _rng(self.node.seed, self.epoch, idx)}

    def _submit(self, idx: int, element: Any) -> None:
        assert self.pool is not None
        future = self.pool.submit(_call, self.node.fn, element, **self._kwargs(idx))
        self.pending.append((idx, element, future))

    def __next__(self) -> Any:
        if self.pool is None:
            element = next(self.up)
            self.index += 1
            return _call(self.node.fn, element, **self._kwargs(self.index - 1))
        while not self.exhausted and len(self.pending) < self.window:
            try:
                element = next(self.up)
            except StopIteration:
                self.exhausted = True
                break
            self._submit(self.index, element)
            self.index += 1
        if not self.pending:
            self.close()
            raise StopIteration
        _, _, future = self.pending.popleft()
        return future.result()

    def state_dict(self) -> dict[str, Any]:
        # Inputs in flight are part of the position: they were taken from upstream but not delivered.
        return {"up": self.up.state_dict(), "index": self.index,
                "pending": [[idx, element] for idx, element, _ in self.pending]}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.up.close()


class _Map(_Unary):
    def __init__(self, parent: Dataset, fn: Callable[..., Any], workers: int, processes: bool, seed: int | None,
                 name: str):
        self.parent, self.fn, self.workers, self.processes, self.seed, self.name = (
            parent, fn, workers, processes, seed, name)

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _MapIter(self, epoch, state)

    def _describe(self) -> str:
        # Workers are left out on purpose: the stream does not depend on them.
        return f"{self.parent._describe()}.map({self.name}, seed={self.seed})"


class _FilterIter(_Iter):
    def __init__(self, node: _Filter, epoch: Epoch, state: Any):
        self.node = node
        self.up = node.parent._iter(epoch, state)

    def __next__(self) -> Any:
        while True:
            element = next(self.up)
            if _call(self.node.predicate, element):
                return element

    def state_dict(self) -> Any:
        return self.up.state_dict()

    def close(self) -> None:
        self.up.close()


class _Filter(Dataset):
    def __init__(self, parent: Dataset, predicate: Callable[..., bool], name: str):
        self.parent, self.predicate, self.name = parent, predicate, name

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _FilterIter(self, epoch, state)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.filter({self.name})"


class _ShuffleIter(_Iter):
    def __init__(self, node: _Shuffle, epoch: Epoch, state: Any):
        self.node = node
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        self.rng = _rng(node.seed, epoch)
        if state:
            self.rng.bit_generator.state = state["rng"]
            self.buffer = [_restore_tuples(e) for e in state["buffer"]]
            self.exhausted = bool(state["exhausted"])
        else:
            self.buffer = []
            self.exhausted = False

    def _pull(self) -> Any:
        try:
            return next(self.up)
        except StopIteration:
            self.exhausted = True
            return None

    def __next__(self) -> Any:
        while not self.exhausted and len(self.buffer) < self.node.buffer_size:
            element = self._pull()
            if not self.exhausted:
                self.buffer.append(element)
        if not self.buffer:
            raise StopIteration
        j = int(self.rng.integers(len(self.buffer)))
        out = self.buffer[j]
        refill = None if self.exhausted else self._pull()
        if self.exhausted:
            self.buffer[j] = self.buffer[-1]
            self.buffer.pop()
        else:
            self.buffer[j] = refill
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"up": self.up.state_dict(), "rng": self.rng.bit_generator.state, "buffer": list(self.buffer),
                "exhausted": self.exhausted}

    def close(self) -> None:
        self.up.close()


class _Shuffle(_Unary):
    def __init__(self, parent: Dataset, buffer_size: int, seed: int):
        self.parent, self.buffer_size, self.seed = parent, buffer_size, seed

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _ShuffleIter(self, epoch, state)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.shuffle({self.buffer_size}, seed={self.seed})"


class _BatchIter(_Iter):
    def __init__(self, node: _Batch, epoch: Epoch, state: Any):
        self.node = node
        self.up = node.parent._iter(epoch, state)

    def __next__(self) -> Any:
        elements = []
        for _ in range(self.node.batch_size):
            try:
                elements.append(next(self.up))
            except StopIteration:
                break
        if not elements or (self.node.drop_remainder and len(elements) < self.node.batch_size):
            raise StopIteration
        return _stack(elements)

    def state_dict(self) -> Any:
        return self.up.state_dict()  # between batches nothing is held here

    def close(self) -> None:
        self.up.close()


class _Batch(Dataset):
    def __init__(self, parent: Dataset, batch_size: int, drop_remainder: bool):
        self.parent, self.batch_size, self.drop_remainder = parent, batch_size, drop_remainder

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _BatchIter(self, epoch, state)

    def _length(self) -> int | None:
        n = self.parent._length()
        if n is None:
            return None
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.batch({self.batch_size}, drop_remainder={self.drop_remainder})"


class _UnbatchIter(_Iter):
    def __init__(self, node: _Unbatch, epoch: Epoch, state: Any):
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        self.current = _restore_tuples(state["current"]) if state and state["current"] is not None else None
        self.i = int(state["i"]) if state else 0

    def __next__(self) -> Any:
        while self.current is None or self.i >= _leading(self.current):
            self.current, self.i = next(self.up), 0
        self.i += 1
        return _map_structure(lambda a: a[self.i - 1], self.current)

    def state_dict(self) -> dict[str, Any]:
        return {"up": self.up.state_dict(), "current": self.current, "i": self.i}

    def close(self) -> None:
        self.up.close()


def _leading(element: Any) -> int:
    leaves: list[Any] = []
    _map_structure(leaves.append, element)
    return len(leaves[0])


class _Unbatch(Dataset):
    def __init__(self, parent: Dataset):
        self.parent = parent

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _UnbatchIter(self, epoch, state)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.unbatch()"


_DONE = object()


class _PrefetchIter(_Iter):
    """A producer thread fills a bounded deque; the position is upstream's plus the queued elements.

    Two locks keep the state consistent without stalling the consumer: ``pull_lock`` is held by the
    producer while it computes the next element (and by ``state_dict``), ``queue_lock`` only around
    deque operations, so the consumer takes ready elements while the producer works.
    """

    def __init__(self, node: _Prefetch, epoch: Epoch, state: Any):
        self.node = node
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        self.queue: deque[tuple[Any, Any]] = deque()  # (host element, element to deliver)
        for element in state["queue"] if state else []:
            element = _restore_tuples(element)
            self.queue.append((element, self._move(element)))
        self.pull_lock = threading.Lock()
        self.queue_lock = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.done = False
        self.thread: threading.Thread | None = None

    def _move(self, element: Any) -> Any:
        if self.node.device is None:
            return element
        return _map_structure(lambda a: backend.to_device(a) if isinstance(a, np.ndarray) else a, element)

    def _produce(self) -> None:
        while not self.stop.is_set():
            with self.queue_lock:
                while len(self.queue) >= self.node.buffer_size and not self.stop.is_set():
                    self.queue_lock.wait(0.1)
            if self.stop.is_set():
                return
            with self.pull_lock:
                try:
                    element = next(self.up)
                    item = (element, self._move(element))
                except StopIteration:
                    item = None
                except BaseException as exc:  # handed to the consumer, raised there
                    self.error, item = exc, None
                with self.queue_lock:
                    if item is None:
                        self.done = True
                    else:
                        self.queue.append(item)
                    self.queue_lock.notify_all()
            if item is None:
                return

    def __next__(self) -> Any:
        if self.thread is None:
            self.thread = threading.Thread(target=self._produce, name="rl.data.prefetch", daemon=True)
            self.thread.start()
        with self.queue_lock:
            while not self.queue and not self.done:
                self.queue_lock.wait()
            if self.queue:
                _, out = self.queue.popleft()
                self.queue_lock.notify_all()
                return out
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        raise StopIteration

    def state_dict(self) -> dict[str, Any]:
        with self.pull_lock, self.queue_lock:
            return {"up": self.up.state_dict(), "queue": [host for host, _ in self.queue]}

    def close(self) -> None:
        self.stop.set()
        with self.queue_lock:
            self.queue_lock.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        self.up.close()


class _Prefetch(_Unary):
    def __init__(self, parent: Dataset, buffer_size: int, device: str | None):
        self.parent, self.buffer_size, self.device = parent, buffer_size, device

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _PrefetchIter(self, epoch, state)

    def _describe(self) -> str:
        return self.parent._describe()  # prefetching changes when, not what


class _RepeatIter(_Iter):
    def __init__(self, node: _Repeat, epoch: Epoch, state: Any):
        self.node, self.epoch = node, epoch
        self.k = int(state["k"]) if state else 0
        self.up = node.parent._iter((*epoch, self.k), state["up"] if state else None)
        self.pass_empty = True

    def __next__(self) -> Any:
        while self.node.count is None or self.k < self.node.count:
            try:
                element = next(self.up)
                self.pass_empty = False
                return element
            except StopIteration:
                if self.pass_empty and self.node.count is None:
                    raise StopIteration from None  # repeating an empty dataset forever would hang
                self.up.close()
                self.k += 1
                self.pass_empty = True
                self.up = self.node.parent._iter((*self.epoch, self.k), None)
        raise StopIteration

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "up": self.up.state_dict()}

    def close(self) -> None:
        self.up.close()


class _Repeat(Dataset):
    def __init__(self, parent: Dataset, count: int | None):
        self.parent, self.count = parent, count

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _RepeatIter(self, epoch, state)

    def _length(self) -> int | None:
        n = self.parent._length()
        return None if n is None or self.count is None else n * self.count

    def _describe(self) -> str:
        return f"{self.parent._describe()}.repeat({self.count})"


class _CountIter(_Iter):
    """``take`` (deliver at most ``limit``) and ``skip`` (drop the first ``limit``) share a counter."""

    def __init__(self, node: _Take | _Skip, epoch: Epoch, state: Any):
        self.node = node
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        self.n = int(state["n"]) if state else 0

    def __next__(self) -> Any:
        if not isinstance(self.node, _Skip):
            if self.n >= self.node.count:
                raise StopIteration
            self.n += 1
            return next(self.up)
        while self.n < self.node.count:
            next(self.up)
            self.n += 1
        return next(self.up)

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "up": self.up.state_dict()}

    def close(self) -> None:
        self.up.close()


class _Take(Dataset):
    def __init__(self, parent: Dataset, count: int):
        self.parent, self.count = parent, count

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _CountIter(self, epoch, state)

    def _length(self) -> int | None:
        n = self.parent._length()
        return None if n is None else min(n, self.count)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.take({self.count})"


class _Skip(_Take):
    def _length(self) -> int | None:
        n = self.parent._length()
        return None if n is None else max(0, n - self.count)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.skip({self.count})"


class _ZipIter(_Iter):
    def __init__(self, node: _Zip, epoch: Epoch, state: Any):
        self.ups = [p._iter(epoch, state[i] if state else None) for i, p in enumerate(node.parents)]

    def __next__(self) -> Any:
        return tuple([next(up) for up in self.ups])  # a list: StopIteration must escape, not end a generator

    def state_dict(self) -> list[Any]:
        return [up.state_dict() for up in self.ups]

    def close(self) -> None:
        for up in self.ups:
            up.close()


class _Zip(Dataset):
    def __init__(self, parents: tuple[Dataset, ...]):
        self.parents = parents

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _ZipIter(self, epoch, state)

    def _length(self) -> int | None:
        lengths = [p._length() for p in self.parents]
        return None if None in lengths else min(lengths)  # type: ignore[type-var]

    def _describe(self) -> str:
        return f"zip({', '.join(p._describe() for p in self.parents)})"


class _InterleaveIter(_Iter):
    def __init__(self, node: _Interleave, epoch: Epoch, state: Any):
        self.node, self.epoch = node, epoch
        self.up = node.parent._iter(epoch, state["up"] if state else None)
        # Open slots: [source element, its iterator, elements taken in the current block]
        self.slots: list[list[Any]] = []
        for element, child_state, taken in state["slots"] if state else []:
            element = _restore_tuples(element)
            self.slots.append([element, self._open(element, child_state), int(taken)])
        self.pos = int(state["pos"]) if state else 0
        self.exhausted = bool(state["exhausted"]) if state else False

    def _open(self, element: Any, child_state: Any) -> _Iter:
        child = _call(self.node.fn, element)
        if not isinstance(child, Dataset):
            raise TypeError(f"interleave: {self.node.name} must return a Dataset, got {type(child).__name__}")
        return child._iter(self.epoch, child_state)

    def __next__(self) -> Any:
        while True:
            while not self.exhausted and len(self.slots) < self.node.cycle_length:
                try:
                    element = next(self.up)
                except StopIteration:
                    self.exhausted = True
                    break
                self.slots.append([element, self._open(element, None), 0])
            if not self.slots:
                raise StopIteration
            self.pos %= len(self.slots)
            slot = self.slots[self.pos]
            try:
                out = next(slot[1])
            except StopIteration:
                slot[1].close()
                del self.slots[self.pos]  # the next slot moves into this position
                continue
            slot[2] += 1
            if slot[2] >= self.node.block_length:
                slot[2] = 0
                self.pos += 1
            return out

    def state_dict(self) -> dict[str, Any]:
        return {"up": self.up.state_dict(), "pos": self.pos, "exhausted": self.exhausted,
                "slots": [[element, it.state_dict(), taken] for element, it, taken in self.slots]}

    def close(self) -> None:
        for slot in self.slots:
            slot[1].close()
        self.up.close()


class _Interleave(Dataset):
    def __init__(self, parent: Dataset, fn: Callable[..., Dataset], cycle_length: int, block_length: int, name: str):
        self.parent, self.fn, self.cycle_length, self.block_length, self.name = (
            parent, fn, cycle_length, block_length, name)

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        return _InterleaveIter(self, epoch, state)

    def _describe(self) -> str:
        return f"{self.parent._describe()}.interleave({self.name}, {self.cycle_length}, {self.block_length})"


# ============================================================================ cache
_CACHE_META = "cache.json"
_NPY_HEADER_BYTES = 256  # room for any shape's header, so it can be written after the data


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version-1.0 ``.npy`` header padded to :data:`_NPY_HEADER_BYTES` (the data follow it)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    body_len = _NPY_HEADER_BYTES - 10
    body = text.encode("latin1").ljust(body_len - 1) + b"\n"
    if len(body) != body_len:
        raise DataError(f"cache: the .npy header for shape {shape} does not fit {_NPY_HEADER_BYTES} bytes")
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body


class _CacheWriter:
    """Appends elements to one raw file per leaf in a temporary folder; ``finish`` renames it into place."""

    def __init__(self, node: _Cache):
        self.node = node
        node.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{node.path.name}.tmp-", dir=node.path.parent))
        self.files: list[Any] = []
        self.specs: list[tuple[tuple[int, ...], np.dtype]] = []
        self.structure: Any = None
        self.count = 0

    def add(self, element: Any) -> None:
        leaves: list[np.ndarray] = []
        _map_structure(lambda a: leaves.append(np.asarray(backend.to_numpy(a))), element)  # 0-d stays 0-d
        if not self.files:
            self.structure = _map_structure(lambda a: None, element)
            for i, leaf in enumerate(leaves):
                f = open(self.tmp / f"{i}.npy", "wb")  # noqa: SIM115 - closed in finish/abort
                f.write(b"\0" * _NPY_HEADER_BYTES)
                self.files.append(f)
                self.specs.append((leaf.shape, leaf.dtype))
        for i, (leaf, (shape, dtype)) in enumerate(zip(leaves, self.specs, strict=True)):
            if leaf.shape != shape or leaf.dtype != dtype:
                self.abort()
                raise DataError(f"cache {self.node.path}: element {self.count} leaf {i} has shape {leaf.shape} "
                                f"dtype {leaf.dtype}, the first had {shape} {dtype} (cache fixed-shape elements)")
            self.files[i].write(leaf.tobytes())
        self.count += 1

    def finish(self) -> None:
        for f, (shape, dtype) in zip(self.files, self.specs, strict=True):
            f.seek(0)
            f.write(_npy_header((self.count, *shape), dtype))
            f.flush()
            os.fsync(f.fileno())
            f.close()
        meta = {"fingerprint": self.node.fingerprint(), "description": self.node._describe(),
                "count": self.count, "structure": _structure_to_json(self.structure), "leaves": len(self.files)}
        (self.tmp / _CACHE_META).write_text(json.dumps(meta, indent=1))
        try:
            os.rename(self.tmp, self.node.path)  # atomic: the cache appears whole or not at all
        except OSError:
            self.abort()
            if not _Cache.complete(self.node.path):
                raise
        self.files = []

    def abort(self) -> None:
        for f in self.files:
            f.close()
        self.files = []
        shutil.rmtree(self.tmp, ignore_errors=True)


def _structure_to_json(structure: Any) -> Any:
    if isinstance(structure, tuple):
        return {"tuple": [_structure_to_json(s) for s in structure]}
    if isinstance(structure, dict):
        return {"dict": {k: _structure_to_json(v) for k, v in structure.items()}}
    return None


def _fill_structure(structure: Any, leaves: Iterator[Any]) -> Any:
    if structure is None:
        return next(leaves)
    if "tuple" in structure:
        return tuple(_fill_structure(s, leaves) for s in structure["tuple"])
    return {k: _fill_structure(v, leaves) for k, v in structure["dict"].items()}


class _CacheReadIter(_IndexIter):
    def __init__(self, arrays: list[np.ndarray], structure: Any, state: Any):
        super().__init__(lambda i: _fill_structure(structure, (np.array(a[i]) for a in arrays)),
                         range(len(arrays[0])), state)


class _CacheWriteIter(_Iter):
    def __init__(self, node: _Cache, epoch: Epoch, state: Any):
        if state:
            raise DataError(f"cache {node.path}: this position was saved while the cache was being written and "
                            "the cache was not completed; restart the pass that writes it")
        self.node = node
        self.up = node.parent._iter(epoch, None)
        self.writer: _CacheWriter | None = _CacheWriter(node)

    def __next__(self) -> Any:
        try:
            element = next(self.up)
        except StopIteration:
            if self.writer is not None:
                self.writer.finish()
                self.writer = None
            raise
        except BaseException:
            self.close()
            raise
        if self.writer is not None:
            self.writer.add(element)
        return element

    def state_dict(self) -> dict[str, Any]:
        return {"writing": True, "i": self.writer.count if self.writer else 0}

    def close(self) -> None:
        if self.writer is not None:  # an unfinished pass leaves nothing behind
            self.writer.abort()
            self.writer = None
        self.up.close()


class _Cache(_Unary):
    def __init__(self, parent: Dataset, path: Path, key: str):
        self.parent, self.path, self.key = parent, path, key
        self._description: str | None = None

    @staticmethod
    def complete(path: Path) -> bool:
        return (path / _CACHE_META).is_file()

    def build(self, progress: Callable[[int], Any] | None = None) -> _Cache:
        """Run the pass that writes the cache unless it is complete on disk (then check its fingerprint).

        ``progress(n)`` is called after each element written. Returns this dataset.
        """
        if self.complete(self.path):
            self._open()
            return self
        it = self.iterate()
        for n, _ in enumerate(it, start=1):
            if progress is not None:
                progress(n)
        return self

    def _describe(self) -> str:
        if self._description is None:  # hashing a folder listing is not free: once per dataset
            self._description = f"{self.parent._describe()}.cache(key={self.key!r})"
        return self._description

    def _open(self) -> tuple[list[np.ndarray], Any]:
        meta_path = self.path / _CACHE_META
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cache {meta_path} is unreadable ({exc}); delete {self.path} to rebuild it") from None
        if meta.get("fingerprint") != self.fingerprint():
            raise CacheMismatchError(
                f"cache {self.path} was written by another pipeline or key (fingerprint {meta.get('fingerprint')}, "
                f"this pipeline's is {self.fingerprint()}): it holds {meta.get('description', '?')[:300]!r}; "
                f"this pipeline is {self._describe()[:300]!r}. Delete {self.path} or cache to another path")
        arrays = []
        for i in range(int(meta["leaves"])):
            try:
                arrays.append(np.load(self.path / f"{i}.npy", mmap_mode="r"))
            except (OSError, ValueError) as exc:
                raise DataError(f"cache file {self.path / f'{i}.npy'} is unreadable ({exc}); "
                                f"delete {self.path} to rebuild it") from None
        return arrays, meta["structure"]

    def _iter(self, epoch: Epoch, state: Any) -> _Iter:
        if self.complete(self.path):
            arrays, structure = self._open()
            if state and state.get("writing"):
                state = {"i": state["i"]}
            return _CacheReadIter(arrays, structure, state)
        if self.path.exists():
            raise DataError(f"cache path {self.path} exists but is not a complete cache ({_CACHE_META} missing); "
                            "delete it or cache to another path")
        return _CacheWriteIter(self, epoch, state)

    def _length(self) -> int | None:
        if self.complete(self.path):
            return len(self._open()[0][0])
        return self.parent._length()


# ============================================================================ saving positions
def _restore_tuples(element: Any) -> Any:
    """States pass through JSON, where tuples become lists: tuples of arrays come back as tuples."""
    if isinstance(element, list):
        return tuple(_restore_tuples(e) for e in element)
    if isinstance(element, dict):
        return {k: _restore_tuples(v) for k, v in element.items()}
    return element


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write an iterator's ``state_dict()`` to ``path`` (an ``.npz``: arrays plus the rest as JSON), atomically."""
    arrays: dict[str, np.ndarray] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray | np.generic) and not isinstance(value, np.bool_):
            key = f"a{len(arrays)}"
            arrays[key] = np.asarray(value)
            return {"__array__": key}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        raise DataError(f"save_state: cannot store a {type(value).__name__} (elements must be arrays or numbers)")

    skeleton = json.dumps(encode(dict(state)))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, __state__=np.frombuffer(skeleton.encode(), dtype=np.uint8), **arrays)
    os.replace(tmp, path)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_state`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the data-iterator state {path}: {exc}") from None

    def decode(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                a = arrays[value["__array__"]]
                return a[()] if a.ndim == 0 else a
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(json.loads(arrays.pop("__state__").tobytes().decode()))
