"""What a newcomer following README.md met: mistyped run paths, a finished run resumed, a small image folder,
--help without the script's manual, a sweep's grid points drawn as one curve, serve_web's errors.

Each test failed before its fix. Everything runs in-process on tiny configs, except the two that need a real
process (pygame's banner, SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from playgrad import curves
from playgrad.training import train
from rl.experiment import ConfigError, RunNotFoundError

ROOT = Path(__file__).resolve().parents[2]


def _script(name):
    """A command's module: playgrad.cli.NAME (what scripts/NAME.py runs), or scripts/NAME.py itself for a script
    whose code is still in scripts/."""
    if importlib.util.find_spec(f"playgrad.cli.{name}") is not None:
        return importlib.import_module(f"playgrad.cli.{name}")
    spec = importlib.util.spec_from_file_location(f"_walkthrough_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text('[experiment]\nname = "tiny"\nagent = "reinforce"\neval_episodes = 2\ndevice = "cpu"\n\n'
                    '[env]\nvariant = "book"\n\n[agent]\niterations = 1\ngames_per_iteration = 2\n')
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished (evaluated) cart-pole run: one REINFORCE iteration of two games."""
    tmp = tmp_path_factory.mktemp("finished")
    return train(str(_tiny_config(tmp)), [], runs_dir=str(tmp / "runs"), progress=False)


# ----------------------------------------------------------------------------- mistyped run directories
def test_a_mistyped_run_directory_is_reported_and_not_created(tmp_path, capsys):
    # RunDir creates a missing directory: evaluate, play --agent, train --resume and plot each left an empty
    # "run" (with checkpoints/) behind a typo, which then showed up in runs/ and in shell completion.
    missing = tmp_path / "runs" / "cartpole_ppo-s0-typo"
    assert _script("evaluate").main([str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err
    play = _script("play")
    with pytest.raises(RunNotFoundError, match="does not exist"):
        play.load_agent_policy(str(missing), "best")
    assert play.main(["cartpole", "--headless", "--agent", str(missing)]) == 2
    assert f"cannot load agent: {missing} does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="does not exist"):
        train(None, [], resume=str(missing), progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        curves.plot([str(missing)], tmp_path / "c.png")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- train.py
def test_resuming_a_finished_run_says_so_and_changes_nothing(finished_run, capsys):
    # It used to run an empty training loop and print the same evaluation again, as if it had trained.
    before = {p.name: p.read_bytes() for p in (finished_run / "eval.json", finished_run / "metrics.jsonl")}
    assert _script("train").main(["--resume", str(finished_run)]) == 0
    out = capsys.readouterr().out
    assert "already finished" in out and "experiment.total_steps" in out and "evaluation over" not in out
    assert {p.name: p.read_bytes() for p in (finished_run / "eval.json", finished_run / "metrics.jsonl")} == before


def test_a_finished_run_prints_what_to_do_next(finished_run):
    text = _script("train").next_steps(finished_run)
    assert f"python scripts/evaluate.py {finished_run}" in text
    assert f"python scripts/play.py cartpole --agent {finished_run}" in text
    assert f"python scripts/plot.py {finished_run}" in text


# ----------------------------------------------------------------------------- --help
USER_SCRIPTS = ["train", "evaluate", "play", "plot", "sweep", "classify", "digits_transfer", "mobilenet_fewshot",
                "gesture_control", "export_tfjs", "serve_web", "fetch_weights", "edit_level", "main_job"]


class _Parsed(Exception):
    """Raised in place of parsing, carrying the parser a script built."""


@pytest.mark.parametrize("name", USER_SCRIPTS)
def test_help_shows_the_manual_and_every_option_says_what_it_does(name, monkeypatch):
    # --help showed only the docstring's first line (the examples and, for edit_level, the keys were hidden), and
    # several options (play.py's game, --seed, the snake sizes; the transfer scripts' --set) had no help at all.
    def capture(self, *args, **kwargs):
        raise _Parsed(self)

    module = _script(name)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as caught:
        module.main([])
    parser = caught.value.args[0]
    undocumented = [a.dest for a in parser._actions if not a.help]
    assert undocumented == [], f"{name}.py options without help: {undocumented}"
    text = parser.format_help()
    assert f"python scripts/{name}.py" in text or name == "main_job", "the docstring's usage examples"
    assert module.__doc__.strip().splitlines()[-1].strip() in text  # the whole docstring, not its first line


def test_edit_level_help_names_the_save_key():
    out = subprocess.run([sys.executable, "scripts/edit_level.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "S saves" in out.stdout and "Esc quits" in out.stdout


# ----------------------------------------------------------------------------- plot.py and sweep.py
def _fake_run(root: Path, name: str, overrides: list[str], returns: list[float]) -> Path:
    run = root / f"{name}-{len(list(root.glob('*')))}"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(f'[experiment]\nname = "{name}"\n')
    (run / "info.json").write_text(json.dumps({"overrides": overrides}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"env_steps": 10 * (i + 1), "episode_return": r}) + "\n"
                                               for i, r in enumerate(returns)))
    return run


def test_a_sweeps_grid_points_are_separate_curves(tmp_path):
    # plot.py grouped runs by config name only, so the grid points of a sweep were averaged into one curve.
    fixed = "experiment.total_steps=100"
    runs = [_fake_run(tmp_path, "ppo", [fixed, "agent.lr=1e-3"], [1.0, 2.0]),
            _fake_run(tmp_path, "ppo", [fixed, "agent.lr=1e-3", "experiment.seed=1"], [3.0, 4.0]),
            _fake_run(tmp_path, "ppo", [fixed, "agent.lr=3e-4"], [0.0, 0.0]),
            _fake_run(tmp_path, "dqn", [], [5.0, 5.0])]
    groups = curves.curve_groups([str(r) for r in runs], window=1)
    assert sorted(groups) == ["dqn", "ppo agent.lr=1e-3", "ppo agent.lr=3e-4"]  # the shared override is not named
    assert len(groups["ppo agent.lr=1e-3"]) == 2  # two seeds of one grid point: one curve with a band
    np.testing.assert_array_equal(groups["ppo agent.lr=3e-4"][0][1], [0.0, 0.0])


def test_sweep_says_where_its_runs_went_and_how_to_plot_them(tmp_path, capsys):
    sweep = _script("sweep")
    assert sweep.main([str(_tiny_config(tmp_path)), "--seeds", "0", "--workers", "1",
                       "--runs-dir", str(tmp_path / "runs")]) == 0
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    out = capsys.readouterr().out
    assert f"python scripts/plot.py {sweep_dir}/*/*" in out
    assert len(list(sweep_dir.glob("*/*/config.toml"))) == 1  # the pattern it prints names the run directories


# ----------------------------------------------------------------------------- mobilenet_fewshot.py
def _image_folder(root: Path, counts: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("counts, message", [({"a": 3}, "at least 2 classes"),
                                             ({"a": 3, "b": 1}, "class 'b' has 1 image(s)")])
def test_a_too_small_image_folder_is_one_clear_line(tmp_path, capsys, counts, message):
    # One class, or a class of one image, left an empty test set and ended in an IndexError traceback.
    folder = _image_folder(tmp_path / "images", counts)
    code = _script("mobilenet_fewshot").main(["--image-folder", str(folder), "--set", 'fewshot.weights="random"',
                                              "--out", str(tmp_path / "out")])
    assert code == 2 and message in capsys.readouterr().err


def test_a_class_with_fewer_than_k_images_is_named_and_its_row_says_so(tmp_path, capsys):
    # k=3 on a class left with 2 training images quietly drew 2: the "3" row was not what it said.
    folder = _image_folder(tmp_path / "images", {"few": 4, "many": 8})  # test_fraction 0.5: 2 and 4 to train on
    code = _script("mobilenet_fewshot").main([
        "--image-folder", str(folder), "--out", str(tmp_path / "out"), "--set", 'fewshot.weights="random"',
        "--set", "data.image_size=32", "--set", "data.test_fraction=0.5", "--set", "fewshot.shots=[1, 3]",
        "--set", "fewshot.repeats=1", "--set", "fewshot.head_epochs=1", "--set", "fewshot.cnn_epochs=1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: k=3: class 'few' has only 2 training image(s)" in err and "trains on 2, not 3" in err
    assert "k=1" not in err and "'many'" not in err
    table = (tmp_path / "out" / "mobilenet_fewshot.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["k per class", "1", "3 (few: 2)"]
    assert "had only n training images" in table


# ----------------------------------------------------------------------------- gesture_control.py
def test_the_camera_source_does_not_print_pygames_banner():
    code = ("import sys; sys.path.insert(0, 'scripts'); import gesture_control as g\n"
            "try:\n    g.CameraFrames(32)\nexcept Exception as exc:\n    print(type(exc).__name__)\n")
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    env.pop("PYGAME_HIDE_SUPPORT_PROMPT", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in out.stderr, out.stderr
    assert "Hello from the pygame community" not in out.stdout + out.stderr


# ----------------------------------------------------------------------------- serve_web.py
def test_serve_web_names_a_wrong_run_before_a_missing_tfjs(finished_run, tmp_path, monkeypatch):
    # A cart-pole run on a machine without the npm TF.js used to hear only "TF.js is not available".
    serve_web = _script("serve_web")
    monkeypatch.setattr(serve_web, "TFJS_BUNDLES", (tmp_path / "absent.js",))
    with pytest.raises(serve_web.ServeError, match="the page plays envs/Snake-v0"):
        serve_web.make_server(finished_run, port=0)


def _snake_run(tmp_path: Path) -> Path:
    """A Snake DQN run of a few frames (no update): enough for serve_web to export its Q-network."""
    return train(str(ROOT / "configs/snake_dqn_small.toml"),
                 ["experiment.total_steps=64", "experiment.eval_episodes=1", "agent.num_envs=2",
                  "env.max_steps=20"], runs_dir=str(tmp_path / "runs"), progress=False)


def test_serve_web_port_in_use_says_what_to_do(tmp_path, monkeypatch):
    serve_web = _script("serve_web")
    bundle = tmp_path / "tf.min.js"
    bundle.write_text("// stand-in")
    monkeypatch.setattr(serve_web, "TFJS_BUNDLES", (bundle,))
    monkeypatch.setattr(serve_web.tempfile, "tempdir", str(tmp_path))
    run = _snake_run(tmp_path)
    server, tmp = serve_web.make_server(run, port=0)
    try:
        port = server.server_address[1]
        with pytest.raises(serve_web.ServeError, match=f"port {port} .* is in use.*--port 0"):
            serve_web.make_server(run, port=port)
    finally:
        server.server_close()
        serve_web.shutil.rmtree(tmp, ignore_errors=True)
    assert not list(tmp_path.glob("playgrad-web-*"))  # the refused server's export was removed too


@pytest.mark.skipif(not any(p.exists() for p in _script("serve_web").TFJS_BUNDLES),
                    reason="no TF.js bundle (cd tests/tfjs && npm ci)")
def test_serve_web_removes_its_export_when_killed(tmp_path):
    # SIGTERM (kill, a job runner's timeout) skipped the cleanup: each run left a playgrad-web-* folder in /tmp.
    run = _snake_run(tmp_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, "scripts/serve_web.py", str(run), "--port", "0", "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmpdir)})
    try:
        assert "serving the Snake page" in proc.stdout.readline()
        assert list(tmpdir.glob("playgrad-web-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmpdir.glob("playgrad-web-*"))
