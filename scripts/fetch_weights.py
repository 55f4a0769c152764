"""``python scripts/fetch_weights.py``: the same program as ``playgrad fetch-weights``.

Its code is in :mod:`playgrad.cli.fetch_weights`; this file only runs it, in a Python where the project is installed
(``make run`` installs it into .venv).
"""

import sys

try:
    from playgrad.cli.fetch_weights import main
except ModuleNotFoundError as exc:
    if exc.name != "playgrad":
        raise
    sys.exit(f"{sys.executable} has no playgrad installed: run make run once (or pip install -e .), then "
             f".venv/bin/python scripts/fetch_weights.py")

if __name__ == "__main__":
    sys.exit(main())
