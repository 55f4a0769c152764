"""``python scripts/main_job.py``: the same program as ``playgrad main-job``.

Its code is in :mod:`playgrad.cli.main_job`; this file only runs it, in a Python where the project is installed
(``make run`` installs it into .venv).
"""

import sys

try:
    from playgrad.cli.main_job import main
except ModuleNotFoundError as exc:
    if exc.name != "playgrad":
        raise
    sys.exit(f"{sys.executable} has no playgrad installed: run make run once (or pip install -e .), then "
             f".venv/bin/python scripts/main_job.py")

if __name__ == "__main__":
    sys.exit(main())
