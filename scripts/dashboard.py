"""``python scripts/dashboard.py``: the program ``playgrad dashboard`` runs (playgrad/cli/dashboard.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("dashboard")
