"""scripts/make_image_set.py and scripts/finetune.py: the synthetic folder, the streamed run directory,
the embedding cache reused and refused, resume, and bad input as one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scripts import finetune as ft
from scripts.make_image_set import class_name, make_image_set
from transfer.weights import mobilenet_v2_path

SMALL = ["data.image_size=32", "data.batch_size=8", "backbone.weights=\"random\"", "head.epochs=3",
         "head.batch_size=16", "data.validation_split=0.25"]


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "shapes"
    make_image_set(out, 0, classes=3, size=48, workers=2, per_class=8, log=lambda *a, **k: None)
    return out


def _run(tmp_path, image_set, *extra):
    overrides = [f'data.image_folder="{image_set}"', *SMALL, *extra]
    return ft.finetune(None, overrides, runs_dir=str(tmp_path / "runs"), log=lambda *a, **k: None)


def test_image_set_is_seeded_whatever_the_worker_count(tmp_path, image_set):
    other = tmp_path / "again"
    make_image_set(other, 0, classes=3, size=48, workers=1, per_class=8, log=lambda *a, **k: None)
    names = sorted(p.relative_to(image_set) for p in image_set.rglob("*.jpg"))
    assert len(names) == 24 and sorted(p.relative_to(other) for p in other.rglob("*.jpg")) == names
    assert all((image_set / n).read_bytes() == (other / n).read_bytes() for n in names)
    assert sorted(p.name for p in image_set.iterdir()) == sorted(class_name(k) for k in range(3))
    with pytest.raises(FileExistsError, match="exists"):
        make_image_set(other, 0, classes=3, per_class=1)
    assert not list(tmp_path.glob("*.partial"))


def test_run_directory_metrics_checkpoints_and_cache_reuse(tmp_path, image_set):
    run = _run(tmp_path, image_set, f'data.cache_dir="{tmp_path / "cache"}"')
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r.get("split", r.get("epoch"))) for r in lines] == [
        ("embed", "train"), ("embed", "validation"), ("head", 1), ("head", 2), ("head", 3)]
    assert lines[0]["images"] == 18 and lines[1]["images"] == 6 and all(r["images_per_s"] > 0 for r in lines)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(lines[-1])
    assert (run / "config.toml").is_file() and (run / "checkpoints" / "head.safetensors").is_file()
    result = json.loads((run / "result.json").read_text())
    assert result["classes"] == [class_name(k) for k in range(3)] and result["skipped"] == []
    # a second run with the same backbone and pipeline reads the cache: no embed lines
    again = _run(tmp_path, image_set, f'data.cache_dir="{tmp_path / "cache"}"')
    assert [json.loads(x)["phase"] for x in (again / "metrics.jsonl").read_text().splitlines()] == ["head"] * 3


def test_fine_tune_phase_trains_top_blocks_on_streamed_augmented_images(tmp_path, image_set):
    run = _run(tmp_path, image_set, "fine_tune.blocks=1", "fine_tune.epochs=2", "fine_tune.steps_per_epoch=2",
               "fine_tune.batch_size=4", "fine_tune.lr=1e-2")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    tuned = [r for r in lines if r["phase"] == "fine_tune"]
    assert [r["epoch"] for r in tuned] == [1, 2] and all(np.isfinite(r["val_loss"]) for r in tuned)
    assert (run / "checkpoints" / "fine_tune.safetensors").is_file()
    final = json.loads((run / "result.json").read_text())["fine_tune"]  # the last epoch's validation pass
    assert final == pytest.approx({"loss": tuned[-1]["val_loss"], "accuracy": tuned[-1]["val_accuracy"]}, abs=1e-6)


def test_resume_continues_after_the_last_finished_epoch(tmp_path, image_set, monkeypatch):
    full = _run(tmp_path / "a", image_set)
    original = ft.EpochRecorder.on_epoch_end

    def stop_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(ft.EpochRecorder, "on_epoch_end", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", image_set)
    monkeypatch.setattr(ft.EpochRecorder, "on_epoch_end", original)
    interrupted = next((tmp_path / "b" / "runs").iterdir())
    ft.finetune(None, [], resume=str(interrupted), log=lambda *a, **k: None)

    timing = ("seconds", "train_seconds", "images_per_s", "phase")

    def head_lines(run):
        return [{k: v for k, v in json.loads(x).items() if k not in timing}
                for x in (run / "metrics.jsonl").read_text().splitlines() if '"head"' in x]

    resumed, uninterrupted = head_lines(interrupted), head_lines(full)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, image_set, capsys):
    runs = tmp_path / "runs"

    def cli(*overrides):
        args = ["--runs-dir", str(runs)] + [a for o in overrides for a in ("--set", o)]
        code = ft.main(args)
        return code, capsys.readouterr().err.strip()

    code, err = cli(f'data.image_folder="{tmp_path / "missing"}"')
    assert code == 2 and "missing does not exist" in err and "Traceback" not in err
    empty = tmp_path / "with_empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    (empty / "a" / "x.jpg").write_bytes((image_set / class_name(0) / "000000.jpg").read_bytes())
    code, err = cli(f'data.image_folder="{empty}"')
    assert code == 2 and "with_empty/b has no image files" in err
    assert not runs.exists()

    broken = tmp_path / "broken"
    for k in range(3):
        (broken / class_name(k)).mkdir(parents=True)
        for f in sorted((image_set / class_name(k)).iterdir()):
            (broken / class_name(k) / f.name).write_bytes(f.read_bytes())
    bad = broken / class_name(1) / "000003.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    code, err = cli(f'data.image_folder="{broken}"', *SMALL, 'data.on_error="raise"')
    assert code == 2 and f"cannot read image {bad}" in err.splitlines()[-1]
    assert not list(runs.rglob(".*.tmp-*")) and not list(runs.rglob("cache/train"))  # no half-written cache

    cache = tmp_path / "shared_cache"
    assert cli(f'data.image_folder="{image_set}"', *SMALL, f'data.cache_dir="{cache}"')[0] == 0
    code, err = cli(f'data.image_folder="{image_set}"', *SMALL, f'data.cache_dir="{cache}"', "data.image_size=40")
    assert code == 2 and "was written by another pipeline or key" in err
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half-written cache left


@pytest.mark.slow
def test_imagenet_features_learn_the_synthetic_shapes(tmp_path):
    try:
        mobilenet_v2_path(download=False)
    except Exception as exc:  # noqa: BLE001 - any reason the weights are absent
        pytest.skip(f"MobileNetV2 weights not cached ({exc}); run scripts/fetch_weights.py mobilenet_v2")
    images = tmp_path / "shapes"
    make_image_set(images, 0, classes=6, size=128, workers=2, per_class=30, log=lambda *a, **k: None)
    run = ft.finetune(None, [f'data.image_folder="{images}"', "data.image_size=96", "head.epochs=40",
                             "data.validation_split=0.3"], runs_dir=str(tmp_path / "runs"), log=lambda *a, **k: None)
    result = json.loads((run / "result.json").read_text())
    assert result["head"]["accuracy"] > 0.8, result
    assert np.isfinite(result["head"]["loss"])


def test_no_progress_prints_each_pass_once_without_carriage_returns(tmp_path, image_set, capsys):
    args = [f'data.image_folder="{image_set}"', *SMALL, "head.epochs=1"]
    argv = [a for o in args for a in ("--set", o)]
    assert ft.main([*argv, "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out
    passes = [line for line in out.splitlines() if line.startswith("embedding ")]
    assert [p.split(":")[0] for p in passes] == ["embedding train", "embedding validation"]
    assert passes[0].startswith("embedding train: 18 images, ") and passes[0].endswith(" images/s")
    # the live meter (the default) rewrites one line with carriage returns instead
    assert ft.main([*argv, "--runs-dir", str(tmp_path / "live")]) == 0
    assert "\rembedding train: 18/18 images" in capsys.readouterr().out
