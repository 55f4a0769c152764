"""Neural-network ops on NHWC images: convolution, pooling, padding, batch normalization, dropout.

Layout is channels-last, as Keras and TF.js: images are ``(N, H, W, C)``; a Conv2D kernel is
``(kh, kw, in/groups, out)`` and a DepthwiseConv2D kernel ``(kh, kw, in, multiplier)``.

How the convolution is computed (tinygrad's idea, kept fast):

* forward: the padded input is viewed, without copying, as sliding windows
  ``(N, Ho, Wo, kh, kw, C)`` with ``as_strided``; reshaping that view to a matrix
  ``(N*Ho*Wo, kh*kw*C)`` is the one copy (im2col), and a single GEMM with the kernel matrix gives
  the output. The column matrix is kept for the weight gradient, which is one more GEMM.
* input gradient: a transposed convolution done tap by tap: for each of the ``kh*kw`` kernel
  taps, one GEMM of the output gradient with that tap's ``(C, Cout)`` slice, added into a strided
  slice of the padded input gradient (no ``add.at``).
* 1x1 convolutions skip the window view (a plain matmul); depthwise convolutions loop over the
  taps multiplying shifted views, which beats im2col when each channel has its own filter.
* pooling also loops over the window taps on strided views, so no window copy is made; max
  pooling gives the gradient of a tied window to its first maximum (row-major), as TF and PyTorch.

Padding ``"same"`` follows TF: the total padding along an axis is
``max((ceil(H/s) - 1)*s + (k - 1)*d + 1 - H, 0)``, with ``total // 2`` on the top/left and the
rest on the bottom/right, so a stride-2 "same" conv on an even size pads only bottom/right.

Every op is a :class:`~rl.tensor.Function` with its backward beside its forward, written with
``xp`` only, so it runs on NumPy and CuPy. Dtypes are preserved (float32 in training, float64 in
the gradient checks).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from rl import backend
from rl import random as rl_random
from rl.tensor import Function, Tensor, as_tensor, config

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "depthwise_conv2d",
    "dropout",
    "global_avg_pool2d",
    "max_pool2d",
    "pad2d",
    "resolve_padding",
]

Pads = tuple[tuple[int, int], tuple[int, int]]


# ---------------------------------------------------------------------------------- geometry
def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):  # NumPy ints too (np.int64 is not an int)
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}") from None
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Any, in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: Any = 1, dilation: Any = 1
) -> Pads:
    """Turn a padding spec into explicit ``((top, bottom), (left, right))`` pixel counts.

    ``padding`` is ``"valid"`` (none), ``"same"`` (TF's rule, see the module docstring), an int
    (all sides), a pair ``(ph, pw)`` (symmetric per axis) or ``((top, bottom), (left, right))``.
    """
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return _same_pads(in_hw[0], kernel_hw[0], sh, dh), _same_pads(in_hw[1], kernel_hw[1], sw, dw)
        raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {padding!r}")
    if isinstance(padding, int):
        pads = ((padding, padding), (padding, padding))
    else:
        try:
            a, b = padding
            pads = ((a, a), (b, b)) if isinstance(a, int) else (tuple(a), tuple(b))
            pads = tuple((int(p[0]), int(p[1])) for p in pads)
        except (TypeError, ValueError):
            raise ValueError(
                f"padding must be 'valid', 'same', an int, (ph, pw) or ((top, bottom), (left, right)); got {padding!r}"
            ) from None
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pads  # type: ignore[return-value]


def _pad_hw(x: Any, pads: Pads, value: float = 0.0) -> Any:
    """``x`` (N, H, W, C) with rows/columns of ``value`` added around H and W (a copy, or ``x`` itself)."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    out = xp.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    out[:, :top] = value
    out[:, top + h :] = value
    out[:, top : top + h, :left] = value
    out[:, top : top + h, left + w :] = value
    out[:, top : top + h, left : left + w] = x
    return out


def _crop_hw(x: Any, pads: Pads) -> Any:
    (top, bottom), (left, right) = pads
    h, w = x.shape[1], x.shape[2]
    return x[:, top : h - bottom, left : w - right]


def _out_size(padded: int, k: int, s: int, d: int) -> int:
    return (padded - (k - 1) * d - 1) // s + 1


def _tap(i: int, j: int, out_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]):
    """Index of the input pixels that kernel tap (i, j) meets, over all outputs: a strided slice."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (
        slice(None),
        slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
        slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
    )


def _windows(xpad: Any, kernel_hw, out_hw, stride, dilation) -> Any:
    """Zero-copy view ``(N, Ho, Wo, kh, kw, C)`` of the sliding windows of ``xpad`` (N, Hp, Wp, C)."""
    xp = backend.get_array_module(xpad)
    sn, sy, sx, sc = xpad.strides
    shape = (xpad.shape[0], out_hw[0], out_hw[1], kernel_hw[0], kernel_hw[1], xpad.shape[3])
    strides = (sn, sy * stride[0], sx * stride[1], sy * dilation[0], sx * dilation[1], sc)
    return xp.lib.stride_tricks.as_strided(xpad, shape=shape, strides=strides)


def _geometry(x_shape, kernel_hw, stride, padding, dilation, op: str):
    if len(x_shape) != 4:
        raise ValueError(f"{op} expects an NHWC input of rank 4, got shape {tuple(x_shape)}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = resolve_padding(padding, x_shape[1:3], kernel_hw, stride, dilation)
    hp = x_shape[1] + pads[0][0] + pads[0][1]
    wp = x_shape[2] + pads[1][0] + pads[1][1]
    out_hw = (_out_size(hp, kernel_hw[0], stride[0], dilation[0]), _out_size(wp, kernel_hw[1], stride[1], dilation[1]))
    if min(out_hw) < 1:
        raise ValueError(
            f"{op}: window {kernel_hw} (dilation {dilation}) does not fit the padded input "
            f"{(hp, wp)} from input shape {tuple(x_shape)}"
        )
    return stride, dilation, pads, out_hw


# ---------------------------------------------------------------------------------- convolution
# Column matrices are built a few images at a time into one reused buffer of about this size, so
# they stay in the CPU cache between the copy and the GEMM that reads them (about 1.7x faster
# than one big im2col here, and the full column matrix never exists). On the GPU the whole batch
# is one chunk.
_CHUNK_BYTES = 4 << 20


def _images_per_chunk(xp: Any, n: int, bytes_per_image: int) -> int:
    if xp.__name__ != "numpy":
        return max(n, 1)  # at least 1: range(0, n, chunk) needs a positive step, also for an empty batch
    return max(1, min(n, _CHUNK_BYTES // max(bytes_per_image, 1)))


def _bytes_per_image(a: Any) -> int:
    """Bytes of one image of a batch ``a`` (N, ...); also defined for an empty batch."""
    return math.prod(a.shape[1:]) * a.itemsize


def _column_chunks(xpad, kernel_hw, stride, dilation, out_hw):
    """Yield ``(n0, n1, cols)``: the im2col matrix ``(rows, kh*kw*C)`` of images ``n0:n1``.

    ``cols`` is a reused buffer (valid until the next item) or, for an unstrided 1x1 kernel, a
    view of the input itself.
    """
    xp = backend.get_array_module(xpad)
    (kh, kw), (ho, wo), n, c = kernel_hw, out_hw, xpad.shape[0], xpad.shape[3]
    if kh == kw == 1 and stride == (1, 1):
        yield 0, n, xpad.reshape(n * ho * wo, c)
        return
    if kh == kw == 1:
        windows = xpad[:, : stride[0] * (ho - 1) + 1 : stride[0], : stride[1] * (wo - 1) + 1 : stride[1], None, None]
    else:
        windows = _windows(xpad, kernel_hw, out_hw, stride, dilation)
    per_image = ho * wo * kh * kw * c
    chunk = _images_per_chunk(xp, n, per_image * xpad.itemsize)
    buf = xp.empty((chunk, ho, wo, kh, kw, c), dtype=xpad.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part = buf[: n1 - n0]
        part[...] = windows[n0:n1]
        yield n0, n1, part.reshape((n1 - n0) * ho * wo, kh * kw * c)


class _Conv2D(Function):
    """Grouped 2-D convolution, NHWC, kernel (kh, kw, Cin/groups, Cout)."""

    def forward(self, x, kernel, bias, stride, padding, dilation, groups):
        kh, kw, cin_g, cout = kernel.shape
        if x.ndim == 4 and x.shape[3] != cin_g * groups:
            raise ValueError(
                f"conv2d: input has {x.shape[3]} channels but the kernel {tuple(kernel.shape)} "
                f"with groups={groups} expects {cin_g * groups}"
            )
        if cout % groups:
            raise ValueError(f"conv2d: {cout} output channels do not split into groups={groups}")
        stride, dilation, pads, out_hw = _geometry(x.shape, (kh, kw), stride, padding, dilation, "conv2d")
        xp = backend.get_array_module(x)
        xpad = _pad_hw(x, pads)
        n, (ho, wo), cout_g = x.shape[0], out_hw, cout // groups
        rows_per_image = ho * wo
        out = xp.empty((n * rows_per_image, cout), dtype=xp.result_type(x, kernel))
        for grp in range(groups):
            ic, oc = slice(grp * cin_g, (grp + 1) * cin_g), slice(grp * cout_g, (grp + 1) * cout_g)
            xg = xpad if groups == 1 else xpad[..., ic]
            k2 = kernel[..., oc].reshape(-1, cout_g)
            for n0, n1, cols in _column_chunks(xg, (kh, kw), stride, dilation, out_hw):
                rows = slice(n0 * rows_per_image, n1 * rows_per_image)
                if groups == 1:
                    xp.matmul(cols, k2, out=out[rows])
                else:
                    out[rows, oc] = cols @ k2
        if bias is not None:
            out += bias
        # The padded input is all the backward needs: it rebuilds the columns chunk by chunk.
        self.xpad, self.kernel, self.groups, self.has_bias = xpad, kernel, groups, bias is not None
        self.geom = (stride, dilation, pads, out_hw)
        return out.reshape(n, ho, wo, cout)

    def backward(self, g):
        xp = backend.get_array_module(g)
        stride, dilation, pads, out_hw = self.geom
        kernel, groups, xpad = self.kernel, self.groups, self.xpad
        kh, kw, cin_g, cout = kernel.shape
        cout_g, rows_per_image = cout // groups, out_hw[0] * out_hw[1]
        g2 = g.reshape(-1, cout)
        gk = gx = gb = None
        if self.has_bias and self.inputs[2].requires_grad:
            gb = g2.sum(axis=0)
        need_k, need_x = self.inputs[1].requires_grad, self.inputs[0].requires_grad
        if need_k:
            gk = xp.zeros_like(kernel)
            for grp in range(groups):
                ic, oc = slice(grp * cin_g, (grp + 1) * cin_g), slice(grp * cout_g, (grp + 1) * cout_g)
                xg = xpad if groups == 1 else xpad[..., ic]
                acc = gk[..., oc].reshape(-1, cout_g) if groups == 1 else xp.zeros((kh * kw * cin_g, cout_g), g.dtype)
                for n0, n1, cols in _column_chunks(xg, (kh, kw), stride, dilation, out_hw):
                    acc += cols.T @ g2[n0 * rows_per_image : n1 * rows_per_image, oc]
                gk[..., oc] = acc.reshape(kh, kw, cin_g, cout_g)
        if need_x:
            gx = self._input_grad(xp, g2, kernel, groups, xpad.shape, stride, dilation, pads, out_hw)
        return gx, gk, gb

    @staticmethod
    def _input_grad(xp, g2, kernel, groups, padded_shape, stride, dilation, pads, out_hw):
        """Transposed convolution: each tap's GEMM added into a strided slice of the padded gradient."""
        kh, kw, cin_g, cout = kernel.shape
        cout_g, n = cout // groups, padded_shape[0]
        rows_per_image = out_hw[0] * out_hw[1]
        if kh == kw == 1 and stride == (1, 1) and groups == 1 and pads == ((0, 0), (0, 0)):
            return (g2 @ kernel[0, 0].T).reshape(padded_shape)
        gpad = xp.zeros(padded_shape, dtype=g2.dtype)
        chunk = _images_per_chunk(xp, n, rows_per_image * cin_g * g2.itemsize * 4)
        tmp = xp.empty((chunk * rows_per_image, cin_g), dtype=g2.dtype)
        for grp in range(groups):
            ic, oc = slice(grp * cin_g, (grp + 1) * cin_g), slice(grp * cout_g, (grp + 1) * cout_g)
            for n0 in range(0, n, chunk):
                n1 = min(n, n0 + chunk)
                g_part = g2[n0 * rows_per_image : n1 * rows_per_image, oc]
                part = tmp[: g_part.shape[0]]
                block = gpad[n0:n1, :, :, ic]
                for i in range(kh):
                    for j in range(kw):
                        xp.matmul(g_part, kernel[i, j, :, oc].T, out=part)  # this tap's share of the input grad
                        block[_tap(i, j, out_hw, stride, dilation)] += part.reshape(n1 - n0, *out_hw, cin_g)
        return _crop_hw(gpad, pads)


class _DepthwiseConv2D(Function):
    """Depthwise convolution, NHWC, kernel (kh, kw, C, mult); output channel c*mult + m."""

    def forward(self, x, kernel, bias, stride, padding, dilation):
        kh, kw, c, mult = kernel.shape
        if x.ndim == 4 and x.shape[3] != c:
            raise ValueError(
                f"depthwise_conv2d: input has {x.shape[3]} channels but the kernel {tuple(kernel.shape)} expects {c}"
            )
        stride, dilation, pads, out_hw = _geometry(x.shape, (kh, kw), stride, padding, dilation, "depthwise_conv2d")
        xp = backend.get_array_module(x)
        xpad = _pad_hw(x, pads)
        n = x.shape[0]
        dtype = xp.result_type(x, kernel)
        # With one filter per channel (mult == 1, MobileNet's case) the trailing axis is dropped, so
        # every multiply runs over contiguous channels rather than a length-1 innermost axis.
        k = kernel[..., 0] if mult == 1 else kernel
        out = xp.empty((n, *out_hw, c) if mult == 1 else (n, *out_hw, c, mult), dtype=dtype)
        # A few images at a time, so the nine multiply-adds reuse cached data instead of streaming
        # the whole batch from memory nine times.
        chunk = _images_per_chunk(xp, n, _bytes_per_image(out) * 2)
        tmp = xp.empty_like(out[:chunk])
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            block, tmp_block, x_block = out[n0:n1], tmp[: n1 - n0], xpad[n0:n1]
            for i in range(kh):
                for j in range(kw):
                    shifted = x_block[_tap(i, j, out_hw, stride, dilation)]  # (n, Ho, Wo, C)
                    if mult != 1:
                        shifted = shifted[..., None]
                    xp.multiply(shifted, k[i, j], out=block if i == j == 0 else tmp_block)
                    if i or j:
                        block += tmp_block
        self.xpad, self.kernel, self.has_bias = xpad, kernel, bias is not None
        self.geom = (stride, dilation, pads, out_hw)
        out = out.reshape(n, *out_hw, c * mult)
        if bias is not None:
            out += bias
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        stride, dilation, pads, out_hw = self.geom
        kernel, xpad = self.kernel, self.xpad
        kh, kw, c, mult = kernel.shape
        g5 = g.reshape(*g.shape[:3], c) if mult == 1 else g.reshape(*g.shape[:3], c, mult)
        k = kernel[..., 0] if mult == 1 else kernel
        gk = gx = gb = None
        if self.has_bias and self.inputs[2].requires_grad:
            gb = g.reshape(-1, c * mult).sum(axis=0)
        need_k, need_x = self.inputs[1].requires_grad, self.inputs[0].requires_grad
        if need_k:
            gk = xp.zeros_like(kernel)
        if need_x:
            gpad = xp.zeros(xpad.shape, dtype=g.dtype)
        n = g.shape[0]
        chunk = _images_per_chunk(xp, n, _bytes_per_image(g5) * 2)
        tmp = xp.empty_like(g5[:chunk])
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            g_block, tmp_block, x_block = g5[n0:n1], tmp[: n1 - n0], xpad[n0:n1]
            for i in range(kh):
                for j in range(kw):
                    tap = _tap(i, j, out_hw, stride, dilation)
                    if need_k:
                        shifted = x_block[tap] if mult == 1 else x_block[tap][..., None]
                        xp.multiply(shifted, g_block, out=tmp_block)
                        gk[i, j] += tmp_block.reshape(-1, c, mult).sum(axis=0)
                    if need_x:
                        xp.multiply(g_block, k[i, j], out=tmp_block)
                        gpad[n0:n1][tap] += tmp_block if mult == 1 else tmp_block.sum(axis=-1)
        if need_x:
            gx = _crop_hw(gpad, pads)
        return gx, gk, gb


def conv2d(
    x: Tensor,
    kernel: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: Any = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as every framework) on NHWC images.

    Args:
        x: ``(N, H, W, Cin)``.
        kernel: ``(kh, kw, Cin/groups, Cout)`` (Keras Conv2D layout).
        bias: ``(Cout,)`` or None.
        stride: int or ``(sh, sw)``.
        padding: ``"valid"``, ``"same"`` (TF rule), int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
        dilation: int or ``(dh, dw)``.
        groups: split channels into this many independent convolutions; ``groups == Cin`` runs as
            a depthwise convolution (output channel order as Keras: channel c, multiplier m -> c*mult + m).
    Returns:
        ``(N, Ho, Wo, Cout)``.
    """
    kernel = as_tensor(kernel)
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    cin = x.shape[-1]
    if groups > 1 and groups == cin and kernel.ndim == 4 and kernel.shape[2] == 1:
        kh, kw, _, cout = kernel.shape
        if cout % cin:
            raise ValueError(f"conv2d: {cout} output channels do not split into groups={groups}")
        dw_kernel = kernel.reshape(kh, kw, cin, cout // cin)
        return _DepthwiseConv2D.apply(x, dw_kernel, bias, stride=stride, padding=padding, dilation=dilation)
    return _Conv2D.apply(x, kernel, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def depthwise_conv2d(
    x: Tensor,
    kernel: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: Any = "valid",
    dilation: int | Sequence[int] = 1,
) -> Tensor:
    """Depthwise 2-D convolution: each input channel convolved with its own ``mult`` filters.

    Args:
        x: ``(N, H, W, C)``.
        kernel: ``(kh, kw, C, mult)`` (Keras DepthwiseConv2D layout).
        bias: ``(C*mult,)`` or None.
        stride, padding, dilation: as :func:`conv2d`.
    Returns:
        ``(N, Ho, Wo, C*mult)``, output channel ``c*mult + m`` (Keras order).
    """
    return _DepthwiseConv2D.apply(x, kernel, bias, stride=stride, padding=padding, dilation=dilation)


# ---------------------------------------------------------------------------------- pooling
def _pool_geometry(x_shape, pool_size, strides, padding, op):
    pool = _pair(pool_size, "pool_size")
    strides = pool if strides is None else _pair(strides, "strides")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same', got {padding!r}")
    stride, _, pads, out_hw = _geometry(x_shape, pool, strides, padding, 1, op)
    return pool, stride, pads, out_hw


class _MaxPool2D(Function):
    def forward(self, x, pool_size, strides, padding):
        pool, stride, pads, out_hw = _pool_geometry(x.shape, pool_size, strides, padding, "max_pool2d")
        xp = backend.get_array_module(x)
        # Padded cells never win: fill them with the lowest value of the dtype.
        low = xp.finfo(x.dtype).min if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        xpad = _pad_hw(x, pads, low)
        out = None
        for i in range(pool[0]):
            for j in range(pool[1]):
                shifted = xpad[_tap(i, j, out_hw, stride, (1, 1))]
                out = shifted.copy() if out is None else xp.maximum(out, shifted, out=out)
        self.xpad, self.out, self.geom = xpad, out, (pool, stride, pads, out_hw)
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        pool, stride, pads, out_hw = self.geom
        gpad = xp.zeros(self.xpad.shape, dtype=g.dtype)
        taken = xp.zeros(self.out.shape, dtype=bool)  # windows whose maximum already got the gradient
        overlapping = stride[0] < pool[0] or stride[1] < pool[1]
        for i in range(pool[0]):
            for j in range(pool[1]):
                tap = _tap(i, j, out_hw, stride, (1, 1))
                first = (self.xpad[tap] == self.out) & ~taken
                taken |= first
                if overlapping:
                    gpad[tap] += g * first
                else:
                    xp.multiply(g, first, out=gpad[tap])
        return _crop_hw(gpad, pads)


def max_pool2d(x: Tensor, pool_size: int | Sequence[int] = 2, strides: Any = None, padding: str = "valid") -> Tensor:
    """Max over ``pool_size`` windows of ``x`` (N, H, W, C) -> (N, Ho, Wo, C).

    ``strides`` defaults to ``pool_size`` (Keras). ``"same"`` pads TF-style; padded cells never win.
    """
    return _MaxPool2D.apply(x, pool_size=pool_size, strides=strides, padding=padding)


class _AvgPool2D(Function):
    def forward(self, x, pool_size, strides, padding):
        pool, stride, pads, out_hw = _pool_geometry(x.shape, pool_size, strides, padding, "avg_pool2d")
        xp = backend.get_array_module(x)
        xpad = _pad_hw(x, pads)
        total = None
        for i in range(pool[0]):
            for j in range(pool[1]):
                shifted = xpad[_tap(i, j, out_hw, stride, (1, 1))]
                total = shifted.copy() if total is None else xp.add(total, shifted, out=total)
        if pads == ((0, 0), (0, 0)):
            count = pool[0] * pool[1]
        else:
            # Keras divides by the number of real (unpadded) cells in each window.
            ones = _pad_hw(xp.ones((1, x.shape[1], x.shape[2], 1), dtype=x.dtype), pads)
            count = sum(ones[_tap(i, j, out_hw, stride, (1, 1))] for i in range(pool[0]) for j in range(pool[1]))
        self.count, self.geom, self.padded_shape = count, (pool, stride, pads, out_hw), xpad.shape
        return total / count

    def backward(self, g):
        xp = backend.get_array_module(g)
        pool, stride, pads, out_hw = self.geom
        share = g / self.count
        gpad = xp.zeros(self.padded_shape, dtype=g.dtype)
        for i in range(pool[0]):
            for j in range(pool[1]):
                gpad[_tap(i, j, out_hw, stride, (1, 1))] += share
        return _crop_hw(gpad, pads)


def avg_pool2d(x: Tensor, pool_size: int | Sequence[int] = 2, strides: Any = None, padding: str = "valid") -> Tensor:
    """Mean over ``pool_size`` windows of ``x`` (N, H, W, C) -> (N, Ho, Wo, C).

    ``strides`` defaults to ``pool_size``. With ``"same"`` each window is divided by its count of
    real cells, not by the window size (Keras/TF behaviour).
    """
    return _AvgPool2D.apply(x, pool_size=pool_size, strides=strides, padding=padding)


def global_avg_pool2d(x: Tensor, keepdims: bool = False) -> Tensor:
    """Mean over H and W: ``(N, H, W, C)`` -> ``(N, C)`` (or ``(N, 1, 1, C)`` with ``keepdims``)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d expects an NHWC input of rank 4, got shape {x.shape}")
    return x.mean(axis=(1, 2), keepdims=keepdims)


# ---------------------------------------------------------------------------------- padding
class _Pad2D(Function):
    def forward(self, x, pads, value):
        self.pads = pads
        return _pad_hw(x, pads, value)

    def backward(self, g):
        return _crop_hw(g, self.pads)


def pad2d(x: Tensor, padding: Any, value: float = 0.0) -> Tensor:
    """Pad H and W of ``x`` (N, H, W, C) with ``value`` (Keras ZeroPadding2D when ``value`` is 0).

    ``padding`` is an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
    """
    if x.ndim != 4:
        raise ValueError(f"pad2d expects an NHWC input of rank 4, got shape {x.shape}")
    if isinstance(padding, str):
        raise ValueError(f"pad2d needs explicit pixel counts, got {padding!r}")
    pads = resolve_padding(padding, x.shape[1:3], (1, 1))
    return _Pad2D.apply(x, pads=pads, value=value)


# ---------------------------------------------------------------------------------- batch norm
class _BatchNorm(Function):
    """Batch normalization over every axis but ``axis``; gamma/beta may be None (no scale/shift)."""

    def forward(self, x, gamma, beta, running_mean, running_var, training, momentum, eps, axis, unbiased):
        xp = backend.get_array_module(x)
        axis = axis % x.ndim
        self.reduce = tuple(a for a in range(x.ndim) if a != axis)
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        self.bshape = tuple(shape)
        one = x.dtype.type(1)
        if gamma is not None:
            gamma = gamma.reshape(self.bshape)
        if training:
            count = x.size // max(x.shape[axis], 1)
            if count == 0:
                # An empty batch has no statistics (its mean would be NaN): the output is empty and the
                # moving statistics stay as they are, as in torch.
                count, running_mean, running_var = 1, None, None
                centered, var = x, xp.ones(self.bshape, x.dtype)
            else:
                mean = x.mean(axis=self.reduce, keepdims=True)
                centered = x - mean
                var = xp.mean(centered * centered, axis=self.reduce, keepdims=True)  # biased, used to normalize
            inv_std = one / xp.sqrt(var + eps)
            xhat = centered * inv_std
            with_momentum = 1.0 - momentum
            if running_mean is not None:
                running_mean *= momentum
                running_mean += (with_momentum * mean).reshape(running_mean.shape).astype(running_mean.dtype)
            if running_var is not None:
                batch_var = var * (count / max(count - 1, 1)) if unbiased else var
                running_var *= momentum
                running_var += (with_momentum * batch_var).reshape(running_var.shape).astype(running_var.dtype)
            self.count = count
        else:
            mean = running_mean.reshape(self.bshape).astype(x.dtype, copy=False)
            inv_std = one / xp.sqrt(running_var.reshape(self.bshape).astype(x.dtype, copy=False) + eps)
            xhat = (x - mean) * inv_std
        self.training, self.xhat, self.inv_std, self.gamma = training, xhat, inv_std, gamma
        out = xhat * gamma if gamma is not None else xhat.copy()
        if beta is not None:
            out += beta.reshape(self.bshape)
        return out

    def backward(self, g):
        xhat, inv_std, gamma = self.xhat, self.inv_std, self.gamma
        g_sum = g.sum(axis=self.reduce, keepdims=True)
        g_xhat_sum = (g * xhat).sum(axis=self.reduce, keepdims=True)
        gx = ggamma = gbeta = None
        if self.inputs[0].requires_grad:
            scale = inv_std * gamma if gamma is not None else inv_std
            if self.training:
                # d/dx of (x - mean) / std with the batch statistics depending on x
                gx = scale * (g - g_sum / self.count - xhat * (g_xhat_sum / self.count))
            else:
                gx = g * scale
        if gamma is not None and self.inputs[1].requires_grad:
            ggamma = g_xhat_sum.reshape(-1)
        if self.inputs[2].requires_grad:
            gbeta = g_sum.reshape(-1)
        return gx, ggamma, gbeta


def batch_norm(
    x: Tensor,
    gamma: Tensor | None,
    beta: Tensor | None,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float = 0.99,
    eps: float = 1e-3,
    axis: int = -1,
    unbiased_running_var: bool = False,
) -> Tensor:
    """Batch normalization (Keras conventions: ``momentum=0.99``, ``eps=1e-3``, channels on ``axis``).

    Args:
        x: any shape; statistics are taken over every axis except ``axis``.
        gamma, beta: ``(C,)`` scale and shift, or None for no scale / no shift.
        running_mean, running_var: ``(C,)`` arrays (or Tensors, whose ``.data`` is used) of the
            moving statistics. In training they are updated **in place**:
            ``running = running * momentum + batch * (1 - momentum)``.
        training: True normalizes with the batch's own (biased) mean and variance; False with
            the running statistics.
        unbiased_running_var: the running variance is fed the biased batch variance by default,
            as Keras 3 and TF.js do (``moments``); True feeds it the unbiased one
            (``var * M/(M-1)``), as PyTorch and TF's fused kernel do. Normalization always uses
            the biased variance.
    Returns:
        same shape as ``x``. Gradients flow to ``x``, ``gamma`` and ``beta`` in both modes.
    """
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    if not training and (rm is None or rv is None):
        raise ValueError("batch_norm in inference mode needs running_mean and running_var")
    return _BatchNorm.apply(
        x,
        gamma,
        beta,
        running_mean=rm,
        running_var=rv,
        training=bool(training),
        momentum=float(momentum),
        eps=float(eps),
        axis=int(axis),
        unbiased=bool(unbiased_running_var),
    )


# ---------------------------------------------------------------------------------- dropout
class _Dropout(Function):
    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask, None


def dropout(x: Tensor, rate: float, training: bool | None = None, rng: rl_random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability ``rate``, scale survivors by 1/(1-rate).

    Args:
        x: any shape.
        rate: drop probability in [0, 1).
        training: apply dropout only when true; defaults to ``config.train``. When off, ``x`` is
            returned unchanged.
        rng: an :class:`rl.random.Generator`; the module default generator when None.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if training is None:
        training = config.train
    if not training or rate == 0.0:
        return x
    rng = rng if rng is not None else rl_random.default_generator()
    if x.dtype.kind != "f":
        raise ValueError(f"dropout needs a float tensor, got dtype {x.dtype}")
    u = rng.random(x.shape, x.dtype)
    mask = (u >= rate).astype(x.dtype)
    mask *= x.dtype.type(1.0 / (1.0 - rate))
    return _Dropout.apply(x, mask)
