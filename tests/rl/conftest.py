"""Run core tests on every usable backend: NumPy always, CuPy where a GPU is usable."""

import pytest

from rl import backend

_DEVICES = ["cpu"] + (["gpu"] if backend.gpu_status()[0] else [])


@pytest.fixture(params=_DEVICES)
def device(request):
    """Activate one backend for the test and yield its ``xp`` module; restores the old one after."""
    previous = backend.current().device
    active = backend.use_device(request.param)
    yield active.xp
    backend.use_device(previous)
