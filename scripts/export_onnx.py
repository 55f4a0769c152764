"""``python scripts/export_onnx.py``: the same program as ``playgrad export-onnx``.

Its code is in :mod:`playgrad.cli.export_onnx`; this file only runs it (the project is installed by ``make run``).
"""

import sys

from playgrad.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
