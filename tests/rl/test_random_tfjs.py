"""Randomized round trips through the real TensorFlow.js (npm ``@tensorflow/tfjs``, pure-JS CPU backend, in Node).

Export: random models (Sequential chains, functional graphs with Add / Multiply / Concatenate branches,
every layer the exporter supports with random settings: paddings incl. torch-style explicit ones,
strides, dilations, depth multipliers, activations, pooling, batch norm with random statistics,
Reshape with -1, random shard sizes) are written by :func:`rl.tfjs.save_tfjs`, loaded and run by TF.js
(``tests/tfjs/predict.js``) and must predict what we predict. Settings TF.js cannot run (a conv with
strides and dilation both > 1, a dilated depthwise conv) must be refused with ``TfjsFormatError``.

Import: random model specs are built, randomly initialized and saved by TF.js itself
(``tests/tfjs/build_models.js``), some with a Sequential nested in a functional model; we load them with
:func:`rl.tfjs.load_tfjs` and must predict what TF.js predicted; with a layer or activation we do not have
spliced in, the import must be refused naming it.

All Node work of a test runs in one process. Cases are seeded: ``PLAYGRAD_FUZZ_CASES`` (default 12) per
test from ``PLAYGRAD_FUZZ_SEED`` (default 0); a failure prints the seed, the case and the replay command.
Skipped, with the reason, where Node or ``tests/tfjs/node_modules/@tensorflow/tfjs`` is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import numpy as np
import pytest
from test_tfjs_node import HARNESS, _node_or_skip, decode, encode, tfjs_predict

from rl import backend, tfjs
from rl import layers as L
from rl.models import Input, Model, Sequential

pytestmark = pytest.mark.node

N_CASES = int(os.environ.get("PLAYGRAD_FUZZ_CASES", "12"))
BASE_SEED = int(os.environ.get("PLAYGRAD_FUZZ_SEED", "0"))
SEEDS = list(range(BASE_SEED, BASE_SEED + N_CASES))
ACTIVATIONS = tfjs.SUPPORTED_ACTIVATIONS


def _replay(test: str, seed: int, case: Any) -> str:
    return (f"\n  seed {seed}, case: {case!r}\n  replay: PLAYGRAD_FUZZ_SEED={seed} PLAYGRAD_FUZZ_CASES=1 "
            f".venv/bin/python -m pytest tests/rl/test_random_tfjs.py -k {test}")


def _assert_close(got: np.ndarray, want: np.ndarray, what: str, ctx: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}{ctx}"
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    assert diff <= 2e-5 * scale, f"{what}: max abs diff {diff:.3g} (scale {scale:.3g}){ctx}"


# ---------------------------------------------------------------------------------- random layers
def _padding(rng: np.random.Generator, explicit_ok: bool) -> Any:
    kind = rng.choice(["valid", "same", "explicit"] if explicit_ok else ["valid", "same"])
    if kind == "explicit":
        return tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
    return str(kind)


def _image_layer(rng: np.random.Generator, channels: int, unrunnable_ok: bool) -> L.Layer:
    """One random layer for an NHWC input; ``unrunnable_ok`` lets through settings TF.js cannot run."""
    kind = str(rng.choice(["conv", "conv", "depthwise", "bn", "maxpool", "avgpool", "act", "relu", "zeropad",
                           "dropout"]))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    if not unrunnable_ok and (kind == "depthwise" or max(s) > 1):
        d = (1, 1)
    act = str(rng.choice(ACTIVATIONS[:-1]))  # softmax over channels is legal but wipes out detail: heads only
    if kind == "conv":
        return L.Conv2D(int(rng.integers(1, 5)), k, strides=s, padding=_padding(rng, True), dilation_rate=d,
                        activation=act, use_bias=bool(rng.random() < 0.7))
    if kind == "depthwise":
        return L.DepthwiseConv2D(k, strides=s, padding=_padding(rng, True), depth_multiplier=int(rng.integers(1, 3)),
                                 dilation_rate=d, activation=act, use_bias=bool(rng.random() < 0.7))
    if kind == "bn":
        return L.BatchNormalization(epsilon=float(rng.choice([1e-3, 1e-5])), center=bool(rng.random() < 0.8),
                                    scale=bool(rng.random() < 0.8))
    if kind in ("maxpool", "avgpool"):
        cls = L.MaxPooling2D if kind == "maxpool" else L.AveragePooling2D
        return cls(k, strides=None if rng.random() < 0.5 else s, padding=str(rng.choice(["valid", "same"])))
    if kind == "act":
        return L.Activation(act)
    if kind == "relu":
        return L.ReLU(max_value=None if rng.random() < 0.4 else float(rng.uniform(0.5, 6)))
    if kind == "dropout":
        return L.Dropout(float(rng.uniform(0, 0.5)))
    return L.ZeroPadding2D(tuple((int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(2)))


def _fits(layer: L.Layer, shape: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``layer``'s output shape for ``shape``, or None when its window does not fit (or it refuses)."""
    try:
        out = layer.compute_output_shape(shape)
    except ValueError:
        return None
    return out if len(out) != 4 or min(out[1:3]) >= 1 else None


def _head(rng: np.random.Generator, channels: int) -> list[L.Layer]:
    """Flatten / Reshape(-1) / global pooling of an image, then Dense with a random activation."""
    pick = rng.random()
    if pick < 0.35:
        layers: list[L.Layer] = [L.Flatten()]
    elif pick < 0.6:
        layers = [L.GlobalAveragePooling2D()]
    elif pick < 0.8:  # (N, H, W, C) -> (N, H*W, C), then flattened
        layers = [L.Reshape((-1, channels)), L.Flatten()]
    else:  # (N, H*W, C): the Dense below runs on every position
        layers = [L.Reshape((-1, channels))]
    return [*layers, L.Dense(int(rng.integers(1, 5)), activation=str(rng.choice(ACTIVATIONS)))]


def _random_model(rng: np.random.Generator, unrunnable_ok: bool = False,
                  graph_extras: bool = False) -> tuple[Model, tuple[int, ...]]:
    """A random exportable model and its input shape (with ``unrunnable_ok``, maybe one TF.js cannot run).

    ``graph_extras`` lets a functional model have a second input and a second output, call a layer twice
    (shared weights) and nest a Sequential (which the exporter inlines).
    """
    kind = str(rng.choice(["mlp", "sequential", "functional"]))
    if kind == "mlp":
        shape = (int(rng.integers(1, 8)),)
        layers: list[L.Layer] = [L.InputLayer(shape)]
        for _ in range(int(rng.integers(1, 4))):
            layers.append(L.Dense(int(rng.integers(1, 8)), activation=str(rng.choice(ACTIVATIONS)),
                                  use_bias=bool(rng.random() < 0.8)))
            if rng.random() < 0.3:
                layers.append(L.BatchNormalization() if rng.random() < 0.5 else L.Dropout(0.2))
        return Sequential(layers), shape
    shape = (int(rng.integers(4, 11)), int(rng.integers(4, 11)), int(rng.integers(1, 4)))
    if kind == "sequential":  # a chain, exported in TF.js' Sequential form
        layers, current = [L.InputLayer(shape)], (None, *shape)
        for _ in range(int(rng.integers(1, 6))):
            layer = _image_layer(rng, current[-1], unrunnable_ok)
            out_shape = _fits(layer, current)
            if out_shape is not None:
                layers.append(layer)
                current = out_shape
        return Sequential([*layers, *_head(rng, current[-1])]), shape
    inputs = [Input(shape)]
    if graph_extras and rng.random() < 0.3:
        inputs.append(Input(shape))
    # Everything derives from the joined inputs: an input the outputs do not use is refused by Model.
    tensors = [inputs[0] if len(inputs) == 1 else L.Concatenate()(inputs)]
    called: list[tuple[L.Layer, Any]] = []  # (layer, the tensor it was first called on)
    nested = False
    for _ in range(int(rng.integers(1, 6))):
        src = tensors[-1] if rng.random() < 0.5 else tensors[int(rng.integers(len(tensors)))]
        pick = rng.random()
        if pick < 0.3:
            tensors.append(_merge(rng, src, tensors))
            continue
        if graph_extras and pick < 0.45:  # call an earlier layer again on a tensor of the shape it takes
            shared = [(layer, t) for layer, first in called for t in tensors
                      if t.shape == first.shape and t is not first]
            if shared:
                layer, t = shared[int(rng.integers(len(shared)))]
                tensors.append(layer(t))
                continue
        if graph_extras and pick < 0.6 and not nested:  # a nested Sequential of one or two layers
            # Only one: two auto-named nested models clash in rl.models ("cannot join", reported).
            nested = True
            inner, current = [L.InputLayer(src.shape[1:])], src.shape
            for _ in range(int(rng.integers(1, 3))):
                layer = _image_layer(rng, current[-1], unrunnable_ok)
                out_shape = _fits(layer, current)
                if out_shape is not None:
                    inner.append(layer)
                    current = out_shape
            if len(inner) > 1:
                tensors.append(Sequential(inner)(src))
            continue
        layer = _image_layer(rng, src.shape[-1], unrunnable_ok)
        if _fits(layer, src.shape) is not None:
            tensors.append(layer(src))
            called.append((layer, src))
    heads = [tensors[-1]]
    if graph_extras and rng.random() < 0.3:
        heads.append(tensors[int(rng.integers(len(tensors)))])
    outputs = []
    for x in heads:
        for layer in _head(rng, x.shape[-1]):
            x = layer(x)
        outputs.append(x)
    return Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0]), shape


def _merge(rng: np.random.Generator, src: Any, tensors: list[Any]) -> Any:
    """Add / Multiply / Concatenate ``src`` with a branch of it (or another tensor of a fitting shape)."""
    same = [t for t in tensors if t is not src and t.shape == src.shape]
    other = same[int(rng.integers(len(same)))] if same and rng.random() < 0.5 else \
        L.Conv2D(src.shape[-1], 1, activation=str(rng.choice(ACTIVATIONS[:-1])))(src)
    kind = str(rng.choice(["add", "multiply", "concatenate"]))
    if kind == "concatenate":
        extra = L.Conv2D(int(rng.integers(1, 4)), 3, padding="same")(src)
        return L.Concatenate()([src, extra, other] if rng.random() < 0.5 else [extra, src])
    return (L.Add() if kind == "add" else L.Multiply())([src, other])


def _randomize_state(model: Model, rng: np.random.Generator) -> None:
    """Fresh layers have zero biases and identity batch norms: random values make every mix-up visible."""
    for key, value in model.state_dict().items():
        name = key.split("/")[-1]
        if name in ("moving_variance", "gamma"):
            value[...] = backend.to_device(rng.uniform(0.5, 1.5, value.shape), dtype=value.dtype)
        elif name in ("moving_mean", "beta", "bias"):
            value[...] = backend.to_device(rng.normal(0, 0.5, value.shape), dtype=value.dtype)


def _describe(model: Model) -> list[Any]:
    return [(type(layer).__name__, {k: v for k, v in layer.get_config().items()
                                    if not k.endswith("initializer") and k not in ("trainable", "dtype")})
            for layer in model.layers]


# ---------------------------------------------------------------------------------- export
def test_random_models_exported_predict_the_same_in_tfjs(tmp_path):
    _node_or_skip()
    jobs, expected, cases = [], [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        model, shape = _random_model(rng, graph_extras=True)
        _randomize_state(model, rng)
        n = int(rng.integers(1, 4))
        xs = [rng.normal(size=(n, *shape)).astype(np.float32) for _ in model.inputs]
        shard = int(rng.choice([64, 1000, tfjs.SHARD_SIZE_BYTES]))  # small shards split tensors
        case = {"input": shape, "inputs": len(xs), "shard_size_bytes": shard, "config": model.get_config()}
        tfjs.save_tfjs(model, tmp_path / f"m{seed}", shard_size_bytes=shard)
        jobs.append((tmp_path / f"m{seed}", xs))
        want = model.predict(xs if len(xs) > 1 else xs[0])
        expected.append(want if isinstance(want, list) else [want])
        cases.append((seed, case))
    results = tfjs_predict(jobs, tmp_path)
    for (seed, case), result, want in zip(cases, results, expected):
        ctx = _replay("exported_predict", seed, case)
        assert "error" not in result, f"TF.js failed to load/predict:\n{result.get('error', '')[-1500:]}{ctx}"
        assert len(result["outputs"]) == len(want), f"{len(result['outputs'])} outputs, ours {len(want)}{ctx}"
        for i, (got, w) in enumerate(zip(result["outputs"], want)):
            _assert_close(decode(got), w, f"output {i}: TF.js vs rl", ctx)


def test_random_unrunnable_convolutions_are_refused(tmp_path):
    refused = 0
    for seed in SEEDS:
        rng = np.random.default_rng(10_000 + seed)
        model, _ = _random_model(rng, unrunnable_ok=True)
        bad = [layer.name for layer in model.layers if isinstance(layer, L.Conv2D | L.DepthwiseConv2D)
               and max(layer.dilation_rate) > 1 and (isinstance(layer, L.DepthwiseConv2D) or max(layer.strides) > 1)]
        ctx = _replay("unrunnable", seed, _describe(model))
        if not bad:
            tfjs.save_tfjs(model, tmp_path / f"m{seed}")
            continue
        with pytest.raises(tfjs.TfjsFormatError) as err:
            tfjs.save_tfjs(model, tmp_path / f"m{seed}")
        assert all(f"layer '{name}'" in str(err.value) for name in bad), f"{err.value}{ctx}"
        refused += 1
    assert refused or N_CASES < 12, "no case drew an unrunnable conv: the generator lost them"


# ---------------------------------------------------------------------------------- import
_TFJS_CLASS = {"Dense": "dense", "Conv2D": "conv2d", "DepthwiseConv2D": "depthwiseConv2d",
               "BatchNormalization": "batchNormalization", "MaxPooling2D": "maxPooling2d",
               "AveragePooling2D": "averagePooling2d", "GlobalAveragePooling2D": "globalAveragePooling2d",
               "Flatten": "flatten", "Reshape": "reshape", "Dropout": "dropout", "Activation": "activation",
               "ReLU": "reLU", "ZeroPadding2D": "zeroPadding2d", "Add": "add", "Multiply": "multiply",
               "Concatenate": "concatenate"}


def _tfjs_layers(layer: L.Layer, out_shape: tuple[Any, ...], before_flatten: bool) -> list[dict[str, Any]]:
    """``layer`` as tf.layers factory calls (an explicit conv padding becomes zeroPadding2d + valid).

    A Reshape's -1 is kept (TF.js saves it as null) unless a Flatten follows, which TF.js cannot build
    on the unknown size it leaves.
    """
    cfg = layer.get_config()
    cls = type(layer).__name__
    pre: list[dict[str, Any]] = []
    args: dict[str, Any] = {}
    if cls in ("Conv2D", "DepthwiseConv2D"):
        pad = cfg["padding"]
        if not isinstance(pad, str):
            pre = [{"className": "zeroPadding2d", "args": {"padding": pad}}]
            pad = "valid"
        args = {"kernelSize": cfg["kernel_size"], "strides": cfg["strides"], "padding": pad,
                "dilationRate": cfg["dilation_rate"], "activation": cfg["activation"], "useBias": cfg["use_bias"]}
        args.update({"filters": cfg["filters"]} if cls == "Conv2D" else {"depthMultiplier": cfg["depth_multiplier"]})
    elif cls == "Dense":
        args = {"units": cfg["units"], "activation": cfg["activation"], "useBias": cfg["use_bias"]}
    elif cls == "BatchNormalization":
        args = {"epsilon": cfg["epsilon"], "center": cfg["center"], "scale": cfg["scale"]}
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        args = {"poolSize": cfg["pool_size"], "strides": cfg["strides"], "padding": cfg["padding"]}
    elif cls == "Reshape":
        args = {"targetShape": list(out_shape[1:]) if before_flatten else cfg["target_shape"]}
    elif cls == "Dropout":
        args = {"rate": cfg["rate"]}
    elif cls == "Activation":
        args = {"activation": cfg["activation"]}
    elif cls == "ReLU":
        args = {"maxValue": cfg["max_value"]}
    elif cls == "ZeroPadding2D":
        args = {"padding": cfg["padding"]}
    return [*pre, {"className": _TFJS_CLASS[cls], "args": args}]


def _tfjs_spec(model: Model, shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, Any]:
    """A build_models.js spec of ``model``'s graph: a Sequential as TF.js' Sequential (half the time), else a
    functional graph in which one single-input layer may sit in a nested Sequential."""
    calls = []  # (node, tf.layers calls) in graph order
    for node in model._nodes:
        if node.inputs:
            before_flatten = any(isinstance(n.layer, L.Flatten) and n.inputs[0] is node.outputs[0]
                                 for n in model._nodes)
            calls.append((node, _tfjs_layers(node.layer, node.outputs[0].shape, before_flatten)))
    if isinstance(model, Sequential) and rng.random() < 0.5:
        layers = [spec for _, specs in calls for spec in specs]
        layers[0] = {**layers[0], "args": {**layers[0]["args"], "inputShape": list(shape)}}
        return {"kind": "sequential", "layers": layers}
    ids: dict[int, int] = {id(model.inputs[0]): 0}
    nodes: list[dict[str, Any]] = []
    nest = rng.random() < 0.5
    for node, specs in calls:
        ins = [ids[id(t)] for t in node.inputs]
        if nest and len(ins) == 1 and len(node.inputs[0].shape) == 4:
            nodes.append({"layer": {"className": "sequential", "name": f"nested_{len(nodes)}", "layers": specs,
                                    "inputShape": list(node.inputs[0].shape[1:])}, "inputs": ins})
            nest = False
        else:
            for k, spec in enumerate(specs):  # a padded conv: zeroPadding2d, then the conv on its output
                nodes.append({"layer": spec, "inputs": [len(nodes)] if k else ins})
        for t in node.outputs:
            ids[id(t)] = len(nodes)
    return {"kind": "functional", "inputShape": list(shape), "nodes": nodes,
            "outputs": [ids[id(t)] for t in model.outputs]}


def test_random_models_saved_by_tfjs_predict_the_same_in_rl(tmp_path):
    node = _node_or_skip()
    jobs, cases = [], []
    for seed in SEEDS:
        rng = np.random.default_rng(20_000 + seed)
        model, shape = _random_model(rng)
        spec = _tfjs_spec(model, shape, rng)
        x = rng.normal(size=(int(rng.integers(1, 4)), *shape)).astype(np.float32)
        jobs.append({"dir": str(tmp_path / f"m{seed}"), "seed": seed, "model": spec, "inputs": [encode(x)]})
        cases.append((seed, spec, x))
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    proc = subprocess.run([node, str(HARNESS / "build_models.js"), str(job_file)], capture_output=True, text=True,
                          timeout=300, cwd=HARNESS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for (seed, spec, x), result in zip(cases, json.loads(proc.stdout)):
        ctx = _replay("saved_by_tfjs", seed, spec)
        assert "error" not in result, f"TF.js could not build the spec:\n{result.get('error', '')[-1500:]}{ctx}"
        model = tfjs.load_tfjs(tmp_path / f"m{seed}")
        _assert_close(np.asarray(model.predict(x)), decode(result["outputs"][0]), "rl vs TF.js", ctx)
        doc = json.loads((tmp_path / f"m{seed}" / "model.json").read_text())
        names = {w["name"] for g in doc["weightsManifest"] for w in g["weights"]}
        assert set(model.state_dict()) == names, f"weight names differ from TF.js'{ctx}"


_UNSUPPORTED_LAYERS = [("leakyReLU", {"alpha": 0.1}, "LeakyReLU"), ("prelu", {}, "PReLU"),
                       ("layerNormalization", {}, "LayerNormalization"), ("elu", {}, "ELU"),
                       ("softmax", {"axis": -1}, "Softmax"), ("gaussianNoise", {"stddev": 0.1}, "GaussianNoise"),
                       ("alphaDropout", {"rate": 0.1}, "AlphaDropout")]
# tf.layers' activation argument -> the name TF.js writes in model.json
_UNSUPPORTED_ACTIVATIONS = {"selu": "selu", "softsign": "softsign", "swish": "swish", "mish": "mish", "gelu": "gelu",
                            "hardSigmoid": "hard_sigmoid"}


def test_random_tfjs_models_with_unsupported_pieces_are_refused_by_name(tmp_path):
    node = _node_or_skip()
    jobs, cases = [], []
    for seed in SEEDS:
        rng = np.random.default_rng(30_000 + seed)
        model, shape = _random_model(rng)
        spec = _tfjs_spec(model, shape, rng)
        nodes = spec["nodes"] if spec["kind"] == "functional" else None
        if rng.random() < 0.5:  # an activation TF.js has and we do not, on the Dense head
            act = sorted(_UNSUPPORTED_ACTIVATIONS)[int(rng.integers(len(_UNSUPPORTED_ACTIVATIONS)))]
            layer_specs = [n["layer"] for n in nodes] if nodes is not None else spec["layers"]
            head = next(ls for ls in reversed(layer_specs) if ls["className"] == "dense")
            head["args"]["activation"] = act
            expect = f"activation '{_UNSUPPORTED_ACTIVATIONS[act]}'"
        else:  # a layer we do not have, in front of the head (these keep the shape)
            cls, args, keras_name = _UNSUPPORTED_LAYERS[int(rng.integers(len(_UNSUPPORTED_LAYERS)))]
            extra = {"className": cls, "args": args}
            if nodes is not None:
                nodes.insert(0, {"layer": extra, "inputs": [0]})  # on the input; the rest shifts by one
                for n in nodes[1:]:
                    n["inputs"] = [i + 1 if i > 0 else 1 for i in n["inputs"]]
                spec["outputs"] = [i + 1 for i in spec["outputs"]]
            else:
                spec["layers"].insert(0, {**extra, "args": {**args, "inputShape": list(shape)}})
                spec["layers"][1]["args"].pop("inputShape", None)
            expect = f"layer class '{keras_name}'"
        x = rng.normal(size=(1, *shape)).astype(np.float32)
        jobs.append({"dir": str(tmp_path / f"m{seed}"), "seed": seed, "model": spec, "inputs": [encode(x)]})
        cases.append((seed, spec, expect))
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    proc = subprocess.run([node, str(HARNESS / "build_models.js"), str(job_file)], capture_output=True, text=True,
                          timeout=300, cwd=HARNESS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for (seed, spec, expect), result in zip(cases, json.loads(proc.stdout)):
        ctx = _replay("unsupported_pieces", seed, spec)
        assert "error" not in result, f"TF.js could not build the spec:\n{result.get('error', '')[-1500:]}{ctx}"
        try:
            tfjs.load_tfjs(tmp_path / f"m{seed}")
        except tfjs.TfjsFormatError as err:
            assert expect in str(err), f"{err}{ctx}"
        else:
            pytest.fail(f"loaded a model with {expect}{ctx}")
