"""``python scripts/export_tfjs.py``: the same program as ``playgrad export-tfjs``.

Its code is in :mod:`playgrad.cli.export_tfjs`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.export_tfjs import main

if __name__ == "__main__":
    sys.exit(main())
