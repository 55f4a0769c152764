"""Import shim: ``import cupy`` in a process that has ``tests/simgpu/site`` on ``sys.path`` gets the
simulated CuPy (``tests/simgpu/fake_cupy.py``). ``tests/conftest.py`` puts it there, for the test
processes and their subprocesses, only when ``PLAYGRAD_SIMULATED_GPU=1``."""

import importlib.util
import pathlib
import sys

_path = pathlib.Path(__file__).resolve().parents[2] / "fake_cupy.py"
_spec = importlib.util.spec_from_file_location("cupy", _path)
_module = importlib.util.module_from_spec(_spec)
sys.modules["cupy"] = _module  # the import system hands back whatever sys.modules holds once this file ran
_spec.loader.exec_module(_module)
