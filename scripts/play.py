"""``python scripts/play.py``: the same program as ``playgrad play``.

Its code is in :mod:`playgrad.cli.play`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.play import main

if __name__ == "__main__":
    sys.exit(main())
