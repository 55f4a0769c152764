"""``python scripts/record.py``: the same as ``playgrad record`` (the code is in :mod:`playgrad.cli.record`)."""

import sys

from playgrad.cli.record import main

if __name__ == "__main__":
    sys.exit(main())
