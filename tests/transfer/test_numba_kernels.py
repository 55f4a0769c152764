"""The optional compiled kernels (transfer/_numba_kernels.py): each kernel against a NumPy oracle on random
shapes, strides and batches (0, 1, odd), and FoldedMobileNetV2's compiled path against its NumPy path at any
batch, image size, thread count, cut and start; concurrent callers; the option is checked."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rl import backend
from transfer import _numba_kernels
from transfer import mobilenet_v2 as mv
from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2

needs_numba = pytest.mark.skipif(not _numba_kernels.available(),
                                 reason="numba is not installed (pip install 'playgrad[accel]')")


@pytest.fixture(scope="module")
def model():
    """A random-init MobileNetV2 whose batch norms have random statistics (so the fold is not trivial)."""
    m = mobilenet_v2(weights=None)
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.moving_mean.data.shape[0]
            stats = [rng.normal(0, 0.1, n), rng.uniform(0.5, 2.0, n), rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)]
            for weight, value in zip((layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta), stats):
                weight.data[...] = backend.to_device(value.astype(np.float32))  # the weights may live on the GPU
    return m


def _random_case(rng: np.random.Generator) -> tuple[int, int, int, int, int, bool]:
    """(batch, H, W, C, stride, relu6): batch 0, 1 or odd, sizes from 1 pixel (all border) up."""
    batch = int(rng.choice([0, 1, 3, 5]))
    h, w = (int(v) for v in rng.integers(1, 20, size=2))
    return batch, h, w, int(rng.integers(1, 40)), int(rng.integers(1, 3)), bool(rng.integers(0, 2))


def _relu6(y: np.ndarray, on: bool) -> np.ndarray:
    return np.clip(y, 0.0, 6.0) if on else y


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_depthwise_kernel_is_bitwise_the_numpy_taps(seed):
    rng = np.random.default_rng(seed)
    n, h, w, c, stride, relu6 = _random_case(rng)
    x, kernel, bias = _normal(rng, n, h, w, c), _normal(rng, 3, 3, c), _normal(rng, c)
    out = np.full((n, (h - 1) // stride + 1, (w - 1) // stride + 1, c), np.nan, np.float32)
    _numba_kernels.depthwise3x3(x, kernel, bias, stride, relu6, out)
    expected = _relu6(mv._depthwise3x3(x, kernel, stride) + bias, relu6)  # the same taps, in the same order
    np.testing.assert_array_equal(out, expected, err_msg=f"{(n, h, w, c)} stride {stride} relu6 {relu6}")


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_fused_depthwise_projection_matches_the_two_steps(seed):
    rng = np.random.default_rng(300 + seed)
    n, h, w, c, stride, _ = _random_case(rng)
    cout, residual = int(rng.integers(1, 40)), bool(rng.integers(0, 2))
    x, dw_kernel, dw_bias = _normal(rng, n, h, w, c), _normal(rng, 3, 3, c), _normal(rng, c)
    kernel, bias = _normal(rng, c, cout), _normal(rng, cout)
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    skip = _normal(rng, n * ho * wo, cout) if residual else np.empty((0, cout), np.float32)
    out = np.full((n * ho * wo, cout), np.nan, np.float32)
    _numba_kernels.depthwise_project(x, dw_kernel, dw_bias, stride, kernel, bias, skip, out, int(rng.integers(1, 6)))
    filtered = np.clip(mv._depthwise3x3(x, dw_kernel, stride) + dw_bias, 0, 6).reshape(-1, c)
    expected = filtered @ kernel + bias + (skip if residual else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max(initial=0))),
                               err_msg=f"{(n, h, w, c, cout)} stride {stride} residual {residual}")


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_fused_inverted_residual_matches_its_three_steps(seed):
    rng = np.random.default_rng(400 + seed)
    n, h, w, cin, stride, residual = _random_case(rng)
    hidden = int(rng.integers(1, 50))
    cout = cin if residual else int(rng.integers(1, 40))
    stride = 1 if residual else stride  # a residual block keeps its size
    x = _normal(rng, n, h, w, cin)
    expand, expand_bias = _normal(rng, cin, hidden), _normal(rng, hidden)
    dw_kernel, dw_bias = _normal(rng, 3, 3, hidden), _normal(rng, hidden)
    kernel, bias = _normal(rng, hidden, cout), _normal(rng, cout)
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    out = np.full((n, ho, wo, cout), np.nan, np.float32)
    band_rows = int(rng.integers(1, ho + 1))  # bands from one row (every band re-expands its neighbours' rows) up
    _numba_kernels.inverted_residual(x, expand, expand_bias, dw_kernel, dw_bias, stride, kernel, bias, residual, out,
                                     band_rows)
    expanded = np.clip(x @ expand + expand_bias, 0, 6)
    filtered = np.clip(mv._depthwise3x3(expanded, dw_kernel, stride) + dw_bias, 0, 6)
    expected = filtered @ kernel + bias + (x if residual else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max(initial=0))),
                               err_msg=f"{(n, h, w, cin, hidden, cout)} stride {stride} residual {residual} "
                                       f"band_rows {band_rows}")


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_stem_kernel_matches_the_strided_im2col_gemm(seed):
    rng = np.random.default_rng(100 + seed)
    n, h, w, cin, stride, relu6 = _random_case(rng)
    cin, cout = 1 + cin % 4, int(rng.integers(1, 40))
    x, kernel, bias = _normal(rng, n, h, w, cin), _normal(rng, 9 * cin, cout), _normal(rng, cout)
    out = np.full((n, (h - 1) // stride + 1, (w - 1) // stride + 1, cout), np.nan, np.float32)
    _numba_kernels.stem3x3(x, kernel, bias, stride, relu6, out, int(rng.integers(1, 6)))
    if n == 0:
        return
    expected = mv._conv_step(x, mv._Step("conv", kernel, bias, stride, 3, relu6))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=f"{(n, h, w, cin, cout)} stride {stride}")


@needs_numba
@pytest.mark.parametrize("seed", range(20))
def test_pointwise_kernel_matches_the_gemm_and_its_epilogue(seed):
    rng = np.random.default_rng(200 + seed)
    m, cin, cout = int(rng.choice([0, 1, 7, 49, 301])), int(rng.integers(1, 70)), int(rng.integers(1, 70))
    x, kernel, bias = _normal(rng, m, cin), _normal(rng, cin, cout), _normal(rng, cout)
    gemm = x @ kernel + bias
    for relu6, residual, expected in ((True, None, np.clip(gemm, 0, 6)), (False, _normal(rng, m, cout), None),
                                      (False, None, gemm)):
        if residual is not None:
            expected = gemm + residual
        out = np.full((m, cout), np.nan, np.float32)
        _numba_kernels.pointwise(x, kernel, bias, relu6, np.empty((0, cout), np.float32) if residual is None
                                 else residual, out, int(rng.integers(1, 50)))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(gemm).max(initial=0))),
                                   err_msg=f"m {m} cin {cin} cout {cout} relu6 {relu6} residual {residual is not None}")


@needs_numba
@pytest.mark.parametrize("seed", range(4))
def test_compiled_path_matches_the_numpy_path(model, seed):
    rng = np.random.default_rng(seed)
    batch, threads = (1, 1) if seed == 0 else (int(rng.choice([0, 1, 3])), int(rng.integers(1, 3)))
    h, w = (224, 224) if seed == 0 else tuple(int(v) for v in rng.integers(33, 120, size=2))
    x = rng.standard_normal((batch, h, w, 3)).astype(np.float32)
    for until in (None, "features.5", "embedding"):
        fast = FoldedMobileNetV2(model, until=until, threads=threads, kernels="numba")
        plain = FoldedMobileNetV2(model, until=until, threads=threads, kernels="numpy")
        try:
            assert fast.kernels == "numba" and plain.kernels == "numpy"
            expected = plain(x)
            got = fast(x)
            assert got.shape == expected.shape
            scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale,
                                       err_msg=f"seed {seed}: batch {batch}, {h}x{w}, {threads} threads, until {until}")
            if until == "features.5":  # the result is the caller's, not a view of the reused buffers
                again = fast(x[::-1].copy())
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)
                assert not np.shares_memory(got, again)
        finally:
            fast.close()
            plain.close()


@needs_numba
@pytest.mark.parametrize("fuse", [True, False])
def test_compiled_path_from_a_middle_block_and_in_chunks(model, monkeypatch, fuse):
    monkeypatch.setattr(mv, "_FUSE_KERNELS", fuse)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 64, 64, 3)).astype(np.float32)
    plain = FoldedMobileNetV2(model, kernels="numpy", threads=1)
    mid = FoldedMobileNetV2(model, until="features.6", kernels="numba", threads=2)(x)
    rest = FoldedMobileNetV2(model, kernels="numba", threads=2)(mid, start="features.7")
    np.testing.assert_allclose(rest, plain(x), rtol=1e-5, atol=1e-5 * np.abs(rest).max())
    # A batch larger than the buffers hold runs chunk by chunk, with the same result.
    monkeypatch.setattr(mv, "_ARENA_ELEMS", 32 * 32 * 96 * 2)  # two 64x64 images' largest activation
    chunked = FoldedMobileNetV2(model, kernels="numba", threads=2)(x)
    np.testing.assert_allclose(chunked, plain(x), rtol=1e-5, atol=1e-5 * np.abs(rest).max())


@needs_numba
def test_concurrent_callers_share_the_compiled_kernels_safely(model):
    rng = np.random.default_rng(8)
    inputs = [rng.standard_normal((2, 48, 48, 3)).astype(np.float32) for _ in range(3)]
    expected = [FoldedMobileNetV2(model, kernels="numpy", threads=1)(x) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        net = FoldedMobileNetV2(model, kernels="numba", threads=2)  # one net per thread: they meet in the kernels
        for _ in range(3):
            results[i] = net(inputs[i])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for i, want in enumerate(expected):
        np.testing.assert_allclose(results[i], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_kernels_option_is_checked(model, monkeypatch):
    with pytest.raises(ValueError, match="kernels must be"):
        FoldedMobileNetV2(model, kernels="fast")
    monkeypatch.setattr(_numba_kernels, "available", lambda: False)
    with pytest.raises(ValueError, match="needs numba"):
        FoldedMobileNetV2(model, kernels="numba")
    net = FoldedMobileNetV2(model, kernels="auto", threads=1)
    assert net.kernels == "numpy"  # auto without numba: the NumPy path


@needs_numba
def test_compiled_path_sees_new_weights_after_refresh():
    rng = np.random.default_rng(9)
    small = mobilenet_v2(weights=None, cut_at="features.3", input_shape=(32, 32, 3))
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    fast, plain = FoldedMobileNetV2(small, kernels="numba"), FoldedMobileNetV2(small, kernels="numpy")
    before = fast(x)
    bn = small.get_layer("features.2.conv.1.1")
    bn.beta.data[...] = backend.to_device(rng.normal(0, 1, bn.beta.data.shape).astype(np.float32))
    fast.refresh()
    plain.refresh()
    after = fast(x)
    assert not np.allclose(after, before)  # the kernels' bound arguments were rebuilt from the new weights
    np.testing.assert_allclose(after, plain(x), rtol=1e-5, atol=1e-5 * np.abs(after).max())
