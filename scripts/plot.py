"""``python scripts/plot.py``: the same as ``playgrad plot`` (the code is in :mod:`playgrad.cli.plot`)."""

import sys

from playgrad.cli.plot import main

if __name__ == "__main__":
    sys.exit(main())
