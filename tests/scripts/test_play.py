"""scripts/play.py: headless runs end cleanly, quitting and restarting work, a policy can play, and
the keyboard controls map arrows to the right actions."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pygame
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.cartpole import controls as cartpole_controls
from envs.snake import controls as snake_controls
from envs.snake.core import DOWN, LEFT, RIGHT, UP
from playgrad.cli import play

ROOT = Path(__file__).resolve().parents[2]
PLAY = ROOT / "scripts" / "play.py"



@pytest.mark.parametrize("argv", [["cartpole", "--variant", "book"], ["snake", "--height", "6", "--width", "7"]])
def test_headless_run_exits_cleanly(argv):
    out = subprocess.run([sys.executable, str(PLAY), *argv, "--headless", "--frames", "150"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "episodes finished" in out.stdout


def test_bad_env_option_is_reported_without_traceback():
    out = subprocess.run([sys.executable, str(PLAY), "snake", "--headless", "--width", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "init_len" in out.stderr and "Traceback" not in out.stderr


def _fast(env):
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 1e6}
    return env


def test_policy_plays_and_returns_episode_returns():
    env = _fast(gym.make("envs/Snake-v0", render_mode="rgb_array"))
    returns = play.run_play(env, policy=lambda obs: 0, frames=60, seed=0, end_pause_s=0)
    env.close()
    # Going straight from the start always ends at the right wall: -0.2 per step, then -10.
    assert len(returns) >= 5 and all(-12 < r <= -10 for r in returns)


def test_a_headless_run_says_what_ran_when_no_episode_finished(capsys):
    # MetaCar's episodes outlast the default 200 frames: the run printed "0 episodes finished", as if nothing ran.
    assert play.main(["metacar", "--headless", "--frames", "30", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "metacar: 30 frames, 30 steps; no episode finished yet; the one running had return" in out
    assert "after 30 steps" in out and "0 episodes" not in out


def test_run_play_counts_frames_steps_and_the_unfinished_episode():
    env = _fast(gym.make("envs/Snake-v0", render_mode="rgb_array"))
    played = play.run_play(env, policy=lambda obs: 0, frames=60, seed=0, end_pause_s=0)
    env.close()
    # Each finished episode costs one frame that resets instead of stepping: 9 episodes, then 6 steps of a tenth
    # (-0.2 per step going straight).
    assert (played.frames, played.steps, len(played)) == (60, 51, 9)
    assert played.unfinished_steps == 6 and played.unfinished_return == pytest.approx(-1.2)
    assert played.summary("snake") == ("snake: 60 frames, 51 steps; 9 episodes finished, mean return "
                                       "-10.8; the one running had return -1.2 after 6 steps")


def test_window_close_and_escape_quit_before_any_step():
    for event in (pygame.event.Event(pygame.QUIT), pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE)):
        env = _fast(gym.make("envs/CartPole-v1", render_mode="rgb_array"))
        pygame.display.init()  # a (dummy) display, so the event can be queued
        pygame.event.post(event)
        assert play.run_play(env, human_action=cartpole_controls.human_action, frames=50, seed=0) == []
        assert env.unwrapped.steps == 0
        env.close()


def test_r_restarts_the_episode():
    env = _fast(gym.make("envs/CartPole-v1", render_mode="rgb_array"))
    pygame.display.init()
    steps_seen = []
    original_reset = env.reset

    def counting_reset(**kwargs):
        steps_seen.append(env.unwrapped.steps)
        return original_reset(**kwargs)

    env.reset = counting_reset
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r))
    play.run_play(env, human_action=cartpole_controls.human_action, frames=3, seed=0)
    env.close()
    assert len(steps_seen) == 2  # the initial reset, then R on the first frame


class Keys:
    def __init__(self, *down):
        self.down = set(down)

    def __getitem__(self, key):
        return key in self.down


def test_snake_arrows_become_relative_turns():
    env = gym.make("envs/Snake-v0")
    env.reset(seed=0)
    core = env.unwrapped.core
    for heading, key, action in [
        (RIGHT, pygame.K_UP, 1), (RIGHT, pygame.K_DOWN, 2), (RIGHT, pygame.K_LEFT, 0), (RIGHT, pygame.K_RIGHT, 0),
        (UP, pygame.K_LEFT, 1), (UP, pygame.K_RIGHT, 2), (DOWN, pygame.K_LEFT, 2), (LEFT, pygame.K_UP, 2),
    ]:
        core.direction[0] = heading
        assert snake_controls.human_action(Keys(key), env) == action, (heading, key)
    assert snake_controls.human_action(Keys(), env) == 0


def test_cartpole_arrows_push_and_idle_alternates():
    env = gym.make("envs/CartPole-v1")
    env.reset(seed=0)
    assert cartpole_controls.human_action(Keys(pygame.K_LEFT), env) == 0
    assert cartpole_controls.human_action(Keys(pygame.K_RIGHT), env) == 1
    idle = []
    for _ in range(4):
        idle.append(cartpole_controls.human_action(Keys(), env))
        env.step(idle[-1])
    assert idle == [0, 1, 0, 1]


def test_key_state_survives_unknown_key_codes():
    keys = play._KeyState(np.zeros(10, bool), {5})
    assert keys[5] and not keys[3] and not keys[10**9]


def test_a_human_mode_env_is_refused_with_a_clear_message():
    env = gym.make("envs/CartPole-v1", render_mode="human")
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        play.run_play(env, policy=lambda obs: 0, frames=1)
    env.close()


def test_fps_must_be_positive_and_help_names_the_keys(capsys):
    with pytest.raises(SystemExit) as exc:
        play.parse_args(["snake", "--fps", "0"])
    assert exc.value.code == 2 and "positive number of frames per second" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        play.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "Left/Right push" in text and "R restarts" in text and "P pauses" in text and "--fps" in text
