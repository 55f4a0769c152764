"""MobileNetV2 (torchvision's ImageNet model) built from ``rl`` layers, its weight loader and a fast inference path.

Architecture (``docs/specs/formats.md`` §6.1): a 3x3 stride-2 stem, 17 inverted residual
blocks and a 1x1 conv to 1280 channels, then global average pooling, dropout and a 1000-way dense
layer. An inverted residual block expands its input with a 1x1 conv (factor ``t``), filters each
channel with a 3x3 depthwise conv, and projects back with a 1x1 conv that has **no activation**
(the linear bottleneck); when stride is 1 and the channel count is kept, the input is added back.
Every conv is followed by batch normalization (torch's ``eps=1e-5``; Keras momentum 0.9 = 1 -
torch's 0.1) and, except the projections, by ReLU6.

Layer names are torchvision's module paths, so the ``features.N`` structure is visible in
``model.summary()`` and a torch key maps to ours by replacing the last ``.`` with ``/`` and renaming
the tensor:

=====================================  =====================================  ===============================
torchvision ``state_dict`` key         our weight                             conversion
=====================================  =====================================  ===============================
``features.0.0.weight (32,3,3,3)``     ``features.0.0/kernel (3,3,3,32)``     ``transpose(2, 3, 1, 0)``
``features.N.conv.1.0.weight (C,1,3,3)`` ``features.N.conv.1.0/depthwise_kernel (3,3,C,1)`` ``transpose(2, 3, 0, 1)``
``features.N.conv.2.weight (o,i,1,1)`` ``features.N.conv.2/kernel (1,1,i,o)``  ``transpose(2, 3, 1, 0)``
``<bn>.weight`` / ``.bias``            ``<bn>/gamma`` / ``beta``              unchanged
``<bn>.running_mean`` / ``_var``       ``<bn>/moving_mean`` / ``moving_variance`` unchanged
``<bn>.num_batches_tracked``           (none)                                 ignored; may be missing
``classifier.1.weight (1000,1280)``    ``classifier.1/kernel (1280,1000)``    ``.T``
``classifier.1.bias``                  ``classifier.1/bias``                  unchanged
=====================================  =====================================  ===============================

Per block (``t`` = expansion): ``features.0.{0,1,2}`` = stem conv, BN, ReLU6;
``features.1.conv.{0.0,0.1,0.2,1,2}`` = depthwise, BN, ReLU6, projection, BN (``t = 1``: no expand);
``features.N.conv.{0.0,0.1,0.2,1.0,1.1,1.2,2,3}`` = expand, BN, ReLU6, depthwise, BN, ReLU6,
projection, BN (N = 2..17), plus ``features.N.add`` where the block is residual;
``features.18.{0,1,2}`` = 1x1 conv to 1280, BN, ReLU6; then ``pool``, ``classifier.0`` (dropout),
``classifier.1`` (dense). Our own names (``add``, ``pool``) hold no weights.

Padding: torch pads every 3x3 conv by 1 on all sides. TF's ``"same"`` with stride 2 on an even size
pads only bottom/right (formats §5.6), so every 3x3 conv here uses explicit ``((1, 1), (1, 1))``.

:class:`FoldedMobileNetV2` is the fast inference path (frozen feature extraction, the classify
script, the benchmark): each batch norm is folded into the conv before it
(``kernel * gamma/sqrt(var+eps)``, bias ``beta - mean*gamma/sqrt(var+eps)``), so a block is three
array passes (GEMM, depthwise taps, GEMM) with the bias, ReLU6 and residual applied in place, no
graph recorded and no BN pass. Large batches are split across threads, since NumPy's elementwise
work runs on one core while BLAS uses them all. With the optional ``accel`` extra (numba) each conv
is instead one compiled kernel (:mod:`transfer._numba_kernels`): the bias, ReLU6 and residual are
applied to each GEMM band while it is in cache, the depthwise taps are summed in registers, and
numba's threads share every layer, so one image uses all the threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend, initializers
from rl.layers import (
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    GlobalAveragePooling2D,
    Input,
    ReLU,
)
from rl.models import Model
from transfer import _numba_kernels

__all__ = [
    "BLOCK_NAMES",
    "EMBEDDING",
    "NUM_PARAMS",
    "BlockSpec",
    "FoldedMobileNetV2",
    "InputShapeError",
    "block_specs",
    "check_images",
    "load_torchvision_weights",
    "mobilenet_v2",
    "torchvision_to_rl",
]

# (expansion t, output channels c, repeats n, first stride s), torchvision's inverted_residual_setting.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))
BLOCK_NAMES = tuple(f"features.{i}" for i in range(19))
EMBEDDING = "embedding"  # cut point name of the pooled 1280-d vector
NUM_PARAMS = 3_504_872  # learnable parameters, torchvision's _COMMON_META["num_params"]
BN_EPSILON = 1e-5  # torch's BatchNorm2d default (Keras' is 1e-3)
BN_MOMENTUM = 0.9  # Keras convention: 1 - torch's momentum 0.1
TORCH_PAD = ((1, 1), (1, 1))  # torch padding=1 around every 3x3 conv, whatever the stride


class InputShapeError(ValueError):
    """Images given to the network do not have the layout/size/channels it expects."""


@dataclass(frozen=True)
class BlockSpec:
    """One entry of ``features``: the stem (``kind="stem"``), an inverted residual or the last 1x1 conv.

    ``hidden`` is the expanded width (``cin * t``); ``residual`` is true when the input is added back.
    """

    name: str
    kind: str
    cin: int
    hidden: int
    cout: int
    stride: int
    expand: bool
    residual: bool

    @property
    def prefix(self) -> str:
        """Layer-name prefix of this block's convs: ``features.N.conv.`` for inverted residuals."""
        return f"{self.name}.conv." if self.kind == "inverted_residual" else f"{self.name}."

    def layer_names(self) -> list[str]:
        """The names of the layers in this block, in order (as in the model)."""
        p = self.prefix
        if self.kind != "inverted_residual":
            return [f"{p}0", f"{p}1", f"{p}2"]
        if self.expand:
            names = [f"{p}0.0", f"{p}0.1", f"{p}0.2", f"{p}1.0", f"{p}1.1", f"{p}1.2", f"{p}2", f"{p}3"]
        else:
            names = [f"{p}0.0", f"{p}0.1", f"{p}0.2", f"{p}1", f"{p}2"]
        return [*names, f"{self.name}.add"] if self.residual else names


def block_specs() -> list[BlockSpec]:
    """The 19 ``features`` blocks of torchvision's MobileNetV2 (width 1.0), in order."""
    specs = [BlockSpec("features.0", "stem", 3, 3, 32, 2, False, False)]
    cin = 32
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            stride = s if i == 0 else 1
            specs.append(BlockSpec(f"features.{len(specs)}", "inverted_residual", cin, round(cin * t), c, stride,
                                   t != 1, stride == 1 and cin == c))
            cin = c
    specs.append(BlockSpec("features.18", "last", cin, cin, 1280, 1, False, False))
    return specs


_SPECS = {s.name: s for s in block_specs()}


def _block_index(name: str | int) -> int:
    """``"features.7"``, ``7`` -> 7; an unknown name lists the valid ones."""
    if isinstance(name, int | np.integer) and 0 <= int(name) < len(BLOCK_NAMES):
        return int(name)
    if name in _SPECS:
        return BLOCK_NAMES.index(name)  # type: ignore[arg-type]
    raise ValueError(f"unknown MobileNetV2 block {name!r}; valid: 'features.0' ... 'features.18' (or 0..18), "
                     f"or {EMBEDDING!r} for the pooled 1280-d vector")


# ============================================================================ building the model
def _conv_init(fan_out_scale: float = 2.0) -> Any:
    # torchvision: kaiming_normal_(mode="fan_out"); Keras' fan_out for (kh, kw, in, out) is kh*kw*out, the same.
    return initializers.VarianceScaling(fan_out_scale, "fan_out", "untruncated_normal")


def _bn(name: str) -> BatchNormalization:
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _build_block(x: Any, spec: BlockSpec) -> Any:
    p = spec.prefix
    if spec.kind in ("stem", "last"):
        k = 3 if spec.kind == "stem" else 1
        pad = TORCH_PAD if k == 3 else "valid"
        x = Conv2D(spec.cout, k, strides=spec.stride, padding=pad, use_bias=False, kernel_initializer=_conv_init(),
                   name=f"{p}0")(x)
        x = _bn(f"{p}1")(x)
        return ReLU(6.0, name=f"{p}2")(x)
    inp = x
    i = 0
    if spec.expand:
        x = Conv2D(spec.hidden, 1, use_bias=False, kernel_initializer=_conv_init(), name=f"{p}0.0")(x)
        x = _bn(f"{p}0.1")(x)
        x = ReLU(6.0, name=f"{p}0.2")(x)
        i = 1
    # torch's depthwise fan_out is C*9 (out channels of the grouped conv); Keras' is 9: scale by 1/C to match.
    x = DepthwiseConv2D(3, strides=spec.stride, padding=TORCH_PAD, use_bias=False,
                        depthwise_initializer=_conv_init(2.0 / spec.hidden), name=f"{p}{i}.0")(x)
    x = _bn(f"{p}{i}.1")(x)
    x = ReLU(6.0, name=f"{p}{i}.2")(x)
    x = Conv2D(spec.cout, 1, use_bias=False, kernel_initializer=_conv_init(), name=f"{p}{i + 1}")(x)
    x = _bn(f"{p}{i + 2}")(x)
    if spec.residual:
        x = Add(name=f"{spec.name}.add")([inp, x])
    return x


def mobilenet_v2(
    weights: str | os.PathLike | dict | None = "imagenet",
    include_top: bool = True,
    cut_at: str | int | None = None,
    input_shape: Sequence[int | None] = (224, 224, 3),
    num_classes: int = 1000,
    dropout: float = 0.2,
    download: bool = True,
) -> Model:
    """Build torchvision's MobileNetV2 as a functional :class:`rl.models.Model` and load its weights.

    Args:
        weights: ``"imagenet"`` (torchvision's IMAGENET1K_V1, fetched once into the cache), a path
            to a torchvision-format ``.pth`` file, an already-read state dict, or ``None`` (random
            init as torchvision: Kaiming-normal fan-out convs, BN 1/0, dense N(0, 0.01)).
        include_top: end with pooling, dropout and the ``num_classes``-way dense layer (logits, no
            softmax). False ends at ``cut_at`` (default ``"features.18"``, the 7x7x1280 map).
        cut_at: end the network after this block (``"features.N"`` or ``N``) or at
            ``"embedding"``, the pooled ``(N, 1280)`` vector. Implies ``include_top=False``.
        input_shape: one image ``(H, W, 3)``, NHWC; ``(None, None, 3)`` accepts any size.
        num_classes: classifier width. Pretrained weights fill every layer; the classifier's only
            when it is 1000 wide (another width keeps its fresh N(0, 0.01) initialization).
        dropout: rate before the classifier (torchvision's 0.2).
        download: fetch the ImageNet weights if they are not cached.

    Returns:
        a Model named ``mobilenet_v2``: logits ``(N, num_classes)``, a feature map ``(N, h, w, C)``
        or the embedding ``(N, 1280)``.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise InputShapeError(f"MobileNetV2 takes RGB images (H, W, 3), channels last; got input_shape {shape}")
    if cut_at is not None:
        include_top = False
    embedding = cut_at == EMBEDDING
    last = 18 if cut_at is None or embedding else _block_index(cut_at)
    inp = Input(shape, name="input")
    x = inp
    for spec in block_specs()[: last + 1]:
        x = _build_block(x, spec)
    if include_top or embedding:
        x = GlobalAveragePooling2D(name="pool")(x)
    if include_top:
        x = Dropout(dropout, name="classifier.0")(x)
        x = Dense(num_classes, kernel_initializer=initializers.RandomNormal(0.0, 0.01), name="classifier.1")(x)
    model = Model(inp, x, name="mobilenet_v2")
    if weights is not None:
        state = weights if isinstance(weights, dict) else _read_weights(weights, download)
        load_torchvision_weights(model, state)
    return model


def _read_weights(weights: str | os.PathLike, download: bool) -> dict[str, np.ndarray]:
    from transfer import torch_reader
    from transfer import weights as weights_mod

    path = weights_mod.resolve("mobilenet_v2" if weights == "imagenet" else weights, download=download)
    return torch_reader.load_state_dict(Path(path))


# ============================================================================ loading torch weights
def torchvision_to_rl(state: dict[str, Any], model: Model) -> dict[str, np.ndarray]:
    """Convert a torchvision MobileNetV2 ``state_dict`` to ``model``'s ``"layer/weight"`` names and layouts.

    Only the layers present in ``model`` are converted (a cut model takes what it needs); keys for
    layers that were cut off are ignored, ``num_batches_tracked`` is ignored and may be absent.

    Raises:
        KeyError: a tensor the model needs is missing (the message names the torch keys).
        ValueError: a tensor has the wrong shape (named, with both shapes).
    """
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []

    def take(key: str, dest: str, convert: Any, want: tuple[int, ...]) -> None:
        if key not in state:
            missing.append(key)
            return
        arr = np.asarray(state[key], dtype=np.float32)
        value = convert(arr)
        if value.shape != want:
            raise ValueError(f"torchvision tensor '{key}' has shape {arr.shape}, which does not fit {dest} "
                             f"{want} after conversion (got {value.shape}); is it a MobileNetV2 (width 1.0) "
                             "checkpoint?")
        out[dest] = np.ascontiguousarray(value)

    for layer in model.layers:
        n = layer.name
        if isinstance(layer, DepthwiseConv2D):
            take(f"{n}.weight", f"{n}/depthwise_kernel", lambda a: a.transpose(2, 3, 0, 1),
                 layer.depthwise_kernel.shape)
        elif isinstance(layer, Conv2D):
            take(f"{n}.weight", f"{n}/kernel", lambda a: a.transpose(2, 3, 1, 0), layer.kernel.shape)
        elif isinstance(layer, BatchNormalization):
            c = (layer.moving_mean.shape[0],)
            for torch_name, ours in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                     ("running_var", "moving_variance")):
                take(f"{n}.{torch_name}", f"{n}/{ours}", lambda a: a, c)
        elif isinstance(layer, Dense):
            take(f"{n}.weight", f"{n}/kernel", lambda a: a.T, layer.kernel.shape)
            take(f"{n}.bias", f"{n}/bias", lambda a: a, layer.bias.shape)
    if missing:
        raise KeyError(f"the state dict lacks {len(missing)} tensor(s) the model needs: {', '.join(missing[:8])}"
                       + (" ..." if len(missing) > 8 else ""))
    return out


def load_torchvision_weights(model: Model, state: dict[str, Any] | str | os.PathLike) -> Model:
    """Load a torchvision MobileNetV2 state dict (or ``.pth`` path) into ``model`` in place; returns the model.

    A model with a classifier of another width than the checkpoint's gets every weight but the
    classifier's (the classic transfer set-up); any other mismatch is an error naming the tensor.
    """
    if not isinstance(state, dict):
        state = _read_weights(state, download=False)
    head = [layer for layer in model.layers if isinstance(layer, Dense)]
    skip_head = bool(head) and "classifier.1.weight" in state and \
        np.shape(state["classifier.1.weight"])[0] != head[-1].units
    if skip_head:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        converted = torchvision_to_rl({**state, **_placeholder_head(head[-1])}, model)
        converted = {k: v for k, v in converted.items() if not k.startswith(head[-1].name + "/")}
        model.load_state_dict(converted, strict=False)
    else:
        model.load_state_dict(torchvision_to_rl(state, model), strict=True)
    return model


def _placeholder_head(dense: Dense) -> dict[str, np.ndarray]:
    n = dense.name
    return {f"{n}.weight": np.zeros(dense.kernel.shape[::-1], np.float32),
            f"{n}.bias": np.zeros(dense.bias.shape, np.float32)}


# ============================================================================ input checks
def check_images(x: Any, expected_hw: tuple[int | None, int | None] | None = (224, 224)) -> Any:
    """Validate an image batch ``(N, H, W, 3)`` NHWC (float, ImageNet-normalized); return it unchanged.

    Raises :class:`InputShapeError` saying what was expected (and hinting at NCHW or a missing
    batch axis) for anything else.
    """
    shape = tuple(getattr(x, "shape", np.shape(x)))
    hw = "H, W" if expected_hw is None else ", ".join("H" if d is None else str(d) for d in expected_hw)
    want = f"(N, {hw}, 3) channels-last RGB, normalized with transfer.preprocessing.preprocess"
    if len(shape) == 3 and shape[-1] == 3:
        raise InputShapeError(f"expected a batch {want}; got one image of shape {shape} (add a batch axis: x[None])")
    if len(shape) != 4:
        raise InputShapeError(f"expected images {want}; got shape {shape}")
    if shape[-1] != 3:
        hint = " (this looks like NCHW: transpose with x.transpose(0, 2, 3, 1))" if shape[1] == 3 else ""
        raise InputShapeError(f"expected images {want}; got {shape[-1]} channels in shape {shape}{hint}")
    if expected_hw is not None:
        for axis, (got, exp) in enumerate(zip(shape[1:3], expected_hw)):
            if exp is not None and got != exp:
                raise InputShapeError(f"expected images {want}; got {'HW'[axis]}={got} in shape {shape}")
    return x


# ============================================================================ fast inference
@dataclass
class _Step:
    """One folded conv: ``kind`` is ``"conv"`` (im2col/1x1 GEMM) or ``"dw"``; ``kernel`` already scaled by BN."""

    kind: str
    kernel: Any
    bias: Any
    stride: int
    ksize: int
    relu6: bool


class FoldedMobileNetV2:
    """Inference-only MobileNetV2 over plain arrays, with every batch norm folded into its conv.

    Built from a model made by :func:`mobilenet_v2` (any cut). It reads the model's weights when
    built and on :meth:`refresh` (call it after the weights change); the model itself is untouched.

    Args:
        model: a MobileNetV2 from :func:`mobilenet_v2` (possibly cut).
        until: last block to run (``"features.N"``/``N``), ``"embedding"`` (pooled ``(N, 1280)``), or
            ``"logits"``; default: whatever the model ends with.
        threads: worker threads for batches of 2 and more (default: the CPU count, at most 4).
        kernels: ``"numpy"`` (NumPy ops only), ``"numba"`` (every conv one compiled kernel with its bias,
            ReLU6 and residual fused, the GEMMs still BLAS, bands shared by numba's threads, activations
            in reused buffers: :mod:`transfer._numba_kernels`; equal to the NumPy path to float32
            rounding; needs the ``accel`` extra), or ``"auto"`` (numba when installed).

    Call it on ``(N, H, W, 3)`` float arrays (NumPy or the active device's); the result is on the same
    device: ``(N, h, w, C)`` feature maps, ``(N, 1280)`` embeddings or ``(N, 1000)`` logits.
    """

    def __init__(self, model: Model, until: str | int | None = None, threads: int | None = None,
                 kernels: str = "auto"):
        if kernels not in ("auto", "numpy", "numba"):
            raise ValueError(f"kernels must be 'auto', 'numpy' or 'numba', got {kernels!r}")
        if kernels == "numba" and not _numba_kernels.available():
            raise ValueError("kernels='numba' needs numba and SciPy: pip install 'playgrad[accel]'")
        self.kernels = "numba" if kernels == "numba" or (kernels == "auto" and _numba_kernels.available()) else "numpy"
        self.model = model
        present = [n for n in BLOCK_NAMES if _has_layer(model, _SPECS[n].layer_names()[0])]
        if not present or present != list(BLOCK_NAMES[: len(present)]):
            raise ValueError(f"model '{model.name}' is not a MobileNetV2 from transfer.mobilenet_v2 "
                             f"(blocks found: {present})")
        has_pool, has_top = _has_layer(model, "pool"), _has_layer(model, "classifier.1")
        if until is None:
            until = "logits" if has_top else (EMBEDDING if has_pool else present[-1])
        if until == "logits":
            if not has_top:
                raise ValueError(f"model '{model.name}' has no classifier; use until='embedding' or a block")
            self.last, self.pool, self.top = 18, True, True
        elif until == EMBEDDING:
            self.last, self.pool, self.top = 18, True, False
        else:
            self.last, self.pool, self.top = _block_index(until), False, False
        if self.last >= len(present):
            raise ValueError(f"model '{model.name}' ends at {present[-1]}; cannot run until {until!r}")
        self.until = until
        cpus = os.cpu_count() or 1
        self.threads = max(1, min(4, cpus) if threads is None else int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._lock = threading.Lock()  # one call at a time: the per-thread scratch buffers are shared
        self.refresh()

    def refresh(self) -> None:
        """Re-read and re-fold the model's current weights (after training or loading)."""
        model = self.model
        self._plan = None  # the compiled path's kernel calls hold the old weights
        self.blocks: list[tuple[BlockSpec, list[_Step]]] = []
        for spec in block_specs()[: self.last + 1]:
            names = spec.layer_names()
            steps = []
            convs = [n for n in names if isinstance(model.get_layer(n), Conv2D | DepthwiseConv2D)]
            for conv_name in convs:
                conv = model.get_layer(conv_name)
                bn = model.get_layer(names[names.index(conv_name) + 1])
                relu6 = names.index(conv_name) + 2 < len(names) and isinstance(
                    model.get_layer(names[names.index(conv_name) + 2]), ReLU)
                steps.append(_fold(conv, bn, relu6))
            self.blocks.append((spec, steps))
        if self.top:
            dense = model.get_layer("classifier.1")
            self.dense = (dense.kernel.data, dense.bias.data)

    # ------------------------------------------------------------------------------ running
    def __call__(self, x: Any, start: str | int | None = None) -> Any:
        """Run blocks ``start`` (default the stem; then ``x`` is that block's input) to ``until`` on ``x``."""
        first = 0 if start is None else _block_index(start)
        if first == 0:
            check_images(x, None)
        # The folded weights decide the path: a host batch for a net on the GPU is copied over and
        # its result copied back (CuPy refuses host arrays in its kernels), rather than sent down
        # the NumPy path with device kernels.
        xp = backend.get_array_module(self.blocks[0][1][0].kernel)
        host_batch = not backend.is_device_array(x)
        x = xp.ascontiguousarray(xp.asarray(x, dtype=xp.float32))
        if xp is not np:
            out = self._run_whole(x, first)
            return backend.to_numpy(out) if host_batch else out
        # Our threads split the bands; BLAS spawning its own for each small band GEMM only adds
        # wake-ups (costly on a busy machine), so it runs single-threaded here.
        with self._lock, _single_threaded_blas():
            if self.kernels == "numba":
                return self._run_compiled(x, first)
            return self._run_banded(x, first)

    def _run_whole(self, x: Any, first: int) -> Any:
        """Whole-batch ops (the CuPy path: a few big kernels beat many small ones on a GPU)."""
        for spec, steps in self.blocks[first:]:
            inp = x
            for step in steps:
                x = _conv_step(x, step)
            if spec.residual:
                x += inp
        return self._finish(x)

    def _finish(self, x: Any, copy: bool = False) -> Any:
        """Pooling and the classifier where the net has them; ``copy``: return a fresh array, not ``x``."""
        if self.pool:
            x = x.mean(axis=(1, 2))
            if self.top:
                kernel, bias = self.dense
                x = x @ kernel
                x += bias
            return x
        return x.copy() if copy else x

    def _run_banded(self, x: Any, first: int) -> Any:
        """NumPy path: every conv runs band by band so its output is finished (bias, ReLU6, residual)
        while still in cache, 3x3 inputs are written straight into zero-bordered buffers, and the
        bands are shared among threads."""
        specs = self.blocks[first:]
        # Which step outputs feed a 3x3 conv (and so are written padded)?
        flat = [(spec, k, step) for spec, steps in specs for k, step in enumerate(steps)]
        if flat and flat[0][2].ksize == 3:
            x = _padded(x)
            padded_in = True
        else:
            padded_in = False
        block_input = x
        for idx, (spec, k, step) in enumerate(flat):
            if k == 0:
                block_input = x
            pad_out = idx + 1 < len(flat) and flat[idx + 1][2].ksize == 3
            last_of_block = k == len(self.blocks[BLOCK_NAMES.index(spec.name)][1]) - 1
            residual = block_input if (spec.residual and last_of_block) else None
            x = self._banded_step(x, padded_in, step, pad_out, residual)
            padded_in = pad_out
        return self._finish(x)

    def _banded_step(self, x: Any, padded_in: bool, step: _Step, pad_out: bool, residual: Any) -> np.ndarray:
        n = x.shape[0]
        h_in, w_in = (x.shape[1] - 2, x.shape[2] - 2) if padded_in else x.shape[1:3]
        s = step.stride
        ho, wo = (h_in - 1) // s + 1, (w_in - 1) // s + 1
        cout = step.bias.shape[0]
        if pad_out:
            out = np.empty((n, ho + 2, wo + 2, cout), np.float32)
            out[:, 0] = 0
            out[:, -1] = 0
            out[:, :, 0] = 0
            out[:, :, -1] = 0
            dest = out[:, 1:-1, 1:-1]
        else:
            out = dest = np.empty((n, ho, wo, cout), np.float32)
        rows = max(1, _BAND_ELEMS // (wo * max(cout, x.shape[3])))
        # _run_bands splits the scratch into quarters: the accumulator, a tap product and the stem's im2col.
        im2col = 9 * x.shape[3] if step.ksize == 3 and step.kind != "dw" else 0
        scratch_elems = 4 * rows * wo * max(cout, im2col)
        if step.ksize == 1 and not padded_in and not pad_out:
            # Plain in, plain out: bands may run across image boundaries (one big GEMM at 7x7).
            xs, ds = x.reshape(1, n * ho, wo, x.shape[3]), dest.reshape(1, n * ho, wo, cout)
            rs = None if residual is None else residual.reshape(1, n * ho, wo, cout)
            items = [(0, r, min(r + rows, n * ho)) for r in range(0, n * ho, rows)]
        else:
            xs, ds, rs = x, dest, residual
            items = [(b, r, min(r + rows, ho)) for b in range(n) for r in range(0, ho, rows)]
        run = _run_bands
        if self._pool is None or len(items) < 2:
            run(xs, ds, rs, step, items, self._scratch(0, scratch_elems))
            return out
        groups = np.array_split(np.arange(len(items)), min(self.threads, len(items)))
        futures = [self._pool.submit(run, xs, ds, rs, step, [items[i] for i in g],
                                     self._scratch(t, scratch_elems))
                   for t, g in enumerate(groups[1:], start=1)]
        run(xs, ds, rs, step, [items[i] for i in groups[0]], self._scratch(0, scratch_elems))
        for f in futures:
            f.result()
        return out

    def _run_compiled(self, x: np.ndarray, first: int) -> np.ndarray:
        """The ``kernels="numba"`` path: each conv is one compiled kernel over the whole (chunk of the) batch,
        its bands shared by numba's threads, every activation in one of three reused buffers."""
        n = x.shape[0]
        if n == 0:  # nothing to compute; the NumPy path gives the empty result its shape
            return self._run_banded(x, first)
        with _numba_kernels.LOCK:
            _numba_kernels.set_threads(self.threads)
            # big batches in chunks, so the three buffers stay bounded (77 MB each at 224x224)
            chunk = max(1, _ARENA_ELEMS // self._largest_activation(x.shape[1:3], first))
            parts = []
            for i in range(0, n, chunk):
                source, calls, result = self._compiled_plan(x[i : i + chunk].shape, first)
                np.copyto(source, x[i : i + chunk])
                for kernel, args in calls:
                    kernel(*args)
                parts.append(self._finish(result, copy=True))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _largest_activation(self, hw: tuple[int, int], first: int) -> int:
        """Floats in the largest step output of one image of size ``hw`` entering block ``first``."""
        h, w = hw
        largest = 0
        for _, steps in self.blocks[first:]:
            for step in steps:
                h, w = (h - 1) // step.stride + 1, (w - 1) // step.stride + 1
                largest = max(largest, h * w * step.bias.shape[0])
        return largest

    def _compiled_plan(self, shape: tuple[int, ...], first: int) -> tuple[np.ndarray, list, np.ndarray]:
        """The kernel calls that run blocks ``first..until`` on a batch of ``shape`` (N, H, W, C), each with
        its arguments bound to views of the reused buffers: ``(input slot, [(kernel, args)], result view)``.
        Built once per shape (Python's work per call is then one loop over the calls)."""
        key = (shape, first)
        if getattr(self, "_plan", None) is not None and self._plan[0] == key:
            return self._plan[1]
        kernels = _numba_kernels
        n = shape[0]
        buffers = self._arena(n * self._largest_activation(shape[1:3], first))
        x = source = np.empty(shape, np.float32)  # the caller's batch is copied here
        calls: list[tuple[Any, tuple]] = []
        for spec, steps in self.blocks[first:]:
            block_input = x
            k = 0
            if spec.expand and _FUSE_KERNELS:  # the whole block as one kernel, where its bands are tall enough
                expand, dw, project = steps
                ho, wo = (x.shape[1] - 1) // dw.stride + 1, (x.shape[2] - 1) // dw.stride + 1
                cout = project.bias.shape[0]
                rows = min(ho, self._band_rows(n * ho, wo * max(expand.bias.shape[0], cout)))
                # each band expands up to 2 input rows its neighbours expand too: worth it for 8 rows or more
                if rows == ho or rows * dw.stride >= 8:
                    free = next(b for b in buffers if not np.may_share_memory(b, x))
                    out = free[: n * ho * wo * cout].reshape(n, ho, wo, cout)
                    calls.append((kernels.inverted_residual, (
                        x, expand.kernel, expand.bias, dw.kernel, dw.bias, dw.stride, project.kernel, project.bias,
                        spec.residual, out, rows)))
                    x, k = out, len(steps)
            while k < len(steps):
                step = steps[k]
                # a depthwise step and the projection after it run as one kernel (k moves past both)
                fuse = _FUSE_KERNELS and step.kind == "dw" and step.relu6 and k + 1 < len(steps)
                project = steps[k + 1] if fuse else None
                k += 1 if project is None else 2
                h, w = x.shape[1:3]
                ho, wo = (h - 1) // step.stride + 1, (w - 1) // step.stride + 1
                cout = (step if project is None else project).bias.shape[0]
                residual = block_input if spec.residual and k == len(steps) else _NO_RESIDUAL
                # any buffer not holding this step's input or the block's input (the residual)
                free = next(b for b in buffers
                            if not (np.may_share_memory(b, x) or np.may_share_memory(b, block_input)))
                out = free[: n * ho * wo * cout].reshape(n, ho, wo, cout)
                if project is not None:
                    c = x.shape[3]
                    rows = self._band_rows(n * ho, wo * max(c, cout))
                    calls.append((kernels.depthwise_project, (
                        x, step.kernel, step.bias, step.stride, project.kernel, project.bias,
                        residual.reshape(-1, cout), out.reshape(-1, cout), rows)))
                elif step.kind == "dw":
                    calls.append((kernels.depthwise3x3, (x, step.kernel, step.bias, step.stride, step.relu6, out)))
                elif step.ksize == 3:
                    rows = self._band_rows(ho, wo * 9 * x.shape[3])
                    calls.append((kernels.stem3x3, (x, step.kernel, step.bias, step.stride, step.relu6, out, rows)))
                else:
                    m = n * ho * wo
                    rows = self._band_rows(m, max(cout, x.shape[3]))
                    calls.append((kernels.pointwise, (x.reshape(m, -1), step.kernel, step.bias, step.relu6,
                                                      residual.reshape(-1, cout), out.reshape(m, cout), rows)))
                x = out
        self._plan = (key, (source, calls, x))
        return self._plan[1]

    def _band_rows(self, rows: int, elems_per_row: int) -> int:
        """Rows per band of a compiled kernel: a band that stays in L2, and with several threads at least two
        bands per thread where there are rows enough (one thread takes the biggest band: fewer, larger GEMMs)."""
        per_band = max(1, _COMPILED_BAND_ELEMS // elems_per_row)
        return per_band if self.threads == 1 else max(1, min(per_band, -(-rows // (2 * self.threads))))

    def _arena(self, elems: int) -> list[np.ndarray]:
        """Three reused float32 buffers of at least ``elems`` each: a step's input, the block's input (its
        residual) and the step's output. Reused because a fresh large array page-faults on first touch."""
        arena = getattr(self, "_arena_buffers", None)
        if arena is None or arena[0].size < elems:
            arena = self._arena_buffers = [np.empty(elems, np.float32) for _ in range(3)]
        return arena

    def _scratch(self, thread: int, min_elems: int = 0) -> np.ndarray:
        """A per-thread scratch buffer of at least ``min_elems`` floats (reused: fresh big allocations would
        page-fault every call; it grows only for images wide enough that one output row outgrows it)."""
        if not hasattr(self, "_scratches"):
            self._scratches: dict[int, np.ndarray] = {}
        buf = self._scratches.get(thread)
        if buf is None or len(buf) < min_elems:
            buf = self._scratches[thread] = np.empty(max(_SCRATCH_ELEMS, min_elems), np.float32)
        return buf

    def close(self) -> None:
        """Stop the worker threads (also done when the object is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self._arena_buffers = None
        self._plan = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block when threadpoolctl is installed; else do nothing."""
    global _BLAS_CONTROLLER
    try:
        import threadpoolctl
    except ImportError:  # optional: without it BLAS keeps its default threading
        yield
        return
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = threadpoolctl.ThreadpoolController()
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


_BLAS_CONTROLLER: Any = None
_BAND_ELEMS = 32_768  # floats per band of output (128 KiB): the band and its inputs stay in L2
_COMPILED_BAND_ELEMS = 131_072  # compiled kernels: 512 KiB bands (a quarter of L2) gave 5-10% less CPU than 128 KiB
_SCRATCH_ELEMS = 4 * 200_000  # per thread: GEMM/accumulator band, a tap product, an im2col band
_ARENA_ELEMS = 16 * 112 * 112 * 96  # floats per activation buffer of the compiled path (77 MB; a 16-image chunk)
_NO_RESIDUAL = np.empty((0,), np.float32)
_FUSE_KERNELS = True  # compiled path: a block's convs as one kernel where it pays (False: one per conv, to compare)


def _run_bands(x: np.ndarray, dest: np.ndarray, residual: Any, step: _Step, items: list, scratch: np.ndarray) -> None:
    """Compute output rows ``r0:r1`` of image ``b`` for each ``(b, r0, r1)`` in ``items`` into ``dest``.

    ``x`` is the step's input (zero-bordered when ``step.ksize == 3``); ``dest`` an (N, Ho, Wo, Cout)
    view. Bias, ReLU6 and the residual are applied to the band in scratch before one write to ``dest``.
    """
    wo, cout = dest.shape[2], dest.shape[3]
    s = step.stride
    third = len(scratch) // 4
    for b, r0, r1 in items:
        nr = r1 - r0
        m = nr * wo
        acc = scratch[: m * cout].reshape(nr, wo, cout)
        if step.kind == "dw":
            src = x[b]
            tmp = scratch[third : third + m * cout].reshape(nr, wo, cout)
            for i in range(3):
                rows = slice(r0 * s + i, r0 * s + i + s * (nr - 1) + 1, s)
                for j in range(3):
                    tap = src[rows, j : j + s * (wo - 1) + 1 : s]
                    if i == j == 0:
                        np.multiply(tap, step.kernel[0, 0], out=acc)
                    else:
                        np.multiply(tap, step.kernel[i, j], out=tmp)
                        acc += tmp
        elif step.ksize == 1:
            np.matmul(x[b, r0:r1].reshape(m, -1), step.kernel, out=acc.reshape(m, cout))
        else:  # the 3x3 stem: im2col of this band, then one GEMM
            src = x[b]
            c = src.shape[2]
            sy, sx, sc = src.strides
            view = np.lib.stride_tricks.as_strided(src[r0 * s :], (nr, wo, 3, 3, c), (sy * s, sx * s, sy, sx, sc))
            cols = scratch[2 * third : 2 * third + m * 9 * c].reshape(nr, wo, 3, 3, c)
            cols[...] = view
            np.matmul(cols.reshape(m, 9 * c), step.kernel, out=acc.reshape(m, cout))
        acc += step.bias
        d = dest[b, r0:r1]
        if step.relu6:
            np.clip(acc, 0.0, 6.0, out=d)
        elif residual is not None:
            np.add(acc, residual[b, r0:r1], out=d)
        else:
            d[...] = acc


def _has_layer(model: Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _fold(conv: Any, bn: BatchNormalization, relu6: bool) -> _Step:
    """Fold ``bn`` into ``conv``: ``bn(conv(x)) == conv'(x) + b'`` with the scale on the output channels."""
    xp = backend.get_array_module(bn.moving_variance.data)
    var = bn.moving_variance.data.astype(xp.float64)
    scale = (bn.gamma.data if bn.gamma is not None else 1.0) / xp.sqrt(var + bn.epsilon)
    shift = (bn.beta.data if bn.beta is not None else 0.0) - bn.moving_mean.data * scale
    conv_bias = conv.bias.data if conv.bias is not None else 0.0
    bias = (shift + conv_bias * scale).astype(xp.float32)
    if isinstance(conv, DepthwiseConv2D):
        kh, kw, c, mult = conv.depthwise_kernel.shape
        if mult != 1:
            raise ValueError(f"layer '{conv.name}': depth_multiplier {mult} is not supported by the folded path")
        kernel = (conv.depthwise_kernel.data[..., 0] * scale).astype(xp.float32)  # (kh, kw, C)
        return _Step("dw", kernel, bias, conv.strides[0], kh, relu6)
    kh, kw, cin, cout = conv.kernel.shape
    kernel = (conv.kernel.data * scale).astype(xp.float32).reshape(kh * kw * cin, cout)
    return _Step("conv", xp.ascontiguousarray(kernel), bias, conv.strides[0], kh, relu6)


def _relu6_(y: Any) -> None:
    xp = backend.get_array_module(y)
    xp.clip(y, 0.0, 6.0, out=y)


def _padded(x: Any) -> Any:
    """``x`` (N, H, W, C) with one row/column of zeros on every side (torch's padding=1)."""
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    out = xp.empty((n, h + 2, w + 2, c), dtype=x.dtype)
    out[:, 0] = 0
    out[:, -1] = 0
    out[:, 1:-1, 0] = 0
    out[:, 1:-1, -1] = 0
    out[:, 1:-1, 1:-1] = x
    return out


def _conv_step(x: Any, step: _Step) -> Any:
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    s = step.stride
    if step.kind == "conv" and step.ksize == 1:
        y = x.reshape(-1, c) @ step.kernel
        y = y.reshape(n, h, w, -1)
    elif step.kind == "conv":
        xpad = _padded(x)
        ho, wo = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
        sn, sy, sx, sc = xpad.strides
        view = xp.lib.stride_tricks.as_strided(xpad, (n, ho, wo, 3, 3, c), (sn, sy * s, sx * s, sy, sx, sc))
        y = (view.reshape(n * ho * wo, 9 * c) @ step.kernel).reshape(n, ho, wo, -1)
    else:
        y = _depthwise3x3(x, step.kernel, s)
    y += step.bias
    if step.relu6:
        _relu6_(y)
    return y


def _depthwise3x3(x: Any, kernel: Any, stride: int) -> Any:
    """3x3 depthwise conv, padding 1, of ``x`` (N, H, W, C) with ``kernel`` (3, 3, C) -> (N, Ho, Wo, C).

    Works image by image so the accumulator and its scratch stay in cache across the 9 taps.
    """
    xp = backend.get_array_module(x)
    n, h, w, c = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    xpad = _padded(x)
    out = xp.empty((n, ho, wo, c), dtype=x.dtype)
    tmp = xp.empty((ho, wo, c), dtype=x.dtype)
    hs, ws = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    for b in range(n):
        acc = out[b]
        src = xpad[b]
        xp.multiply(src[0:hs:stride, 0:ws:stride], kernel[0, 0], out=acc)
        for i in range(3):
            for j in range(3):
                if i == j == 0:
                    continue
                xp.multiply(src[i : i + hs : stride, j : j + ws : stride], kernel[i, j], out=tmp)
                acc += tmp
    return out
