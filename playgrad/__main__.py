"""``python -m playgrad COMMAND ...``: the ``playgrad`` command (:mod:`playgrad.cli`) without its console script."""

import sys

from playgrad.cli import main

sys.exit(main())
