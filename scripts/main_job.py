"""``python scripts/main_job.py``: the same as ``playgrad main-job`` (the code is in :mod:`playgrad.cli.main_job`)."""

import sys

from playgrad.cli.main_job import main

if __name__ == "__main__":
    sys.exit(main())
