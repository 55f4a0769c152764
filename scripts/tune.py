"""``python scripts/tune.py``: the same program as ``playgrad tune``.

Its code is in :mod:`playgrad.cli.tune`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
