"""``python scripts/fetch_weights.py``: the same program as ``playgrad fetch-weights``.

Its code is in :mod:`playgrad.cli.fetch_weights`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.fetch_weights import main

if __name__ == "__main__":
    sys.exit(main())
