"""The dashboard page in real headless Chromium over runs made by real short trainings: the run list, plotted
points equal to metrics.jsonl, a run started after the page opened appearing and growing, the config diff,
a damaged run flagged, and screenshots whose chart regions are not blank."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dashboard_support import CONFIG, ROOT

pytestmark = pytest.mark.browser


def metrics_points(run: Path, key: str) -> list[tuple[float, float]]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["env_steps"], r[key]) for r in recs if key in r]


def chart_pixels(browser, key: str, shot: Path) -> np.ndarray:
    """The screenshot's pixels inside the chart canvas of ``key`` (H, W, 3)."""
    from PIL import Image

    rect = browser.eval(f"(() => {{ const r = document.querySelector('.chart-card[data-key=\"{key}\"] canvas')"
                        f".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }})()")
    img = np.asarray(Image.open(shot).convert("RGB"))
    left, top, right, bottom = (int(round(v)) for v in rect)
    assert right - left > 200 and bottom - top > 150, rect
    return img[top:bottom, left:right]


def test_dashboard_in_chromium(trained_runs, serve, browser, tmp_path_factory):
    # A copy of the session's runs: this test adds a damaged run, a live one and a recording to its folder.
    root = tmp_path_factory.mktemp("browser-runs")
    shutil.copytree(trained_runs["root"], root, dirs_exist_ok=True)
    trained_runs = {k: root / v.relative_to(trained_runs["root"]) for k, v in trained_runs.items() if k != "root"}
    # A damaged copy of a run: a broken line in the middle of its metrics and an unreadable eval.json.
    damaged = root / "damaged-copy"
    shutil.copytree(trained_runs["s1"], damaged)
    lines = (damaged / "metrics.jsonl").read_text().splitlines(keepends=True)
    (damaged / "metrics.jsonl").write_text("".join(lines[:5]) + '{"env_steps": 99, "episode_ret\n' + "".join(lines[5:]))
    (damaged / "eval.json").write_text("{truncated")
    ids = {k: trained_runs[k].relative_to(root).as_posix() for k in ("s0", "s1", "lr")}
    shots = tmp_path_factory.mktemp("shots")
    server = serve(root)
    try:
        browser.goto(server.url + "?poll=400")
        browser.wait_for("window.dashboard && window.dashboard.ready && "
                         "document.querySelectorAll('#runs-body tr.run').length === 4", what="the four runs")
        # ---- the run list
        rows = browser.eval("[...document.querySelectorAll('#runs-body tr.run')].map(tr => [tr.dataset.run, "
                            "tr.querySelector('.badge').textContent, tr.classList.contains('damaged'), "
                            "tr.textContent])")
        by_id = {r[0]: r for r in rows}
        assert set(by_id) == {*ids.values(), "damaged-copy"}
        assert all(by_id[i][1] == "finished" and not by_id[i][2] for i in ids.values())
        # ---- a damaged run is flagged with its reason, and the others are served as usual
        _, _, flagged, text = by_id["damaged-copy"]
        assert flagged and "metrics.jsonl:6" in text and "eval.json" in text

        # ---- plotted points are metrics.jsonl's
        browser.wait_for("(window.dashboard.plotted.episode_return || {runs: []}).runs.length === 4", what="4 curves")
        for key in ("episode_return", "episode_length"):
            plotted = {r["run"]: r for r in browser.eval(f"window.dashboard.plotted.{key}.runs")}
            for name, rid in ids.items():
                expect = metrics_points(trained_runs[name], key)
                got = list(zip(plotted[rid]["x"], plotted[rid]["y"]))
                assert got == expect, f"{key} of {rid}: {len(got)} plotted vs {len(expect)} in metrics.jsonl"
            good = metrics_points(trained_runs["s1"], key)
            assert len(plotted["damaged-copy"]["x"]) == len(good)  # the broken line skipped, the rest drawn
        shot = browser.screenshot(shots / "curves.png")
        for key in ("episode_return", "episode_length"):
            px = chart_pixels(browser, key, shot)
            ink = (px.min(axis=2) < 200).mean()  # anything darker than the light grid
            colored = (np.abs(px.astype(int) - [47, 111, 223]).sum(axis=2) < 60).mean()  # the first run's blue
            assert ink > 0.01 and colored > 0.001 and px.std() > 10, (key, ink, colored, px.std())

        # ---- seeds as mean + band: the group of s0, s1 (and the damaged copy) is one line
        browser.click("#group-seeds")
        browser.wait_for("window.dashboard.plotted.episode_return.drawn.length === 2", what="two groups drawn")
        drawn = browser.eval("window.dashboard.plotted.episode_return.drawn")
        band = next(d for d in drawn if d["label"].startswith("cartpole_ppo_fast (3 seeds)"))
        assert all(lo <= y + 1e-9 and y <= hi + 1e-9 for lo, y, hi in zip(band["lo"], band["y"], band["hi"]))
        browser.click("#group-seeds")

        # ---- a run started after the page opened appears and its curve grows
        proc = subprocess.Popen([sys.executable, "scripts/train.py", CONFIG, "--seed", "7", "--runs-dir", str(root),
                                 "--no-progress", "--set", "experiment.total_steps=3000000",
                                 "--set", "experiment.eval_episodes=1"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            new_id = browser.wait_for(
                "(() => { const r = window.dashboard.state.runs.find(r => r.seed === 7); return r && r.id; })()",
                timeout=120, what="the new run in the table")
            row = f"#runs-body tr.run[data-run=\"{new_id}\"]"
            badge = browser.eval(f"document.querySelector('{row} .badge').textContent")
            assert badge == "running"
            count = (f"((window.dashboard.plotted.episode_return.runs.find(r => r.run === '{new_id}') || {{x: []}})"
                     ".x.length)")
            first = browser.wait_for(f"{count} > 0 && {count}", timeout=120, what="the new run's first points")
            browser.wait_for(f"{count} > {first}", timeout=120, what="the new run's curve to grow")
            assert proc.poll() is None, "the training ended before its growth could be watched"
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: saves and stops
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        # ---- the config diff highlights exactly the changed keys
        browser.click("#select-none")
        browser.eval(f"[...document.querySelectorAll('#runs-body input[data-run]')].filter(i => "
                     f"['{ids['s0']}', '{ids['lr']}'].includes(i.dataset.run)).forEach(i => i.click())")
        browser.click("#tabs button[data-tab=compare]")
        browser.wait_for("document.querySelectorAll('#compare th').length === 3", what="two runs compared")
        diff = browser.eval("[...document.querySelectorAll('#compare tr.diff')].map(tr => tr.dataset.key)")
        assert [k for k in diff if k.startswith("config:")] == ["config:agent.lr"], diff
        values = browser.eval("[...document.querySelector('#compare tr.diff[data-key=\"config:agent.lr\"]').cells]"
                              ".map(td => td.textContent)")
        assert values[0] == "agent.lr" and sorted(values[1:]) == ["0.002", "0.003"]
        commands = browser.eval("[...document.querySelectorAll('#compare td.cmd')].map(td => td.textContent)")
        assert any("agent.lr=0.003" in c for c in commands)
        browser.screenshot(shots / "compare.png")

        # ---- Watch: the record button records an episode of the best checkpoint and shows it inline
        browser.click("#tabs button[data-tab=watch]")
        card = f".watch-run[data-run=\"{ids['s0']}\"]"
        browser.wait_for(f"!!document.querySelector('{card} button[data-record]')", what="the record button")
        assert browser.eval(f"document.querySelectorAll('{card} img').length") == 0
        browser.click(f"{card} button[data-record]")
        browser.wait_for(f"(() => {{ const img = document.querySelector('{card} img'); "
                         f"return img && img.complete && img.naturalWidth > 0; }})()", timeout=300,
                         what="the recorded episode shown inline")
        assert (trained_runs["s0"] / "episode.gif").read_bytes()[:3] == b"GIF"
        browser.screenshot(shots / "watch.png")

        # ---- Model internals: the layer tables and the weight/gradient histograms over training
        browser.click("#tabs button[data-tab=internals]")
        browser.eval(f"(() => {{ const s = document.getElementById('internals-run'); s.value = '{ids['s1']}'; "
                     f"s.dispatchEvent(new Event('change')); }})()")
        browser.wait_for("document.querySelectorAll('#internals canvas[data-hist]').length > 0", what="histograms")
        tables = browser.eval("[...document.querySelectorAll('#internals .panel h3')].map(h => h.textContent)")
        assert any(t.startswith("policy") for t in tables) and any(t.startswith("value") for t in tables), tables
        snaps = [json.loads(line) for line in (trained_runs["s1"] / "histograms.jsonl").read_text().splitlines()]
        drawn = browser.eval("[...document.querySelectorAll('#internals canvas[data-hist]')]"
                             ".map(c => c.dataset.hist + ':' + c.dataset.kind)")
        assert sorted(drawn) == sorted(f"{n}:{k}" for n in snaps[-1]["tensors"] for k in ("w", "g"))
        browser.eval("document.querySelector('#internals canvas[data-hist]').scrollIntoView()")
        shot = browser.screenshot(shots / "internals.png")
        from PIL import Image

        rect = browser.eval("(() => { const r = document.querySelector('#internals canvas[data-hist]')"
                            ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
        px = np.asarray(Image.open(shot).convert("RGB"))[int(rect[1]):int(rect[3]), int(rect[0]):int(rect[2])]
        assert px.size and (px.min(axis=2) < 230).mean() > 0.01, "the first histogram canvas is blank"
    finally:
        print(f"screenshots in {shots}")
