"""rl.tfjs without TF.js: round trips, files as the Python converter and TF.js write them, the legacy
Sequential list form, shards that split a tensor, quantized weights, and the errors users see."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rl import layers as L
from rl import tfjs
from rl.models import Input, Model, Sequential


def _assert_same_predictions(a: Model, b: Model, x: np.ndarray, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(np.asarray(b.predict(x)), np.asarray(a.predict(x)), atol=atol, rtol=0)


def _cnn() -> Sequential:
    return Sequential([L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
                       L.BatchNormalization(), L.Conv2D(6, 3, strides=2, padding=((1, 1), (1, 1))),
                       L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5), L.Dense(3, activation="softmax")])


def test_round_trip_sequential_keeps_names_weights_and_predictions(tmp_path):
    model = _cnn()
    model.state_dict()["batch_normalization/moving_variance"][...] = 2.5
    path = tfjs.save_tfjs(model, tmp_path, metadata={"env": "snake"})
    doc = json.loads(path.read_text())
    assert doc["format"] == "layers-model" and doc["userDefinedMetadata"] == {"env": "snake"}
    assert doc["modelTopology"]["class_name"] == "Sequential"
    names = [e["config"]["name"] for e in doc["modelTopology"]["config"]["layers"]]
    assert "conv2d_1_pad" in names and names.index("conv2d_1_pad") == names.index("conv2d_1") - 1
    assert doc["modelTopology"]["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 6, 6, 2]
    back = tfjs.load_tfjs(tmp_path)
    assert list(back.state_dict()) == list(model.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype(np.float32)
    _assert_same_predictions(model, back, x)


def test_round_trip_functional_with_shared_layer_and_nested_model(tmp_path):
    inner = Sequential([L.Dense(5, activation="tanh", input_shape=(4,))], name="inner")
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = L.Dense(4, activation="relu", name="shared")
    merged = L.Concatenate()([shared(a), shared(b), inner(a)])
    model = Model([a, b], L.Dense(2)(merged))
    tfjs.save_tfjs(model, tmp_path)
    topo = json.loads((tmp_path / "model.json").read_text())["modelTopology"]
    entry = next(e for e in topo["config"]["layers"] if e["name"] == "shared")
    assert len(entry["inbound_nodes"]) == 2  # one layer, two calls: node indices 0 and 1
    assert "inner" not in {e["name"] for e in topo["config"]["layers"]}  # the nested model is inlined
    back = tfjs.load_tfjs(tmp_path / "model.json")
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2)]
    np.testing.assert_allclose(np.asarray(back.predict(xs)), np.asarray(model.predict(xs)), atol=1e-6)


def test_shards_are_converter_named_capped_and_split_tensors(tmp_path):
    model = Sequential([L.Dense(30, input_shape=(20,)), L.Dense(7)])  # 630 + 217 floats = 3388 bytes
    tfjs.save_tfjs(model, tmp_path, shard_size_bytes=1000)
    doc = json.loads((tmp_path / "model.json").read_text())
    paths = doc["weightsManifest"][0]["paths"]
    assert paths == [f"group1-shard{i}of4.bin" for i in range(1, 5)]
    sizes = [(tmp_path / p).stat().st_size for p in paths]
    assert sizes == [1000, 1000, 1000, 388]
    # Raw bytes: float32 little-endian, in manifest order.
    raw = b"".join((tmp_path / p).read_bytes() for p in paths)
    np.testing.assert_array_equal(np.frombuffer(raw[:2400], "<f4").reshape(20, 30), model.get_weights()[0])
    # A re-export with one shard removes the stale ones.
    tfjs.save_tfjs(model, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["group1-shard1of1.bin"]
    np.testing.assert_array_equal(tfjs.read_weights(tmp_path)["dense_1/bias"], model.get_weights()[3])


def test_float64_model_is_written_as_float32(tmp_path):
    model = Sequential([L.Dense(3, input_shape=(2,), dtype="float64")])
    tfjs.save_tfjs(model, tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())["weightsManifest"][0]["weights"][0]
    assert spec["dtype"] == "float32"
    assert (tmp_path / "group1-shard1of1.bin").stat().st_size == 4 * (6 + 3)


# ------------------------------------------------------------------------------ files written by others
def _write_shards(directory, arrays, cut_bytes):
    data = b"".join(np.ascontiguousarray(a, "<f4").tobytes() for a in arrays)
    n = -(-len(data) // cut_bytes)
    paths = [f"group1-shard{i + 1}of{n}.bin" for i in range(n)]
    for i, p in enumerate(paths):
        (directory / p).write_bytes(data[i * cut_bytes:(i + 1) * cut_bytes])
    return paths


def _converter_style(tmp_path, rng):
    """What tensorflowjs_converter writes for a small Keras 2 functional model (formats §5.2)."""
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    dense_k = rng.normal(size=(4 * 4 * 4, 3)).astype(np.float32)
    dense_b = rng.normal(size=3).astype(np.float32)
    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    layers = [
        {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 6, 6, 2], "dtype": "float32", "sparse": False, "ragged": False,
                    "name": "input_1"}},
        {"class_name": "Conv2D", "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]],
         "config": {"name": "conv2d", "trainable": True, "dtype": "float32", "filters": 4, "kernel_size": [3, 3],
                    "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                    "groups": 1, "activation": "relu", "use_bias": True, "kernel_initializer": init,
                    "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                    "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                    "bias_constraint": None}},
        {"class_name": "Flatten", "name": "flatten", "inbound_nodes": [[["conv2d", 0, 0, {}]]],
         "config": {"name": "flatten", "trainable": True, "dtype": "float32", "data_format": "channels_last"}},
        {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["flatten", 0, 0, {}]]],
         "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 3, "activation": "linear",
                    "use_bias": True, "kernel_initializer": init,
                    "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                    "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                    "bias_constraint": None}},
    ]
    arrays = [kernel, bias, dense_k, dense_b]
    paths = _write_shards(tmp_path, arrays, 100)  # 100-byte shards: every tensor crosses a boundary
    doc = {
        "format": "layers-model", "generatedBy": "keras v2.15.0", "convertedBy": "TensorFlow.js Converter v4.22.0",
        "modelTopology": {"keras_version": "2.15.0", "backend": "tensorflow", "model_config": {
            "class_name": "Functional", "config": {"name": "model", "layers": layers,
                                                   "input_layers": [["input_1", 0, 0]],
                                                   "output_layers": [["dense", 0, 0]]}}},
        "weightsManifest": [{"paths": paths, "weights": [
            {"name": "conv2d/kernel", "shape": [3, 3, 2, 4], "dtype": "float32"},
            {"name": "conv2d/bias", "shape": [4], "dtype": "float32"},
            {"name": "dense/kernel", "shape": [64, 3], "dtype": "float32"},
            {"name": "dense/bias", "shape": [3], "dtype": "float32"}]}],
    }
    (tmp_path / "model.json").write_text(json.dumps(doc))
    return arrays


def _numpy_reference(x, kernel, bias, dense_k, dense_b):
    n, h, w, _ = x.shape
    out = np.zeros((n, h - 2, w - 2, kernel.shape[-1]), np.float64)
    for i in range(h - 2):
        for j in range(w - 2):
            out[:, i, j] = np.einsum("nabc,abcd->nd", x[:, i:i + 3, j:j + 3], kernel)
    out = np.maximum(out + bias, 0)
    return out.reshape(n, -1) @ dense_k + dense_b


def test_converter_style_file_with_split_shards_matches_numpy(tmp_path):
    rng = np.random.default_rng(2)
    arrays = _converter_style(tmp_path, rng)
    assert len(list(tmp_path.glob("group1-shard*.bin"))) > 3
    model = tfjs.load_tfjs(tmp_path)
    x = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model.predict(x)), _numpy_reference(x, *arrays), atol=1e-4)
    assert [layer.name for layer in model.layers] == ["input_1", "conv2d", "flatten", "dense"]


def test_training_only_settings_are_ignored_with_a_warning(tmp_path):
    _converter_style(tmp_path, np.random.default_rng(4))
    doc = json.loads((tmp_path / "model.json").read_text())
    dense = doc["modelTopology"]["model_config"]["config"]["layers"][3]["config"]
    dense["kernel_regularizer"] = {"class_name": "L2", "config": {"l2": 0.01}}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="layer 'dense' kernel_regularizer"):
        model = tfjs.load_tfjs(tmp_path)
    assert model.get_layer("dense").units == 3


def test_tfjs_style_sequential_and_legacy_list_form(tmp_path):
    rng = np.random.default_rng(3)
    k, b = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    dense = {"class_name": "Dense", "config": {"units": 2, "activation": "sigmoid", "use_bias": True,
                                               "name": "dense_Dense1", "trainable": True,
                                               "batch_input_shape": [None, 4], "dtype": "float32",
                                               "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                                                   "scale": 1, "mode": "fan_avg", "distribution": "normal",
                                                   "seed": None}}}}
    for form, config in (("tfjs", {"name": "sequential_1", "layers": [dense]}), ("legacy", [dense])):
        d = tmp_path / form
        d.mkdir()
        paths = _write_shards(d, [k, b], 4 * 1024 * 1024)
        doc = {"format": "layers-model", "generatedBy": "TensorFlow.js tfjs-layers v4.22.0", "convertedBy": None,
               "modelTopology": {"class_name": "Sequential", "config": config, "keras_version": "tfjs-layers 4.22.0",
                                 "backend": "tensor_flow.js"},
               "weightsManifest": [{"paths": paths, "weights": [
                   {"name": "dense_Dense1/kernel", "shape": [4, 2], "dtype": "float32"},
                   {"name": "dense_Dense1/bias", "shape": [2], "dtype": "float32"}]}]}
        (d / "model.json").write_text(json.dumps(doc))
        model = tfjs.load_tfjs(d)
        x = rng.normal(size=(3, 4)).astype(np.float32)
        want = 1 / (1 + np.exp(-(x @ k + b)))
        np.testing.assert_allclose(np.asarray(model.predict(x)), want, atol=1e-6, err_msg=form)


def test_quantized_weights_and_scoped_names_are_read(tmp_path):
    q = np.array([[0, 255], [128, 64]], np.uint8)
    (tmp_path / "weights.bin").write_bytes(q.tobytes() + np.array([0.5, -0.5], "<f4").tobytes())
    doc = {"modelTopology": {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 2, "name": "dense", "batch_input_shape": [None, 2]}}]}},
        "weightsManifest": [{"paths": ["weights.bin"], "weights": [
            {"name": "sequential/dense/kernel:0", "shape": [2, 2], "dtype": "float32",
             "quantization": {"dtype": "uint8", "scale": 0.01, "min": -1.0}},
            {"name": "dense/bias", "shape": [2], "dtype": "float32"}]}]}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    model = tfjs.load_tfjs(tmp_path)
    np.testing.assert_allclose(model.get_weights()[0], q * 0.01 - 1.0, atol=1e-6)


# ------------------------------------------------------------------------------ errors
def test_export_lists_every_unsupported_piece():
    inp = Input((8, 8, 4))
    x = L.Conv2D(4, 3, groups=2)(inp)
    x = L.ReLU(negative_slope=0.1)(x)
    x = L.Flatten()(x)
    model = Model(inp, L.Dense(2, activation="gelu")(x))
    with pytest.raises(tfjs.TfjsFormatError) as err:
        tfjs.export_topology(model)
    msg = str(err.value)
    assert "groups=2" in msg and "negative_slope" in msg and "'gelu'" in msg and "Supported layers" in msg


def test_export_refuses_subclassed_and_unbuilt_models(tmp_path):
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.fc = L.Dense(2)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(tfjs.TfjsFormatError, match="subclassed"):
        tfjs.save_tfjs(net, tmp_path)
    with pytest.raises(tfjs.TfjsFormatError, match="input_shape"):
        tfjs.save_tfjs(Sequential([L.Dense(2)]), tmp_path)


def _tiny_saved(tmp_path, shard_bytes=16):
    model = Sequential([L.Dense(4, input_shape=(3,)), L.Dense(2)])  # 12 + 4 + 8 + 2 floats = 104 bytes
    tfjs.save_tfjs(model, tmp_path, shard_size_bytes=shard_bytes)
    return json.loads((tmp_path / "model.json").read_text())


def test_unsupported_layers_and_activations_are_listed_on_import(tmp_path):
    doc = _tiny_saved(tmp_path)
    layers = doc["modelTopology"]["config"]["layers"]
    layers[0]["config"]["activation"] = "selu"
    layers.append({"class_name": "LSTM", "config": {"units": 3, "name": "lstm"}})
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(tfjs.TfjsFormatError) as err:
        tfjs.load_tfjs(tmp_path)
    assert "'LSTM'" in str(err.value) and "'selu'" in str(err.value) and "dense" in str(err.value)


def test_missing_shard_names_file_and_weight(tmp_path):
    doc = _tiny_saved(tmp_path)
    paths = doc["weightsManifest"][0]["paths"]
    (tmp_path / paths[3]).unlink()  # bytes 48..64 of the concatenation: dense/bias
    with pytest.raises(tfjs.TfjsFormatError) as err:
        tfjs.load_tfjs(tmp_path)
    assert paths[3] in str(err.value) and "'dense/bias'" in str(err.value)


def test_short_shard_names_file_and_weight(tmp_path):
    doc = _tiny_saved(tmp_path)
    last = doc["weightsManifest"][0]["paths"][-1]
    (tmp_path / last).write_bytes((tmp_path / last).read_bytes()[:-4])
    with pytest.raises(tfjs.TfjsFormatError) as err:
        tfjs.load_tfjs(tmp_path)
    assert last in str(err.value) and "'dense_1/bias'" in str(err.value)


def test_weights_that_do_not_fit_are_named(tmp_path):
    doc = _tiny_saved(tmp_path, shard_bytes=4096)
    doc["weightsManifest"][0]["weights"][1]["name"] = "dense/offset"
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(tfjs.TfjsFormatError) as err:
        tfjs.load_tfjs(tmp_path)
    assert "missing from the weights manifest: dense/bias" in str(err.value) and "dense/offset" in str(err.value)


def test_not_a_layers_model(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {},
                                                     "weightsManifest": []}))
    with pytest.raises(tfjs.TfjsFormatError, match="graph-model"):
        tfjs.load_tfjs(tmp_path)
    with pytest.raises(FileNotFoundError):
        tfjs.load_tfjs(tmp_path / "nowhere")


def _edit_manifest_or_topology(path, edit):
    doc = json.loads((path / "model.json").read_text())
    edit(doc)
    (path / "model.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # np.prod of [2**32, 2**32] wraps to 0 in int64, so the weight took 0 bytes and reshape failed
        (lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[2**32, 2**32]), "needs bytes 0..73786976"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[2**70]), "needs bytes 0..47223664828696"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[3, True]), "bad shape"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(name=7), "weight spec #0 needs a 'name' string"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(quantization={"dtype": "uint8"}),
         "quantized to uint8 but its 'scale' and 'min' are not both numbers"),
        (lambda d: d["weightsManifest"][0]["paths"].append(None), r"weightsManifest\[0\] must be"),
        (lambda d: d["weightsManifest"][0].update(weights=1.5), r"weightsManifest\[0\] must be"),
        (lambda d: d["modelTopology"]["config"]["layers"].insert(1, "dense"), "a layer entry must be"),
        (lambda d: d["modelTopology"]["config"]["layers"][0].update(config=[1, 2]), "must be an object, got a list"),
        (lambda d: d["modelTopology"]["config"]["layers"][0].update(class_name={"x": 1}), "layer class"),
        (lambda d: d["modelTopology"].update(class_name=["Sequential"]), "class_name must be"),
        (lambda d: d["modelTopology"].update(config=3), "Sequential config needs a 'layers' list"),
        (lambda d: d["modelTopology"]["config"]["layers"][0]["config"]["kernel_initializer"]["config"].update(
            seed="x"), "the architecture cannot be rebuilt"),
    ],
)
def test_malformed_model_json_is_a_format_error(tmp_path, edit, match):
    # Each of these was a bare TypeError/AttributeError/ValueError/OverflowError from deep inside.
    _tiny_saved(tmp_path)
    _edit_manifest_or_topology(tmp_path, edit)
    with pytest.raises(tfjs.TfjsFormatError, match=match):
        tfjs.load_tfjs(tmp_path)


def test_functional_graph_the_builder_rejects_is_a_format_error(tmp_path):
    a = Input((4,), name="a")
    tfjs.save_tfjs(Model(a, L.Dense(2)(a)), tmp_path)
    _edit_manifest_or_topology(tmp_path, lambda d: d["modelTopology"]["config"]["input_layers"][0].__setitem__(2, 5))
    with pytest.raises(tfjs.TfjsFormatError, match="the architecture cannot be rebuilt: IndexError"):
        tfjs.load_tfjs(tmp_path)


# ------------------------------------------------------------------------------ what TF.js writes and runs
def _tfjs_nested_reshape_doc(tmp_path, rng):
    """The file TF.js 4.22 writes for input(6) -> Sequential[Dense(8, tanh), Reshape([-1, 4])] -> Dense(3)."""
    k1, b1 = rng.normal(size=(6, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    k2, b2 = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    inner = {"name": "inner", "layers": [
        {"class_name": "Dense", "config": {"units": 8, "activation": "tanh", "use_bias": True, "name": "dense_Dense1",
                                           "trainable": True, "batch_input_shape": [None, 6], "dtype": "float32"}},
        {"class_name": "Reshape", "config": {"target_shape": [None, 4], "name": "reshape_Reshape1",
                                             "trainable": True}}]}
    layers = [
        {"name": "input1", "class_name": "InputLayer", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 6], "dtype": "float32", "sparse": False, "name": "input1"}},
        {"name": "inner", "class_name": "Sequential", "config": inner, "inbound_nodes": [[["input1", 0, 0, {}]]]},
        {"name": "dense_Dense2", "class_name": "Dense", "inbound_nodes": [[["inner", 1, 0, {}]]],
         "config": {"units": 3, "activation": "linear", "use_bias": True, "name": "dense_Dense2", "trainable": True}},
    ]
    (tmp_path / "weights.bin").write_bytes(b"".join(np.ascontiguousarray(a, "<f4").tobytes() for a in (k1, b1, k2, b2)))
    doc = {"format": "layers-model", "generatedBy": "TensorFlow.js tfjs-layers v4.22.0", "convertedBy": None,
           "modelTopology": {"class_name": "Model", "config": {"name": "model1", "layers": layers,
                                                              "input_layers": [["input1", 0, 0]],
                                                              "output_layers": [["dense_Dense2", 0, 0]]},
                             "keras_version": "tfjs-layers 4.22.0", "backend": "tensor_flow.js"},
           "weightsManifest": [{"paths": ["weights.bin"], "weights": [
               {"name": "dense_Dense1/kernel", "shape": [6, 8], "dtype": "float32"},
               {"name": "dense_Dense1/bias", "shape": [8], "dtype": "float32"},
               {"name": "dense_Dense2/kernel", "shape": [4, 3], "dtype": "float32"},
               {"name": "dense_Dense2/bias", "shape": [3], "dtype": "float32"}]}]}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    return k1, b1, k2, b2


def test_nested_sequential_node_1_and_reshape_null_are_imported(tmp_path):
    # Both used to be refused: node index 1 ("inbound layers are never computed") and target_shape [null, 4].
    rng = np.random.default_rng(5)
    k1, b1, k2, b2 = _tfjs_nested_reshape_doc(tmp_path, rng)
    model = tfjs.load_tfjs(tmp_path)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    want = np.tanh(x @ k1 + b1).reshape(5, 2, 4) @ k2 + b2
    np.testing.assert_allclose(np.asarray(model.predict(x)), want, atol=1e-5)


def test_nested_model_node_0_is_its_construction_and_is_refused(tmp_path):
    _tfjs_nested_reshape_doc(tmp_path, np.random.default_rng(6))
    _edit_manifest_or_topology(tmp_path, lambda d: d["modelTopology"]["config"]["layers"][2]["inbound_nodes"][0][0]
                               .__setitem__(1, 0))
    with pytest.raises(tfjs.TfjsFormatError, match="node 0 of nested model 'inner', its own construction"):
        tfjs.load_tfjs(tmp_path)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (L.Conv2D(2, 3, strides=2, dilation_rate=2), r"strides=\[2, 2\] with dilation_rate=\[2, 2\]"),
        (L.Conv2D(2, 3, strides=(1, 2), dilation_rate=(2, 1)), r"strides=\[1, 2\] with dilation_rate=\[2, 1\]"),
        (L.DepthwiseConv2D(3, dilation_rate=2), r"DepthwiseConv2D\): dilation_rate=\[2, 2\] \(TF.js' "
                                                r"DepthwiseConv2D ignores dilationRate"),
    ],
)
def test_convolutions_tfjs_cannot_run_are_refused_both_ways(tmp_path, layer, match):
    model = Sequential([L.InputLayer((9, 9, 2)), layer])
    with pytest.raises(tfjs.TfjsFormatError, match=match):
        tfjs.save_tfjs(model, tmp_path)
    assert not (tmp_path / "model.json").exists()
    # The same settings in a file (as Keras would write them) are refused on import.
    ok = Sequential([L.InputLayer((9, 9, 2)), type(layer)(**{**layer.get_config(), "strides": 1, "dilation_rate": 1})])
    tfjs.save_tfjs(ok, tmp_path)
    cfg = layer.get_config()
    _edit_manifest_or_topology(tmp_path, lambda d: d["modelTopology"]["config"]["layers"][0]["config"].update(
        strides=list(cfg["strides"]), dilation_rate=list(cfg["dilation_rate"])))
    with pytest.raises(tfjs.TfjsFormatError, match=match):
        tfjs.load_tfjs(tmp_path)


def test_strided_or_dilated_convs_alone_still_export(tmp_path):
    model = Sequential([L.InputLayer((13, 13, 2)), L.Conv2D(2, 3, strides=2), L.Conv2D(2, 3, dilation_rate=(1, 2)),
                        L.DepthwiseConv2D(2, strides=2)])
    tfjs.save_tfjs(model, tmp_path)
    x = np.random.default_rng(7).normal(size=(2, 13, 13, 2)).astype(np.float32)
    _assert_same_predictions(model, tfjs.load_tfjs(tmp_path), x)


# ------------------------------------------------------------------------------ hostile files (issue 11 #12)
def _set_first_path(doc, path):
    doc["weightsManifest"][0]["paths"][0] = path


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("../secret.bin", "must be a relative path inside the model's folder"),
        ("sub/../../secret.bin", "must be a relative path inside the model's folder"),
        ("..\\secret.bin", "must be a relative path inside the model's folder"),
        ("/dev/zero", "must be a relative path inside the model's folder"),
        ("C:/secret.bin", "must be a relative path inside the model's folder"),
        ("", "must be a relative path inside the model's folder"),
        ("to_zero.bin", "leads outside the model's folder"),
        ("to_secret.bin", "leads outside the model's folder"),
        ("a_directory", "is a directory, not a file"),
    ],
)
def test_weight_paths_stay_inside_the_model_folder(tmp_path, path, match):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    (model_dir / "to_zero.bin").symlink_to("/dev/zero")
    (model_dir / "to_secret.bin").symlink_to(tmp_path / "secret.bin")
    (model_dir / "a_directory").mkdir()
    _tiny_saved(model_dir)
    _edit_manifest_or_topology(model_dir, lambda d: _set_first_path(d, path))
    for read in (tfjs.load_tfjs, tfjs.read_weights):
        with pytest.raises(tfjs.TfjsFormatError, match=match) as err:
            read(model_dir)
        assert str(model_dir / "model.json") in str(err.value)


def test_absolute_path_to_a_real_file_is_refused(tmp_path):
    (tmp_path / "model").mkdir()
    _tiny_saved(tmp_path / "model")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 4096)
    _edit_manifest_or_topology(tmp_path / "model", lambda d: _set_first_path(d, str(outside)))
    with pytest.raises(tfjs.TfjsFormatError, match="relative path inside"):
        tfjs.load_tfjs(tmp_path / "model")


def test_model_json_that_is_a_directory_or_a_device(tmp_path):
    (tmp_path / "model.json").mkdir()
    with pytest.raises(tfjs.TfjsFormatError, match="is a directory"):
        tfjs.load_tfjs(tmp_path)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "model.json").symlink_to("/dev/zero")
    with pytest.raises(tfjs.TfjsFormatError, match="not a regular file"):
        tfjs.read_model_json(tmp_path / "dev")


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deep_json_nesting_is_a_format_error(tmp_path, depth):
    # 100000 levels was a RecursionError from the JSON parser; 150 parses but is over the budget, which keeps
    # every later recursive walk of the config (nested models) far from the recursion limit.
    _tiny_saved(tmp_path)
    text = (tmp_path / "model.json").read_text()
    (tmp_path / "model.json").write_text(text[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(tfjs.TfjsFormatError, match=f"nested deeper than {tfjs.MAX_JSON_DEPTH} levels"):
        tfjs.load_tfjs(tmp_path)


@pytest.mark.parametrize("text, kind", [("null", "NoneType"), ("3", "int"), ('"model"', "str"), ("[]", "list")])
def test_json_that_is_no_object_is_named_for_what_it_is(tmp_path, text, kind):
    # null was reported as "JSON nested deeper than 100 levels" (None stood for the parser's RecursionError).
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(tfjs.TfjsFormatError, match=f"expected a JSON object, got {kind}$"):
        tfjs.read_model_json(tmp_path)


def test_huge_topology_is_refused_before_allocating(tmp_path):
    import tracemalloc

    # A Dense 60000x60000 (13.4 GiB of float32 weights at init) next to a 104-byte shard.
    _tiny_saved(tmp_path)
    _edit_manifest_or_topology(tmp_path, lambda d: d["modelTopology"]["config"]["layers"][0]["config"].update(
        units=60000, batch_input_shape=[None, 60000]))
    tracemalloc.start()
    try:
        with pytest.raises(tfjs.TfjsFormatError, match="the topology's weights need more values than the weight "
                                                       r"shards hold \(a weight of shape \[60000, 60000\]"):
            tfjs.load_tfjs(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak


def test_manifest_sizes_are_checked_against_the_files_before_reading(tmp_path):
    import tracemalloc

    _tiny_saved(tmp_path, shard_bytes=1 << 20)
    _edit_manifest_or_topology(tmp_path, lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[3, 10**9]))
    tracemalloc.start()
    try:
        with pytest.raises(tfjs.TfjsFormatError, match=r"needs bytes 0\.\.12000000000 of the shards, but they hold "
                                                       "only 104 bytes"):
            tfjs.read_weights(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, peak


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["weightsManifest"][0]["weights"].extend(
            [{"name": f"w{i}", "shape": [], "dtype": "float32"} for i in range(tfjs.MAX_WEIGHT_SPECS)]),
         f"more than {tfjs.MAX_WEIGHT_SPECS} weights"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[1] * (tfjs.MAX_WEIGHT_RANK + 1)),
         "bad shape"),
    ],
)
def test_manifest_count_and_rank_budgets(tmp_path, edit, match):
    _tiny_saved(tmp_path)
    _edit_manifest_or_topology(tmp_path, edit)
    with pytest.raises(tfjs.TfjsFormatError, match=match):
        tfjs.load_tfjs(tmp_path)


def test_imported_model_keeps_the_files_initializers(tmp_path):
    # The import builds layers with budgeted initializers; the model must hold the file's ones afterwards.
    from rl import initializers

    _converter_style(tmp_path, np.random.default_rng(8))
    model = tfjs.load_tfjs(tmp_path)
    conv = model.get_layer("conv2d")
    assert isinstance(conv.kernel_initializer, initializers.GlorotUniform)
    assert initializers.serialize(conv.bias_initializer)["class_name"] == "Zeros"
    model.to_json()  # serializable as any model


def test_reshape_minus_one_is_written_resolved_where_the_shape_is_known(tmp_path):
    # TF.js leaves a -1 unknown in its static shapes, so Reshape([-1, 3]) + Flatten did not load there
    # (found by tests/rl/test_random_tfjs.py); the number it stands for is written instead.
    model = Sequential([L.InputLayer((4, 5, 3)), L.Reshape((-1, 3)), L.Flatten(), L.Dense(2)])
    tfjs.save_tfjs(model, tmp_path)
    layers = json.loads((tmp_path / "model.json").read_text())["modelTopology"]["config"]["layers"]
    assert layers[0]["config"]["target_shape"] == [20, 3]
    x = np.random.default_rng(9).normal(size=(2, 4, 5, 3)).astype(np.float32)
    _assert_same_predictions(model, tfjs.load_tfjs(tmp_path), x)


# ------------------------------------------------------------------------------ fuzzing the reader
_FUZZ_CASES = int(os.environ.get("PLAYGRAD_FUZZ_CASES", "12")) * 5  # ~70 ms a case
_JUNK = [None, -1, 0, 2**63, 1e308, float("nan"), "x", "", [], {}, True, [None], [-1, 2], {"class_name": 3},
         [[[[[]]]]], "../x.bin", "/dev/zero"]


def _fuzz_base(directory) -> dict:
    inp = Input((6, 6, 2), name="image")
    x = L.Conv2D(3, 3, strides=2, padding=((1, 1), (1, 1)), activation="relu")(inp)
    x = L.BatchNormalization()(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.Concatenate()([x, L.Add()([x, y])])
    x = L.Reshape((-1, 6))(L.MaxPooling2D(2, padding="same")(x))
    model = Model(inp, L.Dense(2, activation="softmax")(L.Flatten()(x)))
    tfjs.save_tfjs(model, directory, shard_size_bytes=200)
    return json.loads((directory / "model.json").read_text())


def _paths(node, prefix=()):
    """Every (path, value) inside a JSON document, containers included."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


@pytest.mark.filterwarnings("ignore:.*ignored training-only settings")  # a junk regularizer is only ignored
@pytest.mark.parametrize("seed", range(_FUZZ_CASES))
def test_fuzzed_model_json_is_loaded_or_refused_with_a_format_error(tmp_path, seed):
    # Seeded mutations of a valid export: a value replaced by junk, a key or list item dropped, a shard
    # cut or grown. Whatever the result, the reader either loads a model or raises TfjsFormatError: never
    # another exception, never a hang. Replay: PLAYGRAD_FUZZ_CASES=... pytest -k "fuzzed and [seed]".
    rng = np.random.default_rng(seed)
    doc = _fuzz_base(tmp_path)
    edits = []
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p, _ in _paths(doc) if p]
        path = paths[int(rng.integers(len(paths)))]
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.25:
            del parent[path[-1]]
            edits.append(("del", path))
        else:
            junk = _JUNK[int(rng.integers(len(_JUNK)))]
            parent[path[-1]] = junk
            edits.append(("set", path, junk))
    (tmp_path / "model.json").write_text(json.dumps(doc))
    if rng.random() < 0.3:
        shard = sorted(tmp_path.glob("*.bin"))[int(rng.integers(2))]
        data = shard.read_bytes()
        shard.write_bytes(data[: int(rng.integers(len(data)))] if rng.random() < 0.5 else data + b"\0" * 64)
        edits.append(("shard", shard.name))
    try:
        tfjs.load_tfjs(tmp_path)
    except tfjs.TfjsFormatError as exc:
        assert str(tmp_path) in str(exc), f"the error does not name the file: {exc}; edits {edits!r}"
    except Exception as exc:  # noqa: BLE001 - the point: any other exception is the defect
        pytest.fail(f"seed {seed}: {type(exc).__name__}: {exc}\n  edits: {edits!r}")


def test_too_many_layers_is_refused_before_building(tmp_path, monkeypatch):
    monkeypatch.setattr(tfjs, "MAX_LAYERS", 50)
    _tiny_saved(tmp_path)
    drop = {"class_name": "Dropout", "config": {"rate": 0.1}}
    _edit_manifest_or_topology(tmp_path, lambda d: d["modelTopology"]["config"]["layers"].extend([drop] * 60))
    with pytest.raises(tfjs.TfjsFormatError, match="the topology has 62 layers, over the limit of 50"):
        tfjs.load_tfjs(tmp_path)


@pytest.mark.parametrize("nested", [False, True])
def test_huge_layer_without_initializer_keys_is_refused_before_allocating(tmp_path, nested):
    import tracemalloc

    # TF.js may leave initializers out; the constructor's defaults used to allocate without the budget
    # (a Dense 20000x20000 here: 6 GB at peak).
    dense = {"class_name": "Dense", "config": {"units": 20000, "name": "big", "batch_input_shape": [None, 20000]}}
    layers = [{"class_name": "Sequential", "config": {"name": "inner", "layers": [dense]}}] if nested else [dense]
    (tmp_path / "w.bin").write_bytes(np.zeros(4, "<f4").tobytes())
    doc = {"modelTopology": {"class_name": "Sequential", "config": {"layers": layers}},
           "weightsManifest": [{"paths": ["w.bin"], "weights": [{"name": "big/bias", "shape": [4],
                                                                 "dtype": "float32"}]}]}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    tracemalloc.start()
    try:
        with pytest.raises(tfjs.TfjsFormatError, match=r"need more values than the weight shards hold .*\[20000, "
                                                       r"20000\]"):
            tfjs.load_tfjs(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak
