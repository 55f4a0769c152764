"""``python scripts/serve_web.py``: the program ``playgrad serve-web`` runs (playgrad/cli/serve_web.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("serve_web")
