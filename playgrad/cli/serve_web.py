"""Serve the browser Snake page (``web/``) with a trained DQN's Q-network, on localhost.

    python scripts/serve_web.py runs/snake_dqn-s0-20250101-120000          # then open http://127.0.0.1:8000/
    python scripts/serve_web.py runs/snake_dqn-s0-... --port 8080 --tag latest
    python scripts/serve_web.py path/to/exported_model_dir                  # a directory holding model.json

A run directory's online Q-network is first exported (as ``export_tfjs.py`` does) to a temporary
directory, removed on exit. The server is Python's ``http.server`` and maps three places into one
site::

    /             web/                 index.html, snake.js, app.js
    /model/       the exported model   model.json, group1-shard*.bin
    /vendor/tf.min.js                  TF.js itself: web/vendor/tf.min.js if present, else the npm
                                       package in tests/tfjs/node_modules (``cd tests/tfjs && npm ci``)

TF.js is never fetched from a CDN, so the page works offline.
"""

from __future__ import annotations

import argparse
import errno
import http.server
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from playgrad.cli import add_checkpoint_option, ctrl_c_raises

ROOT = Path(__file__).resolve().parents[2]  # the source checkout: web/ and the tests' npm TF.js

WEB_DIR = ROOT / "web"
TFJS_BUNDLES = (WEB_DIR / "vendor" / "tf.min.js",
                ROOT / "tests" / "tfjs" / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js")
SNAKE_ENV_ID = "envs/Snake-v0"


class ServeError(RuntimeError):
    """The page cannot be served; the message says what is missing."""


def find_tfjs_bundle() -> Path:
    """The TF.js browser bundle to serve as ``/vendor/tf.min.js``."""
    for path in TFJS_BUNDLES:
        if path.exists():
            return path
    raise ServeError("TF.js is not available locally: run `cd tests/tfjs && npm ci` (installs @tensorflow/tfjs "
                     f"4.22.0) or copy its dist/tf.min.js to {TFJS_BUNDLES[0]}")


def prepare_model(source: str | Path, tag: str = "best") -> tuple[Path, Path | None]:
    """``(model directory, temporary directory to delete or None)`` for a run directory or an exported model."""
    source = Path(source)
    # A run directory written before the dashboard's layer tables were named layers.json holds a model.json too:
    # config.toml decides.
    if (source / "model.json").exists() and not (source / "config.toml").exists():
        from rl import tfjs  # noqa: PLC0415

        meta = tfjs.read_model_json(source).get("userDefinedMetadata") or {}
        if meta.get("env_id") not in (None, SNAKE_ENV_ID):
            raise ServeError(f"{source}: the page plays {SNAKE_ENV_ID}; this model was exported from a run on "
                             f"{meta['env_id']!r}")
        return source, None
    if not (source / "config.toml").exists():
        raise ServeError(f"{source}: neither a run directory (config.toml) nor an exported model (model.json)")
    from playgrad.sources import load_run_network  # noqa: PLC0415
    from rl.experiment import RunDir  # noqa: PLC0415

    experiment = RunDir.open(source).read_config().get("experiment", {})
    if experiment.get("agent") != "dqn" or experiment.get("env_id") != SNAKE_ENV_ID:
        raise ServeError(f"{source}: the page plays {SNAKE_ENV_ID} with a DQN's Q-values; this run is agent "
                         f"{experiment.get('agent')!r} on {experiment.get('env_id')!r}")
    from rl import tfjs  # noqa: PLC0415

    model, meta = load_run_network(source, tag)
    tmp = Path(tempfile.mkdtemp(prefix="playgrad-web-"))
    tfjs.save_tfjs(model, tmp / "model", metadata=meta)
    return tmp / "model", tmp


def _handler(model_dir: Path, bundle: Path, quiet: bool) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, directory=str(WEB_DIR), **kwargs)

        def translate_path(self, path: str) -> str:
            clean = path.split("?", 1)[0].split("#", 1)[0]
            if clean == "/vendor/tf.min.js":
                return str(bundle)
            if clean.startswith("/model/"):
                # Resolve inside the model directory only; the base class does the same for web/.
                rel = Path(super().translate_path("/" + clean[len("/model/"):])).relative_to(WEB_DIR)
                return str(model_dir / rel)
            return super().translate_path(path)

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")  # a re-exported model must not come from the cache
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
            if not quiet:
                super().log_message(format, *args)

    return Handler


def make_server(source: str | Path, host: str = "127.0.0.1", port: int = 8000, tag: str = "best",
                quiet: bool = False) -> tuple[http.server.ThreadingHTTPServer, Path | None]:
    """A ready (not yet serving) server for ``source``; port 0 picks a free one (``server.server_address``).

    Returns ``(server, temporary directory to delete after shutdown, or None)``.
    """
    # The source first: a wrong run directory is the user's mistake to hear about, whether or not TF.js is
    # installed yet (the TF.js check used to hide it).
    model_dir, tmp = prepare_model(source, tag)
    try:
        bundle = find_tfjs_bundle()
        server = http.server.ThreadingHTTPServer((host, port), _handler(model_dir, bundle, quiet))
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another serve_web.py?); pick another with --port, "
                             "or --port 0 for any free one") from None
        raise
    except ServeError:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return server, tmp


def serve_in_thread(source: str | Path, tag: str = "best") -> tuple[http.server.ThreadingHTTPServer, str, Any]:
    """Start a quiet server on a free localhost port in a daemon thread: ``(server, base url, stop())``."""
    server, tmp = make_server(source, port=0, tag=tag, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/", stop


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a Snake DQN run directory, or a directory holding an exported model.json")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    add_checkpoint_option(parser, dest="tag", of="a run directory")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    try:
        server, tmp = make_server(args.source, port=args.port, tag=args.tag, quiet=args.quiet)
    except Exception as exc:  # user-facing: one line, not a traceback
        print(f"serve_web: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    # `kill` (or a job runner's timeout) stops the server as Ctrl-C does, so the exported model's temporary
    # directory is removed either way instead of piling up in /tmp. Installed, and the try entered, before the
    # server is announced, so a kill that follows the announcement always ends in the cleanup.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    ctrl_c_raises()
    try:
        print(f"serving the Snake page at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
