"""``python scripts/evaluate.py``: the same program as ``playgrad evaluate``.

Its code is in :mod:`playgrad.cli.evaluate`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
