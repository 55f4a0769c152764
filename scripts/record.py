"""``python scripts/record.py``: the same program as ``playgrad record``.

Its code is in :mod:`playgrad.cli.record`; this file only runs it, in a Python where the project is installed
(``make run`` installs it into .venv).
"""

import sys

try:
    from playgrad.cli.record import main
except ModuleNotFoundError as exc:
    if exc.name != "playgrad":
        raise
    sys.exit(f"{sys.executable} has no playgrad installed: run make run once (or pip install -e .), then "
             f".venv/bin/python scripts/record.py")

if __name__ == "__main__":
    sys.exit(main())
