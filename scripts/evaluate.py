"""``python scripts/evaluate.py``: the same as ``playgrad evaluate`` (the code is in :mod:`playgrad.cli.evaluate`)."""

import sys

from playgrad.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
