"""bench_data's harness: both pipelines see the same files, rounds alternate, the table reports medians and
their ratio. The peer here is a stand-in for the torch script (same protocol, Pillow only), so the harness is
tested without torch; the real comparison needs a Python with torch and torchvision (--torch-python)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # make_image_set

import bench_data  # noqa: E402
from make_image_set import make_image_set  # noqa: E402

# The torch script's protocol: argv root, listing, workers, batch; one timed pass per stdin line, one JSON line out.
FAKE_PEER = r"""
import sys, time, json
from PIL import Image
root, listing, workers, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = [f for f in open(listing).read().split("\n") if f]
for line in sys.stdin:
    start = time.perf_counter()
    for f in files:
        Image.open(f).convert("RGB").resize((224, 224))
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(files), "seconds": seconds, "shape": [len(files), 3, 224, 224]}), flush=True)
"""


def test_pipeline_table_alternates_the_same_files(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "shapes"
    make_image_set(folder, 0, classes=2, size=64, workers=1, per_class=6, log=lambda *a, **k: None)
    monkeypatch.setattr(bench_data, "TORCH_PIPELINE", FAKE_PEER)
    assert bench_data.main(["--folder", str(folder), "--images", "8", "--rounds", "2", "--batch", "4",
                            "--torch-python", sys.executable, "--no-write"]) == 0
    out = capsys.readouterr().out
    rounds = re.findall(r"^round (\d)/2: ours [\d.]+, ours_full_decode [\d.]+, torch [\d.]+ images/s$", out, re.M)
    assert rounds == ["1", "2"] and "8 images per pass, 2 alternating rounds" in out
    peer = float(re.search(r"\| torch DataLoader .*? \| ([\d.]+) \| 1.00x \|", out).group(1))
    for row in (r"\| rl.data \(`transfer", r"\| rl.data with `jpeg_draft=False`"):
        ours, ratio = map(float, re.search(row + r".*? \| ([\d.]+) \| ([\d.]+)x \|", out).groups())
        assert ours > 0 and peer > 0 and abs(ratio - ours / peer) < 0.01 + 0.01 * ratio
    assert "Target: at least torch's images/s:" in out


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert bench_data.main(["--folder", str(tmp_path / "nope"), "--no-write"]) == 2
    assert "nope does not exist" in capsys.readouterr().err


def test_finetune_run_is_measured_under_time_and_tabled(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_data.tempfile, "tempdir", str(tmp_path))  # its bench_data_runs-* folder
    folder = tmp_path / "shapes"
    make_image_set(folder, 0, classes=2, size=48, workers=1, per_class=6, log=lambda *a, **k: None)
    tiny = ["data.image_size=32", "data.batch_size=4", 'backbone.weights="random"', "data.validation_split=0.25",
            "fine_tune.batch_size=2"]
    assert bench_data.main(["--folder", str(folder), "--skip-pipeline", "--rss", "--head-epochs", "2",
                            "--fine-tune-steps", "1", "--no-write", *[a for s in tiny for a in ("--finetune-set", s)]]
                           ) == 0
    out = capsys.readouterr().out
    assert "Folder: 12 JPEGs" in out and "48x48 px" in out and "2 classes, 8 training images" in out
    assert re.search(r"\(embedding pass, training and validation images\) \| [\d.]+ images/s \(12 images in", out)
    peak = float(re.search(r"\| peak RSS of the whole run \| (\d+) MiB \(met", out).group(1))
    assert 20 < peak < 1500  # a Python process with NumPy, measured by /usr/bin/time
    assert "training epoch over the cached embeddings (median of 2)" in out
    assert re.search(r"load average, sampled every 30 s over the run \(\d+ samples\)", out)
    assert len(list(tmp_path.glob("bench_data_runs-*/runs/finetune_stream-*/result.json"))) == 1


def test_a_note_quoting_a_command_keeps_the_command_line_one_code_span(tmp_path, capsys):
    folder = tmp_path / "shapes"
    make_image_set(folder, 0, classes=2, size=32, workers=1, per_class=2, log=lambda *a, **k: None)
    assert bench_data.main(["--folder", str(folder), "--skip-pipeline", "--no-write",
                            "--note", "Made with `make_image_set.py`."]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Command: `` python benchmarks/bench_data.py .*`make_image_set.py`.*' ``$", out, re.M)
    assert "Folder: 4 JPEGs" in out and "32x32 px" in out
