"""``python scripts/export_onnx.py``: the program ``playgrad export-onnx`` runs (playgrad/cli/export_onnx.py)."""

if __name__ == "__main__":
    from _shim import run_command  # scripts/_shim.py; it says in one line when this Python has no playgrad

    run_command("export_onnx")
