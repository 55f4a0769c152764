"""The dashboard's HTTP server: the page (``static/``) and a small JSON API over a folder of runs.

Standard library only (``http.server``, one thread per request). The page polls; every answer is
computed from the files, so the server holds no state a restart would lose (beyond caches).

Endpoints (``run`` is a run's path relative to the runs folder, as ``/api/runs`` lists it):

========================================  ==================================================================
``GET /api/runs``                         every run's row (:meth:`RunIndex.summary`) and the runs folder
``GET /api/series?run=R&key=K[&key=K2]``  columns of ``metrics.jsonl`` against env steps, downsampled to
  ``[&max_points=N][&since=LINES]``       ``max_points`` (default 2000); ``since`` = the line count the page
                                          has: ``{"unchanged": true}`` when nothing was appended;
                                          ``"complete": false`` while a big file is still being read
``GET /api/config?run=R``                 ``config.toml`` (parsed), ``command.txt``, ``info.json``
``GET /api/histograms?run=R``             ``histograms.jsonl`` (see :mod:`rl.summaries`)
``GET /api/model?run=R``                  ``layers.json`` (the networks' layer tables; older runs: ``model.json``)
``GET /api/classification?run=R``         ``classification.json`` (see :func:`rl.vis.write_classification`)
``POST /api/record?run=R``                record one episode of the best checkpoint to ``R/episode.gif``
``GET /api/record?run=R``                 that recording's state
``GET /api/image_model``                  the image model panel's choices (samples, layers) and availability
``POST /api/image_model``                 ``{"sample" | "image": data URL, "layer"}``: MobileNetV2's top 5 and
                                          the feature maps of that block (:mod:`playgrad.dashboard.images`)
``GET /files/PATH``                       a file under the runs folder (GIFs, PNGs); nothing outside it
========================================  ==================================================================
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import math
import mimetypes
import os
import subprocess
import sys
import threading
import tomllib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from playgrad.dashboard.images import ImageModel
from playgrad.dashboard.runs import READ_BUDGET, RunIndex
from rl.summaries import layers_json_path

__all__ = ["DEFAULT_PORT", "DashboardError", "DashboardServer", "make_server"]

DEFAULT_PORT = 8050
STATIC = Path(__file__).resolve().parent / "static"
MAX_POINTS_LIMIT = 20_000
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # an uploaded photo for the image model panel


class DashboardError(RuntimeError):
    """The dashboard cannot start (a busy port, a runs folder that is a file); the message says what to do."""


class DashboardServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` holding the :class:`RunIndex` its handlers read."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], index: RunIndex):
        self.index = index
        self.recordings: dict[str, dict[str, Any]] = {}
        self.image_model = ImageModel()
        self.recordings_lock = threading.Lock()
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"


def make_server(runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> DashboardServer:
    """A dashboard server over ``runs_dir`` bound to ``host:port`` (port 0: any free port); call ``serve_forever``.

    Raises:
        DashboardError: the port is taken (naming it and ``--port``), or ``runs_dir`` is not a folder.
    """
    root = Path(runs_dir)
    if root.exists() and not root.is_dir():
        raise DashboardError(f"{root} is a file, not a folder of runs")
    try:
        return DashboardServer((host, port), RunIndex(root))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DashboardError(f"port {port} on {host} is already in use (another dashboard?); "
                                 f"choose another with --port, e.g. --port {port + 1}") from None
        if exc.errno == errno.EACCES:
            raise DashboardError(f"no permission to listen on port {port}; use a port above 1023") from None
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class _HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per poll would bury the terminal

    # ---- plumbing
    def _send(self, status: HTTPStatus, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(_finite(data), allow_nan=False, default=str).encode(), "application/json")

    def _run(self, query: dict[str, list[str]]) -> Path:
        run_id = (query.get("run") or [""])[0]
        try:
            return self.server.index.resolve_run(run_id)
        except KeyError:
            raise _HTTPError(HTTPStatus.NOT_FOUND, f"no run {run_id!r} under the runs folder") from None

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._json({"error": f"upload of {length:,} bytes refused (at most {MAX_UPLOAD_BYTES:,})"},
                       HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        self.body = self.rfile.read(length) if length else b""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            route = ROUTES.get((method, url.path))
            if route is not None:
                route(self, query)
            elif method == "GET" and url.path.startswith("/files/"):
                self._file(unquote(url.path[len("/files/"):]))
            elif method == "GET" and (url.path == "/" or url.path.startswith("/static/")):
                self._static("index.html" if url.path == "/" else unquote(url.path[len("/static/"):]))
            else:
                raise _HTTPError(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
        except _HTTPError as exc:
            self._json({"error": str(exc)}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # one bad run must not take the server down
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    # ---- files
    def _static(self, name: str) -> None:
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC) or not path.is_file():
            raise _HTTPError(HTTPStatus.NOT_FOUND, f"no static file {name!r}")
        self._send(HTTPStatus.OK, path.read_bytes(), _content_type(path))

    def _file(self, relative: str) -> None:
        path = self.server.index.resolve_file(relative)
        if path is None:
            raise _HTTPError(HTTPStatus.FORBIDDEN, "only files under the runs folder are served")
        if not path.is_file():
            raise _HTTPError(HTTPStatus.NOT_FOUND, f"no file {relative!r} under the runs folder")
        self._send(HTTPStatus.OK, path.read_bytes(), _content_type(path))

    # ---- the API
    def api_runs(self, query: dict[str, list[str]]) -> None:
        index = self.server.index
        self._json({"root": str(index.root), "exists": index.root.is_dir(), "runs": index.runs()})

    def api_series(self, query: dict[str, list[str]]) -> None:
        path = self._run(query)
        try:
            max_points = min(MAX_POINTS_LIMIT, max(10, int((query.get("max_points") or ["2000"])[0])))
            since = int((query.get("since") or ["-1"])[0])
        except ValueError:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, "max_points and since must be integers") from None
        metrics = self.server.index.entry(path).metrics
        complete = metrics.refresh(max_bytes=READ_BUDGET)
        if since == metrics.lines:
            self._json({"unchanged": True, "lines": metrics.lines, "complete": complete})
            return
        keys = query.get("key") or ["episode_return"]
        self._json({"lines": metrics.lines, "complete": complete,
                    "series": {k: metrics.series(k, max_points) for k in keys}})

    def api_config(self, query: dict[str, list[str]]) -> None:
        path = self._run(query)
        out: dict[str, Any] = {"config": None, "command": None, "info": None, "errors": []}
        try:
            out["config"] = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            out["errors"].append(f"config.toml: {exc}")
        with contextlib.suppress(OSError):
            out["command"] = (path / "command.txt").read_text(encoding="utf-8").strip()
        out["info"] = _json_file(path / "info.json", out["errors"])
        self._json(out)

    def api_histograms(self, query: dict[str, list[str]]) -> None:
        self._json(self.server.index.histograms(self._run(query)))

    def api_model(self, query: dict[str, list[str]]) -> None:
        errors: list[str] = []
        path = layers_json_path(self._run(query))
        self._json({"model": _json_file(path, errors) if path is not None else None, "errors": errors})

    def api_classification(self, query: dict[str, list[str]]) -> None:
        errors: list[str] = []
        data = _json_file(self._run(query) / "classification.json", errors)
        self._json({"classification": data, "errors": errors})

    def api_record_state(self, query: dict[str, list[str]]) -> None:
        run_id = self.server.index.run_id(self._run(query))
        with self.server.recordings_lock:
            self._json(self.server.recordings.get(run_id, {"state": "idle"}))

    def api_record(self, query: dict[str, list[str]]) -> None:
        path = self._run(query)
        run_id = self.server.index.run_id(path)
        if not (path / "checkpoints").is_dir():
            raise _HTTPError(HTTPStatus.CONFLICT, "this run has no checkpoints to record from")
        with self.server.recordings_lock:
            if self.server.recordings.get(run_id, {}).get("state") == "recording":
                self._json(self.server.recordings[run_id], HTTPStatus.ACCEPTED)
                return
            state = self.server.recordings[run_id] = {"state": "recording", "message": "recording one episode"}
        out = path / "episode.gif"
        cmd = [sys.executable, "-m", "playgrad", "record", str(path), "--out", str(out), "--checkpoint", "best",
               "--scale", "0.5", "--max-steps", "2000"]

        def work() -> None:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            with self.server.recordings_lock:
                state.update(state="done" if proc.returncode == 0 else "failed",
                             message=lines[-1] if lines else f"exit status {proc.returncode}",
                             file=self.server.index.run_id(out) if out.exists() else None)

        threading.Thread(target=work, daemon=True).start()
        self._json(state, HTTPStatus.ACCEPTED)

    def api_image_model_info(self, query: dict[str, list[str]]) -> None:
        self._json(self.server.image_model.describe())

    def api_image_model(self, query: dict[str, list[str]]) -> None:
        """``{"sample": name}`` or ``{"image": data URL}`` plus ``{"layer": "features.N"}`` -> top 5 and maps."""
        model = self.server.image_model
        info = model.describe()
        if not info["available"]:
            raise _HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, info["reason"])
        try:
            request = json.loads(self.body or b"{}")
            layer = str(request.get("layer", "features.3"))
            if "image" in request:
                from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

                payload = str(request["image"]).split(",", 1)[-1]
                try:
                    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=False))).convert("RGB")
                except (UnidentifiedImageError, OSError, ValueError) as exc:
                    raise ValueError(f"the upload is not an image Pillow can read ({exc})") from None
            else:
                image = model.sample(str(request.get("sample", "cat")))
            self._json(model.run(image, layer))
        except ValueError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None


ROUTES = {
    ("GET", "/api/runs"): Handler.api_runs,
    ("GET", "/api/series"): Handler.api_series,
    ("GET", "/api/config"): Handler.api_config,
    ("GET", "/api/histograms"): Handler.api_histograms,
    ("GET", "/api/model"): Handler.api_model,
    ("GET", "/api/classification"): Handler.api_classification,
    ("GET", "/api/record"): Handler.api_record_state,
    ("POST", "/api/record"): Handler.api_record,
    ("GET", "/api/image_model"): Handler.api_image_model_info,
    ("POST", "/api/image_model"): Handler.api_image_model,
}


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinities as None: JSON has no NaN and the page's JSON.parse refuses it."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def _json_file(path: Path, errors: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        errors.append(f"{path.name}: {exc}")
        return None


def _content_type(path: Path) -> str:
    kind = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
            ".jsonl": "text/plain", ".toml": "text/plain", ".txt": "text/plain", ".webp": "image/webp"}
    ctype = kind.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return ctype + ("; charset=utf-8" if ctype.startswith("text/") or ctype.endswith("json") else "")
