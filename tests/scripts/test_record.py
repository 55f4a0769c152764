"""scripts/record.py: a trained run's episodes written as an animated GIF/WebP, frame for frame."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import envs  # noqa: F401
from agents.runner import load_agent
from playgrad import recording
from playgrad.cli import main_job

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "scripts" / "record.py"
TRAIN = ROOT / "scripts" / "train.py"



def _run(*args):
    return subprocess.run([sys.executable, str(RECORD), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})


def _episode_lengths(run, seed, episodes, max_steps):
    """The same episodes replayed here: the agent is deterministic and the env seeded alike."""
    agent = load_agent(run)
    env = gym.make("envs/CartPole-v1", **agent.experiment.env)
    lengths = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        steps, done = 0, False
        while not done and steps < max_steps:
            obs, _, terminated, truncated, _ = env.step(agent.act(np.asarray(obs)[None])[0].item())
            steps += 1
            done = terminated or truncated
        lengths.append(steps)
    env.close()
    return lengths


def test_gif_holds_every_step_of_the_episode(cartpole_run, tmp_path):
    out_file = tmp_path / "cart.gif"
    result = _run(cartpole_run, "--out", out_file, "--max-steps", 40, "--every", 1, "--seed", 7)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out_file}" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["cart.gif"]  # no temporary file left behind

    steps = _episode_lengths(cartpole_run, seed=7, episodes=1, max_steps=40)[0]
    env = gym.make("envs/CartPole-v1", render_mode="rgb_array")
    env.reset(seed=7)
    first_frame = env.render()
    env.close()

    gif = Image.open(out_file)
    assert gif.n_frames == steps + 1  # the reset frame and one per step
    assert gif.info["duration"] == 20  # CartPole draws at 50 fps: 20 ms a frame, every step kept
    picture = np.asarray(gif.convert("RGB"))
    assert picture.shape == first_frame.shape  # the env's picture and nothing else: its status line is the caption
    # One 256-colour palette from the first frame: the picture survives within rounding of its colours.
    assert np.abs(picture.astype(int) - first_frame.astype(int)).mean() < 2.0


def test_webp_with_scale_and_frame_skip(cartpole_run, tmp_path):
    out_file = tmp_path / "cart.webp"
    result = _run(cartpole_run, "--out", out_file, "--max-steps", 10, "--every", 4, "--scale", 0.5, "--episodes", 2,
                  "--seed", 3)
    assert result.returncode == 0, result.stderr
    anim = Image.open(out_file)
    width, height = anim.size
    env = gym.make("envs/CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert (width, height) == (round(frame.shape[1] * 0.5), round(frame.shape[0] * 0.5))
    assert "status line is hard to read" in result.stdout  # a half-size recording says what it costs
    # Per episode: the reset frame, every 4th step, and the last step (kept whatever its number).
    lengths = _episode_lengths(cartpole_run, seed=3, episodes=2, max_steps=10)
    assert anim.n_frames == sum(1 + len({*range(4, n + 1, 4), n}) for n in lengths)

@pytest.mark.parametrize(
    ("args", "message"),
    [(["--out", "x.avi"], "must end in one of .gif, .webp, .mp4"),
     (["--out", "no/such/folder/x.gif"], "does not exist"),
     (["--scale", "0"], "positive number"),
     (["--every", "0"], "must be at least 1")],
)
def test_bad_arguments_are_named(cartpole_run, args, message):
    result = _run(cartpole_run, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_mp4_holds_every_step_at_the_envs_speed(cartpole_run, tmp_path):
    encoder = recording.video_encoder()
    if encoder is None:
        pytest.skip("imageio-ffmpeg is not installed (pip install -e '.[video]')")
    out_file = tmp_path / "cart.mp4"
    result = _run(cartpole_run, "--out", out_file, "--max-steps", 30, "--seed", 7)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["cart.mp4"]
    steps = _episode_lengths(cartpole_run, seed=7, episodes=1, max_steps=30)[0]
    assert f"episode 1: return {steps} after {steps} steps" in result.stdout
    reader = encoder.read_frames(str(out_file))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(240, 600, 3) for f in reader]
    assert meta["size"] == (600, 240) and meta["fps"] == 50  # CartPole draws at 50 fps: every step kept
    assert len(frames) == steps + 1
    env = gym.make("envs/CartPole-v1", render_mode="rgb_array")
    env.reset(seed=7)
    assert np.abs(frames[0].astype(int) - env.render().astype(int)).mean() < 3.0  # lossy, but the same picture
    env.close()


def test_a_run_directory_that_does_not_exist_is_named_as_such(tmp_path):
    # It used to say "--out: folder '.../nope' does not exist" although no --out was given.
    result = _run(tmp_path / "nope")
    assert result.returncode == 2 and "run directory" in result.stderr and "--out" not in result.stderr.splitlines()[-1]


def test_missing_run_is_reported(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 1 and "not a run directory" in result.stderr and "Traceback" not in result.stderr


def test_frame_skip_keeps_gif_frames_at_least_20_ms():
    assert [recording.default_every(fps) for fps in (10, 50, 60, 120, 151)] == [1, 1, 2, 3, 4]


def test_main_job_records_an_episode_of_its_run(tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.toml"
    text = (ROOT / "configs" / "cartpole_ppo.toml").read_text()
    text = text.replace("total_steps = 100_000", "total_steps = 512").replace("eval_episodes = 20", "eval_episodes = 1")
    config.write_text(text)
    assert "total_steps = 512" in config.read_text()
    monkeypatch.setattr(main_job, "CONFIG", config)
    monkeypatch.setattr(main_job, "ROOT", tmp_path)
    assert main_job.main(["--runs-dir", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    gif = Image.open(run / "episode.gif")
    steps = _episode_lengths(run, seed=1_000_000, episodes=1, max_steps=800)[0]
    assert gif.n_frames == steps + 1  # CartPole's 50 fps keeps every step
    assert f"one episode of it, recorded: {run / 'episode.gif'}" in capsys.readouterr().out
