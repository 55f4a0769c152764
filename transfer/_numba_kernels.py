"""Optional compiled CPU kernels for :class:`transfer.mobilenet_v2.FoldedMobileNetV2` (numba).

The folded NumPy path spends about half of MobileNetV2's time in the 3x3 depthwise convolutions,
which NumPy can only do as 9 multiplies and 8 adds over the whole band (17 passes through memory,
then the bias and ReLU6 passes). Here one compiled loop computes each output value in a register:
9 taps, bias, ReLU6, one store, with the channel loop innermost (contiguous in NHWC, so LLVM
vectorizes it). The GEMM convolutions keep BLAS (a compiled bias + ReLU6 epilogue after them
measured slower than NumPy's two passes, so there is none). The arithmetic is the NumPy path's, in
the same order and without fast-math contraction, so the results are bit-identical
(``tests/transfer/test_numba_kernels.py``).

``numba`` is optional (``pip install 'playgrad[accel]'``); without it :data:`depthwise3x3_band` is None
and the NumPy path runs. The kernel releases the GIL, so the folded path's worker threads run bands
in parallel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["available", "depthwise3x3_band"]


def _build() -> Any:
    try:
        import numba
    except ImportError:
        return None
    import numpy as np

    zero, six = np.float32(0.0), np.float32(6.0)  # float32 constants keep v float32 (a 0.0 literal would widen it)

    @numba.njit(cache=True, nogil=True, fastmath=False)
    def depthwise3x3_band(src, kernel, bias, stride, r0, relu6, dest):  # pragma: no cover - compiled
        """Rows ``r0 : r0 + dest.shape[0]`` of a 3x3 depthwise conv of ``src`` (Hp, Wp, C), zero-bordered
        by one pixel, with ``kernel`` (3, 3, C) and ``bias`` (C,), stride ``stride``, then ReLU6 if
        ``relu6``: written to ``dest`` (rows, Wo, C)."""
        rows, wo, c = dest.shape
        for r in range(rows):
            y = (r0 + r) * stride
            for xo in range(wo):
                x = xo * stride
                for ch in range(c):
                    v = src[y, x, ch] * kernel[0, 0, ch]
                    v += src[y, x + 1, ch] * kernel[0, 1, ch]
                    v += src[y, x + 2, ch] * kernel[0, 2, ch]
                    v += src[y + 1, x, ch] * kernel[1, 0, ch]
                    v += src[y + 1, x + 1, ch] * kernel[1, 1, ch]
                    v += src[y + 1, x + 2, ch] * kernel[1, 2, ch]
                    v += src[y + 2, x, ch] * kernel[2, 0, ch]
                    v += src[y + 2, x + 1, ch] * kernel[2, 1, ch]
                    v += src[y + 2, x + 2, ch] * kernel[2, 2, ch]
                    v += bias[ch]
                    if relu6:  # np.clip's result, NaN kept
                        if v < zero:
                            v = zero
                        elif v > six:
                            v = six
                    dest[r, xo, ch] = v

    return depthwise3x3_band


depthwise3x3_band = _build()


def available() -> bool:
    """Whether the compiled kernels can be used (numba is installed)."""
    return depthwise3x3_band is not None
