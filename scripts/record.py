"""``python scripts/record.py``: the same program as ``playgrad record``.

Its code is in :mod:`playgrad.cli.record`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.record import main

if __name__ == "__main__":
    sys.exit(main())
