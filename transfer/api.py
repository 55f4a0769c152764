"""Transfer learning on MobileNetV2: cut, freeze by block, add a head, fine-tune, cache embeddings.

The pieces, from the smallest:

* :func:`cut` — a functional model ending after any block (``"features.N"``) or at the pooled
  ``"embedding"`` (N, 1280); it shares its layers (and so its weights) with the full model.
* :func:`freeze` / :func:`unfreeze` / :func:`unfreeze_top` — set ``trainable`` block by block. A
  frozen :class:`~rl.layers.BatchNormalization` normalizes with its moving statistics even while
  training (Keras' rule), which is what a pretrained backbone needs: its statistics came from
  ImageNet and a small batch of new images would wreck them.
* :class:`EmbeddingCache` — the frozen part of the backbone, run once per distinct image batch
  with the folded fast path (:class:`~transfer.mobilenet_v2.FoldedMobileNetV2`) and remembered, so
  training a head for 50 epochs costs one backbone pass, not 50. For data larger than memory,
  :meth:`EmbeddingCache.dataset` turns a streamed :class:`rl.data.Dataset` of image batches into
  ``(embedding, label)`` elements cached on disk (memory-mapped, fingerprinted with the backbone's
  weights, so a cache from another backbone or cut is refused).
* :class:`TransferModel` — backbone + head as an ``rl`` model (``compile``/``fit``/``predict`` all
  work on images). :meth:`TransferModel.fit_cached` trains on cached features of the frozen
  blocks; with ``fine_tune_blocks = n`` the top ``n`` blocks train too, at ``backbone_lr``, while
  the head trains at ``head_lr`` (two parameter groups, :class:`GroupedOptimizer`).

Typical use::

    backbone = mobilenet_v2("imagenet")
    model = TransferModel(backbone, Sequential([Dense(100, activation="relu"), Dense(4)]))
    model.fit_cached(images, labels, epochs=20)          # head only, backbone run once
    model.set_fine_tune(2)                                # unfreeze features.17 and features.18
    model.fit_cached(images, labels, epochs=5, head_lr=1e-3, backbone_lr=1e-4)
    probs = model.predict_proba(new_images)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from rl import backend, data
from rl import functional as F
from rl.layers import BatchNormalization, Layer
from rl.models import Model
from rl.optimizers import Optimizer, get_optimizer
from rl.tensor import Tensor, no_grad, using_config
from transfer.mobilenet_v2 import (
    BLOCK_NAMES,
    EMBEDDING,
    FoldedMobileNetV2,
    _block_index,
    block_specs,
    check_images,
)

__all__ = [
    "EmbeddingCache",
    "GroupedOptimizer",
    "TransferModel",
    "block_layers",
    "blocks",
    "cut",
    "forward_blocks",
    "freeze",
    "frozen_blocks",
    "unfreeze",
    "unfreeze_top",
]

_SPECS = block_specs()


# ============================================================================ blocks
def blocks(model: Model) -> list[str]:
    """Names of the ``features.N`` blocks present in ``model``, bottom to top."""
    names = {layer.name for layer in model.layers}
    return [s.name for s in _SPECS if s.layer_names()[0] in names]


def block_layers(model: Model, block: str | int) -> list[Layer]:
    """The layers of one block (``"features.N"`` or ``N``) in ``model``."""
    spec = _SPECS[_block_index(block)]
    present = {layer.name: layer for layer in model.layers}
    missing = [n for n in spec.layer_names() if n not in present]
    if missing:
        raise ValueError(f"block {spec.name!r} is not in model '{model.name}' (it has {', '.join(blocks(model))})")
    return [present[n] for n in spec.layer_names()]


def _block_list(model: Model, which: Iterable[str | int] | str | int | None) -> list[str]:
    if which is None:
        return blocks(model)
    if isinstance(which, str | int):
        which = [which]
    return [BLOCK_NAMES[_block_index(b)] for b in which]


def freeze(model: Model, which: Iterable[str | int] | str | int | None = None) -> None:
    """Freeze blocks (default: all of them): no gradients, batch norm in inference mode."""
    for name in _block_list(model, which):
        for layer in block_layers(model, name):
            layer.trainable = False


def unfreeze(model: Model, which: Iterable[str | int] | str | int | None = None) -> None:
    """Make blocks trainable again (default: all of them)."""
    for name in _block_list(model, which):
        for layer in block_layers(model, name):
            layer.trainable = True


def unfreeze_top(model: Model, n: int) -> list[str]:
    """Freeze every block, then unfreeze the top ``n`` (``features.18`` is the top); returns their names."""
    present = blocks(model)
    if not 0 <= n <= len(present):
        raise ValueError(f"n must be in 0..{len(present)} (blocks in model '{model.name}'), got {n}")
    freeze(model)
    top = present[len(present) - n :]
    unfreeze(model, top)
    return top


def frozen_blocks(model: Model) -> list[str]:
    """Blocks whose layers are all frozen."""
    return [b for b in blocks(model) if not any(layer.trainable for layer in block_layers(model, b))]


def cut(model: Model, at: str | int) -> Model:
    """A model from ``model``'s input to the output of block ``at`` or to the pooled ``"embedding"``.

    The layers are shared: training or loading one changes the other.
    """
    if at == EMBEDDING:
        try:
            out = model.get_layer("pool").output
        except ValueError:
            raise ValueError(f"model '{model.name}' has no pooling layer; build it with include_top=True "
                             "or cut_at='embedding'") from None
    else:
        out = block_layers(model, at)[-1].output
    return Model(model.input, out, name=f"{model.name}_to_{at if isinstance(at, str) else BLOCK_NAMES[at]}")


def forward_blocks(model: Model, x: Tensor, start: str | int, stop: str | int) -> Tensor:
    """Run blocks ``start`` .. ``stop`` (inclusive) of ``model``'s layers on ``x``, recording gradients.

    ``x`` is the input of block ``start`` (NHWC). Used to train the top blocks on cached features.
    """
    for i in range(_block_index(start), _block_index(stop) + 1):
        spec = _SPECS[i]
        layers = block_layers(model, spec.name)
        inp = x
        for layer in layers:
            x = layer([inp, x]) if layer.name.endswith(".add") else layer(x)
        del inp
    return x


# ============================================================================ optimizer groups
class GroupedOptimizer(Optimizer):
    """Several optimizers stepped as one: parameter groups with their own learning rates.

    Args:
        groups: ``[(params, lr), ...]``; empty groups are dropped.
        name: the optimizer kind for every group (``"adam"``, ``"sgd"``, ...).
        kwargs: shared hyperparameters (``weight_decay=...``, ``clipnorm=...`` per group).
    """

    name = "grouped"

    def __init__(self, groups: Sequence[tuple[Iterable[Tensor], float]], name: str = "adam", **kwargs: Any):
        self.optimizers = [get_optimizer(name, list(params), lr=lr, **kwargs)
                           for params, lr in groups if list(params)]
        if not self.optimizers:
            raise ValueError("GroupedOptimizer got no parameters in any group")
        self.params = [p for opt in self.optimizers for p in opt.params]
        self.lr = self.optimizers[0].lr
        self.clipnorm = None
        self.weight_decay = 0.0
        self.iterations = 0
        self.last_grad_norm = None

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()
        self.iterations += 1

    def current_lr(self) -> float:
        return self.optimizers[0].current_lr()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "groups": [opt.get_config() for opt in self.optimizers]}

    def state_dict(self) -> dict[str, Any]:
        return {f"group{i}/{k}": v for i, opt in enumerate(self.optimizers) for k, v in opt.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, opt in enumerate(self.optimizers):
            prefix = f"group{i}/"
            opt.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


# ============================================================================ embedding cache
class EmbeddingCache:
    """The frozen part of a MobileNetV2, run once per distinct batch of images and remembered.

    Args:
        backbone: a model from :func:`transfer.mobilenet_v2.mobilenet_v2` (its weights are read now;
            call :meth:`refresh` after changing them, which also empties the cache).
        until: the last block to run, or ``"embedding"`` for the pooled ``(N, 1280)`` vector.
        batch_size: images per backbone call.
        max_entries: distinct image arrays remembered (least recently used dropped first).

    ``cache(images)`` takes ``(N, 224, 224, 3)`` float images (see
    :func:`transfer.preprocessing.preprocess`) and returns host float32 features
    ``(N, 1280)`` or ``(N, h, w, C)``. ``backbone_images`` counts the images that went through the
    backbone, so a test (or a benchmark) can see that 50 epochs ran it once.
    """

    def __init__(self, backbone: Model, until: str | int = EMBEDDING, batch_size: int = 16, max_entries: int = 8):
        self.extractor = FoldedMobileNetV2(backbone, until=until)
        self.input_hw = tuple(backbone.input.shape[1:3])
        self.batch_size = int(batch_size)
        self.max_entries = int(max_entries)
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()
        self.backbone_images = 0
        self.hits = 0

    def refresh(self) -> None:
        """Re-read the backbone's weights and forget every cached feature."""
        self.extractor.refresh()
        self._store.clear()

    def fingerprint(self) -> str:
        """A hash of the backbone's weights and buffers (moving statistics) and of the cut point.

        The key of on-disk caches: features from another backbone, other weights or another cut
        must not be mistaken for these.
        """
        h = hashlib.sha1(f"{self.extractor.until}:{self.input_hw}".encode())
        for name, value in self.extractor.model.state_dict().items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(backend.to_numpy(value)).view(np.uint8).reshape(-1))
        return h.hexdigest()[:16]

    def dataset(self, batches: data.Dataset, path: str | Any, progress: Callable[[int], Any] | None = None
                ) -> data.Dataset:
        """``(features float32, label)`` elements of a Dataset of ``(images (B, H, W, 3), labels (B,))``
        batches, computed through the backbone now (unless cached already; ``progress(n)`` after each
        element) and cached at ``path`` (see :meth:`rl.data.Dataset.cache`); iterating the result
        reads the memory-mapped cache.

        Shuffle and batch the result for training: ``cache.dataset(ds, p).shuffle(4096, seed).batch(64)``.
        """
        return (batches.map(self._features_batch, name=f"mobilenet_v2_features({self.extractor.until})")
                .unbatch().cache(path, key=self.fingerprint()).build(progress))

    def _features_batch(self, images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.compute(images), np.asarray(labels)

    def compute(self, images: Any, progress: Callable[[int, int], Any] | None = None) -> np.ndarray:
        """Features of ``images`` without caching (``progress(done, total)`` is called per batch)."""
        check_images(images, self.input_hw)
        x = backend.to_numpy(images)
        outs = []
        for start in range(0, len(x), self.batch_size):
            xb = backend.to_device(np.ascontiguousarray(x[start : start + self.batch_size], dtype=np.float32))
            outs.append(backend.to_numpy(self.extractor(xb)))
            self.backbone_images += len(xb)
            if progress is not None:
                progress(min(start + self.batch_size, len(x)), len(x))
        return np.concatenate(outs, axis=0).astype(np.float32, copy=False)

    def __call__(self, images: Any, progress: Callable[[int, int], Any] | None = None) -> np.ndarray:
        """Features of ``images``, from the cache when this exact array content was seen before."""
        check_images(images, self.input_hw)
        x = np.ascontiguousarray(backend.to_numpy(images), dtype=np.float32)
        key = hashlib.sha1(x.view(np.uint8)).hexdigest() + str(x.shape)
        hit = self._store.get(key)
        if hit is not None:
            self._store.move_to_end(key)
            self.hits += 1
            return hit
        feats = self.compute(x, progress)
        self._store[key] = feats
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return feats


# ============================================================================ backbone + head
class _Top(Model):
    """The trainable part of a :class:`TransferModel`: top blocks (maybe none), pooling, head; takes features."""

    def __init__(self, owner: TransferModel):
        super().__init__(name=f"{owner.name}_top")
        self.backbone = owner.backbone
        self.head = owner.head
        object.__setattr__(self, "_owner", owner)

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        return self._owner._from_features(inputs)


class TransferModel(Model):
    """A MobileNetV2 backbone (cut at ``cut_at``, globally average-pooled) with a new head.

    Args:
        backbone: from :func:`transfer.mobilenet_v2.mobilenet_v2`; its blocks up to ``cut_at`` are used.
        head: a layer or model taking the pooled features ``(N, C)`` (C = 1280 at ``"features.18"``)
            and returning the outputs (logits for classification).
        cut_at: last backbone block used (``"features.N"``).
        fine_tune_blocks: how many blocks under ``cut_at`` (inclusive) train; the rest are frozen.
        train_batch_norm: let the batch norms of the fine-tuned blocks train too (batch statistics,
            moving averages updated). Off by default, as Keras advises for fine-tuning: their
            ImageNet statistics are better than those of a small batch of new images, and a few
            steps in training mode can undo what the head learned on the frozen features.

    ``model(images)`` / ``predict`` / ``fit`` work on ``(N, 224, 224, 3)`` preprocessed images;
    :meth:`fit_cached` is the fast way to train.
    """

    def __init__(self, backbone: Model, head: Layer, cut_at: str | int = "features.18", fine_tune_blocks: int = 0,
                 name: str = "transfer_model", train_batch_norm: bool = False):
        super().__init__(name=name)
        self.backbone = backbone
        self.head = head
        self.cut_index = _block_index(cut_at)
        present = blocks(backbone)
        if self.cut_index >= len(present):
            raise ValueError(f"cut_at={cut_at!r} is above the backbone's top block {present[-1]}")
        self.input_hw = tuple(backbone.input.shape[1:3])
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_top_model", None)
        self.train_batch_norm = bool(train_batch_norm)
        self.set_fine_tune(fine_tune_blocks)

    # ------------------------------------------------------------------------------ freezing
    def set_fine_tune(self, n: int) -> list[str]:
        """Freeze every backbone block, then unfreeze the top ``n`` up to ``cut_at``; returns their names.

        Their batch norms stay frozen (inference mode) unless the model was made with
        ``train_batch_norm=True``. The cached frozen features are recomputed on the next use when
        the cut between frozen and trainable blocks moves.
        """
        if not 0 <= n <= self.cut_index + 1:
            raise ValueError(f"fine_tune_blocks must be in 0..{self.cut_index + 1}, got {n}")
        freeze(self.backbone)
        self.first_trainable = self.cut_index + 1 - n  # index of the lowest trainable block
        top = list(BLOCK_NAMES[self.first_trainable : self.cut_index + 1])
        unfreeze(self.backbone, top)
        if not self.train_batch_norm:
            for name in top:
                for layer in block_layers(self.backbone, name):
                    if isinstance(layer, BatchNormalization):
                        layer.trainable = False
        self.fine_tune_blocks = n
        object.__setattr__(self, "_cache", None)
        return top

    @property
    def frozen_until(self) -> str | None:
        """Output point of the frozen part: a block name, ``"embedding"`` (nothing trains in the backbone
        and ``cut_at`` is the top block), or None when every block up to ``cut_at`` trains."""
        if self.fine_tune_blocks == 0:
            return EMBEDDING if self.cut_index == 18 else BLOCK_NAMES[self.cut_index]
        return BLOCK_NAMES[self.first_trainable - 1] if self.first_trainable > 0 else None

    @property
    def cache(self) -> EmbeddingCache | None:
        """The cache of the frozen part's outputs (None when every block trains)."""
        if self._cache is None and self.frozen_until is not None:
            object.__setattr__(self, "_cache", EmbeddingCache(self.backbone, until=self.frozen_until))
        return self._cache

    # ------------------------------------------------------------------------------ forward
    def _from_features(self, feats: Any) -> Tensor:
        """Trainable blocks (if any), pooling and head, from the frozen part's output."""
        x = feats if isinstance(feats, Tensor) else Tensor(feats, dtype=np.float32)
        if self.fine_tune_blocks > 0:
            x = forward_blocks(self.backbone, x, self.first_trainable, self.cut_index)
        if x.ndim == 4:
            x = F.global_avg_pool2d(x)
        return self.head(x)

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        """Logits (head outputs) for images ``(N, H, W, 3)``."""
        data = inputs.data if isinstance(inputs, Tensor) else inputs
        check_images(data, self.input_hw)
        cache = self.cache
        if cache is None:
            x = Tensor(data, dtype=np.float32)
            return self._from_features(x)
        # Frozen part: fast folded inference, no graph (its weights get no gradient anyway).
        with no_grad():
            feats = cache.extractor(backend.to_device(np.asarray(backend.to_numpy(data), dtype=np.float32)))
        return self._from_features(Tensor(feats))

    def build(self, input_shape: Any) -> None:
        xp = backend.current().xp
        with no_grad(), using_config("train", False):
            self.call(Tensor(xp.zeros((1, *input_shape[1:]), dtype=np.float32)))

    @property
    def top(self) -> Model:
        """The trainable part as a model on features (what :meth:`fit_cached` trains)."""
        if self._top_model is None:
            object.__setattr__(self, "_top_model", _Top(self))
        return self._top_model

    def features(self, images: Any) -> np.ndarray:
        """The frozen part's output for ``images`` (cached); the images themselves when nothing is frozen."""
        cache = self.cache
        return np.asarray(images, dtype=np.float32) if cache is None else cache(images)

    # ------------------------------------------------------------------------------ training
    def fit_cached(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 10,
        batch_size: int = 32,
        head_lr: float = 1e-3,
        backbone_lr: float = 1e-4,
        optimizer: str = "adam",
        validation_data: Any = None,
        verbose: int = 0,
        seed: int | None = 0,
        callbacks: Sequence[Any] | None = None,
        cache_path: str | None = None,
        shuffle_buffer: int = 8192,
    ) -> Any:
        """Train the head (and the unfrozen top blocks at ``backbone_lr``) on cached frozen features.

        Args:
            x: images ``(N, 224, 224, 3)``; y: integer labels ``(N,)``. Or ``x`` a
                :class:`rl.data.Dataset` of ``(images, labels)`` batches (e.g.
                :func:`transfer.data.imagenet_batches`) and ``y`` None: its features are computed
                once and cached on disk at ``cache_path`` (:meth:`EmbeddingCache.dataset`), then
                each epoch shuffles them through a ``shuffle_buffer``-element buffer.
            validation_data: ``(images, labels)``, also through the cache; with a Dataset ``x``, a
                ``(Dataset, cache_path)`` pair.
        Returns:
            the :class:`rl.callbacks.History` (``loss``, ``accuracy``, ``val_*`` per epoch).
        """
        top = self.top
        if isinstance(x, data.Dataset):
            if y is not None or cache_path is None or self.cache is None:
                raise ValueError("fit_cached on a Dataset takes no y, needs cache_path= and a frozen part "
                                 "(fine_tune_blocks below the cut)")
            train = self.cache.dataset(x, cache_path)
            first = next(iter(train))[0]
            feats, y = train.shuffle(shuffle_buffer, seed=seed or 0).batch(batch_size), None
            val = None
            if validation_data is not None:
                val_ds, val_path = validation_data
                val = self.cache.dataset(val_ds, val_path).batch(batch_size)
        else:
            feats = self.features(x)
            first = feats[0]
            y = np.asarray(y)
            val = None
            if validation_data is not None:
                val = (self.features(validation_data[0]), np.asarray(validation_data[1]))
        top(Tensor(np.asarray(first)[None]))  # build the head before collecting its parameters
        head_params = self.head.parameters()
        head_ids = {id(p) for p in head_params}
        backbone_params = [p for p in top.parameters() if id(p) not in head_ids]
        opt = GroupedOptimizer([(head_params, head_lr), (backbone_params, backbone_lr)], name=optimizer)
        top.compile(opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    loss_options={"from_logits": True})
        history = top.fit(feats, y, epochs=epochs, batch_size=batch_size, validation_data=val,
                          verbose=verbose, seed=seed, callbacks=callbacks)
        return history

    def predict_proba(self, images: Any, batch_size: int = 16) -> np.ndarray:
        """Softmax of the head's outputs for ``images`` ``(N, H, W, 3)`` -> ``(N, classes)``, host float32."""
        feats = self.features(images) if self.cache is not None else images
        outs = []
        with no_grad(), using_config("train", False):
            for start in range(0, len(feats), batch_size):
                logits = self.top(Tensor(np.asarray(feats[start : start + batch_size], dtype=np.float32)))
                outs.append(backend.to_numpy(F.softmax(logits, axis=-1).data))
        return np.concatenate(outs, axis=0)
