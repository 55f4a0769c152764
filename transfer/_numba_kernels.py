"""Optional compiled CPU kernels for :class:`transfer.mobilenet_v2.FoldedMobileNetV2` (numba).

Where the time went on the folded NumPy path (MobileNetV2, 224x224, one thread; the per-layer table
is in ``docs/benchmarks.md``, section ``bench_transfer_ort``): the GEMMs of the 1x1 convolutions are
about 70% of it, and half of *that* was not the GEMM but NumPy's bias and ReLU6 passes after it
(two more trips through every activation); the 3x3 depthwise convolutions, 9 multiplies and 8 adds
as whole-array NumPy ops, were most of the rest. So the compiled path keeps BLAS for the GEMMs and
compiles everything around them:

* :func:`pointwise` -- a 1x1 convolution on the ``(N*H*W, C)`` view: row bands, each one BLAS GEMM
  (``np.dot``, which numba sends to SciPy's BLAS) written straight into the output, then bias and
  ReLU6 (or bias and the residual) applied to the band while it is still in cache.
* :func:`depthwise3x3` -- 9 taps, bias and ReLU6 per output value in a register, channels innermost
  (contiguous in NHWC, so LLVM vectorizes them); the zero padding is the loop bounds (no padded
  copy), any stride.
* :func:`depthwise_project` -- the two joined as an inverted residual block's second half: each band of
  depthwise output rows is filtered into a scratch block that the projection GEMM reads from cache.
* :func:`inverted_residual` -- a whole expand/depthwise/project block, band by band, each band expanding
  the input rows it reads (its neighbours' edge rows again): the two wide activations stay in cache.
* :func:`stem3x3` -- the first convolution (3 input channels): each band gathered into an im2col
  block in the thread's scratch (zeros for the padding, no strided view copied), one GEMM, epilogue.

Every kernel splits its bands over numba's threads (``prange``; the caller sets how many with
``numba.set_num_threads``), so one image uses every thread at every layer -- with BLAS held to one
thread inside, the threads never oversubscribe the cores. The arithmetic is the NumPy path's, in the
same order and without fast-math contraction; the tests compare both paths and torch
(``tests/transfer/test_numba_kernels.py``).

``numba`` (and SciPy, which numba's ``np.dot`` calls) are optional (``pip install 'playgrad[accel]'``);
without them :func:`available` is false and the NumPy path runs.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["available", "depthwise3x3", "depthwise_project", "inverted_residual", "pointwise", "set_threads",
           "stem3x3"]


def _build() -> dict[str, Any] | None:
    try:
        import numba
        import scipy.linalg.cython_blas  # noqa: F401 -- numba's np.dot calls it; loaded now so threadpoolctl sees it
    except ImportError:
        return None
    import numpy as np
    from numba import prange

    zero, six = np.float32(0.0), np.float32(6.0)  # float32 constants keep v float32 (a 0.0 literal would widen it)
    jit = numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)

    @jit
    def pointwise(x, kernel, bias, relu6, residual, out, band_rows):  # pragma: no cover - compiled
        """``out = x @ kernel + bias``, then ReLU6 if ``relu6``, or ``+ residual`` if ``residual`` has rows.

        ``x`` (M, Cin), ``kernel`` (Cin, Cout), ``bias`` (Cout,), ``residual`` (M, Cout) or (0, Cout),
        ``out`` (M, Cout), all C-contiguous; ``band_rows`` rows per GEMM (a band that fits in L2).
        """
        m, cout = out.shape
        add_residual = residual.shape[0] > 0
        for band in prange((m + band_rows - 1) // band_rows):
            r0 = band * band_rows
            r1 = min(r0 + band_rows, m)
            o = out[r0:r1]
            np.dot(x[r0:r1], kernel, o)
            if relu6:
                for p in range(r1 - r0):
                    for j in range(cout):
                        o[p, j] = min(max(o[p, j] + bias[j], zero), six)  # np.clip's result (NaN aside)
            elif add_residual:
                for p in range(r1 - r0):
                    for j in range(cout):
                        o[p, j] = (o[p, j] + bias[j]) + residual[r0 + p, j]
            else:
                for p in range(r1 - r0):
                    for j in range(cout):
                        o[p, j] = o[p, j] + bias[j]

    @numba.njit(cache=True, nogil=True, fastmath=False)
    def depthwise3x3_row(x, kernel, bias, stride, relu6, b, yo, out_row, first_row):  # pragma: no cover
        """Output row ``yo`` of image ``b`` of :func:`depthwise3x3`, into ``out_row`` (Wo, C), where ``x`` holds
        the image's rows from ``first_row`` on (rows outside ``x`` are padding: ``x`` must hold every image
        row the output row reads)."""
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        y0 = yo * stride - 1 - first_row  # row of x under tap i = 0
        for xo in range(out_row.shape[0]):
            x0 = xo * stride - 1
            o = out_row[xo]
            if y0 >= 0 and y0 + 2 < h and x0 >= 0 and x0 + 2 < w:  # the interior: taps in the NumPy path's order
                t0, t1, t2 = x[b, y0, x0], x[b, y0, x0 + 1], x[b, y0, x0 + 2]
                m0, m1, m2 = x[b, y0 + 1, x0], x[b, y0 + 1, x0 + 1], x[b, y0 + 1, x0 + 2]
                u0, u1, u2 = x[b, y0 + 2, x0], x[b, y0 + 2, x0 + 1], x[b, y0 + 2, x0 + 2]
                k0, k1, k2 = kernel[0, 0], kernel[0, 1], kernel[0, 2]
                k3, k4, k5 = kernel[1, 0], kernel[1, 1], kernel[1, 2]
                k6, k7, k8 = kernel[2, 0], kernel[2, 1], kernel[2, 2]
                for ch in range(c):
                    v = t0[ch] * k0[ch]
                    v += t1[ch] * k1[ch]
                    v += t2[ch] * k2[ch]
                    v += m0[ch] * k3[ch]
                    v += m1[ch] * k4[ch]
                    v += m2[ch] * k5[ch]
                    v += u0[ch] * k6[ch]
                    v += u1[ch] * k7[ch]
                    v += u2[ch] * k8[ch]
                    v += bias[ch]
                    o[ch] = min(max(v, zero), six) if relu6 else v
            else:  # the border: taps in the padding are zeros, which add nothing
                for ch in range(c):
                    o[ch] = zero
                for i in range(3):
                    yi = y0 + i
                    if yi < 0 or yi >= h:
                        continue
                    for j in range(3):
                        xj = x0 + j
                        if xj < 0 or xj >= w:
                            continue
                        src, k = x[b, yi, xj], kernel[i, j]
                        for ch in range(c):
                            o[ch] += src[ch] * k[ch]
                for ch in range(c):
                    v = o[ch] + bias[ch]
                    o[ch] = min(max(v, zero), six) if relu6 else v

    @jit
    def depthwise3x3(x, kernel, bias, stride, relu6, out):  # pragma: no cover - compiled
        """3x3 depthwise conv with padding 1 of ``x`` (N, H, W, C) by ``kernel`` (3, 3, C), plus ``bias``
        (C,), then ReLU6 if ``relu6``, into ``out`` (N, Ho, Wo, C) with Ho = (H - 1) // stride + 1."""
        ho = out.shape[1]
        for row in prange(x.shape[0] * ho):
            b = row // ho
            depthwise3x3_row(x, kernel, bias, stride, relu6, b, row - b * ho, out[b, row - b * ho], 0)

    @jit
    def depthwise_project(x, dw_kernel, dw_bias, stride, kernel, bias, residual, out, band_rows):  # pragma: no cover
        """An inverted residual block's second half: :func:`depthwise3x3` of ``x`` (N, H, W, C) with ReLU6,
        then :func:`pointwise` by ``kernel`` (C, Cout) plus ``bias`` (and ``residual`` (N*Ho*Wo, Cout) if it
        has rows), into ``out`` (N*Ho*Wo, Cout). Each band of ``band_rows`` output rows is filtered into a
        scratch block that the GEMM reads while it is in cache: the depthwise output never goes to memory."""
        n, c = x.shape[0], x.shape[3]
        ho = (x.shape[1] - 1) // stride + 1
        wo = (x.shape[2] - 1) // stride + 1
        cout = out.shape[1]
        add_residual = residual.shape[0] > 0
        for band in prange((n * ho + band_rows - 1) // band_rows):
            r0 = band * band_rows
            r1 = min(r0 + band_rows, n * ho)
            hidden = np.empty(((r1 - r0) * wo, c), np.float32)
            for row in range(r0, r1):
                b = row // ho
                depthwise3x3_row(x, dw_kernel, dw_bias, stride, True, b, row - b * ho,
                                 hidden[(row - r0) * wo : (row - r0 + 1) * wo], 0)
            o = out[r0 * wo : r1 * wo]
            np.dot(hidden, kernel, o)
            if add_residual:
                for p in range(o.shape[0]):
                    for j in range(cout):
                        o[p, j] = (o[p, j] + bias[j]) + residual[r0 * wo + p, j]
            else:
                for p in range(o.shape[0]):
                    for j in range(cout):
                        o[p, j] = o[p, j] + bias[j]

    @jit
    def inverted_residual(x, expand_kernel, expand_bias, dw_kernel, dw_bias, stride, kernel, bias, residual, out,
                          band_rows):  # pragma: no cover - compiled
        """A whole inverted residual block of ``x`` (N, H, W, Cin): the expansion by ``expand_kernel``
        (Cin, C) + ``expand_bias`` and ReLU6, :func:`depthwise3x3` with ReLU6, the projection by ``kernel``
        (C, Cout) + ``bias``, plus ``x`` itself if ``residual``; into ``out`` (N, Ho, Wo, Cout). Each band of
        ``band_rows`` output rows of one image expands just the input rows it reads (its neighbours' edge
        rows again), so neither wide activation leaves the cache."""
        n, h, w, cin = x.shape
        c = expand_kernel.shape[1]
        ho, wo, cout = out.shape[1], out.shape[2], out.shape[3]
        flat_x = x.reshape(n * h * w, cin)
        flat_out = out.reshape(n * ho * wo, cout)
        bands_per_image = (ho + band_rows - 1) // band_rows
        for band in prange(n * bands_per_image):
            b = band // bands_per_image
            r0 = (band - b * bands_per_image) * band_rows
            r1 = min(r0 + band_rows, ho)
            lo, hi = max(0, r0 * stride - 1), min(h, (r1 - 1) * stride + 2)  # the input rows the band reads
            expanded = np.empty(((hi - lo) * w, c), np.float32)
            np.dot(flat_x[(b * h + lo) * w : (b * h + hi) * w], expand_kernel, expanded)
            for p in range(expanded.shape[0]):
                for j in range(c):
                    expanded[p, j] = min(max(expanded[p, j] + expand_bias[j], zero), six)
            rows = expanded.reshape(1, hi - lo, w, c)
            filtered = np.empty(((r1 - r0) * wo, c), np.float32)
            for yo in range(r0, r1):
                depthwise3x3_row(rows, dw_kernel, dw_bias, stride, True, 0, yo,
                                 filtered[(yo - r0) * wo : (yo - r0 + 1) * wo], lo)
            start = (b * ho + r0) * wo
            o = flat_out[start : start + (r1 - r0) * wo]
            np.dot(filtered, kernel, o)
            if residual:  # stride 1 and Cin == Cout, so the output pixel's input is at the same flat index
                skip = flat_x[start : start + (r1 - r0) * wo]
                for p in range(o.shape[0]):
                    for j in range(cout):
                        o[p, j] = (o[p, j] + bias[j]) + skip[p, j]
            else:
                for p in range(o.shape[0]):
                    for j in range(cout):
                        o[p, j] = o[p, j] + bias[j]

    @jit
    def stem3x3(x, kernel, bias, stride, relu6, out, band_rows):  # pragma: no cover - compiled
        """3x3 convolution with padding 1 of ``x`` (N, H, W, Cin) by ``kernel`` (9*Cin, Cout) (rows in
        (ky, kx, cin) order), plus ``bias``, then ReLU6 if ``relu6``, into ``out`` (N, Ho, Wo, Cout);
        ``band_rows`` output rows per im2col block and GEMM."""
        n, h, w, cin = x.shape
        ho, wo, cout = out.shape[1], out.shape[2], out.shape[3]
        flat_out = out.reshape(n * ho * wo, cout)
        bands_per_image = (ho + band_rows - 1) // band_rows
        for band in prange(n * bands_per_image):
            b = band // bands_per_image
            r0 = (band - b * bands_per_image) * band_rows
            r1 = min(r0 + band_rows, ho)
            cols = np.zeros(((r1 - r0) * wo, 9 * cin), np.float32)  # zeros: the padding taps
            for r in range(r1 - r0):
                y0 = (r0 + r) * stride - 1
                for xo in range(wo):
                    x0 = xo * stride - 1
                    dst = cols[r * wo + xo]
                    for i in range(3):
                        if 0 <= y0 + i < h:
                            for j in range(3):
                                if 0 <= x0 + j < w:
                                    for ch in range(cin):
                                        dst[(i * 3 + j) * cin + ch] = x[b, y0 + i, x0 + j, ch]
            o = flat_out[(b * ho + r0) * wo : (b * ho + r1) * wo]
            np.dot(cols, kernel, o)
            for p in range(o.shape[0]):
                for j in range(cout):
                    v = o[p, j] + bias[j]
                    o[p, j] = min(max(v, zero), six) if relu6 else v

    return {"pointwise": pointwise, "depthwise3x3": depthwise3x3, "depthwise_project": depthwise_project,
            "inverted_residual": inverted_residual, "stem3x3": stem3x3}


_KERNELS = _build()
pointwise = None if _KERNELS is None else _KERNELS["pointwise"]
depthwise3x3 = None if _KERNELS is None else _KERNELS["depthwise3x3"]
depthwise_project = None if _KERNELS is None else _KERNELS["depthwise_project"]
inverted_residual = None if _KERNELS is None else _KERNELS["inverted_residual"]
stem3x3 = None if _KERNELS is None else _KERNELS["stem3x3"]


# numba's fallback pool (workqueue, where neither TBB nor OpenMP is installed) serves one caller at a time (a
# second concurrent launch aborts the process), so callers hold this lock around their kernel calls.
LOCK = threading.Lock()


def available() -> bool:
    """Whether the compiled kernels can be used (numba and SciPy are installed)."""
    return _KERNELS is not None


def set_threads(threads: int) -> int:
    """Run the kernels on ``threads`` of numba's threads (in the calling thread; capped at numba's pool
    size, ``NUMBA_NUM_THREADS``); returns the count in effect.

    The first call starts numba's thread pool. Where that is OpenMP (numba's pick when TBB is absent),
    its idle threads are made to sleep rather than spin, unless ``OMP_WAIT_POLICY`` is already set:
    spinning threads take a busy machine's cores from the threads with work (2-thread MobileNetV2 ran
    about 20x slower at load 14 with GOMP's default spinning; measured in ``docs/benchmarks.md``). The
    variable is read once, when the OpenMP runtime loads, so it also applies to any other OpenMP
    library the process loads later.
    """
    import os

    import numba

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    count = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(count)
    return count
