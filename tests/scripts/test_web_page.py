"""web/: every file the Snake page asks for exists (no favicon 404 in the console on each load)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from playgrad.cli import serve_web

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.browser
def test_every_request_of_the_page_is_answered(tmp_path):
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                    None)
    if chromium is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    try:
        serve_web.find_tfjs_bundle()
    except serve_web.ServeError as exc:
        pytest.skip(str(exc))
    from agents.networks import conv_q_network
    from rl import tfjs

    model = conv_q_network((9, 9, 2), 3, filters=(16, 32), dense_units=(32,))
    tfjs.save_tfjs(model, tmp_path / "model", metadata={"agent": "dqn", "network": "q_net", "env": {}})
    server, url, stop = serve_web.serve_in_thread(tmp_path / "model")
    answered: list[tuple[str, int]] = []
    server.RequestHandlerClass.log_request = lambda self, code="-", size="-": answered.append((self.path, int(code)))
    try:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                        "--virtual-time-budget=20000", "--dump-dom", url + "index.html"],
                       capture_output=True, timeout=180, check=True)
    finally:
        stop()
    paths = [p for p, _ in answered]
    assert "/model/model.json" in paths and any("icon" in p for p in paths), answered
    # Before: ('/favicon.ico', 404) on every load.
    assert all(code == 200 for _, code in answered), answered
