"""``python scripts/main_job.py``: the program ``playgrad main-job`` runs (playgrad/cli/main_job.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("main_job")
