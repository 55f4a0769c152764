"""What every ``scripts/NAME.py`` shim runs: ``playgrad.cli.NAME``'s ``main``, the program ``playgrad NAME`` runs.

It lives here, not in the package, because its one job besides running the command is to say so in one line when
the Python running the script has no playgrad installed (``make run`` installs it into .venv); ``python
scripts/NAME.py`` puts this folder on ``sys.path``, so the shims find it either way.
"""

import importlib
import sys
from typing import NoReturn


def run_command(name: str) -> NoReturn:
    """Exit with the status of ``playgrad.cli.<name>.main()`` (it reads ``sys.argv``), or with a one-line message
    when playgrad is not installed in this Python."""
    try:
        command = importlib.import_module(f"playgrad.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != "playgrad":
            raise
        sys.exit(f"{sys.executable} has no playgrad installed: run make run once (or pip install -e .), then "
                 f".venv/bin/python scripts/{name}.py")
    sys.exit(command.main())
