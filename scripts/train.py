"""``python scripts/train.py``: the same program as ``playgrad train``.

Its code is in :mod:`playgrad.cli.train`; this file only runs it, in a Python where the project is installed
(``make run`` installs it into .venv).
"""

import sys

try:
    from playgrad.cli.train import main
except ModuleNotFoundError as exc:
    if exc.name != "playgrad":
        raise
    sys.exit(f"{sys.executable} has no playgrad installed: run make run once (or pip install -e .), then "
             f".venv/bin/python scripts/train.py")

if __name__ == "__main__":
    sys.exit(main())
