"""``python scripts/train.py``: the same program as ``playgrad train``.

Its code is in :mod:`playgrad.cli.train`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.train import main
from playgrad.training import train  # noqa: F401 - until bench_metacar/bench_dashboard import it from its home

if __name__ == "__main__":
    sys.exit(main())
