"""Suite-wide test setup: pygame draws off-screen and stays silent, so rendering tests run headless;
BLAS uses one thread per test process (pytest-xdist already runs one process per core)."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # effective when NumPy is not loaded yet; the Makefile sets them too

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
    import pytest

    @pytest.fixture(autouse=True)
    def _start_on_the_rl_device_device():
        """Each test starts on RL_DEVICE's backend, so a test that switched to the CPU does not carry it
        into the next (which xdist's scheduling would make order-dependent)."""
        from rl import backend

        backend.use_device(os.environ.get("RL_DEVICE", "auto"))
        yield
