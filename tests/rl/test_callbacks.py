"""Callbacks: early stopping, checkpoints of the best epoch, learning-rate schedules, loggers."""

import csv
import json

import numpy as np
import pytest

from rl import backend, checkpoint, layers, models, schedules
from rl import random as rl_random
from rl.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)


def mse(y_true, y_pred):
    d = y_pred - y_true
    return (d * d).mean()


def regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32) + 0.3).astype(np.float32)
    return x, y


def make_model(lr=0.05):
    rl_random.seed(0)
    model = models.Sequential([layers.Input((3,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    model.compile(optimizer="adam", loss=mse, lr=lr)
    return model


class Scripted(Callback):
    """Writes a scripted 'score' into each epoch's logs and keeps a copy of the weights per epoch."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append({k: backend.to_numpy(v).copy() for k, v in self.model.state_dict().items()})


def test_early_stopping_waits_patience_and_restores_best():
    x, y = regression()
    model = make_model()
    script = Scripted([3.0, 2.0, 1.0, 1.5, 1.2, 0.5, 0.1])
    stop = EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    h = model.fit(x, y, batch_size=16, epochs=7, verbose=0, callbacks=[script, stop], seed=0)
    assert h.epoch == [0, 1, 2, 3, 4]
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(v), script.weights[2][k])
    assert not np.array_equal(script.weights[4]["dense_1/kernel"], script.weights[2]["dense_1/kernel"])


def test_early_stopping_min_delta_and_max_mode():
    x, y = regression()
    model = make_model()
    script = Scripted([0.50, 0.505, 0.508, 0.6, 0.7])
    stop = EarlyStopping(monitor="score", mode="max", min_delta=0.01, patience=2)
    h = model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[script, stop])
    assert h.epoch == [0, 1, 2]  # +0.005 and +0.008 are below min_delta
    with pytest.raises(KeyError, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])


def test_model_checkpoint_keeps_only_the_best(tmp_path):
    x, y = regression()
    model = make_model()
    script = Scripted([5.0, 3.0, 4.0, 2.0, 6.0])
    path = tmp_path / "best.safetensors"
    ckpt = ModelCheckpoint(path, monitor="score", save_best_only=True, save_weights_only=True)
    model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[script, ckpt])
    saved, _ = checkpoint.read_safetensors(path)
    for k, v in saved.items():
        np.testing.assert_array_equal(v, script.weights[3][k])
    assert ckpt.best == 2.0 and ckpt.last_saved == path


def test_model_checkpoint_formats_the_path_per_epoch(tmp_path):
    x, y = regression()
    model = make_model()
    ckpt = ModelCheckpoint(tmp_path / "e{epoch:02d}-{loss:.3f}.safetensors", monitor="loss")
    h = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[ckpt])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"e{i + 1:02d}-{loss:.3f}.safetensors" for i, loss in enumerate(h.history["loss"])]
    restored = checkpoint.load_model(ckpt.last_saved)
    np.testing.assert_allclose(restored.predict(x), model.predict(x), rtol=1e-6)


def test_learning_rate_scheduler_with_schedule_and_keras_function():
    x, y = regression()
    model = make_model()
    sched = LearningRateScheduler(schedules.PiecewiseConstant([2], [0.1, 0.01]))
    h = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[sched])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.01])
    halve = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[halve])
    assert h.history["lr"] == pytest.approx([0.005, 0.0025])


def test_csv_and_jsonl_loggers(tmp_path):
    x, y = regression()
    model = make_model()
    csv_path, jsonl_path = tmp_path / "log.csv", tmp_path / "log.jsonl"
    h = model.fit(
        x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x, y),
        callbacks=[CSVLogger(csv_path), JSONLLogger(jsonl_path)],
    )  # fmt: skip
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[2]["val_loss"]) == pytest.approx(h.history["val_loss"][2])
    records = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[1]["loss"] == pytest.approx(h.history["loss"][1])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[CSVLogger(csv_path, append=True)])
    assert len(list(csv.DictReader(csv_path.open()))) == 4


def test_lambda_callback_can_stop_mid_epoch():
    x, y = regression()
    model = make_model()
    seen = []

    def on_batch_end(batch, logs):
        seen.append(batch)
        if batch == 1:
            model.stop_training = True

    h = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[LambdaCallback(on_batch_end=on_batch_end)])
    assert seen == [0, 1] and h.epoch == [0]


def test_terminate_on_nan_callback_stops_quietly():
    x, y = regression()
    model = make_model()
    count = {"n": 0}

    def bad_later(y_true, y_pred):
        count["n"] += 1
        return mse(y_true, y_pred) * (float("nan") if count["n"] >= 2 else 1.0)

    model.compile(optimizer="adam", loss=bad_later)
    h = model.fit(x, y, batch_size=16, epochs=3, verbose=0, terminate_on_nan=False, callbacks=[TerminateOnNaN()])
    assert count["n"] == 2 and h.epoch == [0]


def test_learning_rate_scheduler_takes_numpy_scalars_and_refuses_non_numbers():
    x, y = regression()
    model = make_model()
    numpy_sched = LearningRateScheduler(lambda epoch: np.float32(0.02) / (epoch + 1))  # refused before
    h = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[numpy_sched])
    assert h.history["lr"] == pytest.approx([0.02, 0.01])
    for bad in ("0.1", None, True, float("nan")):
        with pytest.raises(ValueError, match="expected a float"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr, v=bad: v)])
