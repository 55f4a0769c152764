"""``python scripts/serve_web.py``: the same program as ``playgrad serve-web``.

Its code is in :mod:`playgrad.cli.serve_web`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.serve_web import main

if __name__ == "__main__":
    sys.exit(main())
