"""Fixtures of the dashboard tests: a runs folder made by real short trainings, a live server, a browser."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dashboard_support import train


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """Two seeds of one experiment (seed 1 with weight histograms) and, in a sweep-like subfolder, seed 0 with
    another learning rate."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "root": root,
        "s0": train(root, seed=0),
        "s1": train(root, "--set", "experiment.histogram_every=2", seed=1),  # with weight histograms
        "lr": train(root / "sweep-lr" / "p0-lr", "--set", "agent.lr=0.003", seed=0),
    }


@pytest.fixture
def serve():
    """``serve(runs_dir)`` -> a running DashboardServer on a free port (shut down after the test)."""
    from playgrad.dashboard import make_server

    servers = []

    def start(runs_dir: Path):
        server = make_server(runs_dir, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser():
    """Headless Chromium driven over the DevTools protocol; skipped where it or websocket-client is absent."""
    from cdp import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("headless Chromium not found (apt install chromium, or set PLAYGRAD_CHROMIUM)")
    pytest.importorskip("websocket", reason="websocket-client not installed (pip install -e '.[dev]')")
    b = Browser(executable)
    yield b
    b.close()
