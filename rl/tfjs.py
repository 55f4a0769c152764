"""TensorFlow.js layers-model files: export a model to ``model.json`` + weight shards, and import them back.

The format (``docs/specs/formats.md`` §5) is a directory::

    model.json              {"format": "layers-model", "modelTopology": {...}, "weightsManifest": [...], ...}
    group1-shard1of2.bin    float32 little-endian bytes of every weight, concatenated, cut at 4 MiB
    group1-shard2of2.bin

``modelTopology`` is a Keras-style architecture: ``{"class_name": "Sequential" | "Model", "config":
{...}}`` as TF.js writes it, or wrapped as ``{"model_config": {...}}`` as the Python converter
writes it. ``weightsManifest`` lists groups ``{"paths": [...], "weights": [{"name", "shape",
"dtype"}]}``; a reader concatenates every group's files in manifest order and decodes the weights
one after another, so a shard boundary may fall inside a tensor. Weights are matched to layers by
name, ``"<layer>/<weight>"`` (``dense/kernel``, ``conv2d/bias``, ``batch_normalization/gamma``), the
same names :meth:`rl.layers.Layer.state_dict` uses, so no renaming happens in either direction.

Export (:func:`save_tfjs`) writes what TF.js 4.x itself writes for the same network, so
``tf.loadLayersModel`` rebuilds it. Where our layers can do more than Keras layers, the exporter
rewrites or refuses:

* a convolution with explicit pixel padding (``padding=((1, 1), (1, 1))``, torch's symmetric
  padding) becomes ``ZeroPadding2D`` followed by a ``"valid"`` convolution. This is what keeps
  MobileNetV2's stride-2 convs exact: TF's ``"same"`` would pad only bottom/right (§5.6).
* layers inside nested models are inlined into one flat graph (TF.js weight names stay flat too).
* a Reshape's -1 is written as the size it stands for (TF.js leaves it unknown, and a Flatten after it
  would not load).
* anything TF.js cannot express or run (grouped convolutions, a convolution with strides and dilation
  both above 1, a dilated DepthwiseConv2D, whose dilation TF.js ignores, leaky ReLU, our tanh-approximated
  GELU, a subclassed model) raises :class:`TfjsFormatError` listing every unsupported piece at once.

Import (:func:`load_tfjs`) accepts files written by TF.js (``model.save``), by the Python converter
(``model_config`` wrapper, ``Functional`` class name), Sequential configs in the legacy bare-list
form, quantized weights (uint8/uint16/float16) and shards that split a tensor. Configuration keys
that only matter for training in Keras (regularizers, constraints) are ignored with a warning when
set. A missing or short shard names the file and the weight. TF.js' spellings are read as TF.js means
them: a Reshape ``target_shape`` of ``[null, c]``, and a nested model's calls numbered from 1.

The files come from outside, so reading is budgeted (``MAX_*`` below) and checked before anything is
allocated: weight paths must stay inside the model's folder and name regular files; the manifest's
sizes must fit the files; the topology may create no more weight values than the shards hold. The
rebuilt graph is then run once, layer by layer, on zeros of its declared input shapes (a batch of one), so
a model that loads can predict: a layer that cannot take what the graph feeds it is refused at load, by
name. Every problem is a :class:`TfjsFormatError` naming ``model.json``.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from rl import backend, initializers
from rl import layers as L
from rl.errors import PlaygradError
from rl.experiment import atomic_write_bytes, atomic_write_text
from rl.models import Model, Sequential, model_from_config
from rl.tensor import Tensor, no_grad, using_config

__all__ = [
    "SHARD_SIZE_BYTES",
    "SUPPORTED_ACTIVATIONS",
    "SUPPORTED_LAYERS",
    "TfjsFormatError",
    "export_topology",
    "load_tfjs",
    "read_model_json",
    "read_weights",
    "save_tfjs",
]

SHARD_SIZE_BYTES = 4 * 1024 * 1024  # the converter's shard size: "the max file size for caching" in browsers
SUPPORTED_LAYERS = (
    "InputLayer", "Dense", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "MaxPooling2D",
    "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "Reshape", "Dropout", "Activation", "ReLU",
    "Add", "Multiply", "Concatenate", "ZeroPadding2D",
)  # fmt: skip
# Activations that compute the same function here and in TF.js. Our "gelu" is the tanh approximation while
# TF.js' "gelu" is the exact erf form, and TF.js has no "leaky_relu" activation string, so both stay out.
SUPPORTED_ACTIVATIONS = ("linear", "relu", "relu6", "elu", "tanh", "sigmoid", "softplus", "softmax")
_SHARD_RE = re.compile(r"^group\d+-shard\d+of\d+\.bin$")
# Reader budgets: a model.json and its shards come from outside, so every size is checked before anything
# is allocated. Real files are far inside them (MobileNetV2: 60 KB of JSON 12 levels deep, 262 weights in
# 4 shards); the shard bytes read are bounded by the manifest and by the files' own sizes.
MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 100  # nesting of objects and lists in model.json
MAX_WEIGHT_SPECS = 100_000
MAX_WEIGHT_FILES = 10_000
MAX_WEIGHT_RANK = 8
MAX_LAYERS = 10_000  # nested models' layers included (MobileNetV2: 155); building each one takes time
# Values the rebuilt layers may hold beyond the ones the shards provide (fresh weights of a strict=False
# import); with it a topology cannot make the importer allocate more than about 4x the shards' size + 16 MiB.
_UNLISTED_WEIGHT_VALUES = 1 << 22
# How each TF.js weight dtype is stored: the NumPy dtype to read it with (sizes as in tfjs-core io/types.ts
# DTYPE_VALUE_SIZE_MAP).
_DTYPES = {"float32": "<f4", "int32": "<i4", "float16": "<f2", "bool": "|b1", "uint8": "|u1", "uint16": "<u2"}
_TRAINING_ONLY_KEYS = (
    "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
    "depthwise_regularizer", "depthwise_constraint", "beta_regularizer", "gamma_regularizer", "beta_constraint",
    "gamma_constraint",
)  # fmt: skip


class TfjsFormatError(PlaygradError, ValueError):
    """A model cannot be exported to, or a file cannot be read as, a TF.js layers model; the message says why
    (and names the file)."""


# ============================================================================ export: topology
def _none(keys: Sequence[str]) -> dict[str, None]:
    return dict.fromkeys(keys)


def _initializer(init: Any) -> Any:
    """Our serialized initializer in a form TF.js accepts (it only matters for training from scratch)."""
    cfg = initializers.serialize(init)
    if not isinstance(cfg, dict):
        return {"class_name": "Zeros", "config": {}}  # a plain function: TF.js could not rebuild it anyway
    cfg = {"class_name": cfg["class_name"], "config": dict(cfg.get("config") or {})}
    if cfg["class_name"] == "VarianceScaling" and cfg["config"].get("distribution") == "untruncated_normal":
        # TF.js knows normal (truncated, as Keras 2.0), uniform, truncated_normal; the scale is kept.
        cfg["config"]["distribution"] = "normal"
    return cfg


def _activation(layer: L.Layer, problems: list[str]) -> str:
    name = getattr(layer, "activation", "linear")
    if name not in SUPPORTED_ACTIVATIONS:
        problems.append(f"layer '{layer.name}' ({type(layer).__name__}): activation {name!r}")
    return name


def _conv_problems(where: str, class_name: str, strides: Any, dilation_rate: Any) -> list[str]:
    """What TF.js cannot run in a convolution's strides and dilation (checked on export and on import alike).

    TF.js refuses a convolution whose strides and dilations are both above 1 ("Either strides or
    dilations must be 1"), and its DepthwiseConv2D layer ignores ``dilationRate`` altogether, so a
    dilated depthwise file would compute different numbers there than here.
    """
    pair = _pair_or_none(strides), _pair_or_none(dilation_rate)
    if None in pair:
        return []  # malformed: the layer constructor reports it
    (strides, dilation) = pair
    problems = []
    if class_name == "DepthwiseConv2D" and max(dilation) > 1:
        problems.append(f"{where} (DepthwiseConv2D): dilation_rate={list(dilation)} (TF.js' DepthwiseConv2D ignores "
                        "dilationRate and would compute an undilated conv)")
    elif max(strides) > 1 and max(dilation) > 1:
        problems.append(f"{where} ({class_name}): strides={list(strides)} with dilation_rate={list(dilation)} (TF.js "
                        "runs a conv with strides > 1 or dilation > 1, not both)")
    return problems


def _pair_or_none(value: Any) -> tuple[int, int] | None:
    """A Keras int-or-pair setting as a pair of ints, or None when it is neither."""
    if type(value) is int:
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    return None


def _conv_padding(layer: Any) -> str:
    return layer.padding if isinstance(layer.padding, str) else "valid"


def _layer_config(layer: L.Layer, problems: list[str]) -> tuple[str, dict[str, Any]]:
    """``(class_name, config)`` of one layer as TF.js writes it; unsupported settings go to ``problems``."""
    cls = type(layer).__name__
    base = {"name": layer.name, "trainable": layer.trainable, "dtype": "float32"}
    if cls not in SUPPORTED_LAYERS:
        problems.append(f"layer '{layer.name}': class {cls}")
        return cls, base
    if isinstance(layer, L.InputLayer):
        return cls, {"batch_input_shape": list(layer._batch_input_shape), "dtype": "float32", "sparse": False,
                     "name": layer.name}
    if isinstance(layer, L.Dense):
        return cls, {**base, "units": layer.units, "activation": _activation(layer, problems),
                     "use_bias": layer.use_bias, "kernel_initializer": _initializer(layer.kernel_initializer),
                     "bias_initializer": _initializer(layer.bias_initializer),
                     **_none(["kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                              "bias_constraint"])}
    if isinstance(layer, L.Conv2D | L.DepthwiseConv2D):
        problems.extend(_conv_problems(f"layer '{layer.name}'", cls, layer.strides, layer.dilation_rate))
    if isinstance(layer, L.Conv2D):
        if layer.groups != 1:
            problems.append(f"layer '{layer.name}' (Conv2D): groups={layer.groups} (TF.js has no grouped conv)")
        return cls, {**base, "filters": layer.filters, "kernel_size": list(layer.kernel_size),
                     "strides": list(layer.strides), "padding": _conv_padding(layer), "data_format": "channels_last",
                     "dilation_rate": list(layer.dilation_rate), "activation": _activation(layer, problems),
                     "use_bias": layer.use_bias, "kernel_initializer": _initializer(layer.kernel_initializer),
                     "bias_initializer": _initializer(layer.bias_initializer),
                     **_none(["kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                              "bias_constraint"])}
    if isinstance(layer, L.DepthwiseConv2D):
        return cls, {**base, "kernel_size": list(layer.kernel_size), "strides": list(layer.strides),
                     "padding": _conv_padding(layer), "depth_multiplier": layer.depth_multiplier,
                     "data_format": "channels_last", "dilation_rate": list(layer.dilation_rate),
                     "activation": _activation(layer, problems), "use_bias": layer.use_bias,
                     "depthwise_initializer": _initializer(layer.depthwise_initializer),
                     "bias_initializer": _initializer(layer.bias_initializer),
                     **_none(["depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                              "depthwise_constraint", "bias_constraint"])}
    if isinstance(layer, L.BatchNormalization):
        return cls, {**base, "axis": -1, "momentum": layer.momentum, "epsilon": layer.epsilon,
                     "center": layer.center, "scale": layer.scale,
                     "beta_initializer": _initializer(layer.beta_initializer),
                     "gamma_initializer": _initializer(layer.gamma_initializer),
                     "moving_mean_initializer": _initializer(layer.moving_mean_initializer),
                     "moving_variance_initializer": _initializer(layer.moving_variance_initializer),
                     **_none(["beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"])}
    if isinstance(layer, L.MaxPooling2D | L.AveragePooling2D):
        return cls, {**base, "pool_size": list(layer.pool_size), "strides": list(layer.strides),
                     "padding": layer.padding, "data_format": "channels_last"}
    if isinstance(layer, L.GlobalAveragePooling2D):
        if layer.keepdims:
            problems.append(f"layer '{layer.name}' (GlobalAveragePooling2D): keepdims=True")
        return cls, {**base, "data_format": "channels_last"}
    if isinstance(layer, L.Flatten):
        return cls, {**base, "data_format": "channels_last"}
    if isinstance(layer, L.Reshape):
        return cls, {**base, "target_shape": list(layer.target_shape)}
    if isinstance(layer, L.Dropout):
        return cls, {**base, "rate": layer.rate, "noise_shape": None, "seed": layer.seed}
    if isinstance(layer, L.Activation):
        return cls, {**base, "activation": _activation(layer, problems)}
    if isinstance(layer, L.ReLU):
        if layer.negative_slope:
            problems.append(f"layer '{layer.name}' (ReLU): negative_slope={layer.negative_slope} (TF.js ReLU has "
                            "only max_value)")
        return cls, {**base, "max_value": layer.max_value}
    if isinstance(layer, L.Concatenate):
        return cls, {**base, "axis": layer.axis}
    if isinstance(layer, L.ZeroPadding2D):
        return cls, {**base, "padding": [list(layer.padding[0]), list(layer.padding[1])],
                     "data_format": "channels_last"}
    return cls, base  # Add, Multiply: nothing beyond the base keys


class _GraphWriter:
    """Walks a model's graph (nested models inlined) and emits TF.js layer entries with inbound nodes."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}  # exported layer name -> entry, in emission order
        self.layers: dict[str, L.Layer] = {}  # exported layer name -> the layer owning its weights (or None)
        self.refs: dict[int, list[Any]] = {}  # id(KerasTensor) -> [layer name, node index, tensor index]
        self.problems: list[str] = []
        self._owner: dict[str, int] = {}  # exported name -> id(layer), to tell shared layers from clashes
        self.reshaped: dict[str, set[tuple[Any, ...]]] = {}  # Reshape layer name -> its output shapes

    def resolve_reshapes(self) -> None:
        """Write each Reshape's -1 as the size it stands for, where every call of the layer gives the same one.

        TF.js keeps a -1 of ``targetShape`` unknown in its static shapes (Keras infers it), so a Flatten
        after ``Reshape([-1, c])`` fails to load there ("not fully defined"); the number means the same.
        """
        for name, shapes in self.reshaped.items():
            (shape,) = shapes if len(shapes) == 1 else (None,)
            if shape is not None and None not in shape:
                self.entries[name]["config"]["target_shape"] = list(shape)

    def _entry(self, name: str, owner: Any, make: Any) -> dict[str, Any]:
        if name in self.entries:
            if self._owner[name] != id(owner):
                self.problems.append(f"two different layers are both named '{name}'")
            return self.entries[name]
        class_name, config = make()
        entry = {"class_name": class_name, "config": config, "name": name, "inbound_nodes": []}
        self.entries[name] = entry
        self._owner[name] = id(owner)
        return entry

    def _call(self, entry: dict[str, Any], inputs: list[list[Any]]) -> list[Any]:
        entry["inbound_nodes"].append([[*ref, {}] for ref in inputs])
        return [entry["name"], len(entry["inbound_nodes"]) - 1, 0]

    def add_input(self, tensor: L.KerasTensor) -> None:
        layer = tensor.node.layer  # type: ignore[union-attr]
        self._entry(layer.name, layer, lambda: _layer_config(layer, self.problems))
        self.refs[id(tensor)] = [layer.name, 0, 0]

    def add_model(self, model: Model) -> None:
        """Emit every node of ``model`` whose inputs already have refs (the caller maps the model's inputs)."""
        if not model._is_graph:
            self.problems.append(f"model '{model.name}' ({type(model).__name__}) is subclassed: its forward is "
                                 "Python code, which a layers-model file cannot hold")
            return
        for node in model._nodes:
            if not node.inputs:
                continue  # an InputLayer: its tensor was mapped by whoever called this model
            ins = [self.refs[id(t)] for t in node.inputs]
            layer = node.layer
            if isinstance(layer, Model):
                for t_inner, ref in zip(layer._inputs, ins):
                    self.refs[id(t_inner)] = ref
                self.add_model(layer)
                if not layer._is_graph:
                    return  # reported; its outputs cannot be mapped
                for t_out, t_inner in zip(node.outputs, layer._outputs):
                    self.refs[id(t_out)] = self.refs[id(t_inner)]
                continue
            if isinstance(layer, L.Conv2D | L.DepthwiseConv2D) and not isinstance(layer.padding, str):
                # Explicit (torch-style) padding: TF.js convs only know "valid"/"same", so pad first.
                pad_name = f"{layer.name}_pad"
                pad = self._entry(pad_name, layer, lambda lay=layer, n=pad_name: (
                    "ZeroPadding2D", {"name": n, "trainable": lay.trainable, "dtype": "float32",
                                      "padding": [list(lay.padding[0]), list(lay.padding[1])],
                                      "data_format": "channels_last"}))
                ins = [self._call(pad, ins)]
            entry = self._entry(layer.name, layer, lambda lay=layer: _layer_config(lay, self.problems))
            if isinstance(layer, L.Reshape):
                self.reshaped.setdefault(layer.name, set()).add(tuple(node.outputs[0].shape[1:]))
            self.layers[layer.name] = layer
            out = self._call(entry, ins)
            for i, t in enumerate(node.outputs):
                self.refs[id(t)] = [out[0], out[1], i]


def export_topology(model: Model) -> tuple[dict[str, Any], list[L.Layer]]:
    """The TF.js ``modelTopology`` of ``model`` and the layers whose weights it names, in order.

    A :class:`~rl.models.Sequential` whose flattened graph is still a chain is written in TF.js'
    Sequential form (``batch_input_shape`` on the first layer); anything else as a functional
    ``Model`` with ``inbound_nodes``, ``input_layers`` and ``output_layers``.

    Raises:
        TfjsFormatError: listing every unsupported layer, activation or setting.
    """
    if not isinstance(model, Model):
        raise TfjsFormatError(f"export needs an rl.models.Model (Sequential or functional), got {type(model).__name__}")
    if not model.built or not model._is_graph:
        if isinstance(model, Sequential):
            raise TfjsFormatError(f"Sequential '{model.name}' does not know its input shape yet: give its first layer "
                                  "input_shape=... (or call it once) before exporting")
        raise TfjsFormatError(f"model '{model.name}' ({type(model).__name__}) is subclassed: its forward is Python "
                              "code, which a layers-model file cannot hold; rebuild it as Sequential or functional")
    writer = _GraphWriter()
    for t in model._inputs:
        writer.add_input(t)
    writer.add_model(model)
    writer.resolve_reshapes()
    if writer.problems:
        raise TfjsFormatError(
            f"model '{model.name}' cannot be exported to TF.js; unsupported: " + "; ".join(writer.problems)
            + f". Supported layers: {', '.join(SUPPORTED_LAYERS)}; activations: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    entries = list(writer.entries.values())
    weight_layers = [writer.layers[e["name"]] for e in entries if e["name"] in writer.layers]
    outputs = [writer.refs[id(t)] for t in model._outputs]
    if isinstance(model, Sequential) and _is_chain(entries, outputs):
        layers = [{"class_name": e["class_name"], "config": dict(e["config"])} for e in entries[1:]]
        first = layers[0]["config"] if layers else None
        if first is not None:
            first["batch_input_shape"] = list(model._inputs[0].shape)
            first["dtype"] = "float32"
        config: dict[str, Any] = {"class_name": "Sequential", "config": {"name": model.name, "layers": layers}}
    else:
        config = {"class_name": "Model", "config": {
            "name": model.name, "layers": entries,
            "input_layers": [writer.refs[id(t)] for t in model._inputs], "output_layers": outputs}}
    return config, weight_layers


def _is_chain(entries: list[dict[str, Any]], outputs: list[list[Any]]) -> bool:
    if len(outputs) != 1 or len(entries) < 2 or outputs[0][0] != entries[-1]["name"]:
        return False
    for prev, entry in zip(entries, entries[1:]):
        nodes = entry["inbound_nodes"]
        if len(nodes) != 1 or len(nodes[0]) != 1 or nodes[0][0][:3] != [prev["name"], 0, 0]:
            return False
    return entries[0]["class_name"] == "InputLayer"


# ============================================================================ export: files
def save_tfjs(
    model: Model,
    directory: str | Path,
    shard_size_bytes: int = SHARD_SIZE_BYTES,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a TF.js layers model: ``directory/model.json`` and ``group1-shard{i}of{n}.bin``.

    Weights are float32 little-endian (float64 models are converted, as the converter does), in
    layer order, concatenated and cut into shards of at most ``shard_size_bytes`` (4 MiB, the
    converter's size). ``metadata`` (JSON-able) goes to ``userDefinedMetadata``, which TF.js hands
    back as ``model.getUserDefinedMetadata()``. Files are written atomically, ``model.json`` last;
    shards of an earlier export that the new ``model.json`` does not list are removed.

    Returns:
        the path of ``model.json``.
    Raises:
        TfjsFormatError: the model uses something TF.js cannot express (the message lists it all).
    """
    if shard_size_bytes < 4:
        raise ValueError(f"shard_size_bytes must be at least 4, got {shard_size_bytes}")
    topology, weight_layers = export_topology(model)
    specs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for layer in weight_layers:
        for full, tensor, _ in layer._own_weights():
            arr = np.ascontiguousarray(backend.to_numpy(tensor.data), dtype="<f4")
            specs.append({"name": full, "shape": list(arr.shape), "dtype": "float32"})
            chunks.append(arr.tobytes())
    data = b"".join(chunks)
    n_shards = -(-len(data) // shard_size_bytes)  # ceil; a model without weights has no shard at all
    paths = [f"group1-shard{i + 1}of{n_shards}.bin" for i in range(n_shards)]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(paths):
        atomic_write_bytes(directory / name, data[i * shard_size_bytes:(i + 1) * shard_size_bytes])
        (directory / name).chmod(0o644)  # web assets: readable by a server running as another user
    version = _version()
    doc: dict[str, Any] = {
        "format": "layers-model",
        "generatedBy": f"playgrad {version}",
        "convertedBy": f"playgrad {version} rl.tfjs",
        "modelTopology": {**topology, "keras_version": f"playgrad {version}", "backend": "tensor_flow.js"},
        "weightsManifest": [{"paths": paths, "weights": specs}],
    }
    if metadata is not None:
        doc["userDefinedMetadata"] = metadata
    path = directory / "model.json"
    atomic_write_text(path, json.dumps(doc, indent=1))
    path.chmod(0o644)
    for stale in directory.iterdir():
        if _SHARD_RE.match(stale.name) and stale.name not in paths:
            stale.unlink()
    return path


def _version() -> str:
    from importlib import metadata  # here, not at the top: save_tfjs has a parameter named `metadata`

    try:
        return metadata.version("playgrad")
    except metadata.PackageNotFoundError:
        return "dev"


# ============================================================================ import: files
def _model_json_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "model.json"
    if not path.exists():
        raise FileNotFoundError(f"no TF.js model at {path}")
    _check_regular_file(path, path, "model.json", MAX_MODEL_JSON_BYTES)
    return path


def _check_regular_file(json_path: Path, file: Path, what: str, max_bytes: int | None = None) -> int:
    """The size of ``file``, after checking it is a regular file (not a directory, device or FIFO) within budget."""
    try:
        st = file.stat()
    except OSError as exc:
        raise TfjsFormatError(f"{json_path}: {what} {file} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise TfjsFormatError(f"{json_path}: {what} {file} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise TfjsFormatError(f"{json_path}: {what} {file} is not a regular file (a device, pipe or socket)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise TfjsFormatError(f"{json_path}: {what} is {st.st_size} bytes, over the {max_bytes}-byte limit")
    return st.st_size


def _json_depth_over(doc: Any, limit: int) -> bool:
    """Whether objects/lists in ``doc`` nest deeper than ``limit`` (iterative: no recursion limit)."""
    stack = [(doc, 1)] if isinstance(doc, dict | list) else []  # a scalar has no depth
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def read_model_json(path: str | Path) -> dict[str, Any]:
    """The parsed ``model.json`` (``path`` is the file or its directory), checked for the required keys.

    Raises:
        TfjsFormatError: not a regular file, over ``MAX_MODEL_JSON_BYTES``, not JSON, nested deeper than
            ``MAX_JSON_DEPTH``, or missing the layers-model keys.
    """
    path = _model_json_path(path)
    too_deep = TfjsFormatError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TfjsFormatError(f"{path} is not valid JSON ({exc})") from None
    except RecursionError:  # nested beyond the parser's own limit
        raise too_deep from None
    if _json_depth_over(doc, MAX_JSON_DEPTH):
        raise too_deep
    if not isinstance(doc, dict):
        raise TfjsFormatError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in ("modelTopology", "weightsManifest") if k not in doc]
    if missing:
        raise TfjsFormatError(f"{path}: missing required key(s) {missing} (has {sorted(doc)})")
    fmt = doc.get("format")
    if fmt not in (None, "layers-model"):
        raise TfjsFormatError(f"{path}: format {fmt!r} is not a layers model ('graph-model' files hold a TF graph, "
                              "not Keras layers)")
    if not isinstance(doc["weightsManifest"], list):
        raise TfjsFormatError(f"{path}: weightsManifest must be a list of groups")
    return doc


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Decode the weights a ``model.json`` lists: ``{manifest name: float32 array}``, optimizer weights skipped.

    Every group's files are concatenated in manifest order and the flattened weight specs decoded
    one after another (TF.js' reading), so a tensor may span two shards. Quantized weights
    (``uint8``/``uint16`` with ``scale``/``min``, or ``float16``) are dequantized.

    Raises:
        TfjsFormatError: a shard is missing or too short (naming the file and the weight), or a
            spec is malformed.
    """
    json_path = _model_json_path(path)
    return _read_weights(json_path, read_model_json(json_path))


def _read_weights(json_path: Path, doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """:func:`read_weights` on the parsed ``doc``: every size checked against the manifest and the files first."""
    files: list[str] = []
    specs: list[dict[str, Any]] = []
    for g, group in enumerate(doc["weightsManifest"]):
        group_paths = group.get("paths", []) if isinstance(group, dict) else None
        group_specs = (group.get("weights") or []) if isinstance(group, dict) else None
        if not (isinstance(group_paths, list) and all(isinstance(f, str) for f in group_paths)
                and isinstance(group_specs, list)):
            raise TfjsFormatError(f"{json_path}: weightsManifest[{g}] must be {{'paths': [file names], "
                                  "'weights': [specs]}}")
        specs.extend(group_specs)
        files.extend(group_paths)
        if len(specs) > MAX_WEIGHT_SPECS or len(files) > MAX_WEIGHT_FILES:
            raise TfjsFormatError(f"{json_path}: the weights manifest lists more than {MAX_WEIGHT_SPECS} weights or "
                                  f"{MAX_WEIGHT_FILES} files")
    # Byte range of each spec in the concatenation.
    ranges: list[tuple[int, int]] = []
    offset = 0
    for i, spec in enumerate(specs):
        nbytes = _spec_nbytes(json_path, i, spec)
        ranges.append((offset, offset + nbytes))
        offset += nbytes
    # Every file checked and sized before a byte is read: the shards are read only as far as the specs need.
    sizes = []
    for k, name in enumerate(files):
        file = _shard_path(json_path, name)
        try:
            exists = file.exists()
        except OSError as exc:  # a name longer than the file system allows (ENAMETOOLONG), ...
            raise TfjsFormatError(f"{json_path}: weights path {name[:80]!r} cannot be a file here: "
                                  f"{exc.strerror or exc}") from None
        if not exists:
            start = sum(sizes)
            needed = [s.get("name") for s, (a, b) in zip(specs, ranges) if b > start]
            raise TfjsFormatError(
                f"{json_path}: weights shard '{name}' is missing (expected at {file}); it holds data of weight "
                f"'{needed[0] if needed else '?'}'" + (" and later ones" if len(needed) > 1 else "")
            )
        sizes.append(_check_regular_file(json_path, file, f"weights file #{k} '{name}'"))
    total = sum(sizes)
    for spec, (a, b) in zip(specs, ranges):
        if b > total:
            starts = [sum(sizes[:k]) for k in range(len(files))]
            short = next((n for n, s, z in zip(files, starts, sizes) if s <= a < s + z), files[-1] if files else None)
            raise TfjsFormatError(
                f"{json_path}: weight '{spec.get('name')}' (shape {spec.get('shape')}, {spec.get('dtype')}) needs "
                f"bytes {a}..{b} of the shards, but they hold only {total} bytes: shard "
                f"'{short}' is short or a shard is missing from the manifest"
            )
    data = bytearray(offset)  # exactly the bytes the specs use (<= the files' total, checked above)
    view, filled = memoryview(data), 0
    for name, size in zip(files, sizes):
        if filled == offset:
            break
        with _shard_path(json_path, name).open("rb") as fh:
            want = min(size, offset - filled)
            got = fh.readinto(view[filled:filled + want])
        if got != want:  # the file shrank since it was sized
            raise TfjsFormatError(f"{json_path}: weights file '{name}' changed while being read")
        filled += got
    out: dict[str, np.ndarray] = {}
    for spec, (a, b) in zip(specs, ranges):
        if spec.get("group") == "optimizer":
            continue
        out[spec["name"]] = _decode(spec, bytes(view[a:b]))
    return out


def _shard_path(json_path: Path, name: str) -> Path:
    """The file a manifest path names, which must lie inside the model's folder (no absolute path, no ``..``)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (not name or "\x00" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive
            or PureWindowsPath(name).is_absolute() or ".." in parts):
        raise TfjsFormatError(f"{json_path}: weights path {name!r} must be a relative path inside the model's folder")
    folder = json_path.parent.resolve()
    file = json_path.parent / name
    if not file.resolve().is_relative_to(folder):  # a symlink pointing out of the folder
        raise TfjsFormatError(f"{json_path}: weights path {name!r} leads outside the model's folder "
                              f"(to {file.resolve()})")
    return file


def _spec_nbytes(json_path: Path, i: int, spec: Any) -> int:
    """Bytes ``spec`` occupies in the shards, after checking every field ``_decode`` will use."""
    if not isinstance(spec, dict) or not {"name", "shape", "dtype"} <= set(spec) or not isinstance(spec["name"], str):
        raise TfjsFormatError(f"{json_path}: weight spec #{i} needs a 'name' string, 'shape' and 'dtype', got {spec!r}")
    if spec["dtype"] not in ("float32", "int32", "bool"):
        raise TfjsFormatError(f"{json_path}: weight '{spec['name']}' has dtype {spec['dtype']!r}; supported: "
                              "float32, int32, bool (quantized float32 too)")
    q = spec.get("quantization")
    dtype = q.get("dtype") if isinstance(q, dict) else spec["dtype"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise TfjsFormatError(f"{json_path}: weight '{spec['name']}' is stored as {dtype!r}; supported: "
                              f"{', '.join(_DTYPES)}")
    if isinstance(q, dict) and dtype in ("uint8", "uint16") and not all(
        type(q.get(k)) in (int, float) for k in ("scale", "min")
    ):
        raise TfjsFormatError(f"{json_path}: weight '{spec['name']}' is quantized to {dtype} but its 'scale' and "
                              f"'min' are not both numbers: {q!r}")
    shape = spec["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_WEIGHT_RANK or any(type(d) is not int or d < 0 for d in shape):
        raise TfjsFormatError(f"{json_path}: weight '{spec['name']}' has a bad shape {shape!r} (a list of at most "
                              f"{MAX_WEIGHT_RANK} non-negative ints)")
    # Python ints: np.prod would wrap around silently for a (corrupt) huge shape.
    return math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize


def _decode(spec: dict[str, Any], raw: bytes) -> np.ndarray:
    q = spec.get("quantization")
    if isinstance(q, dict):
        stored = np.frombuffer(raw, dtype=_DTYPES[q["dtype"]])
        if q["dtype"] == "float16":
            values = stored.astype(np.float32)
        else:  # affine quantization: value = q * scale + min (tfjs-core io_utils)
            values = stored.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
    else:
        values = np.frombuffer(raw, dtype=_DTYPES[spec["dtype"]]).astype(np.float32)
    return values.reshape(spec["shape"])


# ============================================================================ import: topology
_LAYER_ALIASES = {"Functional": "Model"}


def _class_name(entry: dict[str, Any]) -> Any:
    """``entry["class_name"]`` with Keras' aliases resolved (a non-string is left for the caller to report)."""
    name = entry.get("class_name")
    return _LAYER_ALIASES.get(name, name) if isinstance(name, str) else name


def _class_keys(cls: type) -> set[str]:
    """The keyword arguments the constructors of ``cls`` and its bases take (what a config may carry)."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            break
        init = klass.__dict__.get("__init__")
        if init is not None:
            keys |= {p for p in inspect.signature(init).parameters if p not in ("self", "args", "kwargs")}
    return keys


def _dtype_name(value: Any) -> Any:
    if isinstance(value, dict):  # Keras 3 dtype policy {"class_name": "DTypePolicy", "config": {"name": ...}}
        return (value.get("config") or {}).get("name", "float32")
    return value


def _clean_layer(entry: Any, where: str, problems: list[str], dropped: list[str]) -> Any:
    """One layer entry of a TF.js/Keras config rewritten into what ``rl.layers`` constructors take."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict | list | None):
        problems.append(f"{where}: a layer entry must be {{'class_name': ..., 'config': {{...}}}}, got {entry!r}")
        return entry
    class_name = _class_name(entry)
    config = entry.get("config")
    if class_name in ("Sequential", "Model"):
        return {**entry, "class_name": class_name, "config": _clean_model_config(class_name, config, where, problems,
                                                                                 dropped)}
    if class_name not in SUPPORTED_LAYERS or isinstance(config, list):
        problems.append(f"{where}: layer class {class_name!r}" if class_name not in SUPPORTED_LAYERS
                        else f"{where}: layer config must be an object, got a list")
        return entry
    config = dict(config or {})
    name = config.get("name") or entry.get("name") or class_name
    cls = getattr(L, class_name)
    allowed = _class_keys(cls)
    if "batch_shape" in config and "batch_input_shape" not in config:  # Keras 3 spelling
        config["batch_input_shape"] = config.pop("batch_shape")
    if "dtype" in config:
        config["dtype"] = _dtype_name(config["dtype"])
        if config["dtype"] not in ("float32", "float64", None):
            config["dtype"] = "float32"  # int inputs (e.g. an InputLayer of indices) still feed float layers here
    for key in ("activation",):
        if key in config:
            act = config[key] or "linear"
            if act not in SUPPORTED_ACTIVATIONS:
                problems.append(f"{where}: layer '{name}' ({class_name}) activation {act!r}")
            config[key] = act
    if class_name == "BatchNormalization":
        for key in ("renorm", "synchronized"):
            if config.get(key):
                problems.append(f"{where}: layer '{name}' (BatchNormalization) {key}=true")
    if class_name in ("Conv2D", "DepthwiseConv2D"):
        problems.extend(_conv_problems(f"{where}: layer '{name}'", class_name, config.get("strides", 1),
                                       config.get("dilation_rate", 1)))
    if class_name == "Reshape" and isinstance(config.get("target_shape"), list):
        # TF.js writes the inferred axis of Reshape([-1, c]) as null (target_shape [null, c]); ours is -1.
        config["target_shape"] = [-1 if d is None else d for d in config["target_shape"]]
    if class_name == "ReLU" and config.get("threshold") not in (None, 0, 0.0):
        problems.append(f"{where}: layer '{name}' (ReLU) threshold={config['threshold']}")
    for key in _TRAINING_ONLY_KEYS:
        if config.get(key) is not None:
            dropped.append(f"layer '{name}' {key}")
    if class_name == "InputLayer":
        config.pop("sparse", None)
        config.pop("ragged", None)
    # Keys we do not take: Keras/TF.js bookkeeping (regularizers, constraints, ragged, ...) that does not
    # change the forward pass. Settings that would (data_format, activations) are kept and checked above or
    # by the constructor.
    config = {k: v for k, v in config.items() if k in allowed}
    for key in ("kernel_initializer", "bias_initializer", "depthwise_initializer", "beta_initializer",
                "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer"):
        if key in config:
            config[key] = _import_initializer(config[key])
    return {**entry, "class_name": class_name, "config": config}


def _import_initializer(cfg: Any) -> Any:
    """A TF.js/Keras initializer config ours understands, else zeros: the file's weights replace it anyway."""
    if isinstance(cfg, dict) and isinstance(cfg.get("config"), dict):
        inner = dict(cfg["config"])
        for key in ("mode", "distribution"):  # TF.js writes fan_in / truncated_normal; old files may say fanIn
            if isinstance(inner.get(key), str):
                inner[key] = re.sub(r"([a-z])([A-Z])", r"\1_\2", inner[key]).lower()
        inner.pop("dtype", None)
        cfg = {**cfg, "config": inner}
    try:
        initializers.get(cfg)
    except (ValueError, TypeError):
        return "zeros"
    return cfg


def _clean_model_config(class_name: str, config: Any, where: str, problems: list[str],
                        dropped: list[str]) -> Any:
    if class_name == "Sequential":
        layers = config if isinstance(config, list) else config.get("layers") if isinstance(config, dict) else None
        if not isinstance(layers, list):
            problems.append(f"{where}: Sequential config needs a 'layers' list")
            return config
        cleaned = [_clean_layer(e, f"{where} layer #{i}", problems, dropped) for i, e in enumerate(layers)]
        out = {"layers": cleaned}
        if isinstance(config, dict):
            out.update({k: config[k] for k in ("name", "trainable") if k in config})
        return out
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        problems.append(f"{where}: functional model config needs 'layers', 'input_layers' and 'output_layers'")
        return config
    layers = []
    for i, entry in enumerate(config["layers"]):
        nodes = (entry.get("inbound_nodes") or []) if isinstance(entry, dict) else []
        if isinstance(nodes, list) and any(isinstance(n, dict) for n in nodes):
            problems.append(f"{where}: layer #{i} uses the Keras 3 inbound_nodes form (dicts), not the Keras 2 / "
                            "TF.js lists")
        entry = _clean_layer(entry, f"{where} layer #{i}", problems, dropped)
        if isinstance(entry, dict) and isinstance(entry.get("config") or {}, dict):
            entry["name"] = entry.get("name") or (entry.get("config") or {}).get("name")
        layers.append(entry)
    return _renumber_nested_model_nodes({**config, "layers": layers}, where, problems)


def _has_construction_node(entry: Any) -> bool:
    """Whether a nested model entry counts its own construction as node 0 (Keras' ``_should_skip_first_node``).

    A functional model always does (its inputs are InputLayers); a Sequential only when it knows its
    input shape (an InputLayer or ``batch_input_shape`` on its first layer). TF.js writes the same.
    """
    if not isinstance(entry, dict) or entry.get("class_name") not in ("Sequential", "Model"):
        return False
    if entry["class_name"] == "Model":
        return True
    layers = (entry.get("config") or {}).get("layers") if isinstance(entry.get("config"), dict) else None
    first = layers[0] if isinstance(layers, list) and layers else None
    first_config = first.get("config") if isinstance(first, dict) else None
    return isinstance(first_config, dict) and (
        first.get("class_name") == "InputLayer" or first_config.get("batch_input_shape") is not None)


def _renumber_nested_model_nodes(config: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """Rewrite references to a nested model's calls from Keras/TF.js numbering to ours.

    Keras and TF.js number a nested model's nodes counting its own construction as node 0, so its
    first call inside the outer model is node 1 (while its ``inbound_nodes`` list only that call);
    :meth:`rl.models.Model.from_config` numbers the calls inside the outer model from 0.
    """
    shifted = {e["name"] for e in config["layers"] if _has_construction_node(e) and isinstance(e.get("name"), str)}
    if not shifted:
        return config

    def fix(ref: Any, what: str) -> Any:
        if not (isinstance(ref, list) and len(ref) >= 3 and ref[0] in shifted and type(ref[1]) is int):
            return ref  # not a reference to a nested model (or malformed: the graph builder reports it)
        if ref[1] < 1:
            problems.append(f"{where}: {what} refers to node {ref[1]} of nested model '{ref[0]}', its own "
                            "construction; its calls are numbered from 1")
            return ref
        return [ref[0], ref[1] - 1, *ref[2:]]

    layers = []
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        if isinstance(nodes, list) and all(isinstance(n, list) for n in nodes):
            what = f"layer '{entry.get('name')}'"
            entry = {**entry, "inbound_nodes": [[fix(r, what) for r in n] for n in nodes]}
        layers.append(entry)
    out = {**config, "layers": layers}
    for key in ("input_layers", "output_layers"):
        if isinstance(config.get(key), list):
            out[key] = [fix(r, key) for r in config[key]]
    return out


def _topology(doc: dict[str, Any], where: str) -> dict[str, Any]:
    topo = doc["modelTopology"]
    if not isinstance(topo, dict):
        raise TfjsFormatError(f"{where}: modelTopology must be an object")
    if "model_config" in topo:  # the Python converter's Keras full-model JSON
        topo = topo["model_config"]
    if not isinstance(topo, dict) or "class_name" not in topo:
        raise TfjsFormatError(f"{where}: modelTopology needs 'class_name' and 'config' (or a 'model_config' holding "
                              "them)")
    return topo


def load_tfjs(path: str | Path, strict: bool = True) -> Model:
    """Rebuild a TF.js layers model (``path``: its directory or ``model.json``) as an ``rl`` model with its weights.

    Layer names and weight names are kept, so ``model.state_dict()`` keys equal the manifest names
    (a leading scope such as ``sequential/`` or a ``:0`` suffix is tolerated).

    Raises:
        TfjsFormatError: unsupported layers or activations (all listed), malformed topology, a
            missing/short shard (file and weight named), or weights that do not fit the layers.
    """
    json_path = _model_json_path(path)
    doc = read_model_json(json_path)
    topo = _topology(doc, str(json_path))
    class_name = _class_name(topo)
    if class_name not in ("Sequential", "Model"):
        raise TfjsFormatError(f"{json_path}: modelTopology class_name must be Sequential, Model or Functional, got "
                              f"{topo['class_name']!r}")
    n_layers = _count_layers(topo)
    if n_layers > MAX_LAYERS:
        raise TfjsFormatError(f"{json_path}: the topology has {n_layers} layers, over the limit of {MAX_LAYERS}")
    problems: list[str] = []
    dropped: list[str] = []
    config = _clean_model_config(class_name, topo.get("config"), str(json_path), problems, dropped)
    if problems:
        raise TfjsFormatError(
            f"{json_path} cannot be imported; unsupported: " + "; ".join(problems)
            + f". Supported layers: {', '.join(SUPPORTED_LAYERS)}; activations: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    if dropped:
        warnings.warn(f"{json_path}: ignored training-only settings: {', '.join(dropped)}", stacklevel=2)
    # The weights first: the topology may only create as many values as the shards hold (a Dense
    # 60000x60000 in a tiny file would otherwise allocate 13 GiB of fresh weights before any check).
    weights = _read_weights(json_path, doc)
    budget = _ValueBudget(json_path, sum(w.size for w in weights.values()) + _UNLISTED_WEIGHT_VALUES)
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        config = {**config, "layers": _budget_initializers(config["layers"], budget)}
    try:
        model = model_from_config({"class_name": class_name, "config": config})
    except TfjsFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # Past the checks above, the file's values go straight into layer constructors and the graph
        # builder; whatever they reject is still the file's fault.
        raise TfjsFormatError(f"{json_path}: the architecture cannot be rebuilt: {type(exc).__name__}: {exc}") from None
    _unwrap_initializers(model)
    if not model.built:
        raise TfjsFormatError(f"{json_path}: the model has no input shape (no InputLayer and no batch_input_shape on "
                              "its first layer)")
    model.load_state_dict(_match_weights(json_path, model, weights, strict), strict=strict)
    _probe_graph(json_path, model, [_probe_input(json_path, t) for t in model.inputs], ProbeBudget(json_path))
    return model


# ============================================================================ import: the graph must run
# The graph builder propagates shapes by each layer's formula, which does not check everything a layer's
# call needs (ranks of merged inputs, a shared layer called again on another shape, a nested model called
# on more inputs than it has, call arguments the layer does not take). So the importer runs every layer
# once on zeros of the shapes the graph gives it, and a file whose graph cannot run is refused at load,
# naming the layer, instead of failing at the first predict.
PROBE_FREE_SIZE = 32  # a free (None) input size is probed at this size: what TF.js convnets downsample by
MAX_PROBE_VALUES = 1 << 26  # activation values the probe may hold (256 MiB of float32; MobileNetV2: ~7M)


class ProbeBudget:
    """How many activation values the probe of one imported model may still allocate."""

    def __init__(self, json_path: Path, values: int = MAX_PROBE_VALUES) -> None:
        self.json_path, self.left = json_path, values

    def take(self, values: int, what: str) -> None:
        if values > self.left:
            raise TfjsFormatError(f"{self.json_path}: {what} needs {values} activation values for one sample, over the "
                                  f"{MAX_PROBE_VALUES} the importer allows a model")
        self.left -= values


def _probe_input(json_path: Path, tensor: Any) -> Any:
    """Zeros for one sample of a model input (free sizes at :data:`PROBE_FREE_SIZE`); its shape checked first."""
    dims = list(tensor.shape)[1:]
    if not all(d is None or (type(d) is int and d >= 1) for d in dims):
        raise TfjsFormatError(f"{json_path}: input '{tensor.node.layer.name}' has shape {list(tensor.shape)}; each "
                              "size after the batch axis must be a positive integer or null")
    return Tensor(np.zeros((1, *(PROBE_FREE_SIZE if d is None else d for d in dims)), dtype=tensor.dtype))


def _probe_graph(json_path: Path, model: Model, inputs: list[Any], budget: ProbeBudget) -> list[Any]:
    """Run ``model``'s graph node by node on ``inputs`` (zeros, batch of one); returns its outputs.

    Nested models are walked into, so a failure names the innermost layer. Every node's outputs must
    have the shapes the graph recorded for them (a free size matches any).
    """
    if len(inputs) != len(model.inputs):
        raise TfjsFormatError(f"{json_path}: model '{model.name}' has {len(model.inputs)} input(s) but is called on "
                              f"{len(inputs)}")
    values = {id(t): x for t, x in zip(model.inputs, inputs)}
    for node in model._nodes:
        if not node.inputs:
            continue  # an InputLayer: its value is one of ``inputs``
        layer, xs = node.layer, [values[id(t)] for t in node.inputs]
        shapes = [list(x.shape) for x in xs]
        shown = shapes[0] if node.single_input else shapes
        where = f"layer '{layer.name}' ({type(layer).__name__}) on input shape {shown}"
        try:
            if isinstance(layer, Model) and layer._is_graph:
                ys = _probe_graph(json_path, layer, xs, budget)
            else:
                budget.take(_probe_values(layer, [tuple(s) for s in shapes], node.single_input), where)
                with np.errstate(all="ignore"), no_grad(), using_config("train", False):
                    ys = layer(xs[0] if node.single_input else xs, **node.kwargs)
                ys = list(ys) if isinstance(ys, list | tuple) else [ys]
        except TfjsFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the layer raises, the file's graph cannot run
            raise TfjsFormatError(f"{json_path}: {where} cannot run: {type(exc).__name__}: {exc}") from None
        if len(ys) != len(node.outputs) or not all(_shape_fits(y.shape, t.shape) for y, t in zip(ys, node.outputs)):
            raise TfjsFormatError(f"{json_path}: {where} computes shape(s) {[list(y.shape) for y in ys]} where the "
                                  f"graph expects {[list(t.shape) for t in node.outputs]}")
        values.update((id(t), y) for t, y in zip(node.outputs, ys))
    return [values[id(t)] for t in model.outputs]


def _probe_values(layer: L.Layer, shapes: list[tuple[int, ...]], single: bool) -> int:
    """Activation values one layer's call allocates: its outputs, and a convolution's window matrix."""
    out = layer.compute_output_shape(shapes[0] if single else shapes)
    outs = out if isinstance(out, list) else [out]
    values = sum(math.prod(d for d in s if d is not None) for s in outs)
    if isinstance(layer, L.Conv2D | L.DepthwiseConv2D):  # (N, Ho, Wo, kh, kw, Cin) copied out of the window view
        values += math.prod(d for d in outs[0][:-1] if d is not None) * math.prod(layer.kernel_size) * shapes[0][-1]
    return values


def _shape_fits(actual: Sequence[int], recorded: Sequence[int | None]) -> bool:
    return len(actual) == len(recorded) and all(r is None or a == r for a, r in list(zip(actual, recorded))[1:])


def _count_layers(topo: dict[str, Any]) -> int:
    """Layer entries in a topology, nested models' included (iterative; the depth is bounded already)."""
    count, stack = 0, [topo]
    while stack:
        config = stack.pop().get("config")
        layers = config if isinstance(config, list) else config.get("layers") if isinstance(config, dict) else None
        if isinstance(layers, list):
            count += len(layers)
            stack.extend(e for e in layers if isinstance(e, dict))
    return count


_INITIALIZER_KEYS = ("kernel_initializer", "bias_initializer", "depthwise_initializer", "beta_initializer",
                     "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer")


class _ValueBudget:
    """How many weight values the layers being rebuilt may still create."""

    def __init__(self, json_path: Path, values: int) -> None:
        self.json_path, self.total, self.left = json_path, values, values

    def take(self, shape: tuple[int, ...]) -> None:
        n = math.prod(shape)
        if n > self.left:
            raise TfjsFormatError(
                f"{self.json_path}: the topology's weights need more values than the weight shards hold (a weight of "
                f"shape {list(shape)} with only {self.left} of {self.total} values left): the topology and the "
                "weights manifest disagree"
            )
        self.left -= n


class _BudgetedInitializer:
    """An initializer that first takes its weight's size from a :class:`_ValueBudget` (import only)."""

    def __init__(self, inner: Any, budget: _ValueBudget) -> None:
        self.inner, self.budget = inner, budget

    def __call__(self, shape: tuple[int, ...], dtype: Any, rng: Any = None) -> Any:
        self.budget.take(shape)
        return self.inner(shape, dtype, rng)


def _budget_initializers(entries: Any, budget: _ValueBudget) -> Any:
    """Layer ``entries`` (cleaned; a list, nested models included) with every initializer drawing on ``budget``.

    Also the initializers a config leaves out: the constructor's defaults would allocate unchecked.
    """
    out = []
    for entry in entries:
        config = entry.get("config") if isinstance(entry, dict) else None
        if not isinstance(config, dict):
            out.append(entry)  # malformed: the graph builder reports it
            continue
        if entry.get("class_name") in ("Sequential", "Model"):
            layers = config.get("layers")
            nested = {**config, "layers": _budget_initializers(layers, budget)} if isinstance(layers, list) else config
            out.append({**entry, "config": nested})
            continue
        cls = getattr(L, entry.get("class_name"), None) if isinstance(entry.get("class_name"), str) else None
        if not isinstance(cls, type):
            out.append(entry)
            continue
        config = dict(config)
        for key in _INITIALIZER_KEYS:
            default = _init_default(cls, key)
            if key in config or default is not inspect.Parameter.empty:
                config[key] = _BudgetedInitializer(initializers.get(config.get(key, default)), budget)
        out.append({**entry, "config": config})
    return out


def _init_default(cls: type, key: str) -> Any:
    """The default of constructor argument ``key`` of ``cls`` (or a base), ``inspect.Parameter.empty`` if none."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        param = inspect.signature(init).parameters.get(key) if init is not None else None
        if param is not None:
            return param.default
    return inspect.Parameter.empty


def _unwrap_initializers(model: Model) -> None:
    """Put the file's own initializers back (so the model serializes as usual) once the layers are built."""
    stack: list[Any] = [model]
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) if isinstance(layer, Model) else [])
        for key in _INITIALIZER_KEYS:
            value = getattr(layer, key, None)
            if isinstance(value, _BudgetedInitializer):
                setattr(layer, key, value.inner)


def _match_weights(json_path: Path, model: Model, weights: dict[str, np.ndarray], strict: bool) -> dict[str, Any]:
    """Map manifest names onto the model's ``"layer/weight"`` names; shapes checked, problems named."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    out: dict[str, Any] = {}
    unexpected = []
    for name, value in weights.items():
        key = _resolve_name(name.split(":")[0], own)
        if key is None or key in out:
            unexpected.append(name)
            continue
        if tuple(value.shape) != own[key]:
            raise TfjsFormatError(f"{json_path}: weight '{name}' has shape {list(value.shape)} in the shards but "
                                  f"layer weight '{key}' has shape {list(own[key])}")
        out[key] = value
    missing = [k for k in own if k not in out]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing from the weights manifest: {', '.join(missing)}")
        if unexpected:
            parts.append(f"in the manifest but not in the model: {', '.join(unexpected)}")
        raise TfjsFormatError(f"{json_path}: weights do not fit the topology; " + "; ".join(parts))
    return out


def _resolve_name(name: str, own: dict[str, Any]) -> str | None:
    if name in own:
        return name
    tokens = name.split("/")
    if len(tokens) > 2:
        cell_dropped = "/".join([*tokens[:-2], tokens[-1]])  # TF 2.2's layer/cell/weight (tfjs does the same)
        if cell_dropped in own:
            return cell_dropped
    for i in range(1, len(tokens) - 1):  # a leading model scope: sequential/dense/kernel
        candidate = "/".join(tokens[i:])
        if candidate in own:
            return candidate
    return None
