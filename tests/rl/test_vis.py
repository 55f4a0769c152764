"""rl.vis and rl.summaries: the numbers behind each figure, the files a run writes for the dashboard, and
TensorBoard event files read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import rl
from rl import vis
from rl.layers import Conv2D, Dense, Flatten
from rl.summaries import RunSummaries, TensorBoardWriter, model_table, summarize


@pytest.fixture
def conv_model():
    rl.seed(0)
    model = rl.Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1), name="conv"), Flatten(),
                           Dense(3, name="out")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1)).astype(np.float32)
    y = np.clip((x.mean(axis=(1, 2, 3)) * 3).astype(int), 0, 2)
    return x, y


@pytest.mark.parametrize("seed", range(5))
def test_confusion_counts_and_class_metrics_against_a_loop(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    t, p = rng.integers(0, k, 200), rng.integers(0, k, 200)
    cm = vis.confusion_counts(t, p, k)
    loop = np.zeros((k, k), int)
    for a, b in zip(t, p):
        loop[a, b] += 1
    assert (cm == loop).all(), f"seed {seed}"
    m = vis.class_metrics(t, p, k)
    for c in range(k):
        tp = np.sum((t == c) & (p == c))
        assert m["precision"][c] == pytest.approx(tp / max(np.sum(p == c), 1)), f"seed {seed} class {c}"
        assert m["recall"][c] == pytest.approx(tp / max(np.sum(t == c), 1)), f"seed {seed} class {c}"
        assert m["support"][c] == np.sum(t == c)
    # one-hot rows are reduced by argmax
    assert (vis.confusion_counts(np.eye(k)[t], p, k) == cm).all()


def test_confusion_matrix_and_per_class_figures_show_the_numbers(tmp_path):
    t, p = [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2]
    fig = vis.confusion_matrix(t, p, ["cat", "dog", "eel"], path=tmp_path / "cm.png")
    ax = fig.axes[0]
    assert (np.asarray(ax.images[0].get_array()) == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]).all()
    assert [tx.get_text() for tx in ax.texts] == ["1", "1", "0", "1", "2", "0", "0", "0", "1"]
    assert [tl.get_text() for tl in ax.get_xticklabels()] == ["cat", "dog", "eel"]
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    fig = vis.per_class_accuracy(t, p, ["cat", "dog", "eel"])
    heights = [r.get_height() for r in fig.axes[0].patches]
    assert heights == pytest.approx([1 / 2, 2 / 3, 1.0, 1 / 2, 2 / 3, 1.0])  # recall bars, then precision bars
    with pytest.raises(ValueError, match="class index 2 is out of range for 2 classes"):
        vis.per_class_accuracy([0, 2], [1, 1], labels=["a", "b"])


def test_history_plots_a_fit_history_and_a_run_directory(conv_model, tmp_path):
    x, y = data()
    cb = vis.DashboardCallback(tmp_path / "run", histogram_every=1, config={"lr": 0.001}, batch_every=2)
    hist = conv_model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    fig = vis.history(hist, path=tmp_path / "h.png")
    loss_ax = next(a for a in fig.axes if a.get_title() == "loss")
    lines = {ln.get_label(): ln for ln in loss_ax.lines}
    assert list(lines["loss"].get_ydata()) == pytest.approx(hist.history["loss"])
    assert list(lines["val_loss"].get_ydata()) == pytest.approx(hist.history["val_loss"])
    assert list(lines["loss"].get_xdata()) == [1, 2, 3]
    # The callback's run: epochs and metrics equal fit's History, batch losses every 2 steps, a train_end.
    recs = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [r[key] for r in epochs] == pytest.approx(hist.history[key]), key
    steps_per_epoch = epochs[0]["step"]
    assert [r["step"] for r in epochs] == [steps_per_epoch * (i + 1) for i in range(3)]
    assert [r["step"] for r in recs if "batch_loss" in r] == list(range(2, 3 * steps_per_epoch + 1, 2))
    assert recs[-1] == {"event": "train_end", "step": 3 * steps_per_epoch}
    assert "lr = 0.001" in (tmp_path / "run" / "config.toml").read_text()
    # The run directory plots too, through the dashboard's reader.
    fig = vis.history(tmp_path / "run", metrics=["loss"])
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "loss"]
    assert list(line.get_ydata()) == pytest.approx(hist.history["loss"])
    # histograms.jsonl: one snapshot per epoch of every trainable tensor, weights equal to the model's at the end
    snaps = [json.loads(s) for s in (tmp_path / "run" / "histograms.jsonl").read_text().splitlines()]
    assert [s["step"] for s in snaps] == [r["step"] for r in epochs]
    last = snaps[-1]["tensors"]
    kernel = conv_model.get_layer("conv").kernel if hasattr(conv_model.get_layer("conv"), "kernel") else None
    names = sorted(last)
    assert names == sorted(f"{conv_model.name}/{n}" for n, _ in conv_model.named_weights())
    if kernel is not None:
        assert last[f"{conv_model.name}/conv/kernel"]["w"] == summarize(kernel.data)
    assert all("g" in v for v in last.values())  # fit leaves the last batch's gradients on the parameters
    assert not (tmp_path / "run" / "model.json").exists()  # a TF.js export's name: not the layer tables
    model = json.loads((tmp_path / "run" / "layers.json").read_text())["networks"][0]
    assert [layer["name"] for layer in model["layers"]] == ["conv", "flatten", "out"]
    assert model["total_params"] == conv_model.count_params() == 4 * 9 + 4 + 144 * 3 + 3


def test_summarize_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 7))
    a[0, :3] = 0.0
    a[1, 0] = np.nan
    s = summarize(a, bins=12)
    finite = a[np.isfinite(a)]
    assert (s["count"], s["zeros"], s["nans"]) == (280, 3, 1)
    assert s["min"] == finite.min() and s["max"] == finite.max()
    assert s["mean"] == pytest.approx(finite.mean()) and s["std"] == pytest.approx(finite.std())
    assert s["counts"] == np.histogram(finite, bins=12, range=(finite.min(), finite.max()))[0].tolist()
    assert sum(s["counts"]) == 279
    const = summarize(np.full(5, 2.0))
    assert const["counts"][len(const["counts"]) // 2] == 5 and const["lo"] < 2.0 < const["hi"]


def test_histograms_model_summary_and_activations_figures(conv_model, tmp_path):
    x, y = data()
    conv_model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    fig = vis.histograms(conv_model, bins=10, path=tmp_path / "w.png")
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(shown) == 8  # conv kernel/bias and out kernel/bias, weights and gradients
    kernel_ax = next(a for a in shown if a.get_title().startswith(f"{conv_model.name}/conv/kernel weights"))
    (bars,) = kernel_ax.patches
    weights = {n: t for n, t in conv_model.named_weights()}["conv/kernel"]
    assert "(3, 3, 1, 4)" in kernel_ax.get_title()
    assert bars.get_data().values.tolist() == summarize(weights.data, 10)["counts"]
    fig = vis.model_summary(conv_model)
    table = fig.axes[0].tables[0]
    cells = {(r, c): cell.get_text().get_text() for (r, c), cell in table.get_celld().items()}
    assert cells[(1, 0)] == "conv (Conv2D)" and cells[(1, 1)] == "(None, 6, 6, 4)" and cells[(1, 2)] == "40"
    assert cells[(3, 2)] == "435"
    table_data = model_table(conv_model)
    assert [r["params"] for r in table_data["layers"]] == [40, 0, 435]
    fig = vis.activations(conv_model, x[:1], "conv", path=tmp_path / "a.png")
    maps = [a for a in fig.axes if a.images]
    with rl.no_grad():
        expect = rl.backend.to_numpy(conv_model.get_layer("conv")(rl.as_tensor(x[:1])).data[0])  # host: the figure's
    assert len(maps) == 4
    for i, ax in enumerate(maps):
        assert np.allclose(ax.images[0].get_array(), expect[..., i], atol=1e-6)
    fig = vis.activations(conv_model, x[:1], "out")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert np.allclose(heights, conv_model.predict(x[:1])[0], atol=1e-5)


def test_write_classification_for_the_dashboard(tmp_path):
    images = np.random.default_rng(0).random((6, 8, 8))
    path = vis.write_classification(tmp_path / "run", [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2],
                                    ["cat", "dog", "eel"], examples=images)
    data = json.loads(path.read_text())
    assert data["confusion"] == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert data["accuracy"] == pytest.approx(4 / 6) and data["count"] == 6
    assert data["per_class"][1] == {"label": "dog", "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                                    "support": 3}
    assert [(m["index"], m["true"], m["pred"]) for m in data["misclassified"]] == [(1, "cat", "dog"), (4, "dog", "cat")]
    from PIL import Image

    img = Image.open(tmp_path / "run" / data["misclassified"][0]["image"])
    assert img.size == (64, 64)  # 8x8 scaled up with sharp pixels
    assert np.asarray(img)[0, 0] == int(images[1, 0, 0] * 255)
    with pytest.raises(ValueError, match="examples has 2 images"):
        vis.write_classification(tmp_path / "r2", [0, 1, 1], [0, 1, 0], ["a", "b"], examples=images[:2])


def test_runner_summaries_cadence_and_tensorboard_scalars(conv_model, tmp_path):
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard not installed (pip install 'playgrad[tensorboard]')")
    pytest.importorskip("tensorboardX", reason="tensorboardX not installed (pip install 'playgrad[tensorboard]')")
    x, y = data()
    conv_model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    s = RunSummaries(tmp_path, lambda: {"net": conv_model}, histogram_every=3, tensorboard=True)
    records = []
    for i in range(1, 11):
        records.append({"env_steps": 100 * i, "episode_return": float(i), "episode_length": i})
        records.append({"env_steps": 100 * i, "policy_loss": 1.0 / i, "entropy": 0.5})
    for r in records:
        s.on_record(r)
    s.close()
    snaps = [json.loads(line) for line in (tmp_path / "histograms.jsonl").read_text().splitlines()]
    assert [h["step"] for h in snaps] == [100, 400, 700, 1000]  # updates 1, 4, 7, 10
    acc = tb.EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={tb.SCALARS: 0, tb.HISTOGRAMS: 0})
    acc.Reload()
    for key in ("episode_return", "episode_length", "policy_loss", "entropy"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert got == [(r["env_steps"], pytest.approx(r[key])) for r in records if key in r], key
    assert [e.step for e in acc.Histograms("net/conv/kernel")] == [100, 400, 700, 1000]
    assert acc.Histograms("grad/net/conv/kernel")
    assert acc.Histograms("net/conv/kernel")[-1].histogram_value.num == 36


def test_tensorboard_writers_in_one_second_keep_their_files_and_a_purge_mark_hides_what_was_redone(
        tmp_path, monkeypatch):
    # tensorboardX names an event file by the second and the host and truncates one of that name: a second
    # writer in the same second (a quick resume, a second fit()) wiped the first one's events.
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard not installed (pip install 'playgrad[tensorboard]')")
    event_file_writer = pytest.importorskip("tensorboardX.event_file_writer",
                                            reason="tensorboardX not installed (pip install 'playgrad[tensorboard]')")
    # Every file in one second: the writer module's clock only (its time module, as it names files by it).
    monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.5))
    logdir = tmp_path / "tensorboard"
    writes = [(None, range(1, 6)),  # a run, killed after writing step 5
              (4, range(4, 8)),  # resumed from a checkpoint at step 3: steps 4 and 5 again
              (None, range(8, 10))]  # a later writer going on (a second fit)
    for purge_step, steps in writes:
        writer = TensorBoardWriter(logdir, purge_step=purge_step)
        for step in steps:
            writer.scalars({"x": float(step), "resumed": float(purge_step is not None)}, step)
        writer.close()
    assert len(list(logdir.iterdir())) == 3
    acc = tb.EventAccumulator(str(logdir), size_guidance={tb.SCALARS: 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("x")] == [(step, float(step)) for step in range(1, 10)]
    assert [e.value for e in acc.Scalars("resumed")] == [0, 0, 0, 1, 1, 1, 1, 0, 0]


def test_dashboard_callback_tensorboard_scalars_equal_its_metrics(conv_model, tmp_path):
    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard not installed (pip install 'playgrad[tensorboard]')")
    pytest.importorskip("tensorboardX", reason="tensorboardX not installed (pip install 'playgrad[tensorboard]')")
    x, y = data()
    cb = vis.DashboardCallback(tmp_path, tensorboard=True, batch_every=1)
    conv_model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    recs = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    acc = tb.EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={tb.SCALARS: 0, tb.HISTOGRAMS: 0})
    acc.Reload()
    for key in ("loss", "val_loss", "accuracy", "batch_loss", "epoch"):
        expect = [(r["step"], r[key]) for r in recs if key in r]
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in expect] and len(expect) >= 2, key
        assert [v for _, v in got] == pytest.approx([v for _, v in expect], rel=1e-6), key
    epoch_steps = [r["step"] for r in recs if "epoch" in r]
    assert [e.step for e in acc.Histograms(f"{conv_model.name}/conv/kernel")] == epoch_steps
