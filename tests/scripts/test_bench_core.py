"""bench_core: each peak-RSS child imports only the library it measures, and the verdicts are computed."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_core  # noqa: E402

PROBE = ("import json, sys; sys.argv = ['bench_core.py']; import bench_core; "
         "print(json.dumps(sorted(m for m in ('torch', 'rl') if m in sys.modules)))")


def _modules_in_child(which: str, tmp_path: Path) -> list[str]:
    (tmp_path / "torch.py").write_text("# a stand-in: only whether it gets imported matters here\n")
    # RL_DEVICE=cpu: under `make test-simgpu` the parent's RL_DEVICE=gpu would make the child look for CuPy,
    # whose stand-in is not on this PYTHONPATH; only the imports matter here.
    env = dict(os.environ, BENCH_RSS_CHILD=which, RL_DEVICE="cpu",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "benchmarks"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_rss_children_import_only_the_measured_library(tmp_path):
    # torch's import alone is ~190 MiB: in the "ours" child it would be counted as playgrad's memory.
    assert _modules_in_child("ours", tmp_path) == ["rl"]
    assert _modules_in_child("torch", tmp_path) == ["torch"]


def test_our_rss_child_reports_its_own_peak(tmp_path):
    kib = bench_core.peak_rss_kib("ours", threads=1)
    assert 20 * 1024 < kib < 2048 * 1024  # numpy + playgrad + a batch-128 CNN: tens to hundreds of MiB


def test_verdict_follows_the_ratio():
    assert bench_core.verdict(1.49, 1.5) == "met (<= 1.5x)"
    assert bench_core.verdict(1.51, 1.5) == "missed (<= 1.5x)"
    assert bench_core.verdict(9.0, 10, lower_is_better=False) == "missed (>= 10x)"
