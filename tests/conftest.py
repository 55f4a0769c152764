"""Suite-wide test setup: pygame draws off-screen and stays silent, so rendering tests run headless;
BLAS uses one thread per test process (pytest-xdist already runs one process per core)."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # effective when NumPy is not loaded yet; the Makefile sets them too
