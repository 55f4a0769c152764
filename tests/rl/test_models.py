"""Sequential and functional models: naming, building, summary, configs, state dicts, freezing."""

import json

import numpy as np
import pytest

import rl
from rl import layers as L
from rl.gradcheck import check_grad
from rl.models import Input, Model, Sequential, model_from_config
from rl.tensor import Tensor


def _mlp(**kwargs):
    return Sequential([L.Dense(64, activation="relu", input_shape=(4,)), L.Dense(64, activation="relu"),
                       L.Dense(2)], **kwargs)


def test_sequential_forward_matches_numpy():
    model = _mlp()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    sd = {k: rl.backend.to_numpy(v) for k, v in model.state_dict().items()}
    h = np.maximum(x @ sd["dense/kernel"] + sd["dense/bias"], 0)
    h = np.maximum(h @ sd["dense_1/kernel"] + sd["dense_1/bias"], 0)
    expected = h @ sd["dense_2/kernel"] + sd["dense_2/bias"]
    out = model(x)
    assert isinstance(out, Tensor) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_auto_names_are_per_model():
    a, b = _mlp(), _mlp()
    assert [l.name for l in a.layers] == ["dense", "dense_1", "dense_2"]
    assert [l.name for l in b.layers] == ["dense", "dense_1", "dense_2"]
    assert list(a.state_dict()) == list(b.state_dict())


def test_lazy_sequential_builds_on_first_call():
    model = Sequential([L.Dense(3), L.Dense(2)])
    assert not model.built
    with pytest.raises(ValueError, match="not built"):
        model.state_dict()
    out = model(np.ones((2, 5)))
    assert out.shape == (2, 2) and out.dtype == np.float32  # float64 NumPy input becomes float32
    assert model.get_layer("dense").kernel.shape == (5, 3)
    assert model.count_params() == 5 * 3 + 3 + 3 * 2 + 2


def test_backward_reaches_every_parameter():
    model = _mlp()
    loss = (model(np.ones((3, 4), np.float32)) ** 2).mean()
    loss.backward()
    params = model.parameters()
    assert len(params) == 6 and all(p.grad is not None and p.grad.shape == p.shape for p in params)
    model.zero_grad()
    assert all(p.grad is None for p in params)


# ----------------------------------------------------------------------------------------- summary
def _mnist_transfer_cnn():
    return Sequential([
        L.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(5, activation="softmax"),
    ], name="mnist_cnn")


def test_summary_of_mnist_transfer_cnn():
    # By hand: conv 3*3*1*32+32 = 320; conv 3*3*32*32+32 = 9248; flatten 12*12*32 = 4608;
    # dense 4608*128+128 = 589952; dense 128*5+5 = 645; total 600165.
    model = _mnist_transfer_cnn()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "mnist_cnn"'
    for name, shape, params in [("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"),
                                ("conv2d_1 (Conv2D)", "(None, 24, 24, 32)", "9248"),
                                ("max_pooling2d (MaxPooling2D)", "(None, 12, 12, 32)", "0"),
                                ("flatten (Flatten)", "(None, 4608)", "0"),
                                ("dense (Dense)", "(None, 128)", "589952"),
                                ("dense_1 (Dense)", "(None, 5)", "645")]:
        row = next(line for line in lines if line.startswith(" " + name + " "))
        assert row.split()[-1] == params and shape in row
    assert "Total params: 600,165" in text and "Trainable params: 600,165" in text
    assert "Non-trainable params: 0" in text
    # Freezing the convolutions moves their weights to non-trainable (transfer learning).
    for layer in model.layers[:2]:
        layer.trainable = False
    lines.clear()
    model.summary(print_fn=lines.append)
    assert "Trainable params: 590,597" in lines and "Non-trainable params: 9,568" in lines
    assert len(model.parameters()) == 4


def test_summary_of_functional_model_lists_connections():
    inp = Input((6,), name="obs")
    h = L.Dense(8, activation="relu")(inp)
    pi, v = L.Dense(2)(h), L.Dense(1)(h)
    model = Model(inp, [pi, v], name="actor_critic")
    lines = []
    model.summary(print_fn=lines.append)
    header = next(line for line in lines if "Layer (type)" in line)
    assert "Connected to" in header
    assert any(line.startswith(" obs (InputLayer)") and "[(None, 6)]" in line for line in lines)
    assert any(line.startswith(" dense_1 (Dense)") and "dense[0][0]" in line for line in lines)
    assert "Total params: 83" in lines  # 6*8+8 + 8*2+2 + 8*1+1


def test_summary_of_unbuilt_model_says_so():
    with pytest.raises(ValueError, match="not built"):
        Sequential([L.Dense(2)]).summary()


def test_summary_of_a_built_model_without_layers():
    # A subclassed model whose call() uses no layer has no rows; the column widths used to be max(29, *[]).
    class Double(Model):
        def call(self, x):
            return x * 2

    model = Double()
    model(np.ones((2, 3), np.float32))
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "double"' and "Total params: 0" in lines


# ----------------------------------------------------------------------------------------- functional graphs
def _branchy(dtype="float32"):
    inp = Input((5, 5, 2), dtype=dtype)
    a = L.Conv2D(3, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(3, 1)(inp)
    s = L.Add()([a, b])
    c = L.Concatenate()([s, L.BatchNormalization()(a)])
    out = L.Dense(2)(L.GlobalAveragePooling2D()(c))
    return Model(inp, out)


def test_functional_branches_run_and_backprop(device):
    model = _branchy("float64")
    assert [l.name for l in model.layers] == ["input_1", "conv2d", "conv2d_1", "add", "batch_normalization",
                                              "concatenate", "global_average_pooling2d", "dense"]
    x = Tensor(device.asarray(np.random.default_rng(0).standard_normal((4, 5, 5, 2))))
    out = model(x)
    assert out.shape == (4, 2) and out.dtype == np.float64
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert len(model.parameters()) == 8  # 2 convs, BN gamma/beta, dense

    def fn(x_t):
        with rl.using_config("train", False):
            return model(x_t)

    check_grad(fn, device.asarray(np.random.default_rng(1).standard_normal((2, 5, 5, 2))))


def test_functional_reference_values():
    inp = Input((3,), dtype="float64")
    d1, d2 = L.Dense(4, activation="tanh"), L.Dense(4)
    out = L.Concatenate()([d1(inp), d2(inp)])
    model = Model(inp, L.Dense(1)(out))
    x = np.random.default_rng(2).standard_normal((5, 3))
    sd = {k: rl.backend.to_numpy(v) for k, v in model.state_dict().items()}
    h = np.concatenate([np.tanh(x @ sd["dense/kernel"] + sd["dense/bias"]),
                        x @ sd["dense_1/kernel"] + sd["dense_1/bias"]], 1)
    np.testing.assert_allclose(model(x).numpy(), h @ sd["dense_2/kernel"] + sd["dense_2/bias"], rtol=1e-12)


def test_multiple_inputs_outputs_and_shared_layers():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = L.Dense(3, name="shared")
    ya, yb = shared(a), shared(b)
    model = Model([a, b], [L.Add()([ya, yb]), ya])
    xa, xb = np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)
    total, first = model([xa, xb])
    np.testing.assert_allclose(first.numpy(), shared(xa).numpy())
    np.testing.assert_allclose(total.numpy(), (shared(xa) + shared(xb)).numpy())
    by_name = model({"a": xa, "b": xb})
    np.testing.assert_allclose(by_name[0].numpy(), total.numpy())
    assert list(model.state_dict()) == ["shared/kernel", "shared/bias"]
    clone = model_from_config(json.loads(model.to_json()))
    clone.load_state_dict(model.state_dict())
    np.testing.assert_allclose(clone([xa, xb])[0].numpy(), total.numpy())
    with pytest.raises(ValueError, match="takes 2 inputs"):
        model([xa])


def test_disconnected_graph_is_an_error():
    a, b = Input((2,)), Input((2,))
    out = L.Add()([a, b])
    with pytest.raises(ValueError, match="graph disconnected"):
        Model(a, out)


def test_duplicate_explicit_names_are_rejected():
    with pytest.raises(ValueError, match="already has a layer named 'head'"):
        Sequential([L.Dense(2, name="head", input_shape=(3,)), L.Dense(2, name="head")])


# ----------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("make", [_mnist_transfer_cnn, _branchy], ids=["sequential", "functional"])
def test_config_round_trip_gives_same_outputs(make):
    model = make()
    x = np.random.default_rng(3).random((2, *model.input_shape[1:])).astype(np.float32)
    model(x)  # moves batch-norm statistics away from their initial values
    cfg = {"class_name": type(model).__name__, "config": model.get_config()}
    clone = model_from_config(json.loads(json.dumps(cfg)))
    assert type(clone) is type(model) and [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert clone.get_config() == model.get_config()
    clone.load_state_dict(model.state_dict())
    with rl.using_config("train", False):
        np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_sequential_config_puts_batch_input_shape_on_first_layer():
    cfg = _mnist_transfer_cnn().get_config()
    assert cfg["layers"][0]["config"]["batch_input_shape"] == [None, 28, 28, 1]
    assert cfg["layers"][0]["class_name"] == "Conv2D"
    assert cfg["layers"][-1]["config"]["activation"] == "softmax"


def test_functional_config_has_keras_inbound_nodes():
    cfg = _branchy().get_config()
    add = next(l for l in cfg["layers"] if l["name"] == "add")
    assert add["inbound_nodes"] == [[["conv2d", 0, 0, {}], ["conv2d_1", 0, 0, {}]]]
    assert cfg["input_layers"] == [["input_1", 0, 0]] and cfg["output_layers"] == [["dense", 0, 0]]
    inp = next(l for l in cfg["layers"] if l["name"] == "input_1")
    assert inp["class_name"] == "InputLayer" and inp["config"]["batch_input_shape"] == [None, 5, 5, 2]


# ----------------------------------------------------------------------------------------- state dicts
def test_state_dict_errors_name_the_tensor():
    model = _mlp()
    state = {k: np.array(rl.backend.to_numpy(v)) for k, v in model.state_dict().items()}
    bad = dict(state)
    bad["dense_1/kernel"] = np.zeros((64, 63), np.float32)
    with pytest.raises(ValueError, match=r"'dense_1/kernel' has shape \(64, 64\) in the model but \(64, 63\)"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "dense_2/bias"}
    with pytest.raises(KeyError, match="missing tensors: dense_2/bias"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match="unexpected tensors: extra/w"):
        model.load_state_dict({**state, "extra/w": np.zeros(1)})
    result = model.load_state_dict({**missing, "extra/w": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["dense_2/bias"] and result.unexpected_keys == ["extra/w"]


def test_load_state_dict_copies_in_place():
    a, b = _mlp(), _mlp()
    kernel = b.get_layer("dense").kernel
    array_before = kernel.data
    b.load_state_dict(a.state_dict())
    assert kernel.data is array_before  # optimizers keep views of these arrays
    np.testing.assert_array_equal(rl.backend.to_numpy(kernel.data),
                                  rl.backend.to_numpy(a.get_layer("dense").kernel.data))
    loaded = rl.backend.to_numpy(kernel.data).copy()
    assert np.abs(loaded).sum() > 0  # so that zeroing a's kernel below is a visible change
    a.get_layer("dense").kernel.data[...] = 0  # no aliasing between the two models
    np.testing.assert_array_equal(rl.backend.to_numpy(kernel.data), loaded)


def test_get_and_set_weights():
    a, b = _mlp(), _mlp()
    weights = a.get_weights()
    assert [w.shape for w in weights] == [(4, 64), (64,), (64, 64), (64,), (64, 2), (2,)]
    b.set_weights(weights)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    with pytest.raises(ValueError, match="expects 6 arrays"):
        b.set_weights(weights[:-1])


# ------------------------------------------------------------------------------- transfer, nesting, subclassing
def test_cut_pretrained_sequential_and_add_a_head():
    base = _mnist_transfer_cnn()
    features = Model(base.input, base.get_layer("flatten").output)
    features.trainable = False
    head = L.Dense(3, activation="softmax")
    model = Model(features.input, head(features.output))
    assert head.name == "dense"  # unique among the layers of the model it joins (base's dense layers are not in it)
    x = np.random.default_rng(4).random((2, 28, 28, 1)).astype(np.float32)
    model(x).sum().backward()
    assert [p.name for p in model.parameters()] == ["dense/kernel", "dense/bias"]
    assert base.get_layer("conv2d").kernel.grad is None


def test_nested_model_as_a_layer():
    backbone = Sequential([L.Dense(8, activation="relu", input_shape=(4,)), L.BatchNormalization()], name="backbone")
    backbone.trainable = False
    model = Sequential([backbone, L.Dense(2)])
    assert [l.name for l in model.layers] == ["backbone", "dense_1"]
    x = np.random.default_rng(5).standard_normal((16, 4)).astype(np.float32)
    moving = rl.backend.to_numpy(backbone.get_layer("batch_normalization").moving_mean.data).copy()
    with rl.using_config("train", True):
        model(x)
    np.testing.assert_array_equal(rl.backend.to_numpy(backbone.get_layer("batch_normalization").moving_mean.data),
                                  moving)  # a frozen backbone's BN stays in inference mode
    assert list(model.state_dict())[:2] == ["dense/kernel", "dense/bias"]
    assert len(model.parameters()) == 2
    clone = model_from_config(json.loads(model.to_json()))
    clone.load_state_dict(model.state_dict())
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert clone.get_layer("backbone").trainable is False


def test_subclassed_model():
    class ActorCritic(Model):
        def __init__(self):
            super().__init__()
            self.body = L.Dense(16, activation="tanh")
            self.heads = [L.Dense(2), L.Dense(1)]

        def call(self, x):
            h = self.body(x)
            return self.heads[0](h), self.heads[1](h)

    net = ActorCritic()
    assert [l.name for l in net.layers] == ["dense", "dense_1", "dense_2"]
    logits, value = net(np.zeros((3, 5), np.float32))
    assert logits.shape == (3, 2) and value.shape == (3, 1)
    assert net.count_params() == 5 * 16 + 16 + 16 * 2 + 2 + 16 + 1
    (logits.sum() + value.sum()).backward()
    assert len(net.parameters()) == 6 and all(p.grad is not None for p in net.parameters())
    with pytest.raises(NotImplementedError, match="subclassed"):
        net.get_config()


def test_training_kwarg_overrides_config():
    model = Sequential([L.Dropout(0.5, input_shape=(100,))])
    x = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(model(x, training=False).numpy(), x)
    assert (model(x, training=True).numpy() == 0).any()


def test_nested_functional_model_round_trip():
    inner_in = Input((3,))
    inner = Model(inner_in, L.Dense(4, activation="relu")(inner_in), name="encoder")
    inp = Input((3,))
    out = L.Dense(1, name="head")(inner(inp))
    model = Model(inp, out)
    assert [l.name for l in model.layers] == ["input_2", "encoder", "head"]
    assert list(model.state_dict()) == ["dense/kernel", "dense/bias", "head/kernel", "head/bias"]
    x = np.ones((2, 3), np.float32)
    clone = model_from_config(json.loads(model.to_json()))
    clone.load_state_dict(model.state_dict())
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_seeding_makes_weights_reproducible():
    rl.seed(123)
    a = _mlp()
    rl.seed(123)
    b = _mlp()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], _mlp().get_weights()[0])


def test_an_input_no_output_uses_is_a_clear_error():
    # It was a bare KeyError from the graph builder (found while writing test_random_tfjs).
    a, b = Input((3,), name="used"), Input((3,), name="unused")
    with pytest.raises(ValueError, match=r"model input\(s\) \['unused'\] are not used by any output"):
        Model([a, b], L.Dense(2)(a))
