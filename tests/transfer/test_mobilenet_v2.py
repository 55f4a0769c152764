"""MobileNetV2 on the rl core: structure, torchvision weight loading, the folded fast path, real-weight checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import rl
from rl import backend
from transfer import _numba_kernels
from transfer import mobilenet_v2 as mv
from transfer.mobilenet_v2 import (
    NUM_PARAMS,
    FoldedMobileNetV2,
    InputShapeError,
    block_specs,
    check_images,
    load_torchvision_weights,
    mobilenet_v2,
)

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def real_weights() -> Path:
    """The torchvision checkpoint: cached, or fetched once (~14 MB); skip when that is impossible."""
    from transfer import weights

    try:
        return weights.mobilenet_v2_path(download=True)
    except weights.WeightsError as exc:
        pytest.skip(f"MobileNetV2 weights unavailable: {exc}")


@pytest.fixture(scope="module")
def imagenet_model(real_weights):
    return mobilenet_v2(weights=real_weights)


def _reference_module():
    spec = importlib.util.spec_from_file_location("mobilenet_torch_reference", DATA / "mobilenet_torch_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_state_from(model: rl.Model, rng: np.random.Generator, drop_counters: bool = False) -> dict:
    """A torchvision-format state dict (NCHW kernels, torch names) holding random values, for ``model``'s layers."""
    state = {}
    for layer in model.layers:
        n = layer.name
        if isinstance(layer, rl.layers.DepthwiseConv2D):
            kh, kw, c, _ = layer.depthwise_kernel.shape
            state[f"{n}.weight"] = rng.normal(0, 1 / 3, (c, 1, kh, kw)).astype(np.float32)
        elif isinstance(layer, rl.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            # ~unit gain per layer, so 17 random blocks neither explode nor vanish
            std = 1 / np.sqrt(cin * kh * kw)
            state[f"{n}.weight"] = rng.normal(0, std, (cout, cin, kh, kw)).astype(np.float32)
        elif isinstance(layer, rl.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            state[f"{n}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            state[f"{n}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
            state[f"{n}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
            state[f"{n}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
            if not drop_counters:
                state[f"{n}.num_batches_tracked"] = np.array(7, dtype=np.int64)
        elif isinstance(layer, rl.layers.Dense):
            state[f"{n}.weight"] = rng.normal(0, 0.05, (layer.units, layer.kernel.shape[0])).astype(np.float32)
            state[f"{n}.bias"] = rng.normal(0, 0.05, layer.units).astype(np.float32)
    return state


# ---------------------------------------------------------------------------------- structure
def test_block_table_matches_torchvision():
    specs = block_specs()
    assert len(specs) == 19
    s = {x.name: x for x in specs}
    assert (s["features.1"].hidden, s["features.1"].cout, s["features.1"].expand) == (32, 16, False)
    assert (s["features.2"].hidden, s["features.2"].stride, s["features.2"].residual) == (96, 2, False)
    assert (s["features.3"].hidden, s["features.3"].residual) == (144, True)
    assert (s["features.11"].cin, s["features.11"].cout, s["features.11"].residual) == (64, 96, False)
    assert (s["features.17"].hidden, s["features.17"].cout) == (960, 320)
    assert sum(x.residual for x in specs) == 10


def test_architecture_param_count_and_names():
    model = mobilenet_v2(weights=None)
    assert sum(t.size for t in model.trainable_weights) == NUM_PARAMS == 3_504_872
    assert model.output_shape == (None, 1000)
    names = [layer.name for layer in model.layers]
    for name in ("features.0.0", "features.1.conv.0.0", "features.3.conv.1.0", "features.3.add", "features.18.1",
                 "classifier.1"):
        assert name in names
    state = model.state_dict()
    assert state["features.0.0/kernel"].shape == (3, 3, 3, 32)
    assert state["features.17.conv.1.0/depthwise_kernel"].shape == (3, 3, 960, 1)
    assert state["classifier.1/kernel"].shape == (1280, 1000)
    bn = model.get_layer("features.4.conv.0.1")
    assert bn.epsilon == 1e-5 and bn.momentum == pytest.approx(0.9)


@pytest.mark.parametrize(("cut", "shape"), [("features.0", (None, 112, 112, 32)), ("features.6", (None, 28, 28, 32)),
                                            (13, (None, 14, 14, 96)), ("embedding", (None, 1280))])
def test_cut_shapes(cut, shape):
    assert mobilenet_v2(weights=None, cut_at=cut).output_shape == shape


def test_include_top_false_ends_at_the_1280_map_and_bad_cut_names_list_valid():
    assert mobilenet_v2(weights=None, include_top=False).output_shape == (None, 7, 7, 1280)
    with pytest.raises(ValueError, match="features.0' ... 'features.18"):
        mobilenet_v2(weights=None, cut_at="features.19")
    with pytest.raises(InputShapeError, match=r"\(H, W, 3\)"):
        mobilenet_v2(weights=None, input_shape=(224, 224, 1))


# ---------------------------------------------------------------------------------- weight loading
def test_loads_a_synthetic_torchvision_state_dict_with_layout_conversion():
    rng = np.random.default_rng(0)
    model = mobilenet_v2(weights=None)
    state = _torch_state_from(model, rng)
    assert len(state) == 314  # torchvision's count, num_batches_tracked included
    state.pop("features.5.conv.1.1.num_batches_tracked")  # old checkpoints lack some counters
    load_torchvision_weights(model, state)
    ours = {k: backend.to_numpy(v) for k, v in model.state_dict().items()}  # device arrays on a GPU
    np.testing.assert_array_equal(ours["features.0.0/kernel"], state["features.0.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(ours["features.9.conv.1.0/depthwise_kernel"][:, :, 5, 0],
                                  state["features.9.conv.1.0.weight"][5, 0])
    np.testing.assert_array_equal(ours["features.9.conv.2/kernel"][0, 0],
                                  state["features.9.conv.2.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(ours["features.18.1/moving_variance"], state["features.18.1.running_var"])
    np.testing.assert_array_equal(ours["classifier.1/kernel"], state["classifier.1.weight"].T)


def test_stem_matches_a_numpy_nchw_reference_with_symmetric_padding():
    """torch pads the stride-2 stem by 1 on every side ('same' would pad only bottom/right)."""
    rng = np.random.default_rng(1)
    model = mobilenet_v2(weights=None, cut_at="features.0", input_shape=(8, 8, 3))
    state = _torch_state_from(model, rng, drop_counters=True)
    load_torchvision_weights(model, state)
    x = rng.normal(size=(1, 8, 8, 3)).astype(np.float32)
    xn = np.pad(x.transpose(0, 3, 1, 2)[0], ((0, 0), (1, 1), (1, 1)))  # (3, 10, 10)
    w = state["features.0.0.weight"]
    ref = np.zeros((32, 4, 4))
    for o in range(32):
        for i in range(4):
            for j in range(4):
                ref[o, i, j] = (xn[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * w[o]).sum()
    g, b = state["features.0.1.weight"], state["features.0.1.bias"]
    m, v = state["features.0.1.running_mean"], state["features.0.1.running_var"]
    ref = (ref - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5) * g[:, None, None] + b[:, None, None]
    ref = np.clip(ref, 0, 6).transpose(1, 2, 0)
    with rl.no_grad(), rl.using_config("train", False):
        out = model(x).numpy()[0]
    np.testing.assert_allclose(out, ref, atol=1e-4)
    np.testing.assert_allclose(FoldedMobileNetV2(model)(x)[0], ref, atol=1e-4)


def test_loading_errors_name_the_tensor():
    model = mobilenet_v2(weights=None, cut_at="features.2")
    state = _torch_state_from(model, np.random.default_rng(2))
    bad = dict(state)
    del bad["features.2.conv.1.0.weight"]
    with pytest.raises(KeyError, match=r"features\.2\.conv\.1\.0\.weight"):
        load_torchvision_weights(model, bad)
    bad = dict(state)
    bad["features.1.conv.1.weight"] = np.zeros((16, 24, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"features\.1\.conv\.1\.weight"):
        load_torchvision_weights(model, bad)


def test_a_different_classifier_width_keeps_the_backbone_weights():
    full = mobilenet_v2(weights=None, input_shape=(32, 32, 3))
    state = _torch_state_from(full, np.random.default_rng(3))
    model = mobilenet_v2(weights=state, num_classes=7, input_shape=(32, 32, 3))
    np.testing.assert_array_equal(backend.to_numpy(model.state_dict()["features.5.conv.2/kernel"][0, 0]),
                                  state["features.5.conv.2.weight"][:, :, 0, 0].T)
    assert model.output_shape == (None, 7)


# ---------------------------------------------------------------------------------- fast path
@pytest.mark.parametrize("batch", [1, 3])
def test_folded_path_matches_the_layer_graph(batch):
    rng = np.random.default_rng(4)
    model = mobilenet_v2(weights=None, input_shape=(64, 64, 3))
    load_torchvision_weights(model, _torch_state_from(model, rng))
    x = rng.normal(size=(batch, 64, 64, 3)).astype(np.float32)
    with rl.no_grad(), rl.using_config("train", False):
        ref = model(x).numpy()
    fast = FoldedMobileNetV2(model, threads=2)(x)
    assert fast.shape == (batch, 1000)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # From a middle block on, given that block's input.
    mid = FoldedMobileNetV2(model, until="features.6")(x)
    rest = FoldedMobileNetV2(model)(mid, start="features.7")
    np.testing.assert_allclose(rest, fast, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_input_checks_say_what_was_expected():
    with pytest.raises(InputShapeError, match="NCHW"):
        check_images(np.zeros((2, 3, 224, 224), np.float32))
    with pytest.raises(InputShapeError, match="batch axis"):
        check_images(np.zeros((224, 224, 3), np.float32))
    with pytest.raises(InputShapeError, match="W=200"):
        check_images(np.zeros((1, 224, 200, 3), np.float32))
    with pytest.raises(InputShapeError, match="1 channels"):
        FoldedMobileNetV2(mobilenet_v2(weights=None, cut_at="features.1"))(np.zeros((1, 32, 32, 1), np.float32))


# ---------------------------------------------------------------------------------- real weights
def test_real_weights_match_the_committed_torch_logits(imagenet_model):
    x = _reference_module().reference_inputs()
    ref = np.load(DATA / "mobilenet_reference_logits.npy")
    fast = FoldedMobileNetV2(imagenet_model)(x)
    assert np.abs(fast - ref).max() <= 1e-3
    with rl.no_grad(), rl.using_config("train", False):
        layered = imagenet_model(x[:1]).numpy()
    assert np.abs(layered - ref[:1]).max() <= 1e-3


def test_real_weights_name_a_cat_and_an_espresso(imagenet_model):
    skdata = pytest.importorskip("skimage.data")
    from transfer.preprocessing import preprocess

    batch = preprocess([skdata.chelsea(), skdata.coffee()])
    top1 = FoldedMobileNetV2(imagenet_model)(batch).argmax(axis=1)
    assert 281 <= top1[0] <= 285, top1  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top1[1] in (967, 968, 504), top1  # espresso, cup, coffee mug


@pytest.mark.torch
@pytest.mark.parametrize("kernels", ["numpy", "numba"])
def test_logits_agree_with_pytorch(real_weights, kernels):
    torch = pytest.importorskip("torch")
    if kernels == "numba" and not _numba_kernels.available():
        pytest.skip("numba is not installed (pip install 'playgrad[accel]')")
    ref_module = _reference_module()
    x = ref_module.reference_inputs()[:1]
    with torch.no_grad():
        expected = ref_module.load(str(real_weights))(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
    model = mobilenet_v2(weights=real_weights)
    assert np.abs(FoldedMobileNetV2(model, kernels=kernels)(x) - expected).max() <= 1e-3


def test_module_keeps_the_torch_padding_constant():
    assert mv.TORCH_PAD == ((1, 1), (1, 1))


def test_folded_path_handles_images_wider_than_its_scratch_band():
    # At 6000 px one output row of features.3's depthwise step (1500 x 144 floats) outgrows a quarter of the
    # default per-thread scratch, where the accumulator and the tap product would overlap.
    rng = np.random.default_rng(3)
    model = mobilenet_v2(weights=None, cut_at="features.4", input_shape=(8, 6000, 3))
    load_torchvision_weights(model, _torch_state_from(model, rng))
    x = rng.normal(size=(1, 8, 6000, 3)).astype(np.float32)
    with rl.no_grad(), rl.using_config("train", False):
        ref = model(x).numpy()
    np.testing.assert_allclose(FoldedMobileNetV2(model)(x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
