"""``python scripts/plot.py``: the same program as ``playgrad plot``.

Its code is in :mod:`playgrad.cli.plot`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.plot import main

if __name__ == "__main__":
    sys.exit(main())
