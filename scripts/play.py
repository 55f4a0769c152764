"""``python scripts/play.py``: the same as ``playgrad play`` (the code is in :mod:`playgrad.cli.play`)."""

import sys

from playgrad.cli.play import main

if __name__ == "__main__":
    sys.exit(main())
