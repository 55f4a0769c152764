"""Suite-wide test setup: pygame draws off-screen and stays silent, so rendering tests run headless;
BLAS uses one thread per test process (pytest-xdist already runs one process per core)."""

import os
import re

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # effective when NumPy is not loaded yet; the Makefile sets them too

# CI (`.ci/run` sets CI=true and PLAYGRAD_REQUIRE_ALL=1) installs every optional dependency the suite
# uses (torch, Chromium, Node's TF.js, the MobileNetV2 weights, ...), so there a test skipped for a
# missing one is a failure: otherwise CI would pass without running them. A user's `make test` keeps
# skipping them with the reason shown. Skips that need hardware (a reason naming a GPU, CuPy or CUDA)
# stay skips everywhere, as do tests marked `skip_ok_in_ci` (they need something no install provides).
REQUIRE_ALL = os.environ.get("PLAYGRAD_REQUIRE_ALL") == "1" or os.environ.get("CI", "").lower() == "true"
HARDWARE_SKIP = re.compile(r"gpu|cupy|cuda", re.IGNORECASE)  # substrings: "PLAYGRAD_SIMULATED_GPU=1 is not set"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "skip_ok_in_ci: the test may skip even under CI=true (it needs a file outside the repository)"
    )


_REQUIRE_ALL_NOTE = "a skip is a failure under CI=true / PLAYGRAD_REQUIRE_ALL=1: .ci/run must install what it needs"
_skipped_modules: list[str] = []  # module-level skips, reported at the end (failing collection would stop the run)


def dependency_skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip that REQUIRE_ALL turns into a failure (not an xfail, not a hardware skip), else None."""
    if not REQUIRE_ALL or not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
    return None if HARDWARE_SKIP.search(reason) else reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    reason = dependency_skip_reason(report)
    if reason is not None and item.get_closest_marker("skip_ok_in_ci") is None:
        report.outcome = "failed"
        report.longrepr = f"{reason}\n-> {_REQUIRE_ALL_NOTE} (only GPU/CuPy skips are allowed)"


def pytest_collectreport(report):
    reason = dependency_skip_reason(report)
    if reason is not None and "PYTEST_XDIST_WORKER" not in os.environ:  # xdist's controller sees workers' too
        _skipped_modules.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if _skipped_modules:
        terminalreporter.section(f"FAILED: modules skipped ({_REQUIRE_ALL_NOTE})", red=True)
        for line in _skipped_modules:
            terminalreporter.line(line, red=True)


def pytest_sessionfinish(session, exitstatus):
    if _skipped_modules and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

# PLAYGRAD_SIMULATED_GPU=1 (``make test-simgpu``): a strict NumPy-backed stand-in plays CuPy, so the
# GPU code path runs without a GPU (tests/simgpu/fake_cupy.py says what it models). It must be in
# sys.modules before rl.backend probes; PYTHONPATH carries it to the subprocesses tests start.
if os.environ.get("PLAYGRAD_SIMULATED_GPU") == "1":
    import sys

    _site = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simgpu", "site")
    if "cupy" in sys.modules and not getattr(sys.modules["cupy"], "__version__", "").endswith("+simulated"):
        raise RuntimeError("PLAYGRAD_SIMULATED_GPU=1 but a real CuPy is already imported; unset the variable")
    sys.path.insert(0, _site)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_site, os.environ.get("PYTHONPATH")]))
    import cupy  # noqa: F401 - the simulated one, from _site

    @pytest.fixture(autouse=True)
    def _start_on_the_rl_device_device():
        """Each test starts on RL_DEVICE's backend, so a test that switched to the CPU does not carry it
        into the next (which xdist's scheduling would make order-dependent)."""
        from rl import backend

        backend.use_device(os.environ.get("RL_DEVICE", "auto"))
        yield
