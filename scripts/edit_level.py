"""``python scripts/edit_level.py``: the program ``playgrad edit-level`` runs (playgrad/cli/edit_level.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("edit_level")
