"""Choosing NumPy or CuPy: RL_DEVICE and use_device, and a clear error when the GPU cannot be used."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rl import backend

GPU_USABLE, GPU_WHY = backend.gpu_status()


def _run(code: str, device: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RL_DEVICE": device}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_rl_device_cpu_forces_numpy():
    out = _run("from rl import backend; print(backend.current().xp.__name__)", "cpu")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numpy"


@pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here, so asking for one succeeds")
def test_asking_for_a_missing_gpu_says_why():
    with pytest.raises(backend.BackendError, match="cannot be used: " + re.escape(GPU_WHY[:20])):
        backend.use_device("gpu")
    out = _run("from rl import backend; backend.current()", "gpu")
    assert out.returncode != 0 and "the GPU was requested but cannot be used" in out.stderr


def test_unknown_device_names_the_valid_ones():
    with pytest.raises(backend.BackendError, match="'cpu', 'gpu' or 'auto'"):
        backend.use_device("tpu")


def test_auto_falls_back_to_numpy_without_a_gpu_and_transfers_are_explicit():
    previous = backend.current().device
    try:
        active = backend.use_device("auto")
        assert active.device == ("gpu" if GPU_USABLE else "cpu")
        x = backend.to_device([1.0, 2.0], dtype=np.float32)
        assert backend.get_array_module(x) is active.xp
        host = backend.to_numpy(x)
        assert isinstance(host, np.ndarray) and host.tolist() == [1.0, 2.0]
    finally:
        backend.use_device(previous)
