"""``python scripts/train.py``: the same as ``playgrad train`` (the code is in :mod:`playgrad.cli.train`)."""

import sys

from playgrad.cli.train import main
from playgrad.training import train  # noqa: F401 - until bench_metacar/bench_dashboard import it from its home

if __name__ == "__main__":
    sys.exit(main())
