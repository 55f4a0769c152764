"""``python scripts/sweep.py``: the same program as ``playgrad sweep``.

Its code is in :mod:`playgrad.cli.sweep`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
