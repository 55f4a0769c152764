"""The layer base: :class:`Layer`, the symbolic :class:`KerasTensor` and graph :class:`Node`, and the class registry.

Every concrete layer (:mod:`rl.layers`) and every model (:mod:`rl.models`) is a :class:`Layer`. This
module holds what they share and nothing concrete, so it sits below both: it imports neither.

A :class:`Layer` is called like a function. On its first call it *builds* (creates its weights from
the input's shape, so ``Dense(64)`` never needs to be told its input size), then runs ``call``.
Called on a symbolic :class:`KerasTensor` (from :func:`rl.layers.Input`) instead of a real tensor,
it records a graph :class:`Node` instead of computing; :class:`rl.models.Model` runs such graphs.

**Registry.** Each ``Layer`` subclass defined in the ``rl`` package registers itself under its class
name when the class is created (``Layer.__init_subclass__``; ``register_as=`` adds aliases, e.g.
``Model``'s ``"Functional"``), so :func:`deserialize` rebuilds any of them from
``{"class_name", "config"}`` without this module knowing the concrete classes. Classes defined
elsewhere (a user's ``class Net(Model)``) are passed as ``custom_objects``, as in Keras.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from rl import backend, initializers
from rl.tensor import Tensor, no_grad, using_config

__all__ = [
    "KerasTensor",
    "Layer",
    "LoadResult",
    "Node",
    "deserialize",
    "is_symbolic",
    "model_from_config",
    "registered_classes",
    "serialize",
]

Shape = tuple[int | None, ...]

# class name (and aliases) -> class, filled by Layer.__init_subclass__
_REGISTRY: dict[str, type[Layer]] = {}


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


def is_symbolic(x: Any) -> bool:
    """True for a KerasTensor or a non-empty list/tuple of them (a graph is being recorded)."""
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

    def __init_subclass__(cls, register_as: Sequence[str] = (), **kwargs: Any):
        """Register a class of the ``rl`` package under its name and ``register_as`` (for :func:`deserialize`).

        Private classes (``_Pooling2D``) and classes outside ``rl`` are not registered: those reach
        :func:`deserialize` through ``custom_objects``.
        """
        super().__init_subclass__(**kwargs)
        if cls.__module__.partition(".")[0] == "rl" and not cls.__name__.startswith("_"):
            for name in (cls.__name__, *register_as):
                _REGISTRY[name] = cls

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
        if is_symbolic(inputs):
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


# ============================================================================ (de)serialization
def registered_classes() -> dict[str, type[Layer]]:
    """``class name -> class`` of every registered layer and model class (a copy)."""
    return dict(_REGISTRY)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}`` for ``layer`` (JSON-able)."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Layer:
    """Build a layer (or nested model) from ``{"class_name", "config"}``; unknown classes list the known ones."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"a layer config needs 'class_name' and 'config', got {config!r}")
    registry = {**_REGISTRY, **(custom_objects or {})}
    cls = registry.get(config["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {config['class_name']!r}; known: {', '.join(sorted(registry))}")
    return cls.from_config(dict(config.get("config") or {}))


def model_from_config(config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Layer:
    """Rebuild a model from ``{"class_name": "Sequential" | "Model", "config": {...}}``.

    Also accepts a bare ``model.get_config()`` dict, and a Keras/TF.js ``modelTopology`` (with or
    without its ``model_config`` wrapper).
    The weights are fresh; load trained ones with ``load_state_dict``. The model classes come from
    the registry (:mod:`rl.models` registers ``Sequential``, ``Model`` and ``Functional``); the
    function is here, below :mod:`rl.models`, so that :mod:`rl.checkpoint` can rebuild saved models
    without importing the module whose ``save`` method imports it.
    """
    if not isinstance(config, dict):
        raise ValueError(f"a model config must be a JSON object, got {type(config).__name__}")
    if "modelTopology" in config:
        config = config["modelTopology"]
    if "model_config" in config:
        config = config["model_config"]
    if "class_name" not in config and "layers" in config:
        # A bare ``model.get_config()`` (Keras returns the inner dict): tell the two kinds apart by their keys.
        config = {"class_name": "Model" if "input_layers" in config else "Sequential", "config": config}
    if config.get("class_name") not in ("Sequential", "Model", "Functional"):
        raise ValueError(
            f"model config class_name must be 'Sequential' or 'Model', got {config.get('class_name')!r}"
        )
    return deserialize(config, custom_objects)
