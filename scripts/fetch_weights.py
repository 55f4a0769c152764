"""``python scripts/fetch_weights.py``: the program ``playgrad fetch-weights`` runs (playgrad/cli/fetch_weights.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("fetch_weights")
