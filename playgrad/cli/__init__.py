"""The ``playgrad`` command: one subcommand per user-facing script.

    playgrad train configs/cartpole_ppo.toml          # = python scripts/train.py configs/cartpole_ppo.toml
    playgrad play snake
    playgrad --help                                   # the commands
    playgrad train --help                             # one command's manual

Each subcommand is a module here with ``main(argv) -> int`` (its exit status); ``scripts/NAME.py`` is a shim
that calls the same ``main``, so the README's ``python scripts/NAME.py`` commands and ``playgrad NAME`` are one
program. A subcommand's module is imported only when it runs: ``train`` sets its BLAS thread count before NumPy
loads, so this file imports nothing heavy.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any


def ctrl_c_raises() -> None:
    """Make Ctrl-C (SIGINT) raise ``KeyboardInterrupt`` here even if this process started with SIGINT ignored.

    A program started in the background by a non-interactive shell (``cmd &`` in a script, some CI runners)
    inherits SIGINT ignored, and Python then installs no handler: a server that says "Ctrl-C stops" would not
    stop. Call it from the main thread of a command that runs until Ctrl-C (the training loop installs its own).
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def add_checkpoint_option(parser: Any, dest: str = "checkpoint", of: str = "the run") -> None:
    """``--checkpoint best|latest`` (also spelled ``--tag``, so either works in every command) into ``dest``."""
    parser.add_argument("--checkpoint", "--tag", dest=dest, default="best", choices=["best", "latest"],
                        help=f"which checkpoint of {of}: best (default; the highest mean training return, or the "
                             "final weights when a run saves one checkpoint) or latest")


# name: what it does (the module is playgrad.cli.<name with "_" for "-">)
COMMANDS = {
    "train": "train an agent from a TOML config; writes a run directory",
    "evaluate": "score a trained run (or an original MetaCar demo agent) over deterministic episodes",
    "play": "play a game with the keyboard, or watch a trained agent play it",
    "record": "record a trained agent's episodes as a GIF, WebP or MP4",
    "plot": "draw learning curves of runs to a PNG",
    "dashboard": "the web dashboard over a runs folder: live curves, config diffs, episodes, model internals",
    "sweep": "train a config over seeds and a grid of overrides, in parallel or on a Ray cluster",
    "tune": "search a config's hyperparameters with Optuna (pruning, resumable studies)",
    "export-tfjs": "export a run's network (or a pretrained model) as a TensorFlow.js layers model",
    "export-onnx": "export a run's policy (or a saved model) as ONNX, checked in ONNX Runtime",
    "serve-web": "serve the browser page where a trained Snake agent plays with TF.js",
    "edit-level": "draw a MetaCar level (pygame editor)",
    "fetch-weights": "download pretrained weights (MobileNetV2) into the cache",
    "main-job": "make run's job: train a car in MetaCar traffic, plot it, record an episode",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: playgrad COMMAND [options]   (playgrad COMMAND --help for a command's options)", "",
             "commands (each also runs as python scripts/COMMAND.py, with _ for -):"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``playgrad COMMAND ARGS...``: the subcommand's ``main(ARGS)``; its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name = argv[0].replace("_", "-")  # `playgrad export_tfjs` as the script is spelled works too
    if name not in COMMANDS:
        print(f"playgrad: unknown command {argv[0]!r}; the commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    program = sys.argv[0]
    sys.argv[0] = f"playgrad {name}"  # argparse's usage line names the subcommand
    try:
        return module.main(argv[1:])
    finally:
        sys.argv[0] = program
