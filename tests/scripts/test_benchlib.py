"""benchmarks/_benchlib: medians, commands and target verdicts that every benchmark section quotes."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _benchlib  # noqa: E402


def test_command_line_keeps_the_options_that_were_run():
    argv = ["/work/main/benchmarks/bench_core.py", "--repeats", "11"]
    assert _benchlib.command_line(argv) == "python benchmarks/bench_core.py --repeats 11"
    assert _benchlib.command_line(["benchmarks/bench_envs.py", "--x", "a b"]) == \
        "python benchmarks/bench_envs.py --x 'a b'"


def test_verdict_is_computed_from_the_value_in_both_directions():
    assert _benchlib.verdict(0.99, 1.0, unit="x") == "met (<= 1x)"
    assert _benchlib.verdict(1.01, 1.0, unit="x") == "missed (<= 1x)"
    assert _benchlib.verdict(9.9, 10, higher_is_better=True, unit="x") == "missed (>= 10x)"
    assert _benchlib.verdict(0.5, 0.5, higher_is_better=True) == "met (>= 0.5)"


def test_median_time_reports_the_median_not_the_mean(monkeypatch):
    # perf_counter readings around four timed calls (the warm-up call reads none): 1, 1, 1 and 1000 ms.
    ticks = iter([0.0, 0.001, 0.001, 0.002, 0.002, 0.003, 0.003, 1.003])
    monkeypatch.setattr(_benchlib.time, "perf_counter", lambda: next(ticks))
    calls = []
    t = _benchlib.median_time(lambda: calls.append(1), repeats=4, warmup=1)
    assert len(calls) == 5  # the warm-up ran but was not timed
    assert abs(t - 0.001) < 1e-9  # the mean would be ~0.25 s


def test_write_section_replaces_only_its_own_block(tmp_path):
    md = tmp_path / "b.md"
    _benchlib.write_section("a", "A1", md)
    _benchlib.write_section("b", "B1", md)
    _benchlib.write_section("a", "A2 $1 \\g<0>", md)  # regex replacement syntax must stay literal
    text = md.read_text()
    assert "A2 $1 \\g<0>" in text and "A1" not in text and "B1" in text
    assert text.index("<!-- a:start -->") < text.index("<!-- b:start -->")


def test_importing_it_puts_the_checkout_on_the_path_and_loads_no_numpy():
    # A benchmark imports _benchlib first and sets its thread count after: NumPy must not be loaded by then
    # (BLAS reads the count once, at load); the checkout's packages must be importable for a Python without
    # playgrad installed (gpu_checks.sh's python3 on a device machine).
    root = Path(__file__).resolve().parents[2]
    probe = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
             "sys.path.insert(0, 'benchmarks'); import _benchlib; "
             "print('numpy' in sys.modules, sys.path[0] == str(_benchlib.ROOT), _benchlib.ROOT.name)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True", root.name], out.stderr


def test_one_compute_thread_keeps_a_count_the_environment_sets(monkeypatch):
    for var in _benchlib.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    _benchlib.one_compute_thread()
    assert {var: os.environ[var] for var in _benchlib.THREAD_VARIABLES} == \
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}
