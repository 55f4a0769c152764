"""rl.tfjs against the real TensorFlow.js (npm ``@tensorflow/tfjs@4.22.0``, pure-JS CPU backend, run by Node).

Export: every model is written with :func:`rl.tfjs.save_tfjs`, loaded by ``tests/tfjs/predict.js``
with ``tf.loadLayersModel(tf.io.fromMemory(...))`` and its predictions compared with ours (max abs
diff <= 1e-5 for MLPs and small CNNs, <= 1e-4 for MobileNetV2). Import: ``tests/tfjs/save_models.js``
builds and saves models with TF.js itself; we load them and must predict what TF.js predicted.

Skipped, with the reason, when Node or ``tests/tfjs/node_modules/@tensorflow/tfjs`` is absent
(``make test`` installs it with npm when npm exists).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rl import backend, tfjs
from rl import layers as L
from rl.models import Input, Model, Sequential

HARNESS = Path(__file__).resolve().parents[1] / "tfjs"
pytestmark = pytest.mark.node


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the TF.js comparison tests need `node` on PATH")
    if not (HARNESS / "node_modules" / "@tensorflow" / "tfjs" / "package.json").exists():
        pytest.skip("npm package @tensorflow/tfjs is not installed: run `cd tests/tfjs && npm ci` (make test does)")
    return node


def encode(x: np.ndarray) -> dict:
    x = np.ascontiguousarray(x, dtype="<f4")
    return {"shape": list(x.shape), "data_b64": base64.b64encode(x.tobytes()).decode("ascii")}


def decode(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["data_b64"]), dtype="<f4").reshape(spec["shape"])


def tfjs_predict(jobs: list[tuple[Path, list[np.ndarray]]], tmp_path: Path) -> list[dict]:
    """Run predict.js once over all ``(model_dir, inputs)`` jobs; each result has ``outputs`` or ``error``."""
    node = _node_or_skip()
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps([{"model_dir": str(d), "inputs": [encode(x) for x in xs]} for d, xs in jobs]))
    proc = subprocess.run([node, str(HARNESS / "predict.js"), str(job_file)], capture_output=True, text=True,
                          timeout=300, cwd=HARNESS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _randomize_batch_norm(model: Model, rng: np.random.Generator) -> None:
    # Fresh BN layers are the identity in inference (mean 0, variance 1); random statistics make a
    # mix-up of gamma/beta/moving_mean/moving_variance visible.
    state = model.state_dict()
    for key, value in state.items():
        if key.split("/")[-1] in ("gamma", "beta", "moving_mean", "moving_variance"):
            value[...] = backend.to_device(rng.uniform(0.5, 1.5, value.shape), dtype=value.dtype)


def _mlp() -> Model:
    return Sequential([L.Dense(32, activation="tanh", input_shape=(8,)), L.Dense(16, activation="relu"),
                       L.Dense(8, activation="elu"), L.Dense(6, activation="sigmoid"),
                       L.Dense(4, activation="softmax")])


def _cnn() -> Model:
    return Sequential([
        L.Conv2D(8, 3, padding="same", activation="relu", input_shape=(10, 10, 3)),
        L.BatchNormalization(),
        L.Conv2D(12, 3, strides=2, padding="same", activation="relu6"),  # TF's bottom/right padding on an even size
        L.MaxPooling2D(2),
        L.AveragePooling2D(2, strides=1, padding="same"),
        L.Conv2D(8, 3, padding=((1, 1), (1, 1))),  # torch-style padding: exported as ZeroPadding2D + valid
        L.Activation("softplus"),
        L.Flatten(),
        L.Dropout(0.3),
        L.Dense(5),
    ])


def _functional() -> Model:
    inp = Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding=((1, 1), (1, 1)), use_bias=False, name="stem")(inp)  # stride-2 torch pad
    x = L.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
    x = L.ReLU(6.0)(x)
    a = L.DepthwiseConv2D(3, strides=2, padding=((1, 1), (1, 1)), depth_multiplier=2)(x)
    a = L.Activation("tanh")(a)
    b = L.Conv2D(16, 1, strides=2)(x)
    s = L.Add()([a, b])
    z = L.ZeroPadding2D(((0, 1), (1, 0)))(s)
    c = L.Concatenate()([L.Conv2D(4, 2)(z), L.MaxPooling2D(2, strides=1)(z)])
    out = L.Dense(3)(L.GlobalAveragePooling2D()(c))
    return Model(inp, out, name="branchy")


def _nested() -> Model:
    # A Sequential backbone nested in a functional head: inlined on export.
    backbone = Sequential([L.Conv2D(6, 3, activation="relu", input_shape=(8, 8, 2)), L.Flatten()], name="backbone")
    inp = Input((8, 8, 2))
    return Model(inp, L.Dense(3)(backbone(inp)), name="with_backbone")


def _snake_q_network() -> Model:
    from agents.networks import conv_q_network

    return conv_q_network((9, 9, 2), 3, filters=(16, 32), dense_units=(32,))


def test_exported_models_predict_the_same_in_tfjs(tmp_path):
    _node_or_skip()
    rng = np.random.default_rng(0)
    cases = {"mlp": (_mlp(), (5, 8)), "cnn": (_cnn(), (3, 10, 10, 3)), "functional": (_functional(), (2, 12, 12, 3)),
             "nested": (_nested(), (2, 8, 8, 2)), "snake_dqn": (_snake_q_network(), (4, 9, 9, 2))}
    jobs, expected = [], {}
    for name, (model, shape) in cases.items():
        _randomize_batch_norm(model, rng)
        # A small shard size forces several shards with tensors split across them.
        tfjs.save_tfjs(model, tmp_path / name, shard_size_bytes=1000)
        x = rng.normal(size=shape).astype(np.float32)
        jobs.append((tmp_path / name, [x]))
        expected[name] = np.asarray(model.predict(x))
    results = tfjs_predict(jobs, tmp_path)
    for name, result in zip(cases, results):
        assert "error" not in result, f"{name}: TF.js failed to load/predict:\n{result.get('error')}"
        got = decode(result["outputs"][0])
        assert got.shape == expected[name].shape
        diff = float(np.abs(got - expected[name]).max())
        assert diff <= 1e-5, f"{name}: max abs diff {diff:.3g} between rl and TF.js"
    layer_names = dict(results[2]["layers"])  # the torch-style stride-2 convs were written as pad + valid conv
    assert {"stem", "stem_pad"} <= {n for _, n in results[2]["layers"]}
    assert "ZeroPadding2D" in layer_names
    assert results[0]["class_name"] == "Sequential" and results[2]["class_name"] == "Model"


def test_same_padding_stride2_differs_from_torch_padding_in_tfjs_too(tmp_path):
    """The §5.6 trap, checked in TF.js: 'same' stride 2 on an even size is not torch's symmetric padding."""
    rng = np.random.default_rng(1)
    same = Sequential([L.Conv2D(2, 3, strides=2, padding="same", use_bias=False, input_shape=(4, 4, 1))])
    torch_like = Sequential([L.Conv2D(2, 3, strides=2, padding=((1, 1), (1, 1)), use_bias=False,
                                      input_shape=(4, 4, 1))])
    torch_like.set_weights(same.get_weights())
    tfjs.save_tfjs(same, tmp_path / "same")
    tfjs.save_tfjs(torch_like, tmp_path / "torch_like")
    x = rng.normal(size=(1, 4, 4, 1)).astype(np.float32)
    res = tfjs_predict([(tmp_path / "same", [x]), (tmp_path / "torch_like", [x])], tmp_path)
    got_same, got_torch = decode(res[0]["outputs"][0]), decode(res[1]["outputs"][0])
    np.testing.assert_allclose(got_same, same.predict(x), atol=1e-6)
    np.testing.assert_allclose(got_torch, torch_like.predict(x), atol=1e-6)
    assert np.abs(got_same - got_torch).max() > 1e-3


@pytest.mark.slow
def test_mobilenet_v2_predicts_the_same_in_tfjs(tmp_path):
    _node_or_skip()
    from transfer import mobilenet_v2 as mn
    from transfer.weights import WeightsError

    try:
        model = mn.mobilenet_v2(weights="imagenet", download=False)
        which = "imagenet"
    except WeightsError:  # weights not cached: random init exercises the same graph and padding
        model = mn.mobilenet_v2(weights=None)
        which = "random"
    tfjs.save_tfjs(model, tmp_path / "mobilenet")
    shards = sorted(p.name for p in (tmp_path / "mobilenet").glob("*.bin"))
    assert shards and all(p.stat().st_size <= tfjs.SHARD_SIZE_BYTES for p in (tmp_path / "mobilenet").glob("*.bin"))
    x = np.random.default_rng(2).normal(size=(2, 224, 224, 3)).astype(np.float32)
    want = np.asarray(model.predict(x))
    (result,) = tfjs_predict([(tmp_path / "mobilenet", [x])], tmp_path)
    assert "error" not in result, result.get("error")
    got = decode(result["outputs"][0])
    diff = float(np.abs(got - want).max())
    assert diff <= 1e-4, f"MobileNetV2 ({which} weights): max abs diff {diff:.3g}"
    assert (got.argmax(1) == want.argmax(1)).all()


def test_models_saved_by_tfjs_predict_the_same_in_rl(tmp_path):
    node = _node_or_skip()
    proc = subprocess.run([node, str(HARNESS / "save_models.js"), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=HARNESS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = json.loads(proc.stdout)
    assert set(names) == {"mlp", "cnn", "functional", "snake_dqn", "nested_reshape"}
    for name in names:
        doc = json.loads((tmp_path / name / "model.json").read_text())
        assert doc["convertedBy"] is None and "model_config" not in doc["modelTopology"]  # TF.js' own layout
        model = tfjs.load_tfjs(tmp_path / name)
        expected = json.loads((tmp_path / name / "expected.json").read_text())
        got = np.asarray(model.predict(decode(expected["inputs"][0])))
        diff = float(np.abs(got - decode(expected["outputs"][0])).max())
        assert diff <= 1e-5, f"{name}: max abs diff {diff:.3g} between TF.js and rl"
        # Names survive: the state dict keys are TF.js' weight names.
        assert set(model.state_dict()) == {w["name"] for g in doc["weightsManifest"] for w in g["weights"]}


def test_tfjs_cannot_run_what_the_exporter_refuses(tmp_path):
    """Why rl.tfjs refuses strided dilated convs and dilated depthwise convs: what TF.js does with such files."""
    _node_or_skip()
    rng = np.random.default_rng(3)
    conv = Sequential([L.InputLayer((9, 9, 2)), L.Conv2D(3, 3)])
    depthwise = Sequential([L.InputLayer((9, 9, 2)), L.DepthwiseConv2D(3)])
    x = rng.normal(size=(1, 9, 9, 2)).astype(np.float32)
    for name, model, settings in (("conv", conv, {"strides": [2, 2], "dilation_rate": [2, 2]}),
                                  ("depthwise", depthwise, {"dilation_rate": [2, 2]})):
        tfjs.save_tfjs(model, tmp_path / name)
        doc = json.loads((tmp_path / name / "model.json").read_text())
        doc["modelTopology"]["config"]["layers"][0]["config"].update(settings)  # what Keras would write
        (tmp_path / name / "model.json").write_text(json.dumps(doc))
    conv_result, dw_result = tfjs_predict([(tmp_path / "conv", [x]), (tmp_path / "depthwise", [x])], tmp_path)
    assert "Either strides or dilations must be 1" in conv_result.get("error", ""), conv_result
    # TF.js ran the depthwise conv undilated: the output of our dilation-1 model, not of a dilated one.
    got = decode(dw_result["outputs"][0])
    np.testing.assert_allclose(got, depthwise.predict(x), atol=1e-5)
    for name in ("conv", "depthwise"):
        with pytest.raises(tfjs.TfjsFormatError):
            tfjs.load_tfjs(tmp_path / name)
