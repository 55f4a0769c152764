"""ONNX export: any functional or Sequential model the core builds, as one standard ``.onnx`` file.

TensorFlow.js export (:mod:`rl.tfjs`) takes a model to the browser; ONNX takes it to every other
runtime (ONNX Runtime, TensorRT, OpenVINO, onnx.js, C++, C#, Java). The file is written with the
``onnx`` package (an optional extra: ``pip install 'playgrad[onnx]'``) at opset 17, checked by
``onnx.checker`` before it is written, and written atomically.

How the graph is written:

* **Layout stays NHWC** at the model's inputs and outputs, as in the core, so an exported model
  takes exactly the arrays ``model.predict`` takes. ONNX convolutions and pooling work on NCHW, so
  each of those ops is wrapped in a pair of ``Transpose`` nodes; ONNX Runtime's graph optimizer
  cancels the back-to-back pairs between consecutive convolutions, so they cost nothing at run time.
* **The batch axis is symbolic** (``"batch"``); other axes are the model's static sizes.
* **Inference semantics**: dropout is the identity and batch normalization uses its moving
  statistics, folded into one ``Mul`` + ``Add`` per layer (the constants computed in float64).
* **Nested models are inlined**: a ``Sequential`` inside a functional model becomes its layers.
* Padding follows the core: ``"same"`` pads as TF does (the extra pixel at the bottom/right, ONNX's
  ``SAME_UPPER``), written as explicit pads when the spatial size is known; average pooling with
  ``"same"`` divides by the count of real cells (``count_include_pad=0``), as Keras does.
* The tanh-approximated GELU of :func:`rl.functional.gelu` is written out op by op, so the file
  computes what the core computes (opset 17 has no Gelu op).

Subclassed models (their ``call`` is Python code, not a graph) and layers this module does not know
raise :class:`OnnxExportError` naming every such layer at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rl import backend
from rl import layers as L
from rl.experiment import atomic_write_bytes
from rl.models import Model

__all__ = ["OPSET", "OnnxExportError", "export_onnx", "to_onnx", "verify_onnx"]

OPSET = 17  # ONNX Runtime >= 1.14, onnx >= 1.12; every op used here has had its current form since opset 13


class OnnxExportError(ValueError):
    """The model cannot be written as ONNX; the message names every layer that is the reason."""


def _onnx() -> Any:
    try:
        import onnx  # noqa: PLC0415 - optional extra, only needed to export
    except ImportError:
        raise OnnxExportError("ONNX export needs the 'onnx' package: pip install 'playgrad[onnx]'") from None
    return onnx


class _GraphBuilder:
    """Collects ONNX nodes, initializers and unique value names while a model is walked."""

    def __init__(self, onnx: Any, dtype: np.dtype):
        self.onnx, self.helper = onnx, onnx.helper
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def name(self, base: str) -> str:
        """A value/node name not used before, derived from ``base``."""
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, base: str, value: Any, dtype: Any = None) -> str:
        """An initializer holding ``value`` (in the model's float dtype unless ``dtype`` says otherwise)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        """Append one node with a single output; returns the output's name."""
        out = self.name(base)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=self.name(f"{base}/{op_type}"), **attrs))
        return out


_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _weight(tensor: Any) -> np.ndarray:
    return np.asarray(backend.to_numpy(tensor.data), dtype=np.float64)


def _activation(g: _GraphBuilder, x: str, name: str, base: str) -> str:
    """Apply the Keras-named activation ``name`` to value ``x``."""
    simple = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus"}
    if name in ("linear", None):
        return x
    if name in simple:
        return g.op(simple[name], [x], base)
    if name == "relu6":
        return g.op("Clip", [x, g.const(f"{base}/min", 0.0), g.const(f"{base}/max", 6.0)], base)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], base, alpha=0.2)  # rl.functional.leaky_relu's default, as Keras'
    if name == "elu":
        return g.op("Elu", [x], base, alpha=1.0)
    if name == "softmax":
        return g.op("Softmax", [x], base, axis=-1)
    if name == "gelu":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x], f"{base}/sq"), x], f"{base}/cube")
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const(f"{base}/k", 0.044715)], f"{base}/kx3")], f"{base}/in")
        t = g.op("Tanh", [g.op("Mul", [inner, g.const(f"{base}/c", math.sqrt(2 / math.pi))], f"{base}/ci")],
                 f"{base}/tanh")
        half = g.op("Mul", [x, g.const(f"{base}/half", 0.5)], f"{base}/hx")
        return g.op("Mul", [half, g.op("Add", [t, g.const(f"{base}/one", 1.0)], f"{base}/1pt")], base)
    raise OnnxExportError(f"activation {name!r} has no ONNX form here")


def _same_pads(size: int | None, k: int, stride: int, dilation: int) -> tuple[int, int] | None:
    """TF's 'same' padding along one axis: the odd pixel goes after. None when the size is unknown."""
    if size is None:
        return None
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _window_attrs(padding: Any, shape: tuple, kernel: tuple[int, int], strides: tuple[int, int],
                  dilations: tuple[int, int]) -> dict[str, Any]:
    """``pads`` (or ``auto_pad``) for a conv/pool whose NHWC input has ``shape``."""
    if padding == "valid":
        return {"pads": [0, 0, 0, 0]}
    if padding == "same":
        rows = _same_pads(shape[1], kernel[0], strides[0], dilations[0])
        cols = _same_pads(shape[2], kernel[1], strides[1], dilations[1])
        if rows is None or cols is None:
            return {"auto_pad": "SAME_UPPER"}
        return {"pads": [rows[0], cols[0], rows[1], cols[1]]}
    (top, bottom), (left, right) = padding
    return {"pads": [top, left, bottom, right]}


def _in_nchw(g: _GraphBuilder, x: str, base: str, make: Callable[[str], str]) -> str:
    """Run ``make`` (an NCHW op) between a transpose to NCHW and one back to NHWC."""
    y = make(g.op("Transpose", [x], f"{base}/nchw", perm=_TO_NCHW))
    return g.op("Transpose", [y], f"{base}/nhwc", perm=_TO_NHWC)


def _conv(g: _GraphBuilder, layer: Any, x: str, shape: tuple, kernel: np.ndarray, groups: int) -> str:
    """Conv2D / DepthwiseConv2D: ``kernel`` already in ONNX's ``(out, in/groups, kh, kw)``."""
    base = layer.name
    inputs = [g.const(f"{base}/kernel", kernel)]
    if layer.use_bias:
        inputs.append(g.const(f"{base}/bias", _weight(layer.bias)))
    attrs = _window_attrs(layer.padding, shape, layer.kernel_size, layer.strides, layer.dilation_rate)

    def conv(nchw: str) -> str:
        return g.op("Conv", [nchw, *inputs], base, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                    dilations=list(layer.dilation_rate), group=groups, **attrs)

    return _activation(g, _in_nchw(g, x, base, conv), layer.activation, f"{base}/act")


def _pool(g: _GraphBuilder, layer: Any, x: str, shape: tuple, op_type: str) -> str:
    attrs = _window_attrs(layer.padding, shape, layer.pool_size, layer.strides, (1, 1))
    if op_type == "AveragePool":
        attrs["count_include_pad"] = 0  # Keras divides by the real cells under a 'same' window

    def pool(nchw: str) -> str:
        return g.op(op_type, [nchw], layer.name, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                    **attrs)

    return _in_nchw(g, x, layer.name, pool)


def _relu_layer(g: _GraphBuilder, layer: Any, x: str) -> str:
    base = layer.name
    y = g.op("LeakyRelu", [x], base, alpha=layer.negative_slope) if layer.negative_slope else g.op("Relu", [x], base)
    if layer.max_value is not None:
        y = g.op("Min", [y, g.const(f"{base}/max", layer.max_value)], f"{base}/cap")
    return y


def _layer(g: _GraphBuilder, layer: Any, xs: list[str], shapes: list[tuple]) -> str:
    """Write one (non-nested) layer applied to the values ``xs`` (NHWC); returns its output value."""
    x, shape, base = xs[0], shapes[0], layer.name
    if isinstance(layer, L.Dense):
        y = g.op("MatMul", [x, g.const(f"{base}/kernel", _weight(layer.kernel))], f"{base}/matmul")
        if layer.use_bias:
            y = g.op("Add", [y, g.const(f"{base}/bias", _weight(layer.bias))], f"{base}/bias_add")
        return _activation(g, y, layer.activation, f"{base}/act")
    if isinstance(layer, L.Conv2D):
        kernel = _weight(layer.kernel).transpose(3, 2, 0, 1)  # (kh, kw, in/g, out) -> (out, in/g, kh, kw)
        return _conv(g, layer, x, shape, kernel, layer.groups)
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw, c, m = layer.depthwise_kernel.shape
        # output channel c*m + j reads input channel c: ONNX's grouped conv with one group per channel
        kernel = _weight(layer.depthwise_kernel).transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
        return _conv(g, layer, x, shape, kernel, c)
    if isinstance(layer, L.Activation):
        return _activation(g, x, layer.activation, base)
    if isinstance(layer, L.ReLU):
        return _relu_layer(g, layer, x)
    if isinstance(layer, L.BatchNormalization):
        mean, var = _weight(layer.moving_mean), _weight(layer.moving_variance)
        gamma = _weight(layer.gamma) if layer.scale else np.ones_like(mean)
        beta = _weight(layer.beta) if layer.center else np.zeros_like(mean)
        scale = gamma / np.sqrt(var + layer.epsilon)
        y = g.op("Mul", [x, g.const(f"{base}/scale", scale)], f"{base}/scale")
        return g.op("Add", [y, g.const(f"{base}/shift", beta - mean * scale)], base)
    if isinstance(layer, L.Flatten):
        return g.op("Flatten", [x], base, axis=1)
    if isinstance(layer, L.Reshape):
        target = g.const(f"{base}/shape", [0, *layer.target_shape], dtype=np.int64)  # 0: keep the batch axis
        return g.op("Reshape", [x, target], base)
    if isinstance(layer, L.Dropout):
        return g.op("Identity", [x], base)
    if isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        pads = g.const(f"{base}/pads", [0, top, left, 0, 0, bottom, right, 0], dtype=np.int64)
        return g.op("Pad", [x, pads], base, mode="constant")
    if isinstance(layer, L.MaxPooling2D):
        return _pool(g, layer, x, shape, "MaxPool")
    if isinstance(layer, L.AveragePooling2D):
        return _pool(g, layer, x, shape, "AveragePool")
    if isinstance(layer, L.GlobalAveragePooling2D):
        return g.op("ReduceMean", [x], base, axes=[1, 2], keepdims=int(layer.keepdims))
    if isinstance(layer, L.Multiply):  # before Add: Multiply subclasses Add
        return _chain(g, "Mul", xs, base)
    if isinstance(layer, L.Add):
        return _chain(g, "Add", xs, base)
    if isinstance(layer, L.Concatenate):
        return g.op("Concat", xs, base, axis=layer.axis)
    raise OnnxExportError(f"layer '{base}' ({type(layer).__name__}) has no ONNX form here")


def _chain(g: _GraphBuilder, op_type: str, xs: list[str], base: str) -> str:
    out = xs[0]
    for i, x in enumerate(xs[1:]):
        out = g.op(op_type, [out, x], base if i == len(xs) - 2 else f"{base}/{i}")
    return out


def _unsupported(model: Model) -> list[str]:
    """Every layer inside ``model`` (recursively) that cannot be exported, as readable strings."""
    known = (L.InputLayer, L.Dense, L.Conv2D, L.DepthwiseConv2D, L.Activation, L.ReLU, L.BatchNormalization,
             L.Flatten, L.Reshape, L.Dropout, L.ZeroPadding2D, L.MaxPooling2D, L.AveragePooling2D,
             L.GlobalAveragePooling2D, L.Add, L.Concatenate)
    found = []
    for layer in model.layers:
        if isinstance(layer, Model):
            found += _unsupported(layer) if layer._is_graph else [f"'{layer.name}' (a subclassed model)"]
        elif not isinstance(layer, known):
            found.append(f"'{layer.name}' ({type(layer).__name__})")
        elif getattr(layer, "activation", "linear") not in (
                "linear", "relu", "relu6", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "softmax", "gelu"):
            found.append(f"'{layer.name}' (activation {layer.activation!r})")
    return found


def _walk(g: _GraphBuilder, model: Model, inputs: list[str]) -> list[str]:
    """Write ``model``'s graph reading the values ``inputs``; returns the values of its outputs."""
    values: dict[int, str] = {id(t): name for t, name in zip(model.inputs, inputs)}
    for node in model._nodes:
        if not node.inputs:  # an InputLayer's own node
            continue
        xs = [values[id(t)] for t in node.inputs]
        if isinstance(node.layer, Model):
            outs = _walk(g, node.layer, xs)
        else:
            outs = [_layer(g, node.layer, xs, [tuple(t.shape) for t in node.inputs])]
        for t, name in zip(node.outputs, outs):
            values[id(t)] = name
    return [values[id(t)] for t in model.outputs]


def to_onnx(model: Model, name: str | None = None) -> Any:
    """The ``onnx.ModelProto`` of a built functional/Sequential ``model`` (checked by ``onnx.checker``).

    Inputs and outputs keep the model's NHWC shapes with a symbolic batch axis; their names are the
    model's input layer names and ``output`` (``output_0``, ``output_1``, ... for several).
    """
    onnx = _onnx()
    if not isinstance(model, Model) or not model._is_graph:
        raise OnnxExportError(f"{type(model).__name__} is not a built functional or Sequential model: "
                              "give it an input shape (layers.Input) before exporting")
    problems = _unsupported(model)
    if problems:
        raise OnnxExportError(f"cannot export model '{model.name}' to ONNX: {', '.join(problems)}")
    dtype = np.dtype(model._dtype or np.float32)
    if dtype not in (np.float32, np.float64):
        raise OnnxExportError(f"model '{model.name}' computes in {dtype}; ONNX export supports float32 and float64")
    g = _GraphBuilder(onnx, dtype)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    graph_inputs, input_names = [], []
    for t in model.inputs:
        in_name = g.name(t.node.layer.name)
        input_names.append(in_name)
        graph_inputs.append(onnx.helper.make_tensor_value_info(in_name, elem, ["batch", *t.shape[1:]]))
    outputs = _walk(g, model, input_names)
    graph_outputs = []
    for i, (t, value) in enumerate(zip(model.outputs, outputs)):
        out_name = "output" if len(outputs) == 1 else f"output_{i}"
        g.nodes.append(onnx.helper.make_node("Identity", [value], [out_name], name=g.name(f"{out_name}/identity")))
        graph_outputs.append(onnx.helper.make_tensor_value_info(out_name, elem, ["batch", *t.shape[1:]]))
    graph = onnx.helper.make_graph(g.nodes, name or model.name, graph_inputs, graph_outputs, g.initializers)
    proto = onnx.helper.make_model(graph, producer_name="playgrad", opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = 8  # what ONNX Runtime >= 1.14 reads; opset 17 needs IR >= 8
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Model, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` to ``path`` as ONNX (atomically); ``metadata`` goes into the file's metadata_props."""
    proto = to_onnx(model)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    path = Path(path)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def verify_onnx(model: Model, path: str | Path, batch: int = 2, atol: float = 1e-5, seed: int = 0) -> float:
    """Run the file at ``path`` in ONNX Runtime on random inputs and compare with ``model``'s outputs.

    Inputs are standard-normal arrays of shape ``(batch, *input_shape[1:])`` per model input. Returns
    the largest absolute difference; raises :class:`OnnxExportError` when it exceeds ``atol`` (scaled
    by the outputs' magnitude, ``atol * max(1, max|y|)``) or when ``onnxruntime`` is missing.
    """
    try:
        import onnxruntime  # noqa: PLC0415 - optional extra, only needed to verify
    except ImportError:
        raise OnnxExportError("verifying needs 'onnxruntime': pip install 'playgrad[onnx]' (or skip the check)") \
            from None
    rng = np.random.default_rng(seed)
    dtype = np.dtype(model._dtype or np.float32)
    xs = [rng.standard_normal((batch, *t.shape[1:])).astype(dtype) for t in model.inputs]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs)})
    ours = model.predict(xs if len(xs) > 1 else xs[0])
    ours = ours if isinstance(ours, list) else [ours]
    worst = 0.0
    for mine, other in zip(ours, theirs):
        mine = np.asarray(backend.to_numpy(mine))
        diff = float(np.max(np.abs(mine - other))) if mine.size else 0.0
        worst = max(worst, diff)
        if diff > atol * max(1.0, float(np.max(np.abs(mine))) if mine.size else 1.0):
            raise OnnxExportError(f"{path}: ONNX Runtime's outputs differ from the model's by {diff:.3g} "
                                  f"(allowed {atol:g}); please report this model")
    return worst
