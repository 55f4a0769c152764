"""ONNX export (rl/onnx.py) checked by ONNX's own checker and by running the file in ONNX Runtime.

Random architectures (seeded; a failure prints the seed and the layer list to replay it) cover every
layer the exporter writes, each padding mode, strides, dilations, groups, depth multipliers and both
float dtypes; MobileNetV2 (random weights: the graph is what is checked) at 1e-4.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rl import backend, layers, models
from rl.onnx import OnnxExportError, export_onnx, to_onnx

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the 'onnx' extra: pip install 'playgrad[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX tests run the file in onnxruntime: pip install 'playgrad[onnx]'")

CASES = int(os.environ.get("PLAYGRAD_FUZZ_CASES", "24"))
ACTIVATIONS = ["linear", "relu", "relu6", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "gelu"]


def run_onnx(proto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def random_image_model(rng: np.random.Generator, dtype: str) -> tuple[models.Model, list[str]]:
    """A random chain of image layers ending in a Dense head, with one residual Add and one Concatenate."""
    size, channels = int(rng.integers(9, 17)), int(rng.choice([1, 3, 4]))
    inp = layers.Input((size, size, channels), dtype=dtype)
    x, described = inp, []

    def add(layer):
        nonlocal x
        described.append(repr(layer.get_config()))
        x = layer(x)

    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["conv", "depthwise", "pool", "bn", "pad", "relu"])
        stride = int(rng.choice([1, 2]))
        dilation = 1 if stride > 1 else int(rng.choice([1, 2]))
        padding = str(rng.choice(["valid", "same"])) if kind != "conv" or rng.random() < 0.7 else ((1, 0), (0, 2))
        h = x.shape[1]
        if kind == "conv" and h >= 5:
            groups = int(rng.choice([g for g in (1, 2) if x.shape[-1] % g == 0 and 4 % g == 0]))
            add(layers.Conv2D(4 * int(rng.integers(1, 3)), int(rng.choice([1, 3])), strides=stride, padding=padding,
                              dilation_rate=dilation, groups=groups, activation=str(rng.choice(ACTIVATIONS)),
                              use_bias=bool(rng.random() < 0.8), dtype=dtype))
        elif kind == "depthwise" and h >= 5:
            add(layers.DepthwiseConv2D(3, strides=stride, padding=padding, dilation_rate=dilation,
                                       depth_multiplier=int(rng.integers(1, 3)),
                                       activation=str(rng.choice(ACTIVATIONS)), dtype=dtype))
        elif kind == "pool" and h >= 4:
            cls = layers.MaxPooling2D if rng.random() < 0.5 else layers.AveragePooling2D
            add(cls(int(rng.choice([2, 3])), strides=int(rng.choice([1, 2])),
                    padding=str(rng.choice(["valid", "same"])), dtype=dtype))
        elif kind == "bn":
            bn = layers.BatchNormalization(epsilon=float(rng.choice([1e-3, 1e-5])), dtype=dtype)
            add(bn)
            c = x.shape[-1]
            stats = [rng.normal(size=c), rng.uniform(0.2, 3.0, size=c), rng.normal(size=c), rng.normal(size=c)]
            for weight, value in zip((bn.moving_mean, bn.moving_variance, bn.gamma, bn.beta), stats):
                weight.data[...] = backend.to_device(value.astype(dtype))  # the weights may live on the GPU
        elif kind == "pad":
            add(layers.ZeroPadding2D(((int(rng.integers(0, 2)), 1), (1, int(rng.integers(0, 2)))), dtype=dtype))
        else:
            add(layers.ReLU(max_value=float(rng.choice([2.5, 6.0])), negative_slope=float(rng.choice([0.0, 0.1])),
                            dtype=dtype))
    skip = x
    branch = layers.Conv2D(x.shape[-1], 1, activation="relu", dtype=dtype)(x)
    described.append("Add(skip, 1x1 conv)")
    x = layers.Add(dtype=dtype)([skip, branch])
    if rng.random() < 0.5:
        described.append("GlobalAveragePooling2D")
        x = layers.GlobalAveragePooling2D(dtype=dtype)(x)
    else:
        described.append("Flatten + Dropout")
        x = layers.Dropout(0.5, dtype=dtype)(layers.Flatten(dtype=dtype)(x))
    a = layers.Dense(5, activation=str(rng.choice(ACTIVATIONS)), dtype=dtype)(x)
    b = layers.Dense(3, dtype=dtype)(x)
    described.append("Concatenate(Dense 5, Dense 3) -> Dense softmax")
    out = layers.Dense(4, activation="softmax", dtype=dtype)(layers.Concatenate(dtype=dtype)([a, b]))
    return models.Model(inp, out), described


@pytest.mark.parametrize("seed", range(CASES))
def test_random_image_models_match_onnxruntime(seed):
    rng = np.random.default_rng(seed)
    dtype = "float32"  # ONNX Runtime's CPU kernels for Conv and pooling are float32 only
    model, described = random_image_model(rng, dtype)
    x = rng.normal(size=(int(rng.integers(1, 4)), *model.input_shape[1:])).astype(dtype)
    ours = model.predict(x)
    (theirs,) = run_onnx(to_onnx(model), [x])
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5, err_msg=f"replay: seed={seed} layers={described}")


@pytest.mark.parametrize("seed", range(CASES // 3 + 1))
def test_random_float64_mlps_match_onnxruntime(seed):
    """Dense stacks in float64: the file keeps the model's dtype, constants included (the ReLU cap is exact).

    1e-7, not 1e-10: ONNX Runtime's double Tanh is a fast approximation (seen: 1.5e-8 relative)."""
    rng = np.random.default_rng(1000 + seed)
    inp = layers.Input((int(rng.integers(1, 9)),), dtype="float64")
    x, described = inp, []
    for _ in range(int(rng.integers(1, 4))):
        # the activations ONNX Runtime has double kernels for
        act = str(rng.choice(["linear", "relu", "relu6", "tanh", "sigmoid", "gelu", "softmax"]))
        described.append(act)
        x = layers.Dense(int(rng.integers(1, 12)), activation=act, dtype="float64")(x)
    x = layers.ReLU(max_value=2.328, negative_slope=0.1, dtype="float64")(x)
    model = models.Model(inp, x)
    data = rng.normal(size=(4, *model.input_shape[1:])) * 3
    (theirs,) = run_onnx(to_onnx(model), [data])
    ours = model.predict(data)
    assert theirs.dtype == np.float64
    np.testing.assert_allclose(theirs, ours, rtol=1e-7, atol=1e-9,
                               err_msg=f"replay: seed={1000 + seed} activations={described}")
    np.testing.assert_array_equal(theirs[ours == 2.328], 2.328)  # not float32's 2.3280000687


def test_multi_input_model_with_nested_sequential(tmp_path):
    """A DDPG-style critic (observation and action in) around a nested Sequential; batch axis symbolic."""
    rng = np.random.default_rng(7)
    obs, act = layers.Input((6,), name="obs"), layers.Input((2,), name="act")
    trunk = models.Sequential([layers.Input((8,)), layers.Dense(16, activation="tanh"), layers.Reshape((4, -1)),
                               layers.Flatten(), layers.Dense(1)], name="trunk")
    q = trunk(layers.Concatenate()([obs, act]))
    critic = models.Model([obs, act], [q, layers.Activation("sigmoid")(q)])
    path = export_onnx(critic, tmp_path / "critic.onnx", metadata={"agent": "ddpg"})
    proto = onnx.load(str(path))
    assert {p.key: p.value for p in proto.metadata_props} == {"agent": "ddpg"}
    for batch in (1, 5):
        o = rng.normal(size=(batch, 6)).astype("float32")
        a = rng.normal(size=(batch, 2)).astype("float32")
        ours = critic([o, a])
        got = run_onnx(proto, [o, a])
        for mine, theirs in zip(ours, got):
            np.testing.assert_allclose(theirs, mine.numpy(), rtol=1e-5, atol=1e-6)


def test_unsupported_layers_and_subclassed_models_are_named():
    class Custom(layers.Layer):
        def call(self, inputs):
            return inputs

    inp = layers.Input((3,))
    model = models.Model(inp, Custom(name="mystery")(layers.Dense(2, name="d")(inp)))
    with pytest.raises(OnnxExportError, match="'mystery' \\(Custom\\)"):
        to_onnx(model)

    class Sub(models.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(OnnxExportError, match="not a built functional or Sequential model"):
        to_onnx(Sub())


@pytest.mark.slow
def test_mobilenet_v2_matches_onnxruntime():
    from transfer.mobilenet_v2 import mobilenet_v2

    model = mobilenet_v2(weights=None)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    (theirs,) = run_onnx(to_onnx(model), [x])
    ours = model.predict(x)
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
