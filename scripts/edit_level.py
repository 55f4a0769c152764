"""``python scripts/edit_level.py``: the same program as ``playgrad edit-level``.

Its code is in :mod:`playgrad.cli.edit_level`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.edit_level import main

if __name__ == "__main__":
    sys.exit(main())
