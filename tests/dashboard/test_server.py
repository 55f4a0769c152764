"""The dashboard's server and run reader, without a browser: run list, status, damage, incremental metrics,
downsampling, path traversal, a busy port."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from playgrad.dashboard.runs import RUNNING_WINDOW_S
from rl.summaries import MetricsFile, downsample


def get(server, path: str) -> tuple[int, dict]:
    """Status and JSON body of a GET sent with the path exactly as given (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, {"raw": body}


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_runs_of_real_trainings_are_listed_with_their_results(trained_runs, serve):
    server = serve(trained_runs["root"])
    status, body = get(server, "/api/runs")
    assert status == 200
    runs = {r["id"]: r for r in body["runs"]}
    root = trained_runs["root"]
    assert set(runs) == {trained_runs[k].relative_to(root).as_posix() for k in ("s0", "s1", "lr")}
    for key in ("s0", "s1", "lr"):
        run = trained_runs[key]
        row = runs[run.relative_to(root).as_posix()]
        returns = [r["episode_return"] for r in records(run) if "episode_return" in r]
        evaluation = json.loads((run / "eval.json").read_text())
        assert row["status"] == "finished" and row["damaged"] is None
        assert (row["agent"], row["env_id"], row["total_steps"]) == ("ppo", "envs/CartPole-v1", 4000)
        assert row["seed"] == (1 if key == "s1" else 0)
        assert row["steps"] == max(r["env_steps"] for r in records(run))
        assert row["last_mean"] == pytest.approx(np.mean(returns[-20:]))
        full = [np.mean(returns[i - 20:i]) for i in range(20, len(returns) + 1)]
        assert row["best_mean"] == pytest.approx(max(full))
        assert row["eval"]["mean_return"] == evaluation["mean_return"]
        assert "approx_kl" in row["keys"] and "episode_return" in row["keys"]
    groups = {r["group"] for r in runs.values()}
    assert groups == {"cartpole_ppo_fast", "sweep-lr/p0-lr/cartpole_ppo_fast"}


def test_series_are_the_metrics_file_and_downsampling_keeps_spikes(trained_runs, serve):
    run = trained_runs["s0"]
    server = serve(trained_runs["root"])
    rid = run.relative_to(trained_runs["root"]).as_posix()
    status, body = get(server, f"/api/series?run={rid}&key=episode_return&key=value_loss")
    assert status == 200
    recs = records(run)
    ep = [(r["env_steps"], r["episode_return"]) for r in recs if "episode_return" in r]
    s = body["series"]["episode_return"]
    assert list(zip(s["x"], s["y"])) == ep and body["lines"] == len(recs)
    assert s["y"] and "lo" not in s  # short: served as is
    # The page sends the line count it has: nothing new, nothing sent.
    unchanged = {"unchanged": True, "lines": len(recs), "complete": True}
    assert get(server, f"/api/series?run={rid}&since={len(recs)}")[1] == unchanged
    # Downsampled: bucket means, with the min and max of each bucket as a band.
    status, body = get(server, f"/api/series?run={rid}&key=episode_return&max_points=10")
    d = body["series"]["episode_return"]
    assert len(d["x"]) == 10 and d["points"] == len(ep)
    ys = np.array([y for _, y in ep])
    assert min(d["lo"]) == ys.min() and max(d["hi"]) == ys.max()
    assert all(lo <= y <= hi for lo, y, hi in zip(d["lo"], d["y"], d["hi"]))


def test_downsample_buckets_hand_checked():
    x = np.arange(10.0)
    y = np.array([0, 2, 4, 100, 1, 1, 1, 1, -5, 3], dtype=float)
    d = downsample(x, y, 3)  # buckets of 3, 3, 4 points
    assert d["x"] == [1.0, 4.0, 7.5]
    assert d["y"] == pytest.approx([2.0, 34.0, 0.0])
    assert d["lo"] == [0.0, 1.0, -5.0] and d["hi"] == [4.0, 100.0, 3.0]
    assert downsample(x, y, 10) == {"x": x.tolist(), "y": y.tolist()}


def test_metrics_are_read_incrementally_and_a_half_written_line_waits(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"env_steps": 1, "episode_return": 5.0}\n{"env_steps": 2, "loss": 0.5}\n')
    m = MetricsFile(path)
    m.refresh()
    assert m.lines == 2 and m.offset == path.stat().st_size
    with open(path, "a") as f:
        f.write('{"env_steps": 3, "episode_ret')  # a writer mid-line
    m.refresh()
    assert m.lines == 2 and m.errors == []
    with open(path, "a") as f:
        f.write('urn": 7.0}\n')
    m.refresh()
    assert m.lines == 3 and m.series("episode_return")["y"] == [5.0, 7.0] and m.errors == []
    # Only the new bytes are read: a refresh with nothing appended parses nothing.
    before = dict(m.columns)
    m.refresh()
    assert m.columns == before and m.lines == 3
    # A resumed run rewrites the file shorter (atomically: a new file): read again from the start.
    tmp = tmp_path / "new"
    tmp.write_text('{"env_steps": 1, "episode_return": 9.0}\n')
    os.replace(tmp, path)
    m.refresh()
    assert m.lines == 1 and m.series("episode_return")["y"] == [9.0]


def _fake_run(root: Path, name: str, age_s: float, lines: str = '{"env_steps": 10, "episode_return": 1.0}\n',
              checkpoint: bool = False, eval_json: str | None = None) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text('[experiment]\nname = "fake"\nagent = "ppo"\nseed = 0\n')
    (run / "metrics.jsonl").write_text(lines)
    if checkpoint:
        (run / "checkpoints" / "latest.safetensors").write_bytes(b"x")
    if eval_json is not None:
        (run / "eval.json").write_text(eval_json)
    old = time.time() - age_s
    for p in run.rglob("*"):
        os.utime(p, (old, old))
    return run


def test_status_and_damage_are_read_from_the_files(tmp_path, serve):
    stale = RUNNING_WINDOW_S + 30
    _fake_run(tmp_path, "running", 0)
    _fake_run(tmp_path, "interrupted", stale, checkpoint=True)
    _fake_run(tmp_path, "failed", stale)
    _fake_run(tmp_path, "finished", stale, eval_json='{"mean_return": 3.5}')
    _fake_run(tmp_path, "broken", stale, lines='{"env_steps": 1, "episode_return": 1}\n{"env_st\n'
              '{"env_steps": 2, "episode_return": 3}\n', eval_json="{not json")
    (tmp_path / "bad-config").mkdir()
    (tmp_path / "bad-config" / "config.toml").write_text("[experiment\nname=")
    server = serve(tmp_path)
    status, body = get(server, "/api/runs")
    assert status == 200
    rows = {r["id"]: r for r in body["runs"]}
    assert {k: rows[k]["status"] for k in ("running", "interrupted", "failed", "finished")} == {
        "running": "running", "interrupted": "interrupted", "failed": "failed", "finished": "finished"}
    assert all(rows[k]["damaged"] is None for k in ("running", "interrupted", "failed", "finished"))
    assert "metrics.jsonl:2" in rows["broken"]["damaged"] and "eval.json" in rows["broken"]["damaged"]
    assert "config.toml" in rows["bad-config"]["damaged"]
    # The damaged run's good lines are still served.
    assert get(server, "/api/series?run=broken")[1]["series"]["episode_return"]["y"] == [1.0, 3.0]


def test_only_files_under_the_runs_folder_are_served(trained_runs, serve, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run").mkdir()
    (runs / "run" / "episode.gif").write_bytes(b"GIF89a-not-really")
    (tmp_path / "secret.txt").write_text("secret")
    (runs / "run" / "link.txt").symlink_to(tmp_path / "secret.txt")
    server = serve(runs)
    assert get(server, "/files/run/episode.gif") == (200, {"raw": b"GIF89a-not-really"})
    for path in ("/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/run/../../secret.txt",
                 "/files/run/%2E%2E/%2E%2E/secret.txt", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
                 "/files/run/link.txt", "/files/..%2f..%2fetc%2fpasswd"):
        status, body = get(server, path)
        assert status == 403, (path, status, body)
        assert b"secret" not in json.dumps(body).encode() and "root:" not in json.dumps(body), path
    assert get(server, "/static/../server.py")[0] == 404
    assert get(server, "/static/%2e%2e/server.py")[0] == 404
    assert get(server, "/api/config?run=../..")[0] == 404


def test_a_linked_run_outside_the_folder_is_neither_listed_nor_served(serve, tmp_path):
    # Listed but refused (404 on every click) was the old behaviour; a link inside the folder is a run as any.
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    for folder in (runs / "here", elsewhere / "there"):
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text('[experiment]\nname = "x"\n')
    (runs / "out").symlink_to(elsewhere / "there")
    (runs / "in").symlink_to(runs / "here")
    server = serve(runs)
    assert sorted(r["id"] for r in get(server, "/api/runs")[1]["runs"]) == ["here", "in"]
    assert get(server, "/api/config?run=out")[0] == 404 and get(server, "/api/config?run=in")[0] == 200


def test_a_busy_port_is_named_with_the_fix(tmp_path, capsys):
    from playgrad.cli import dashboard as cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main([str(tmp_path), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"port {port}" in err and "--port" in err, err


def test_the_page_and_its_scripts_are_served_without_any_outside_reference(serve, tmp_path):
    server = serve(tmp_path)
    html = urllib.request.urlopen(server.url, timeout=10).read().decode()
    assert "<canvas" in html or "charts" in html
    for name in ("app.js", "chart.js", "style.css"):
        text = urllib.request.urlopen(server.url + "static/" + name, timeout=10).read().decode()
        assert "http://" not in text and "https://" not in text, name  # offline: no CDN, no fonts from the web
    assert "https://" not in html and "http://" not in html


@pytest.mark.slow
def test_record_button_records_an_episode_of_the_best_checkpoint(trained_runs, serve):
    run = trained_runs["s1"]
    server = serve(trained_runs["root"])
    rid = run.relative_to(trained_runs["root"]).as_posix()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.request("POST", f"/api/record?run={rid}")
    assert conn.getresponse().status == 202
    deadline = time.monotonic() + 240
    while (state := get(server, f"/api/record?run={rid}")[1])["state"] == "recording":
        assert time.monotonic() < deadline, "recording took over 4 minutes"
        time.sleep(0.5)
    assert state["state"] == "done", state
    assert (run / "episode.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert f"{rid}/episode.gif" in [m for r in get(server, "/api/runs")[1]["runs"] for m in r["media"]]


def post(server, path: str, payload: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=120)
    conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    status, body = resp.status, json.loads(resp.read())
    conn.close()
    return status, body


def test_image_model_panel_top5_and_feature_maps(serve, tmp_path):
    import base64
    import io

    server = serve(tmp_path)
    info = get(server, "/api/image_model")[1]
    if not info["available"]:
        pytest.skip(info["reason"])
    if "cat" not in info["samples"]:
        pytest.skip("scikit-image's sample photos are not installed")
    status, sample = post(server, "/api/image_model", {"sample": "cat", "layer": "features.3"})
    assert status == 200, sample
    assert sample["top"][0]["name"] in ("Egyptian cat", "tabby", "tiger cat")  # scikit-image's chelsea
    probs = [t["prob"] for t in sample["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert sample["shape"] == [56, 56, 24] and len(sample["maps"]) == 16
    means = [m["mean"] for m in sample["maps"]]
    assert means == sorted(means, reverse=True)  # the most active channels first
    # The same photo uploaded as a PNG gives the same answer.
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    status, upload = post(server, "/api/image_model", {"image": url, "layer": "features.3"})
    assert status == 200 and upload["top"] == sample["top"]
    assert post(server, "/api/image_model", {"image": "data:image/png;base64,AAAA", "layer": "features.3"})[0] == 400
    status, body = post(server, "/api/image_model", {"sample": "cat", "layer": "features.99"})
    assert status == 400 and "features.18" in body["error"]


@pytest.mark.parametrize("sigint_at_start", ["default", "ignored"])
def test_the_cli_serves_until_ctrl_c(tmp_path, sigint_at_start):
    """Also when started with SIGINT ignored, as a background job of a non-interactive shell is (CI ran the suite
    so once, and the dashboard, left without Python's Ctrl-C handler, never stopped)."""
    import re
    import signal
    import subprocess
    import sys

    patience_s = 120  # this checks behaviour, not speed: generous on a loaded machine
    root = Path(__file__).parents[2]
    disposition = signal.SIG_DFL if sigint_at_start == "default" else signal.SIG_IGN
    proc = subprocess.Popen([sys.executable, "scripts/dashboard.py", "--runs-dir", str(tmp_path), "--port", "0"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "api/runs", timeout=patience_s) as r:
            assert json.load(r) == {"root": str(tmp_path.resolve()), "exists": True, "runs": []}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=patience_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the dashboard did not stop within {patience_s} s of Ctrl-C; stdout {out!r}, stderr {err!r}")
    assert proc.returncode == 0 and "stopped" in out and err == "", (out, err)


@pytest.mark.parametrize("seed", range(3))
def test_a_budgeted_read_gives_what_one_read_gives(tmp_path, seed):
    """Read in slices of a few bytes (lines longer than a slice included), a file ends as one read leaves it."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"env_steps": i, "episode_return": float(rng.normal()), "pad": "x" * int(rng.integers(0, 200))})
             for i in range(300)]
    path.write_text("\n".join(lines) + "\n" + '{"env_steps": 300, "episode_re')  # and a half-written line
    whole = MetricsFile(path)
    assert whole.refresh() is True
    sliced = MetricsFile(path)
    budget = int(rng.integers(20, 400))
    calls = 1
    while not sliced.refresh(max_bytes=budget):
        calls += 1
        assert calls < 10_000, f"seed {seed}: no progress with budget {budget}"
    assert calls > 1, f"seed {seed}"
    assert (sliced.lines, sliced.offset) == (whole.lines, whole.offset) == (300, path.stat().st_size - 30)
    assert sliced.series("episode_return") == whole.series("episode_return"), f"seed {seed} budget {budget}"
    assert sliced.best_mean == whole.best_mean and sliced.errors == whole.errors == []


def test_a_big_metrics_file_is_served_while_it_is_read(tmp_path, serve, monkeypatch):
    import playgrad.dashboard.runs as runs_module
    import playgrad.dashboard.server as server_module

    monkeypatch.setattr(runs_module, "READ_BUDGET", 2000)
    monkeypatch.setattr(server_module, "READ_BUDGET", 2000)
    run = tmp_path / "big"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"env_steps": i, "episode_return": float(i)}) + "\n"
                                               for i in range(500)))
    server = serve(tmp_path)
    (row,) = get(server, "/api/runs")[1]["runs"]
    assert 0 < row["reading"] < 1 and 0 < row["lines"] < 500
    seen = [row["lines"]]
    for _ in range(100):
        body = get(server, "/api/series?run=big")[1]
        seen.append(body["lines"])
        if body["complete"]:
            break
    assert body["complete"] and body["lines"] == 500 and seen == sorted(seen)
    assert body["series"]["episode_return"]["y"] == [float(i) for i in range(500)]
    assert get(server, "/api/runs")[1]["runs"][0]["reading"] is None


def _status_of(root: Path, run: Path) -> str:
    from playgrad.dashboard.runs import RunIndex

    return RunIndex(root).summary(run.resolve(), time.time())["status"]


def _start_training(root: Path, seed: int):
    """A long CartPole training in a subprocess, once its run directory has metrics: (process, run dir)."""
    import subprocess
    import sys

    from dashboard_support import CONFIG, ROOT

    proc = subprocess.Popen([sys.executable, "scripts/train.py", CONFIG, "--seed", str(seed), "--runs-dir", str(root),
                             "--no-progress", "--set", "experiment.total_steps=3000000",
                             "--set", "experiment.checkpoint_every_steps=2048"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        runs = [p for p in root.glob(f"*-s{seed}-*") if (p / "checkpoints" / "latest.safetensors").is_file()]
        if runs:
            return proc, runs[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no checkpoint from the training: {proc.stderr.read().decode()}")


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_a_stopped_training_is_shown_stopped_at_once_not_running(tmp_path, how):
    # The status comes from status.json, which the runner writes (running + its process; interrupted on Ctrl-C),
    # and the process is checked alive: a run stopped a moment ago is not "running" (the files are seconds old,
    # inside the RUNNING_WINDOW_S guess older runs still get).
    import signal

    proc, run = _start_training(tmp_path, seed=3)
    try:
        assert _status_of(tmp_path, run) == "running"
    finally:
        proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
        proc.communicate(timeout=120)
    assert time.time() - (run / "metrics.jsonl").stat().st_mtime < RUNNING_WINDOW_S
    assert json.loads((run / "status.json").read_text())["state"] == ("interrupted" if how == "ctrl-c" else "running")
    assert _status_of(tmp_path, run) == "interrupted"


def test_status_file_of_a_process_gone_or_on_another_machine(tmp_path):
    import platform

    from playgrad.dashboard.runs import REMOTE_SILENCE_S

    runs = [("gone", platform.node(), True, 0), ("gone-early", platform.node(), False, 0),
            ("elsewhere", "another-host.example", False, 0),
            ("elsewhere-quiet", "another-host.example", True, REMOTE_SILENCE_S - 60),
            ("elsewhere-silent", "another-host.example", True, REMOTE_SILENCE_S + 60)]
    for name, host, checkpoint, age_s in runs:
        run = _fake_run(tmp_path, name, 0, checkpoint=checkpoint)
        # pid 2**22 + 1 is above Linux's pid_max, so no process has it
        (run / "status.json").write_text(json.dumps({"state": "running", "host": host, "pid": 2**22 + 1,
                                                     "pid_started": 1}))
        old = time.time() - age_s
        for p in run.rglob("*"):
            os.utime(p, (old, old))
    assert {n: _status_of(tmp_path, tmp_path / n) for n, *_ in runs} == {
        "gone": "interrupted", "gone-early": "failed", "elsewhere": "running", "elsewhere-quiet": "running",
        "elsewhere-silent": "silent"}
    # one new metrics line from the other machine and it is running again
    os.utime(tmp_path / "elsewhere-silent" / "metrics.jsonl")
    assert _status_of(tmp_path, tmp_path / "elsewhere-silent") == "running"


def test_layer_tables_are_read_from_layers_json_and_from_an_older_runs_model_json(tmp_path, serve):
    # The layer tables were written as model.json, the name a TF.js export has too; runs now write layers.json.
    tables = {"networks": [{"name": "policy", "layers": [], "total_params": 3, "trainable_params": 3}]}
    for name, file in [("new", "layers.json"), ("old", "model.json"), ("none", None)]:
        run = _fake_run(tmp_path, name, 0)
        if file is not None:
            (run / file).write_text(json.dumps(tables))
    server = serve(tmp_path)
    rows = {r["id"]: r for r in get(server, "/api/runs")[1]["runs"]}
    assert {k: rows[k]["model"] for k in ("new", "old", "none")} == {"new": True, "old": True, "none": False}
    for name, want in [("new", tables), ("old", tables), ("none", None)]:
        assert get(server, f"/api/model?run={name}")[1] == {"model": want, "errors": []}
