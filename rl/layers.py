"""Keras-style layers: objects that own weights and turn input tensors into output tensors.

A :class:`Layer` is called like a function. On its first call it *builds* (creates its weights
from the input's shape, so ``Dense(64)`` never needs to be told its input size), then runs
``call``. Called on a symbolic :class:`KerasTensor` (from :func:`Input`) instead of a real tensor,
it records a graph node instead of computing; :class:`rl.models.Model` runs such graphs.

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
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from rl import backend, initializers
from rl import functional as F
from rl.tensor import Tensor, config, no_grad, using_config

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
    "MaxPooling2D",
    "Multiply",
    "ReLU",
    "Reshape",
    "ZeroPadding2D",
    "deserialize",
    "serialize",
]

Shape = tuple[int | None, ...]


def _snake_case(name: str) -> str:
    # Keras' to_snake_case: Conv2D -> conv2d, DepthwiseConv2D -> depthwise_conv2d, ReLU -> re_lu
    s = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _float_dtype(dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"layer dtype must be a float type, got {dt}")
    return dt


# ============================================================================ symbolic tensors
class KerasTensor:
    """A symbolic placeholder for a layer output in a functional graph: a shape, a dtype, a history.

    ``shape`` includes the batch axis (``None`` when unknown). ``node`` is the graph node that
    produced it and ``index`` its position among that node's outputs.
    """

    __slots__ = ("shape", "dtype", "node", "index")

    def __init__(self, shape: Shape, dtype: Any, node: Node | None = None, index: int = 0):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def layer(self) -> Layer:
        """The layer whose call produced this tensor."""
        return self.node.layer  # type: ignore[union-attr]

    def __repr__(self) -> str:
        where = f", created by layer '{self.node.layer.name}'" if self.node is not None else ""
        return f"KerasTensor(shape={self.shape}, dtype={self.dtype.name}{where})"


class Node:
    """One call of a layer in a graph: the symbolic inputs it took and the outputs it made."""

    __slots__ = ("layer", "inputs", "outputs", "kwargs", "single_input")

    def __init__(self, layer: Layer, inputs: list[KerasTensor], single_input: bool, kwargs: dict[str, Any]):
        self.layer = layer
        self.inputs = inputs
        self.single_input = single_input  # called with one tensor rather than a list
        self.kwargs = kwargs
        self.outputs: list[KerasTensor] = []


def _is_symbolic(x: Any) -> bool:
    if isinstance(x, KerasTensor):
        return True
    return isinstance(x, list | tuple) and len(x) > 0 and all(isinstance(t, KerasTensor) for t in x)


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped: tensor names as ``"layer/weight"``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


# ============================================================================ the base class
class Layer:
    """Base class of every layer (and of models).

    Subclasses implement ``build(input_shape)`` (create weights with :meth:`add_weight`; the shape
    includes the batch axis, ``None`` when symbolic), ``call(inputs)`` (tensors in, tensors out),
    ``compute_output_shape(input_shape)`` and ``get_config()``.

    Args:
        name: the layer's name; unique within a model. ``None`` gives the Keras auto name when the
            layer joins a model (``dense``, ``dense_1``, ...).
        trainable: ``False`` freezes the layer's weights.
        dtype: compute and weight dtype (``"float32"`` default, ``"float64"`` for gradient checks).
        input_shape: shape of one sample (no batch axis); lets a Sequential build at once.
        batch_input_shape: the same with a leading batch size (usually ``None``), as Keras configs.
        batch_size: the batch size put in front of ``input_shape`` (``None``: any).
    """

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
    ):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"layer name must be a non-empty string without '/', got {name!r}")
        self._name = name
        self._trainable = bool(trainable)
        self._dtype = _float_dtype(dtype)
        self.built = False
        self._weights: dict[str, Tensor] = {}  # local weight name -> tensor, in creation order
        self._buffers: set[str] = set()  # local names that are never trainable (moving statistics)
        self._inbound_nodes: list[Node] = []
        if batch_input_shape is not None:
            self._batch_input_shape: Shape | None = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size, *tuple(input_shape))
        else:
            self._batch_input_shape = None

    # ------------------------------------------------------------------------------ naming
    @classmethod
    def _base_name(cls) -> str:
        return _snake_case(cls.__name__)

    @property
    def name(self) -> str:
        """The layer's name (before it joins a model, an unnamed layer reports its base name)."""
        return self._name if self._name is not None else self._base_name()

    def _set_name(self, name: str) -> None:
        self._name = name
        for local, t in self._weights.items():
            t.name = f"{name}/{local}"

    @property
    def dtype(self) -> str:
        """The weight dtype name (``"float32"`` until built on something else)."""
        return (self._dtype or np.dtype(np.float32)).name

    # ------------------------------------------------------------------------------ weights
    def add_weight(
        self,
        name: str,
        shape: Sequence[int],
        initializer: Any = "glorot_uniform",
        trainable: bool = True,
        rng: Any = None,
    ) -> Tensor:
        """Create a weight ``"<layer>/<name>"`` of ``shape`` from ``initializer``; return its tensor.

        ``trainable=False`` makes a buffer (never requires grad, e.g. moving statistics).
        """
        if name in self._weights:
            raise ValueError(f"layer '{self.name}' already has a weight named {name!r}")
        init = initializers.get(initializer)
        data = init(tuple(int(s) for s in shape), self._dtype or np.float32, rng)
        t = Tensor(data, requires_grad=trainable and self._trainable, name=f"{self.name}/{name}")
        self._weights[name] = t
        if not trainable:
            self._buffers.add(name)
        return t

    @property
    def trainable(self) -> bool:
        """Whether the layer's parameters are trained; setting False freezes them (and drops their grads)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for local, t in self._weights.items():
            if local not in self._buffers:
                t.requires_grad = self._trainable
                if not self._trainable:
                    t.grad = None

    def _own_weights(self) -> Iterator[tuple[str, Tensor, bool]]:
        """``(full name, tensor, is_parameter)`` for this layer's own weights, in creation order."""
        for local, t in self._weights.items():
            yield f"{self.name}/{local}", t, local not in self._buffers

    def named_weights(self) -> Iterator[tuple[str, Tensor]]:
        """``("layer/weight", tensor)`` for every weight (parameters and buffers), in creation order."""
        for full, t, _ in self._all_weights():
            yield full, t

    def _all_weights(self) -> Iterator[tuple[str, Tensor, bool]]:
        # Models override this to walk their layers; a plain layer has only its own.
        yield from self._own_weights()

    @property
    def trainable_weights(self) -> list[Tensor]:
        """Parameters being trained (empty when the layer is frozen)."""
        return [t for _, t, is_param in self._all_weights() if is_param and t.requires_grad]

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        """Frozen parameters and buffers."""
        return [t for _, t, is_param in self._all_weights() if not (is_param and t.requires_grad)]

    @property
    def weights(self) -> list[Tensor]:
        """Trainable then non-trainable weights (Keras' order)."""
        return self.trainable_weights + self.non_trainable_weights

    def parameters(self) -> list[Tensor]:
        """The tensors an optimizer should update: trainable parameters that require grad."""
        return self.trainable_weights

    def zero_grad(self) -> None:
        """Drop the accumulated gradient of every weight."""
        for _, t, _ in self._all_weights():
            t.grad = None

    def count_params(self) -> int:
        """Number of scalars in all weights (parameters and buffers), as Keras counts."""
        if not self.built:
            raise ValueError(
                f"count_params() on layer '{self.name}', which is not built yet: call it on an input "
                "or give the model an input shape"
            )
        return sum(t.size for _, t, _ in self._all_weights())

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self) -> OrderedDict[str, Any]:
        """``"layer/weight" -> xp array`` for every parameter and buffer (the live arrays, not copies)."""
        self._require_built("state_dict")
        out: OrderedDict[str, Any] = OrderedDict()
        for full, t, _ in self._all_weights():
            if full in out:
                raise ValueError(f"two weights share the name '{full}'; give the layers distinct names")
            out[full] = t.data
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays from ``state`` (``"layer/weight" -> array``, NumPy or CuPy) into the weights in place.

        Raises ``KeyError`` naming missing and unexpected tensors (when ``strict``) and
        ``ValueError`` naming a tensor whose shape differs (always). Returns the skipped keys.
        """
        self._require_built("load_state_dict")
        own = OrderedDict((full, t) for full, t, _ in self._all_weights())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing tensors: " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected tensors: " + ", ".join(unexpected))
            raise KeyError(f"load_state_dict into '{self.name}': " + "; ".join(parts))
        for full, t in own.items():
            if full not in state:
                continue
            value = state[full]
            value = value.data if isinstance(value, Tensor) else value
            shape = tuple(getattr(value, "shape", np.shape(value)))
            if shape != t.shape:
                raise ValueError(
                    f"load_state_dict: tensor '{full}' has shape {t.shape} in the model but {shape} in the "
                    "state dict"
                )
        for full, t in own.items():
            if full in state:
                value = state[full]
                value = value.data if isinstance(value, Tensor) else value
                # In place: optimizers keep views into these arrays.
                t.data[...] = backend.to_device(value, dtype=t.data.dtype)
        return LoadResult(missing, unexpected)

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of every weight, in ``state_dict`` order (layer by layer, creation order)."""
        return [np.array(backend.to_numpy(a)) for a in self.state_dict().values()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set every weight from a list in ``get_weights`` order; errors name the tensor that does not fit."""
        names = list(self.state_dict())
        if len(weights) != len(names):
            raise ValueError(
                f"set_weights on '{self.name}' expects {len(names)} arrays ({', '.join(names)}), "
                f"got {len(weights)}"
            )
        self.load_state_dict(dict(zip(names, weights)))

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"{what}() on '{self.name}', which is not built yet: call it on an input (or give the "
                "first layer input_shape=...) so its weights exist"
            )

    # ------------------------------------------------------------------------------ calling
    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis included, may be ``None``)."""

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        """The forward computation on tensors; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__}.call")

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape (batch axis included) for inputs of ``input_shape``.

        The default runs ``call`` on zeros with a batch of one in inference mode; layers override
        it with the formula.
        """
        def zeros(shape):
            return Tensor(backend.current().xp.zeros((1, *shape[1:]), dtype=self._dtype or np.float32))

        probe = [zeros(s) for s in input_shape] if isinstance(input_shape, list) else zeros(input_shape)
        with no_grad(), using_config("train", False):
            out = self.call(probe)
        if isinstance(out, list | tuple):
            return [(input_shape[0][0] if isinstance(input_shape, list) else input_shape[0], *o.shape[1:])
                    for o in out]
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        return (batch, *out.shape[1:])

    def _build_once(self, input_shape: Any, dtype: Any) -> None:
        if self._dtype is None:
            dt = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
            self._dtype = dt if dt.kind == "f" else np.dtype(np.float32)
        self.build(input_shape)
        self.built = True

    def _to_tensor(self, x: Any) -> Tensor:
        if isinstance(x, Tensor):
            return x
        return Tensor(x, dtype=self._dtype or np.float32)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """Run the layer on a tensor (or list of tensors); on KerasTensors, record a graph node."""
        # Fast path: a built layer on a tensor of its dtype costs one type check and one dtype check.
        if type(inputs) is Tensor and self.built:
            if inputs.data.dtype != self._dtype:
                inputs = inputs.astype(self._dtype)
            return self.call(inputs, **kwargs)
        if _is_symbolic(inputs):
            return self._call_symbolic(inputs, kwargs)
        # Real inputs do not choose the dtype (float64 observations should not make a float64 network);
        # dtype= or a symbolic Input's dtype does.
        if isinstance(inputs, list | tuple):
            inputs = [self._to_tensor(x) for x in inputs]
            if not self.built:
                self._build_once([x.shape for x in inputs], None)
            inputs = [x if x.data.dtype == self._dtype else x.astype(self._dtype) for x in inputs]
        else:
            inputs = self._to_tensor(inputs)
            if not self.built:
                self._build_once(inputs.shape, None)
            if inputs.data.dtype != self._dtype:
                inputs = inputs.astype(self._dtype)
        return self.call(inputs, **kwargs)

    def _call_symbolic(self, inputs: Any, kwargs: dict[str, Any]) -> Any:
        single = isinstance(inputs, KerasTensor)
        flat = [inputs] if single else list(inputs)
        shape = flat[0].shape if single else [t.shape for t in flat]
        if not self.built:
            self._build_once(shape, flat[0].dtype)
        out_shape = self.compute_output_shape(shape)
        node = Node(self, flat, single, dict(kwargs))
        multi = isinstance(out_shape, list)
        for i, s in enumerate(out_shape if multi else [out_shape]):
            node.outputs.append(KerasTensor(s, self._dtype, node, i))
        self._inbound_nodes.append(node)
        return list(node.outputs) if multi else node.outputs[0]

    # ------------------------------------------------------------------------------ graph facts
    def _only_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise AttributeError(f"layer '{self.name}' has not been called on a symbolic input, so it has no {what}")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(
                f"layer '{self.name}' was called {len(self._inbound_nodes)} times, so its {what} is ambiguous"
            )
        return self._inbound_nodes[0]

    @property
    def input(self) -> Any:
        """The symbolic input of the layer's only graph call."""
        node = self._only_node("input")
        return node.inputs[0] if node.single_input else list(node.inputs)

    @property
    def output(self) -> Any:
        """The symbolic output of the layer's only graph call (e.g. to cut a pretrained model)."""
        node = self._only_node("output")
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    @property
    def output_shape(self) -> Any:
        """Output shape (batch axis ``None``) of the layer's only graph call."""
        out = self.output
        return [t.shape for t in out] if isinstance(out, list) else out.shape

    @property
    def input_shape(self) -> Any:
        """Input shape (batch axis ``None``) of the layer's only graph call."""
        inp = self.input
        return [t.shape for t in inp] if isinstance(inp, list) else inp.shape

    # ------------------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as a JSON-able dict (Keras / TF.js keys)."""
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Rebuild a layer from :meth:`get_config`'s dict (unknown keys are an error naming them)."""
        try:
            return cls(**config)
        except TypeError as exc:
            raise ValueError(f"bad config for layer class {cls.__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


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


def _window_out(size: int | None, k: int, stride: int, dilation: int, pad: Any) -> int | None:
    """Output length of a sliding window along one axis (TF's rule for 'same')."""
    if size is None:
        return None
    if pad == "same":
        return -(-size // stride)
    before, after = (0, 0) if pad == "valid" else pad
    return (size + before + after - dilation * (k - 1) - 1) // stride + 1


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
        y = F.linear(inputs, self.kernel, self.bias)  # type: ignore[arg-type]
        return y if self._act is None else self._act(y)

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
            from rl import random as rl_random  # noqa: PLC0415

            self._rng = rl_random.Generator(seed)
        from rl import nn_ops  # noqa: PLC0415

        self._dropout = nn_ops.dropout

    def call(self, inputs, training: bool | None = None):
        return self._dropout(inputs, self.rate, training, self._rng)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": None, "seed": self.seed}


# ============================================================================ convolution
class Conv2D(Layer):
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
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"Conv2D supports data_format='channels_last' only, got {data_format!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding_spec(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.groups = int(groups)
        if self.filters % self.groups:
            raise ValueError(f"Conv2D filters={self.filters} is not divisible by groups={self.groups}")
        self.activation = _activation_name(activation)
        self._act = None if activation in (None, "linear") else F.get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel: Tensor | None = None
        self.bias: Tensor | None = None
        from rl import nn_ops  # noqa: PLC0415

        self._conv = nn_ops.conv2d

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
        y = self._conv(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate, self.groups)
        return y if self._act is None else self._act(y)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (
            n,
            _window_out(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0], _axis_pads(self.padding, 0)),
            _window_out(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1], _axis_pads(self.padding, 1)),
            self.filters,
        )

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


class DepthwiseConv2D(Layer):
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
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ValueError(f"DepthwiseConv2D supports data_format='channels_last' only, got {data_format!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding_spec(padding)
        self.depth_multiplier = int(depth_multiplier)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.activation = _activation_name(activation)
        self._act = None if activation in (None, "linear") else F.get_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_kernel: Tensor | None = None
        self.bias: Tensor | None = None
        from rl import nn_ops  # noqa: PLC0415

        self._conv = nn_ops.depthwise_conv2d

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
        y = self._conv(inputs, self.depthwise_kernel, self.bias, self.strides, self.padding, self.dilation_rate)
        return y if self._act is None else self._act(y)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (
            n,
            _window_out(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0], _axis_pads(self.padding, 0)),
            _window_out(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1], _axis_pads(self.padding, 1)),
            None if c is None else c * self.depth_multiplier,
        )

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
        from rl import nn_ops  # noqa: PLC0415

        self._pad = nn_ops.pad2d

    def call(self, inputs):
        return self._pad(inputs, self.padding)

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
        return (n, _window_out(h, self.pool_size[0], self.strides[0], 1, self.padding),
                _window_out(w, self.pool_size[1], self.strides[1], 1, self.padding), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": "channels_last"}


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows (strides default to ``pool_size``): ``(N, H, W, C)`` -> ``(N, Ho, Wo, C)``."""

    def call(self, inputs):
        from rl.nn_ops import max_pool2d  # noqa: PLC0415 - cheap after the first import

        return max_pool2d(inputs, self.pool_size, self.strides, self.padding)


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows (Keras' count of real cells with 'same'): NHWC in and out."""

    def call(self, inputs):
        from rl.nn_ops import avg_pool2d  # noqa: PLC0415

        return avg_pool2d(inputs, self.pool_size, self.strides, self.padding)


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
        from rl import nn_ops  # noqa: PLC0415

        self._bn = nn_ops.batch_norm

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
        return self._bn(inputs, self.gamma, self.beta, self.moving_mean.data, self.moving_variance.data,
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


# ============================================================================ (de)serialization
def _registry() -> dict[str, type[Layer]]:
    from rl import models  # noqa: PLC0415 - models import layers

    reg: dict[str, type[Layer]] = {
        cls.__name__: cls
        for cls in (InputLayer, Dense, Activation, ReLU, Flatten, Reshape, Dropout, Conv2D, DepthwiseConv2D,
                    ZeroPadding2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, BatchNormalization,
                    Add, Multiply, Concatenate)
    }
    reg["Sequential"] = models.Sequential
    reg["Model"] = reg["Functional"] = models.Model
    return reg


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}`` for ``layer`` (JSON-able)."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Layer:
    """Build a layer (or nested model) from ``{"class_name", "config"}``; unknown classes list the known ones."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"a layer config needs 'class_name' and 'config', got {config!r}")
    registry = {**_registry(), **(custom_objects or {})}
    cls = registry.get(config["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {config['class_name']!r}; known: {', '.join(sorted(registry))}")
    return cls.from_config(dict(config.get("config") or {}))
