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
    assert out.count("round ") == 2 and "8 images per pass, 2 alternating rounds" in out
    ours = float(re.search(r"\| rl.data .*? \| ([\d.]+) \| ([\d.]+)x \|", out).group(1))
    ratio = float(re.search(r"\| rl.data .*? \| ([\d.]+) \| ([\d.]+)x \|", out).group(2))
    peer = float(re.search(r"\| torch DataLoader .*? \| ([\d.]+) \| 1.00x \|", out).group(1))
    assert ours > 0 and peer > 0 and abs(ratio - ours / peer) < 0.01 + 0.01 * ratio
    assert "Target: at least torch's images/s:" in out


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert bench_data.main(["--folder", str(tmp_path / "nope"), "--no-write"]) == 2
    assert "nope does not exist" in capsys.readouterr().err
