"""``playgrad dashboard`` (= ``python scripts/dashboard.py``): the web dashboard over a folder of runs: live
curves, config diffs, recorded episodes, model internals.

    python scripts/dashboard.py                 # runs/ on http://127.0.0.1:8050/ (or: playgrad dashboard)
    python scripts/dashboard.py runs --port 8051
    python scripts/dashboard.py runs --host 0.0.0.0   # reachable from other machines (no authentication!)

It serves files under RUNS_DIR only, reads them as train.py writes them (new runs appear, curves grow),
and needs no network: the page ships inside the package. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from playgrad.cli import ctrl_c_raises
from playgrad.dashboard import DEFAULT_PORT, DashboardError, make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", nargs="?", help="folder of run directories (default: runs)")
    parser.add_argument("--runs-dir", dest="runs_dir_option", metavar="RUNS_DIR",
                        help="the same, spelled as train.py and sweep.py spell it")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    args = parser.parse_args(argv)
    if args.runs_dir and args.runs_dir_option and args.runs_dir != args.runs_dir_option:
        parser.error(f"two runs folders given ({args.runs_dir} and --runs-dir {args.runs_dir_option}); give one")
    args.runs_dir = args.runs_dir or args.runs_dir_option or "runs"
    if not 0 <= args.port <= 65535:
        print(f"error: --port must be 0-65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        server = make_server(args.runs_dir, args.host, args.port)
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ctrl_c_raises()
    missing = "" if Path(args.runs_dir).is_dir() else " (not there yet: runs appear as they start)"
    print(f"dashboard of {Path(args.runs_dir).resolve()}{missing}: {server.url}  (Ctrl-C stops)", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
