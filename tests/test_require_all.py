"""tests/conftest.py's CI rule: under PLAYGRAD_REQUIRE_ALL=1 (``.ci/run``) a test skipped for a missing
dependency fails, at run time or at collection; GPU/CuPy skips and xfails stay as they are."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = '''
import pytest

def test_missing_dependency():
    pytest.importorskip("playgrad_no_such_module")

@pytest.mark.skipif(True, reason="no usable CuPy: not installed")
def test_needs_gpu():
    pass

@pytest.mark.skipif(True, reason="PLAYGRAD_SIMULATED_GPU=1 is not set")
def test_needs_simulated_gpu():
    pass

@pytest.mark.skip_ok_in_ci
def test_needs_a_file_outside_the_repository():
    pytest.skip("the shared copy is not beside the repository")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False

def test_passes():
    pass
'''


def _pytest(tmp_path: Path, require_all: str, *args: str) -> str:
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(CASES))
    (tmp_path / "test_module_skip.py").write_text('import pytest\npytest.importorskip("playgrad_no_such_module")\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PLAYGRAD_SIMULATED_GPU", "PYTEST_XDIST_WORKER")}
    env["PLAYGRAD_REQUIRE_ALL"] = require_all
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rA",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), *args, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    return f"{proc.stdout}{proc.stderr}\nexit status {proc.returncode}"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])  # make test runs -n 2
def test_dependency_skips_fail_under_require_all(tmp_path, workers):
    out = _pytest(tmp_path, "1", *workers)
    assert re.search(r"FAILED \S*test_cases\.py::test_missing_dependency", out), out
    assert "could not import 'playgrad_no_such_module'" in out and ".ci/run must install" in out, out
    assert re.search(r"SKIPPED \[1\] \S*test_cases\.py:\d+: no usable CuPy", out), out
    assert re.search(r"XFAIL \S*test_cases\.py::test_known_failure", out), out
    assert re.search(r"SKIPPED \[1\] \S*test_cases\.py:\d+: PLAYGRAD_SIMULATED_GPU=1 is not set", out), out
    assert re.search(r"SKIPPED \[1\] \S*test_cases\.py:\d+: the shared copy is not beside", out), out
    assert "1 failed, 1 passed, 4 skipped, 1 xfailed" in out, out
    # A module-level importorskip: the rest of the run goes on, then the session fails, naming it.
    assert re.search(r"FAILED: modules skipped.*\n\S*test_module_skip\.py: Skipped: could not import", out), out
    assert out.count("test_module_skip.py: Skipped") == 1, out  # once, though both xdist workers collect it
    assert "exit status 1" in out, out


def test_dependency_skips_stay_skips_for_a_users_make_test(tmp_path):
    out = _pytest(tmp_path, "0")
    assert "1 passed, 5 skipped, 1 xfailed" in out and "exit status 0" in out, out
