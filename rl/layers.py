"""Keras-style layers: Dense, Conv2D, BatchNormalization, ... -- objects that own weights and turn
input tensors into output tensors.

The base they share (:class:`~rl.layer_base.Layer`, the symbolic :class:`~rl.layer_base.KerasTensor`,
graph nodes and the class registry used by :func:`deserialize`) lives in :mod:`rl.layer_base`; its
public names are re-exported here, so ``rl.layers.Layer`` keeps working.

Names and weights follow Keras / TF.js so models can be exported later: a layer's auto name is
its snake-case class name (``dense``, ``conv2d``, ``batch_normalization``, ``re_lu``), made unique
*by the model it joins* (``dense``, ``dense_1``, ...). There is no process-wide counter, so two
models built one after the other both start at ``dense``. Weights are named
``"<layer>/<weight>"``: ``dense/kernel (in, out)``, ``dense/bias (out,)``,
``conv2d/kernel (kh, kw, in, out)``, ``depthwise_conv2d/depthwise_kernel (kh, kw, in, mult)``,
``batch_normalization/gamma|beta|moving_mean|moving_variance (C,)``.

Trainable parameters are tensors with ``requires_grad=True``; buffers (BatchNormalization's
moving statistics) never require grad. ``layer.trainable = False`` freezes every parameter of the
layer (no gradients, left out of ``parameters()``), and a frozen BatchNormalization normalizes
with its moving statistics even in training mode (Keras 2.x+ behaviour), which is what
fine-tuning a pretrained backbone needs.

Train/inference mode is the global ``rl.tensor.config.train`` switch (``using_config``), not an
argument threaded through every call. Images are NHWC (channels last), as Keras and TF.js.

Dtype: a layer computes in float32 unless given ``dtype="float64"`` (for gradient checks) or
built on a symbolic ``Input(..., dtype="float64")`` (a model's ``dtype=`` does the same for its
layers). Real inputs never change it: as in Keras, a layer casts inputs of another dtype to its
own, so float64 NumPy observations still run a float32 network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl import functional as F
from rl import initializers, nn_ops
from rl import random as rl_random
from rl.layer_base import KerasTensor, Layer, LoadResult, Node, deserialize, serialize
from rl.tensor import Tensor, config, no_grad

__all__ = [
    "Activation",
    "Add",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "Input",
    "InputLayer",
    "KerasTensor",
    "Layer",
    "LoadResult",
    "MaxPooling2D",
    "Multiply",
    "ReLU",
    "Reshape",
    "Node",
    "ZeroPadding2D",
    "deserialize",
    "forward_array",
    "forward_stack",
    "serialize",
]


# ============================================================================ helpers
def _pair(value: Any, what: str) -> tuple[int, int]:
    """A kernel size, stride, dilation or pool size as ``(rows, cols)``, both positive ints.

    Checked here, when the layer is made, so a zero stride names its argument instead of failing
    later inside a convolution."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}") from None
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _padding_spec(padding: Any) -> Any:
    """``"valid"`` / ``"same"`` or explicit ``((top, bottom), (left, right))`` pixel counts."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            raise ValueError(
                f"padding must be 'valid', 'same', an int or ((top, bottom), (left, right)); got {padding!r}"
            )
        return mode
    if isinstance(padding, int | np.integer):
        p = int(padding)
        return (p, p), (p, p)
    a, b = padding
    if isinstance(a, int | np.integer):
        return (int(a), int(a)), (int(b), int(b))
    return (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))


def _padding_config(padding: Any) -> Any:
    return padding if isinstance(padding, str) else [list(padding[0]), list(padding[1])]


def _window_out(size: int | None, k: int, stride: int, dilation: int, pad: Any, layer: Any) -> int | None:
    """Output length of a sliding window along one axis (TF's rule for 'same')."""
    if size is None:
        return None
    if pad == "same":
        return -(-size // stride)
    before, after = (0, 0) if pad == "valid" else pad
    out = (size + before + after - dilation * (k - 1) - 1) // stride + 1
    if out < 1:  # as Keras, at build time: else the model builds and only its first call fails
        raise ValueError(f"layer '{layer.name}': a window of {k} (dilation {dilation}) does not fit an input of "
                         f"{size} padded by {before + after} to {size + before + after}")
    return out


def _axis_pads(padding: Any, axis: int) -> Any:
    return padding if isinstance(padding, str) else padding[axis]


def _activation_name(activation: Any) -> str:
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", repr(activation))


def _check_rank(layer: Layer, input_shape: Any, rank: int, what: str) -> None:
    if len(input_shape) != rank:
        raise ValueError(
            f"layer '{layer.name}' ({type(layer).__name__}) expects {what} inputs of rank {rank}, "
            f"got shape {tuple(input_shape)}"
        )


# ============================================================================ input
class InputLayer(Layer):
    """The entry of a functional graph: holds the input's shape and dtype, computes nothing.

    Args:
        input_shape: shape of one sample (no batch axis), e.g. ``(28, 28, 1)``.
        batch_size: fixed batch size, or ``None`` (any).
    """

    @classmethod
    def _base_name(cls) -> str:
        return "input"

    def __init__(
        self,
        input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        name: str | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        sparse: bool = False,
        trainable: bool = True,
    ):
        if input_shape is None and batch_input_shape is None:
            raise ValueError("InputLayer needs input_shape (one sample's shape) or batch_input_shape")
        super().__init__(name=name, trainable=trainable, dtype=dtype or np.float32, input_shape=input_shape,
                         batch_input_shape=batch_input_shape, batch_size=batch_size)
        self.built = True
        node = Node(self, [], True, {})
        node.outputs.append(KerasTensor(self._batch_input_shape, self._dtype, node, 0))  # type: ignore[arg-type]
        self._inbound_nodes.append(node)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"batch_input_shape": list(self._batch_input_shape), "dtype": self.dtype,  # type: ignore[arg-type]
                "sparse": False, "name": self.name}


def Input(  # noqa: N802 - Keras' name for a function returning a placeholder
    shape: Sequence[int | None],
    batch_size: int | None = None,
    name: str | None = None,
    dtype: Any = None,
) -> KerasTensor:
    """A symbolic input for the functional API: ``x = Input((28, 28, 1))``.

    Args:
        shape: one sample's shape, no batch axis.
        dtype: ``"float32"`` (default) or ``"float64"``; layers downstream build in this dtype.
    Returns:
        a :class:`KerasTensor` of shape ``(batch_size, *shape)``.
    """
    return InputLayer(input_shape=tuple(shape), batch_size=batch_size, dtype=dtype, name=name).output


def forward_array(layers: Sequence[Layer], x: Any) -> Any:
    """Run built ``layers`` in order on a raw array ``x`` for inference: no Tensors, no graph.

    Layers with a ``call_array`` (:class:`Dense`) run their array code; any other layer runs its ordinary
    call under ``no_grad``. The result equals ``model(x).data`` of a Sequential of these layers, bit for
    bit; the saving is the per-layer Tensor and dispatch cost, which on the small batches of a rollout
    (an agent acting in 32 worlds) is as large as the arithmetic.
    """
    for layer in layers:
        fast = getattr(layer, "call_array", None)
        if fast is not None and layer.built:
            x = fast(x)
        else:
            with no_grad():
                x = layer(Tensor(x)).data
    return x


def forward_stack(layers: Sequence[Layer], x: Tensor) -> Tensor:
    """Run built ``layers`` in order on the Tensor ``x``, as one graph node where they allow it.

    A stack of :class:`Dense` layers whose activations are linear, tanh or ReLU, on ``x`` of their dtype,
    becomes one :func:`rl.functional.dense_stack` node (the values and gradients of the layer-by-layer
    calls, bit for bit, with one dispatch instead of one per layer: on a small MLP's minibatch the
    dispatch costs as much as the arithmetic). Anything else runs layer by layer, as ``Sequential`` does.
    """
    stack = []
    for layer in layers:
        if type(layer) is not Dense or not layer.built or x.data.dtype != layer._dtype or (
                layer._fused is None and layer._act is not None):
            stack = None
            break
        stack.append((layer.kernel, layer.bias, layer._fused))
    if not stack:
        for layer in layers:
            x = layer(x)
        return x
    return F.dense_stack(x, stack)


# ============================================================================ core layers
class Dense(Layer):
    """Fully connected: ``activation(x @ kernel + bias)`` on the last axis.

    Shapes: ``(..., in)`` -> ``(..., units)``; weights ``kernel (in, units)``, ``bias (units,)``.

    Args:
        units: output features.
        activation: Keras name (``"relu"``, ``"tanh"``, ``"softmax"``, ...), a callable, or None (linear).
        use_bias: add a bias.
        kernel_initializer, bias_initializer: names, dicts or callables (see :mod:`rl.initializers`).
    """

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"Dense units must be >= 1, got {units}")
        self.units = int(units)
        self.activation = _activation_name(activation)
        self._act = None if activation in (None, "linear") else F.get_activation(activation)
        # tanh and relu run inside the linear node (one graph node per layer instead of two).
        self._fused = next((k for k, f in F.LINEAR_FUSED_ACTIVATIONS.items() if self._act is f), None)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel: Tensor | None = None
        self.bias: Tensor | None = None

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"layer '{self.name}' (Dense) needs the last input axis known, got {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)

    def call(self, inputs):
        if self._fused is not None:
            return F.linear(inputs, self.kernel, self.bias, activation=self._fused)  # type: ignore[arg-type]
        y = F.linear(inputs, self.kernel, self.bias)  # type: ignore[arg-type]
        return y if self._act is None else self._act(y)

    def call_array(self, x: Any) -> Any:
        """Inference on a raw array ``(..., in)``, no Tensor or graph: what ``call`` computes, bit for bit.

        A built layer's fast path for loops that only act (an agent's rollout): see :func:`forward_array`.
        """
        if x.dtype != self._dtype:
            x = x.astype(self._dtype)
        bias = self.bias.data if self.bias is not None else None
        if self._fused is not None or self._act is None:
            return F.linear_array(x, self.kernel.data, bias, self._fused)  # type: ignore[union-attr]
        with no_grad():
            return self._act(Tensor(F.linear_array(x, self.kernel.data, bias))).data  # type: ignore[union-attr]

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


class Activation(Layer):
    """Apply a named activation: ``Activation("relu")``; shape unchanged."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = _activation_name(activation)
        self._act = F.get_activation(activation)

    def call(self, inputs):
        return self._act(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Layer):
    """Rectified linear unit, optionally capped: ``ReLU(max_value=6.0)`` is MobileNet's ReLU6.

    ``min(max_value, x)`` for ``x > threshold``, ``negative_slope * (x - threshold)`` below it
    (only ``threshold=0`` is supported).
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if threshold != 0.0:
            raise ValueError(f"ReLU threshold other than 0 is not supported (got {threshold})")
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU max_value must be >= 0, got {max_value}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def call(self, inputs):
        if self.negative_slope:
            y = F.leaky_relu(inputs, self.negative_slope)
            return y if self.max_value is None else F.minimum(y, self.max_value)
        if self.max_value is None:
            return F.relu(inputs)
        if self.max_value == 6.0:  # MobileNet's: the gradient is 0 at both kinks, as in TF and F.relu6
            return F.relu6(inputs)
        return F.clip(inputs, 0.0, self.max_value)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        cfg = {**super().get_config(), "max_value": self.max_value}
        if self.negative_slope:  # TF.js' ReLU knows only max_value; write the rest when used
            cfg["negative_slope"] = self.negative_slope
        return cfg


class Flatten(Layer):
    """``(N, d1, d2, ...)`` -> ``(N, d1*d2*...)``, in row-major (NHWC) order as Keras."""

    def __init__(self, data_format: str = "channels_last", **kwargs: Any):
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"Flatten supports data_format='channels_last' only, got {data_format!r}")

    def call(self, inputs):
        # The size is spelled out: -1 cannot be inferred from an empty batch.
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1): ``(N, ...)`` -> ``(N, *target_shape)``."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        # -1 resolved from one sample's shape, so an empty batch reshapes too (NumPy cannot infer it there).
        return inputs.reshape(self.compute_output_shape(tuple(inputs.shape)))

    def compute_output_shape(self, input_shape):
        target = list(self.target_shape)
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            rest = input_shape[1:]
            total = None if any(d is None for d in rest) else math.prod(rest)
            if total is not None and total % known:
                raise ValueError(f"layer '{self.name}': cannot reshape {tuple(rest)} into {self.target_shape}")
            target[target.index(-1)] = None if total is None else total // known
        else:
            rest = input_shape[1:]
            if all(d is not None for d in rest) and math.prod(rest) != math.prod(target):
                raise ValueError(f"layer '{self.name}': cannot reshape {tuple(rest)} into {self.target_shape}")
        return (input_shape[0], *target)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """Inverted dropout in training mode (``config.train``), identity in inference; shape unchanged.

    Args:
        rate: probability of zeroing each element.
        seed: draw masks from a private ``rl.random.Generator(seed)`` instead of the default one.
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        if noise_shape is not None:
            raise ValueError("Dropout noise_shape is not supported")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None
        if seed is not None:
            self._rng = rl_random.Generator(seed)

    def call(self, inputs, training: bool | None = None):
        return nn_ops.dropout(inputs, self.rate, training, self._rng)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": None, "seed": self.seed}


# ============================================================================ convolution
class _Conv2DBase(Layer):
    """What Conv2D and DepthwiseConv2D share: the sliding-window arguments, the activation and the bias.

    Subclasses create their kernel in ``build``, compute in ``call`` (ending with :meth:`_activate`)
    and say how many output channels an input of ``c`` channels gives (:meth:`_out_channels`).
    """

    def __init__(
        self,
        kernel_size: Any,
        strides: Any,
        padding: Any,
        data_format: str,
        dilation_rate: Any,
        activation: Any,
        use_bias: bool,
        bias_initializer: Any,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"{type(self).__name__} supports data_format='channels_last' only, got {data_format!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding_spec(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.activation = _activation_name(activation)
        self._act = None if activation in (None, "linear") else F.get_activation(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias: Tensor | None = None

    def _activate(self, y: Tensor) -> Tensor:
        return y if self._act is None else self._act(y)

    def _out_channels(self, c: int | None) -> int | None:
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        return (
            n,
            _window_out(h, kh, sh, dh, _axis_pads(self.padding, 0), self),
            _window_out(w, kw, sw, dw, _axis_pads(self.padding, 1), self),
            self._out_channels(c),
        )


class Conv2D(_Conv2DBase):
    """2-D convolution on NHWC images: ``(N, H, W, Cin)`` -> ``(N, Ho, Wo, filters)``.

    Weights ``kernel (kh, kw, Cin/groups, filters)``, ``bias (filters,)``.

    Args:
        filters: output channels.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``.
        padding: ``"valid"``, ``"same"`` (TF's rule: a stride-2 conv on an even size pads only
            bottom/right), an int, or ``((top, bottom), (left, right))`` (not a Keras option;
            export it as ZeroPadding2D + "valid").
        dilation_rate: int or pair.
        groups: grouped convolution; ``groups == Cin`` with one filter per group is depthwise.
        activation, use_bias, kernel_initializer, bias_initializer: as :class:`Dense`.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: Any = "valid",
        data_format: str = "channels_last",
        dilation_rate: Any = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, **kwargs)
        self.filters = int(filters)
        self.groups = int(groups)
        if self.filters % self.groups:
            raise ValueError(f"Conv2D filters={self.filters} is not divisible by groups={self.groups}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel: Tensor | None = None

    def build(self, input_shape):
        _check_rank(self, input_shape, 4, "NHWC")
        cin = input_shape[-1]
        if cin is None or cin % self.groups:
            raise ValueError(f"layer '{self.name}': input channels {cin} not divisible by groups={self.groups}")
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, cin // self.groups, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, inputs):
        return self._activate(
            nn_ops.conv2d(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate, self.groups)
        )

    def _out_channels(self, c):
        return self.filters

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": _padding_config(self.padding),
            "data_format": "channels_last",
            "dilation_rate": list(self.dilation_rate),
            **({"groups": self.groups} if self.groups != 1 else {}),  # TF.js Conv2D has no groups key
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


class DepthwiseConv2D(_Conv2DBase):
    """Depthwise convolution: each input channel gets ``depth_multiplier`` filters of its own.

    ``(N, H, W, C)`` -> ``(N, Ho, Wo, C*depth_multiplier)``; weights
    ``depthwise_kernel (kh, kw, C, depth_multiplier)``, ``bias (C*depth_multiplier,)``.
    Arguments as :class:`Conv2D`.
    """

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: Any = "valid",
        depth_multiplier: int = 1,
        data_format: str = "channels_last",
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, **kwargs)
        self.depth_multiplier = int(depth_multiplier)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_kernel: Tensor | None = None

    def build(self, input_shape):
        _check_rank(self, input_shape, 4, "NHWC")
        c = input_shape[-1]
        kh, kw = self.kernel_size
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (kh, kw, c, self.depth_multiplier), self.depthwise_initializer
        )
        if self.use_bias:
            self.bias = self.add_weight("bias", (c * self.depth_multiplier,), self.bias_initializer)

    def call(self, inputs):
        return self._activate(nn_ops.depthwise_conv2d(
            inputs, self.depthwise_kernel, self.bias, self.strides, self.padding, self.dilation_rate
        ))

    def _out_channels(self, c):
        return None if c is None else c * self.depth_multiplier

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": _padding_config(self.padding),
            "depth_multiplier": self.depth_multiplier,
            "data_format": "channels_last",
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


class ZeroPadding2D(Layer):
    """Pad H and W with zeros: ``padding`` is an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``."""

    def __init__(self, padding: Any = (1, 1), data_format: str = "channels_last", **kwargs: Any):
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"ZeroPadding2D supports data_format='channels_last' only, got {data_format!r}")
        spec = _padding_spec(padding)
        if isinstance(spec, str):
            raise ValueError(f"ZeroPadding2D needs pixel counts, got {padding!r}")
        self.padding = spec

    def call(self, inputs):
        return nn_ops.pad2d(inputs, self.padding)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 4, "NHWC")
        n, h, w, c = input_shape
        (t, b), (l, r) = self.padding
        return (n, None if h is None else h + t + b, None if w is None else w + l + r, c)

    def get_config(self):
        return {**super().get_config(), "padding": _padding_config(self.padding), "data_format": "channels_last"}


class _Pooling2D(Layer):
    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: str = "channels_last", **kwargs: Any):
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"{type(self).__name__} supports data_format='channels_last' only")
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = _padding_spec(padding)
        if not isinstance(self.padding, str):
            raise ValueError(f"{type(self).__name__} padding must be 'valid' or 'same', got {padding!r}")

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 4, "NHWC")
        n, h, w, c = input_shape
        return (n, _window_out(h, self.pool_size[0], self.strides[0], 1, self.padding, self),
                _window_out(w, self.pool_size[1], self.strides[1], 1, self.padding, self), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": "channels_last"}


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows (strides default to ``pool_size``): ``(N, H, W, C)`` -> ``(N, Ho, Wo, C)``."""

    def call(self, inputs):
        return nn_ops.max_pool2d(inputs, self.pool_size, self.strides, self.padding)


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows (Keras' count of real cells with 'same'): NHWC in and out."""

    def call(self, inputs):
        return nn_ops.avg_pool2d(inputs, self.pool_size, self.strides, self.padding)


class GlobalAveragePooling2D(Layer):
    """Mean over H and W: ``(N, H, W, C)`` -> ``(N, C)`` (``(N, 1, 1, C)`` with ``keepdims``)."""

    def __init__(self, data_format: str = "channels_last", keepdims: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError("GlobalAveragePooling2D supports data_format='channels_last' only")
        self.keepdims = bool(keepdims)

    def call(self, inputs):
        return inputs.mean(axis=(1, 2), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 4, "NHWC")
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def get_config(self):
        cfg = {**super().get_config(), "data_format": "channels_last"}
        if self.keepdims:
            cfg["keepdims"] = True
        return cfg


# ============================================================================ normalization
class BatchNormalization(Layer):
    """Batch normalization over the last (channel) axis, Keras defaults ``momentum=0.99, epsilon=1e-3``.

    Training mode (``config.train`` and the layer trainable) normalizes with the batch statistics
    and updates ``moving_mean`` / ``moving_variance`` in place
    (``moving = moving * momentum + batch * (1 - momentum)``); inference mode, **or a frozen
    layer** (``trainable=False``), uses the moving statistics. Any input rank; shape unchanged.

    Weights: ``gamma``, ``beta`` (parameters), ``moving_mean``, ``moving_variance`` (buffers), all ``(C,)``.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.axis = int(axis[0] if isinstance(axis, list | tuple) else axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None

    def build(self, input_shape):
        rank = len(input_shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"layer '{self.name}': BatchNormalization supports the last axis only, got {self.axis}")
        c = input_shape[-1]
        if c is None:
            raise ValueError(f"layer '{self.name}' needs the channel axis known, got {tuple(input_shape)}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (c,), self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", (c,), self.beta_initializer)
        self.moving_mean = self.add_weight("moving_mean", (c,), self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (c,), self.moving_variance_initializer,
                                               trainable=False)

    def call(self, inputs, training: bool | None = None):
        if training is None:
            training = config.train
        training = training and self._trainable  # a frozen BN always runs in inference mode
        if inputs.shape[0] == 0:
            training = False  # an empty batch has no statistics: leave the moving ones untouched, as torch does
        return nn_ops.batch_norm(inputs, self.gamma, self.beta, self.moving_mean.data, self.moving_variance.data,
                        training, self.momentum, self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
        }


# ============================================================================ merging
class _Merge(Layer):
    def _check_inputs(self, input_shape: Any) -> None:
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs a list of at least 2 inputs")

    def build(self, input_shape):
        self._check_inputs(input_shape)


class Add(_Merge):
    """Elementwise sum of a list of same-shaped tensors (ResNet / MobileNetV2 skip connections)."""

    def call(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or any(a is not None and b is not None and a != b
                                               for a, b in zip(s, shapes[0])):
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}) got inputs of different shapes {shapes}")
        return shapes[0]


class Multiply(Add):
    """Elementwise product of a list of same-shaped tensors."""

    def call(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out


class Concatenate(_Merge):
    """Join a list of tensors along ``axis`` (default the last); other axes must match."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        return F.concat(inputs, axis=self.axis)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [list(s) for s in input_shape]
        axis = self.axis % len(shapes[0])
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
