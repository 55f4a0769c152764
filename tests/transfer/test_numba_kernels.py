"""The optional compiled depthwise kernel (transfer/_numba_kernels.py) gives FoldedMobileNetV2 the NumPy
path's results bit for bit, at any batch, image size, thread count and cut; and the option is checked."""

from __future__ import annotations

import numpy as np
import pytest

from rl import backend
from transfer import _numba_kernels
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


@needs_numba
@pytest.mark.parametrize("seed", range(3))
def test_numba_depthwise_is_bitwise_the_numpy_path(model, seed):
    rng = np.random.default_rng(seed)
    batch, threads = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    h, w = (224, 224) if seed == 0 else tuple(int(v) for v in rng.integers(33, 120, size=2))
    x = rng.standard_normal((batch, h, w, 3)).astype(np.float32)
    for until in (None, "features.5", "embedding"):
        fast = FoldedMobileNetV2(model, until=until, threads=threads, kernels="numba")
        plain = FoldedMobileNetV2(model, until=until, threads=threads, kernels="numpy")
        try:
            assert fast.kernels == "numba" and plain.kernels == "numpy"
            np.testing.assert_array_equal(fast(x), plain(x), err_msg=f"seed {seed}: batch {batch}, {h}x{w}, "
                                          f"{threads} threads, until {until}")
        finally:
            fast.close()
            plain.close()


def test_kernels_option_is_checked(model, monkeypatch):
    with pytest.raises(ValueError, match="kernels must be"):
        FoldedMobileNetV2(model, kernels="fast")
    monkeypatch.setattr(_numba_kernels, "depthwise3x3_band", None)
    with pytest.raises(ValueError, match="needs numba"):
        FoldedMobileNetV2(model, kernels="numba")
    net = FoldedMobileNetV2(model, kernels="auto", threads=1)
    assert net.kernels == "numpy"  # auto without numba: the NumPy path
