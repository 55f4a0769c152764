"""``python scripts/main_job.py``: the same program as ``playgrad main-job``.

Its code is in :mod:`playgrad.cli.main_job`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.main_job import main

if __name__ == "__main__":
    sys.exit(main())
