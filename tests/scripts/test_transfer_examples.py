"""The transfer examples end to end with tiny budgets: digits transfer, few-shot, gesture Snake, classify."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_weights() -> Path:
    from transfer import weights

    try:
        return weights.mobilenet_v2_path(download=True)
    except weights.WeightsError as exc:
        pytest.skip(f"MobileNetV2 weights unavailable: {exc}")


@pytest.mark.slow
def test_digits_transfer_three_modes_table_and_plot(tmp_path, capsys):
    mod = _script("digits_transfer")
    rc = mod.main([str(ROOT / "configs" / "digits_transfer.toml"), "--out", str(tmp_path),
                   "--set", "data.image_size=12", "--set", "data.max_train=40", "--set", "base.epochs=1",
                   "--set", "retrain.epochs=2", "--set", "base.batch_size=32", "--set", "retrain.batch_size=32"])
    assert rc == 0
    table = (tmp_path / "digits_transfer.md").read_text()
    assert "| epoch | freeze-feature-layers | no-freezing | reinitialize-weights |" in table
    assert "| 2 |" in table and "| 3 |" not in table
    png = (tmp_path / "digits_transfer.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "base model on digits 0-4" in out
    assert out.count("Epoch 1/2 - ") == 3 and out.count("Epoch 2/2 - ") == 3  # progress as each mode trains
    for mode in ("freeze-feature-layers", "no-freezing", "reinitialize-weights"):  # runs the dashboard shows
        metrics = (tmp_path / mode / "metrics.jsonl").read_text().splitlines()
        assert sum('"val_accuracy"' in line for line in metrics) == 2
        assert len(json.loads((tmp_path / mode / "classification.json").read_text())["confusion"]) == 5


def test_digits_transfer_freezes_the_seven_feature_layers():
    mod = _script("digits_transfer")
    model = mod.build_cnn(mod.BaseConfig(), 28)
    assert len(model.layers) == 12
    assert sum(w.size for w in model.trainable_weights) == 600_165  # the Keras script's count
    assert [type(layer).__name__ for layer in model.layers[: mod.N_FEATURE_LAYERS]] == [
        "Conv2D", "Activation", "Conv2D", "Activation", "MaxPooling2D", "Dropout", "Flatten"]
    for layer in model.layers[: mod.N_FEATURE_LAYERS]:  # what run() does for freeze-feature-layers
        layer.trainable = False
    # the two convs (3*3*1*32 + 32, 3*3*32*32 + 32) frozen; the dense head 12*12*32*128 + 128 + 128*5 + 5 left
    assert sum(w.size for w in model.trainable_weights) == 600_165 - 320 - 9_248 == 590_597


def test_digits_transfer_config_errors_name_the_key(tmp_path, capsys):
    mod = _script("digits_transfer")
    assert mod.main(["--out", str(tmp_path), "--set", "retrain.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "epoch" in err and "did you mean 'epochs'" in err
    assert mod.main(["--out", str(tmp_path), "--set", "retrain.modes=['freeze']"]) == 2
    assert "freeze-feature-layers" in capsys.readouterr().err


def test_fewshot_table_with_a_random_backbone(tmp_path):
    mod = _script("mobilenet_fewshot")
    rc = mod.main(["--out", str(tmp_path), "--set", "fewshot.weights='random'", "--set", "data.image_size=32",
                   "--set", "data.max_pool=20", "--set", "data.max_test=15", "--set", "fewshot.shots=[1, 0]",
                   "--set", "fewshot.repeats=1", "--set", "fewshot.head_epochs=3", "--set", "fewshot.cnn_epochs=1"])
    assert rc == 0
    table = (tmp_path / "mobilenet_fewshot.md").read_text()
    assert "| k per class | mobilenet+head | pixels+head | cnn-scratch |" in table
    rows = [line for line in table.splitlines() if line.startswith("| 1 |") or line.startswith("| all |")]
    assert len(rows) == 2
    assert "5 classes" in table and "15 test images" in table and "embedded 35 images once" in table  # 20 + 15
    for row in rows:  # one draw on 15 test images: each accuracy is a count of 15, printed to 3 decimals
        accs = [float(v) for v in row.strip("|").split("|")[1:]]
        assert len(accs) == 3 and all(0.0 <= a <= 1.0 for a in accs)
        assert all(abs(a - round(a * 15) / 15) <= 5e-4 for a in accs), row


def test_fewshot_photos_task_crops_and_note(tmp_path):
    mod = _script("mobilenet_fewshot")
    crops, labels, names = mod.photo_crops(3, 24, seed=0)
    assert crops.shape == (18, 24, 24, 3) and crops.dtype == np.uint8 and names[1] == "cat"
    assert list(np.bincount(labels)) == [3] * 6
    np.testing.assert_array_equal(crops, mod.photo_crops(3, 24, seed=0)[0])
    assert not np.array_equal(crops[0], crops[1])  # every example its own crop
    rc = mod.main(["--out", str(tmp_path), "--set", 'data.task="photos"', "--set", "data.photo_crops=4",
                   "--set", "fewshot.weights='random'", "--set", "data.image_size=32", "--set", "fewshot.shots=[1]",
                   "--set", "fewshot.repeats=1", "--set", "fewshot.head_epochs=2", "--set", "fewshot.cnn_epochs=1"])
    assert rc == 0
    table = (tmp_path / "mobilenet_fewshot.md").read_text()
    assert "6 classes (astronaut, cat, coffee, rocket, galaxies, tissue)" in table and "different crop" in table
    assert mod.main(["--out", str(tmp_path), "--set", 'data.task="faces"']) == 2


@pytest.mark.slow
def test_fewshot_transfer_wins_on_natural_photos(real_weights, tmp_path):
    mod = _script("mobilenet_fewshot")
    cfg = mod.load_config(str(ROOT / "configs" / "mobilenet_fewshot.toml"),
                          ['data.task="photos"', "data.photo_crops=20", "data.image_size=128", "fewshot.shots=[1]",
                           "fewshot.repeats=3"])
    results = mod.run(cfg, tmp_path, verbose=False)
    accs = results[1]
    assert accs["mobilenet+head"] > 0.7 and accs["mobilenet+head"] > accs["pixels+head"] + 0.25, accs


def test_fewshot_on_an_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(4):
            arr = rng.integers(0, 60, (24, 24, 3)).astype(np.uint8)
            arr[..., channel] = 220
            Image.fromarray(arr).save(tmp_path / "imgs" / name / f"{i}.png")
    mod = _script("mobilenet_fewshot")
    rc = mod.main(["--image-folder", str(tmp_path / "imgs"), "--out", str(tmp_path / "out"),
                   "--set", "fewshot.weights='random'", "--set", "data.image_size=32",
                   "--set", "data.test_fraction=0.5",
                   "--set", "fewshot.shots=[1]", "--set", "fewshot.repeats=1", "--set", "fewshot.head_epochs=2",
                   "--set", "fewshot.cnn_epochs=1"])
    assert rc == 0
    assert "2 classes (blue, red)" in (tmp_path / "out" / "mobilenet_fewshot.md").read_text()


def test_gesture_snake_headless_with_synthetic_frames(tmp_path, capsys):
    mod = _script("gesture_control")
    shot = tmp_path / "window.png"
    rc = mod.main(["--headless", "--frames", "6", "--screenshot", str(shot), "--set", "gesture.weights='random'",
                   "--set", "gesture.image_size=32", "--set", "gesture.samples_per_class=3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "collected 12 frames (up 3, down 3, left 3, right 3)" in out
    assert "played 6 steps" in out
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_gesture_labels_map_to_relative_snake_actions():
    import gymnasium as gym

    import envs  # noqa: F401
    from envs.snake.core import ACTION_GO_STRAIGHT, ACTION_TURN_LEFT, ACTION_TURN_RIGHT

    mod = _script("gesture_control")
    env = gym.make("envs/Snake-v0")
    env.reset(seed=0)  # heading right
    up, down, left, right = range(4)
    assert mod.label_to_action(env, up) == ACTION_TURN_LEFT
    assert mod.label_to_action(env, down) == ACTION_TURN_RIGHT
    assert mod.label_to_action(env, right) == ACTION_GO_STRAIGHT
    assert mod.label_to_action(env, left) == ACTION_GO_STRAIGHT  # a U-turn is not allowed
    frames = mod.SyntheticFrames(size=32, seed=0)
    img = frames.frame(up).astype(float)
    assert img[:10].mean() > img[-10:].mean()  # the blob sits on the gestured side


def test_gesture_folder_source_needs_the_four_directions(tmp_path, capsys):
    from PIL import Image

    mod = _script("gesture_control")
    synth = mod.SyntheticFrames(size=32, seed=1)
    for label, name in enumerate(mod.CONTROLS[:3]):
        (tmp_path / name).mkdir()
        Image.fromarray(synth.frame(label)).save(tmp_path / name / "0.png")
    assert mod.main(["--headless", "--source", "folder", "--folder", str(tmp_path), "--frames", "2",
                     "--set", "gesture.weights='random'", "--set", "gesture.image_size=32"]) == 2
    assert "up', 'down', 'left', 'right" in capsys.readouterr().err
    (tmp_path / "right").mkdir()
    Image.fromarray(synth.frame(3)).save(tmp_path / "right" / "0.png")
    assert mod.main(["--headless", "--source", "folder", "--folder", str(tmp_path), "--frames", "3",
                     "--set", "gesture.weights='random'", "--set", "gesture.image_size=32"]) == 0
    assert "played 3 steps" in capsys.readouterr().out


def test_gesture_frame_sources_are_datasets(tmp_path):
    from PIL import Image

    mod = _script("gesture_control")
    synth = mod.SyntheticFrames(size=32, seed=1)
    for label, name in enumerate(mod.CONTROLS):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(synth.frame(label)).save(tmp_path / name / f"{i}.png")
    folder = mod.FolderFrames(str(tmp_path), 32, seed=4)
    stream = folder.dataset().take(16)
    labels = [int(label) for _, label in stream]
    assert sorted(labels[:8]) == sorted(labels[8:]) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert labels[:8] != labels[8:]  # every pass in a new seeded order
    assert labels == [int(label) for _, label in folder.dataset().take(16)]

    class FakeCamera:  # grabs frames like CameraFrames, without pygame
        size, grabbed = 32, 0

        def grab(self):
            self.grabbed += 1
            return synth.frame(self.grabbed % 4)

    camera = FakeCamera()
    frames = list(mod.CameraFrames.dataset(camera).take(3))
    assert len(frames) == 3 and camera.grabbed == 3 and frames[0].shape == (32, 32, 3)


def test_classify_prints_the_top5(real_weights, tmp_path, capsys):
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    path = tmp_path / "chelsea.png"
    Image.fromarray(skdata.chelsea()).save(path)
    mod = _script("classify")
    assert mod.main([str(path), "--weights", str(real_weights)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.", "4.", "5.")]
    assert len(lines) == 5
    assert any(cat in lines[0] for cat in ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"))
    assert mod.main([str(tmp_path / "missing.png"), "--weights", str(real_weights)]) == 2


def test_classify_on_onnx_runtime_ranks_the_same_classes(real_weights, tmp_path, capsys):
    """--runtime onnxruntime runs the rl.onnx export of the same network: the same top 5, in the same order."""
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'playgrad[onnx]'")
    skdata = pytest.importorskip("skimage.data")
    import shutil

    from PIL import Image

    path = tmp_path / "coffee.png"
    Image.fromarray(skdata.coffee()).save(path)
    weights = tmp_path / "mobilenet_v2.pth"  # the export is cached beside the weights: keep it in tmp_path
    shutil.copy(real_weights, weights)
    mod = _script("classify")

    def ranked(*extra: str) -> list[str]:
        assert mod.main([str(path), "--weights", str(weights), *extra]) == 0
        return [line.split("%")[0].rsplit(None, 1)[0] for line in capsys.readouterr().out.splitlines()
                if line.strip()[:2] in ("1.", "2.", "3.", "4.", "5.")]

    ours = ranked()
    assert ranked("--runtime", "onnxruntime") == ours and len(ours) == 5
    assert (tmp_path / "mobilenet_v2.onnx").exists()


def test_gesture_headless_run_needs_a_positive_frame_count(monkeypatch, capsys):
    # A headless run with --frames 0 ("until the window closes") or a negative count used to play forever.
    mod = _script("gesture_control")
    played = []
    monkeypatch.setattr(mod, "play", lambda cfg, cache, head, it, synth, frames, *rest: played.append(frames) or {})
    for frames in ("0", "-3"):
        assert mod.main(["--headless", "--frames", frames, "--set", "gesture.weights='random'",
                         "--set", "gesture.image_size=32", "--set", "gesture.samples_per_class=2"]) == 2
        assert "frames must be > 0 in a headless run" in capsys.readouterr().err
    assert played == []


def test_folder_paths_with_quotes_and_backslashes_reach_the_loaders(tmp_path, capsys, monkeypatch):
    # The folder went into a TOML override as '...' (gesture) or a Python repr (few-shot): a quote or a
    # backslash in the path made it a TOML syntax error or another path.
    folder = tmp_path / "it's \"my\" \\ folder"
    (folder / "up").mkdir(parents=True)
    gesture = _script("gesture_control")
    assert gesture.main(["--headless", "--source", "folder", "--folder", str(folder), "--frames", "2",
                         "--set", "gesture.weights='random'", "--set", "gesture.image_size=32"]) == 2
    assert f"class folder {folder / 'up'} has no image files" in capsys.readouterr().err  # the right folder
    fewshot = _script("mobilenet_fewshot")
    seen = []
    original = fewshot.load_config

    def load_config(path, overrides):
        cfg = original(path, overrides)
        seen.append(cfg["data"].image_folder)
        raise fewshot.ConfigError("stop here")

    monkeypatch.setattr(fewshot, "load_config", load_config)
    assert fewshot.main(["--image-folder", str(folder)]) == 2
    assert seen == [str(folder)]


def test_fewshot_refuses_negative_shots_and_no_repeats(tmp_path, capsys):
    mod = _script("mobilenet_fewshot")
    assert mod.main(["--out", str(tmp_path), "--set", "fewshot.shots=[1, -2]"]) == 2
    assert "shots must be >= 0" in capsys.readouterr().err
    assert mod.main(["--out", str(tmp_path), "--set", "fewshot.repeats=0"]) == 2
    assert "repeats must be at least 1" in capsys.readouterr().err
