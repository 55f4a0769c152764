"""``python scripts/export_tfjs.py``: the program ``playgrad export-tfjs`` runs (playgrad/cli/export_tfjs.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("export_tfjs")
