"""Transfer API: cutting, freezing by block, frozen batch norm, embedding cache, cached training, two learning rates."""

from __future__ import annotations

import numpy as np
import pytest

import rl
from rl import backend
from rl.layers import Dense
from transfer.api import (
    EmbeddingCache,
    GroupedOptimizer,
    TransferModel,
    block_layers,
    blocks,
    cut,
    freeze,
    frozen_blocks,
    unfreeze,
    unfreeze_top,
)
from transfer.mobilenet_v2 import InputShapeError, mobilenet_v2

SIZE = 32  # small images keep the random-weight backbone fast; the structure is the same


def _trained_like(model: rl.Model, seed: int = 0) -> rl.Model:
    """Give every batch norm non-trivial statistics, as pretrained weights have."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, rl.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            # to_device: CuPy fills a basic-index assignment, which takes no host array
            layer.moving_mean.data[...] = backend.to_device(rng.normal(0, 0.1, c))
            layer.moving_variance.data[...] = backend.to_device(rng.uniform(0.5, 1.5, c))
            layer.beta.data[...] = backend.to_device(rng.normal(0, 0.1, c))
    return model


@pytest.fixture
def backbone():
    rl.seed(0)
    return _trained_like(mobilenet_v2(weights=None, input_shape=(SIZE, SIZE, 3)))


@pytest.fixture
def images():
    return np.random.default_rng(1).normal(size=(12, SIZE, SIZE, 3)).astype(np.float32)


def test_freeze_unfreeze_by_block(backbone):
    assert blocks(backbone)[0] == "features.0" and blocks(backbone)[-1] == "features.18"
    freeze(backbone)
    assert frozen_blocks(backbone) == blocks(backbone)
    assert all(not p.requires_grad for layer in block_layers(backbone, "features.5") for p in layer.weights)
    unfreeze(backbone, ["features.5", 17])
    assert "features.5" not in frozen_blocks(backbone) and "features.17" not in frozen_blocks(backbone)
    assert block_layers(backbone, "features.5")[0].kernel.requires_grad
    assert unfreeze_top(backbone, 3) == ["features.16", "features.17", "features.18"]
    assert frozen_blocks(backbone) == [f"features.{i}" for i in range(16)]
    with pytest.raises(ValueError, match="0..19"):
        unfreeze_top(backbone, 20)


def test_frozen_batch_norm_stays_in_inference_mode(backbone, images):
    model = cut(backbone, "features.2")
    bn = backbone.get_layer("features.2.conv.0.1")
    before = bn.moving_mean.data.copy()
    freeze(backbone)
    with rl.no_grad(), rl.using_config("train", False):
        inference = model(images).numpy()
    with rl.using_config("train", True):
        training = model(images).numpy()  # training mode, but every BN is frozen
    np.testing.assert_allclose(training, inference, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(backend.to_numpy(bn.moving_mean.data), backend.to_numpy(before))
    unfreeze(backbone, "features.2")
    with rl.using_config("train", True):
        model(images)
    # a trainable BN uses and updates batch statistics
    assert not np.allclose(backend.to_numpy(bn.moving_mean.data), backend.to_numpy(before))


def test_cut_shares_weights(backbone):
    emb = cut(backbone, "embedding")
    assert emb.output_shape == (None, 1280)
    assert cut(backbone, "features.4").output_shape == (None, 4, 4, 32)
    conv = backbone.get_layer("features.3.conv.0.0")
    assert emb.get_layer("features.3.conv.0.0") is conv


def test_embedding_cache_equals_the_backbone_and_runs_it_once(backbone, images):
    cache = EmbeddingCache(backbone, batch_size=5)
    feats = cache(images)
    with rl.no_grad(), rl.using_config("train", False):
        ref = cut(backbone, "embedding")(images).numpy()
    assert feats.shape == (12, 1280)
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    assert cache.backbone_images == 12
    again = cache(images.copy())  # same content, another array: served from the cache
    assert again is feats and cache.backbone_images == 12 and cache.hits == 1
    cache(images[:3])
    assert cache.backbone_images == 15
    with pytest.raises(InputShapeError, match="NCHW"):
        cache(images.transpose(0, 3, 1, 2))


def test_cached_head_training_equals_training_through_the_frozen_backbone(backbone, images):
    labels = np.arange(12) % 3
    rl.seed(5)
    model = TransferModel(backbone, rl.Sequential([Dense(3)], name="head"))
    model.build((None, SIZE, SIZE, 3))
    start = [w.copy() for w in model.head.get_weights()]
    model.fit_cached(images, labels, epochs=3, batch_size=4, head_lr=1e-2, seed=3)
    assert model.cache.backbone_images == 12  # three epochs, one backbone pass
    cached = model.head.get_weights()

    # The same head trained on the full graph (frozen backbone layers in the loop every step).
    head = rl.Sequential([Dense(3)], name="head2")
    emb = cut(backbone, "embedding")
    full = rl.Model(emb.input, head(emb.output))
    head.set_weights(start)
    freeze(backbone)
    full.compile("adam", loss="sparse_categorical_crossentropy", loss_options={"from_logits": True}, lr=1e-2)
    full.fit(images, labels, epochs=3, batch_size=4, verbose=0, seed=3)
    for a, b in zip(cached, head.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert not np.allclose(cached[0], start[0])


def test_fine_tune_top_blocks_with_a_lower_learning_rate(backbone, images):
    labels = np.arange(12) % 2
    model = TransferModel(backbone, rl.Sequential([Dense(2)], name="head"), fine_tune_blocks=2)
    assert frozen_blocks(backbone) == [f"features.{i}" for i in range(17)]
    assert model.frozen_until == "features.16"
    frozen_w = backbone.get_layer("features.16.conv.2").kernel.data.copy()
    tuned = backbone.get_layer("features.18.0").kernel
    tuned_w = tuned.data.copy()
    model.fit_cached(images, labels, epochs=2, batch_size=6, head_lr=1e-2, backbone_lr=1e-3)
    opt = model.top.optimizer
    assert isinstance(opt, GroupedOptimizer)
    assert [o.current_lr() for o in opt.optimizers] == [1e-2, 1e-3]
    assert {id(p) for p in opt.optimizers[1].params} >= {id(tuned)}
    host = backend.to_numpy  # device arrays when RL_DEVICE=gpu
    assert not np.allclose(host(tuned.data), host(tuned_w))  # the top block trained
    np.testing.assert_array_equal(host(backbone.get_layer("features.16.conv.2").kernel.data), host(frozen_w))
    # lr 0 for the backbone group: only the head moves.
    tuned_w = tuned.data.copy()
    model.fit_cached(images, labels, epochs=1, batch_size=6, head_lr=1e-2, backbone_lr=0.0)
    np.testing.assert_array_equal(host(tuned.data), host(tuned_w))
    probs = model.predict_proba(images[:3])
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("train_batch_norm", [False, True])
def test_fine_tuned_blocks_keep_batch_norm_in_inference_mode_unless_asked(backbone, images, train_batch_norm):
    model = TransferModel(backbone, rl.Sequential([Dense(2)], name="head"), fine_tune_blocks=1,
                          train_batch_norm=train_batch_norm)
    bn = backbone.get_layer("features.18.1")
    assert isinstance(bn, rl.layers.BatchNormalization) and bn.trainable is train_batch_norm
    assert backbone.get_layer("features.18.0").trainable  # the conv trains either way
    before = backend.to_numpy(bn.moving_mean.data).copy()
    model.fit_cached(images, np.arange(12) % 2, epochs=1, batch_size=6, head_lr=1e-2, backbone_lr=1e-3)
    moved = not np.allclose(backend.to_numpy(bn.moving_mean.data), before)
    assert moved is train_batch_norm


def test_transfer_model_runs_as_an_rl_model_on_images(backbone, images):
    model = TransferModel(backbone, rl.Sequential([Dense(4)], name="head"), cut_at="features.10")
    out = model.predict(images, batch_size=8)
    assert out.shape == (12, 4)
    with pytest.raises(InputShapeError, match="expected images"):
        model.predict(images[:, :16], batch_size=8)
    with pytest.raises(ValueError, match="fine_tune_blocks"):
        model.set_fine_tune(12)


def test_streamed_images_cached_on_disk_train_the_head_with_one_backbone_pass(backbone, images, tmp_path):
    from rl import data
    from rl.data import CacheMismatchError

    labels = np.arange(12) % 3
    batches = data.from_arrays(images, labels).batch(5)
    rl.seed(5)
    model = TransferModel(backbone, rl.Sequential([Dense(3)], name="head"))
    model.build((None, SIZE, SIZE, 3))
    hist = model.fit_cached(batches, epochs=4, batch_size=4, head_lr=1e-2, seed=3, cache_path=tmp_path / "emb")
    assert model.cache.backbone_images == 12  # four epochs, one pass through the backbone
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    cached = np.stack([e for e, _ in model.cache.dataset(batches, tmp_path / "emb")])
    np.testing.assert_allclose(cached, EmbeddingCache(backbone)(images), rtol=1e-5, atol=1e-6)
    assert model.cache.backbone_images == 12

    other = _trained_like(mobilenet_v2(weights=None, input_shape=(SIZE, SIZE, 3)), seed=9)
    with pytest.raises(CacheMismatchError, match="emb was written by another pipeline or key"):
        list(EmbeddingCache(other).dataset(batches, tmp_path / "emb"))
    with pytest.raises(CacheMismatchError):
        list(EmbeddingCache(backbone, until="features.16").dataset(batches, tmp_path / "emb"))
