"""compile / fit / evaluate / predict / train_on_batch on small problems with fixed seeds."""

import math

import numpy as np
import pytest

import rl.functional as F
from rl import backend, layers, models
from rl import random as rl_random
from rl.callbacks import LambdaCallback
from rl.training import NonFiniteLossError, evaluate, fit, get_metric, predict, train_on_batch


def sparse_ce(y_true, y_pred):
    """Mean sparse categorical cross-entropy on logits (kept local so these tests need only rl.functional)."""
    labels = y_true.data.astype(np.int64).reshape(-1, 1)
    return -F.take_along_axis(F.log_softmax(y_pred), labels, axis=-1).mean()


def mse(y_true, y_pred):
    d = y_pred - y_true
    return (d * d).mean()


def xor_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return x, y


def make_classifier(seed=0, hidden=32):
    rl_random.seed(seed)
    return models.Sequential([layers.Input((2,)), layers.Dense(hidden, activation="tanh"), layers.Dense(2)])


def test_fit_learns_xor():
    x, y = xor_data()
    model = make_classifier()
    model.compile(optimizer="adam", loss=sparse_ce, metrics=["accuracy"], lr=0.01)
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0, seed=1)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] >= 0.95
    result = model.evaluate(x, y, batch_size=64)
    assert result["accuracy"] >= 0.95 and set(result) == {"loss", "accuracy"}
    assert model.history is history and history.epoch == list(range(30))


def test_seeded_fit_is_bit_identical():
    x, y = xor_data(256)
    runs = []
    for _ in range(2):
        model = make_classifier(seed=3)
        model.compile(optimizer="adam", loss=sparse_ce, lr=0.01)
        h = fit(model, x, y, batch_size=16, epochs=3, verbose=0, seed=7)
        runs.append((h.history["loss"], {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    # A different shuffling seed changes the trajectory, so the equality above is not vacuous.
    model = make_classifier(seed=3)
    model.compile(optimizer="adam", loss=sparse_ce, lr=0.01)
    assert fit(model, x, y, batch_size=16, epochs=3, verbose=0, seed=8).history["loss"] != runs[0][0]


def test_validation_split_holds_out_the_last_samples():
    x, y = xor_data(100)
    model = make_classifier()
    model.compile(optimizer="sgd", loss=sparse_ce, metrics=["accuracy"], lr=0.1)
    sizes = []
    cb = LambdaCallback(on_batch_end=lambda batch, logs: sizes.append(logs["size"]))
    h = model.fit(x, y, batch_size=32, epochs=1, validation_split=0.25, verbose=0, callbacks=[cb], seed=0)
    assert sizes == [32, 32, 11]  # 75 training samples
    held_out = evaluate(model, x[75:], y[75:], batch_size=8, return_dict=True)
    assert h.history["val_loss"][0] == pytest.approx(held_out["loss"], rel=1e-6)
    assert h.history["val_accuracy"][0] == pytest.approx(held_out["accuracy"])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)


def test_validation_data_and_verbose_progress_bar(capsys):
    x, y = xor_data(64)
    model = make_classifier()
    model.compile(optimizer="adam", loss=sparse_ce, metrics=["acc"])
    h = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:10], y[:10]), verbose=1, seed=0)
    assert len(h.history["val_loss"]) == 2 and "val_acc" in h.history
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "loss=" in err


def test_nan_loss_stops_with_a_clear_message_and_keeps_last_good_weights():
    x, y = xor_data(128)
    model = make_classifier()
    calls = {"n": 0}

    def exploding(y_true, y_pred):
        calls["n"] += 1
        loss = sparse_ce(y_true, y_pred)
        return loss * float("nan") if calls["n"] == 3 else loss

    model.compile(optimizer="adam", loss=exploding, lr=0.01)
    snapshots = []
    cb = LambdaCallback(
        on_batch_end=lambda b, logs: snapshots.append(
            {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
        )
    )
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 1, batch 3/4"):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb], seed=0)
    assert len(snapshots) == 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(v), snapshots[-1][k])


def test_nan_loss_can_be_skipped_instead():
    x, y = xor_data(128)
    model = make_classifier()
    calls = {"n": 0}

    def sometimes_inf(y_true, y_pred):
        calls["n"] += 1
        loss = sparse_ce(y_true, y_pred)
        return loss + float("inf") if calls["n"] == 2 else loss

    model.compile(optimizer="adam", loss=sometimes_inf)
    h = model.fit(x, y, batch_size=32, epochs=1, verbose=0, terminate_on_nan=False, seed=0)
    assert math.isfinite(h.history["loss"][0])  # the skipped batch does not poison the epoch's mean
    assert model.optimizer.iterations == 3  # the non-finite batch took no step


def test_seeded_fit_resumed_at_an_epoch_shuffles_as_the_uninterrupted_run():
    x, y = xor_data(96)
    whole = make_classifier()
    whole.compile(optimizer="sgd", loss=sparse_ce, lr=0.1)
    resumed = make_classifier()
    resumed.compile(optimizer="sgd", loss=sparse_ce, lr=0.1)
    resumed.set_weights(whole.get_weights())
    whole.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=3)
    resumed.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=3)
    resumed.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, verbose=0, seed=3)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_predict_evaluate_and_train_on_batch():
    x, y = xor_data(50)
    model = make_classifier()
    model.compile(optimizer="adam", loss=sparse_ce, lr=0.05)
    a = predict(model, x, batch_size=7)
    b = model.predict(x, batch_size=64)
    assert isinstance(a, np.ndarray) and a.shape == (50, 2)
    # batches of 7 and 64 are different GEMM shapes: float32 sums in another order (seen: 6e-8 apart)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    before = evaluate(model, x, y)
    assert isinstance(before, float)
    losses = [train_on_batch(model, x, y) for _ in range(20)]
    assert losses[-1] < losses[0] and evaluate(model, x, y) < before


def test_uint8_inputs_are_fed_as_float32():
    rl_random.seed(0)
    model = models.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss=mse)
    x = np.array([[0, 128, 255], [1, 2, 3]], dtype=np.uint8)
    out = predict(model, x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, predict(model, x.astype(np.float32)))


def test_metrics_pick_their_kind_from_shapes():
    acc = get_metric("accuracy")
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0], [1.0, 4.0, 0.0]])
    assert acc(np.array([0, 2, 0]), logits).tolist() == [1, 1, 0]  # sparse (N,)
    assert acc(np.array([[0], [2], [1]]), logits).tolist() == [1, 1, 1]  # sparse (N, 1)
    assert acc(np.eye(3)[[1, 2, 1]], logits).tolist() == [0, 1, 1]  # one-hot
    assert acc(np.array([1, 0, 1.0]), np.array([[0.9], [0.2], [0.4]])).tolist() == [1, 1, 0]  # binary
    y_true, y_pred = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(get_metric("mae")(y_true, y_pred), [1.5, 1.0])
    np.testing.assert_allclose(get_metric("mse")(y_true, y_pred), [2.5, 1.0])
    with pytest.raises(ValueError, match="accuracy"):
        get_metric("f1")


def test_user_mistakes_get_clear_errors():
    x, y = xor_data(20)
    model = make_classifier()
    with pytest.raises(RuntimeError, match="compile"):
        fit(model, x, y, verbose=0)
    model.compile(optimizer="adam", loss=sparse_ce)
    with pytest.raises(ValueError, match="20 samples but y has 19"):
        fit(model, x, y[:19], verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(optimizer="adam", loss=sparse_ce, metrics=["accuracyy"])
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="adamm", loss=sparse_ce)


def test_missing_targets_and_bad_batch_sizes_are_named():
    # Before: model.fit(x) died in _take with "'NoneType' object is not subscriptable", and
    # evaluate/predict with batch_size=0 in range() ("arg 3 must not be zero").
    x, y = xor_data(20)
    model = make_classifier()
    model.compile(optimizer="adam", loss=sparse_ce)
    with pytest.raises(ValueError, match=r"fit needs targets: call it as fit\(x, y\)"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="evaluate needs targets"):
        model.evaluate(x)
    with pytest.raises(ValueError, match="train_on_batch needs targets"):
        model.train_on_batch(x, None)
    with pytest.raises(ValueError, match="evaluate: batch_size must be >= 1, got 0"):
        evaluate(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="predict: batch_size must be >= 1, got 0"):
        predict(model, x, batch_size=0)
    assert predict(model, x, batch_size=7).shape == (20, 2)


def _two_input_critic(seed=0):
    """A DDPG-style critic: Q(obs (N, 3), action (N, 2)) -> (N, 1)."""
    rl_random.seed(seed)
    obs, act = layers.Input((3,)), layers.Input((2,))
    q = layers.Dense(1)(layers.Dense(8, activation="relu")(layers.Concatenate()([obs, act])))
    model = models.Model([obs, act], q)
    model.compile(optimizer="adam", loss="mse", lr=0.01)
    return model


def test_multi_input_models_take_a_list_in_predict_evaluate_and_fit():
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(10, 3)).astype(np.float32), rng.normal(size=(10, 2)).astype(np.float32)
    target = rng.normal(size=(10, 1)).astype(np.float32)
    model = _two_input_critic()
    direct = backend.to_numpy(model([obs, act]).data)
    np.testing.assert_array_equal(model.predict([obs, act], batch_size=10), direct)
    # smaller batches may round differently in BLAS, by an ulp
    np.testing.assert_allclose(predict(model, (obs, act), batch_size=3), direct, rtol=1e-6, atol=1e-7)
    expected = float(np.mean((direct - target) ** 2))
    assert math.isclose(model.evaluate([obs, act], target, batch_size=4), expected, rel_tol=1e-5)
    history = model.fit([obs, act], target, batch_size=5, epochs=3, verbose=0, seed=0, validation_split=0.2)
    assert len(history.history["val_loss"]) == 3
    train_on_batch(model, [obs, act], target)
    with pytest.raises(ValueError, match="takes 2 inputs, got a list of 3"):
        model.predict([obs, act, act])
    with pytest.raises(ValueError, match=r"different sample counts \[10, 9\]"):
        model.predict([obs, act[:9]])


def test_predict_of_a_model_with_several_outputs_gives_one_array_per_output():
    # It failed with AttributeError ('list' object has no attribute 'data'); found by test_random_tfjs.
    inp = models.Input((3,))
    model = models.Model(inp, [layers.Dense(2)(inp), layers.Dense(1, activation="tanh")(inp)])
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    out = model.predict(x, batch_size=16)  # three batches, joined per output
    assert isinstance(out, list) and [o.shape for o in out] == [(40, 2), (40, 1)]
    whole = model(x)
    for got, want in zip(out, whole):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
