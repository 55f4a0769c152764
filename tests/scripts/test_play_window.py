"""scripts/play.py's window: every frame on screen is composed once (picture, agent panel, key strip) and
flipped once, so the agent panel is in every frame; the panel reads as intended."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pygame
import pytest

from envs.games import GAMES
from playgrad import window
from playgrad.cli import play

ROOT = Path(__file__).resolve().parents[2]

PANEL_COLOUR = (28, 30, 38)  # the panel's background, as the test knows it (not read from play.py)


def _panel_pixels(frame: np.ndarray) -> int:
    """How many pixels of a (W, H, 3) frame have the panel's background colour."""
    return int(np.all(frame == np.array(PANEL_COLOUR), axis=-1).sum())


@pytest.mark.parametrize("game,kwargs", [("cartpole", {}), ("snake", {}), ("metacar", {"level": "level0"})])
def test_every_frame_on_screen_shows_the_agent_panel(game, kwargs, monkeypatch):
    # Before: the env's render flipped the display (and waited out the frame time), then play.py drew the panel
    # and flipped again; the next render wiped it. Screenshots showed the panel in 1 frame of 12.
    env, _ = play.make_env(game, **kwargs)
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 1e6}
    shown = []
    real_flip = pygame.display.flip

    def recording_flip():
        shown.append(pygame.surfarray.array3d(pygame.display.get_surface()).copy())
        real_flip()

    monkeypatch.setattr(pygame.display, "flip", recording_flip)
    n = env.action_space.n
    frames = 40
    played = play.run_play(env, policy=lambda obs: 0, frames=frames, seed=0, end_pause_s=0,
                           overlay=lambda obs: {"q_values": np.linspace(-1.0, 1.0, n)},
                           action_names=GAMES[game].action_names)
    env.close()
    assert played.frames == frames
    flips = len(shown)
    assert flips == frames, f"{flips} flips for {frames} frames: some frames went on screen half drawn"
    # The panel is at least 150 x 40 px of its background colour in every frame shown (text and bars aside).
    counts = [_panel_pixels(frame) for frame in shown]
    missing = [i for i, c in enumerate(counts) if c < 150 * 40]
    assert not missing, f"{game}: no panel in frames {missing} (panel pixels per frame: {counts})"


def test_the_panel_sits_beside_the_world_not_over_it():
    # MetaCar level0's world is 300 px wide; the 150-px panel used to cover half of it.
    env, _ = play.make_env("metacar", level="level0")
    env.reset(seed=0)
    world = env.render()
    win = window.PlayWindow("metacar", "R restart", panel=True, action_space=env.action_space)
    try:
        win.show(world, fps=1e6, explanation={"q_values": np.array([1.0, 2.0, 3.0])}, action=2,
                  names=("up", "left", "right"))
        shown = pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)
    finally:
        win.close()
        env.close()
    h, w = world.shape[:2]
    assert shown.shape[1] >= w + 200 and shown.shape[0] > h  # wider by the panel, taller by the key strip
    np.testing.assert_array_equal(shown[:h, :w], world)  # the whole picture, untouched


def _draw(explanation, action, names=(), action_space=None, size=(window.PANEL_WIDTH_PX, 200)):
    pygame.font.init()
    surface = pygame.Surface(size)
    window.draw_panel(surface, explanation, action, names, action_space)
    return pygame.surfarray.array3d(surface).transpose(1, 0, 2)


def _bar_lengths(picture, rows=3):
    """Lengths (px) of the value bars: the bar colour's run on each row band of the panel's right part."""
    track = np.all(picture == np.array(window._BAR_TRACK), axis=-1)
    bar = np.all(picture == np.array(window._BAR), axis=-1) | np.all(picture == np.array(window._CHOSEN), axis=-1)
    rows = track.any(axis=1)  # the bar rows: each has some grey track right of its bar
    left = int(np.flatnonzero((track | bar)[rows].any(axis=0)).min())  # where the bars start
    right = bar[:, left:] & bar[:, left:left + 1]  # rows whose bar starts there, the full-length one included
    return sorted({int(right[y].sum()) for y in range(right.shape[0]) if right[y].any()})


def test_close_q_values_get_visibly_different_bars():
    # Bars scaled to the largest |Q| made 96.2 / 96.3 / 97.6 three equal bars; min..max scaling tells them apart.
    lengths = _bar_lengths(_draw({"q_values": np.array([96.2, 96.3, 97.6])}, 2, ("a", "b", "c")))
    assert len(lengths) == 3 and lengths[-1] - lengths[0] > 40, lengths


def test_probabilities_print_without_a_plus_and_the_chosen_row_is_marked():
    picture = _draw({"probs": np.array([0.25, 0.75])}, 1, ("left", "right"))
    chosen = np.all(picture == np.array(window._CHOSEN), axis=-1)
    rows_with_chosen = np.flatnonzero(chosen.any(axis=1))
    assert rows_with_chosen.size and (rows_with_chosen.max() - rows_with_chosen.min()) < 30  # one row, marked
    assert window.format_number(0.75, 2) == "0.75"  # the panel's number format: no "+" on a probability


def test_continuous_actions_get_signed_bars_and_the_critics_q():
    import gymnasium as gym

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    picture = _draw({"q_value": np.array([3.5])}, np.array([0.5, -0.5], np.float32), ("throttle", "steering"), space)
    positive = np.all(picture == np.array(window._BAR), axis=-1)
    negative = np.all(picture == np.array(window._BAR_NEG), axis=-1)
    assert positive.any() and negative.any()
    # The positive bar starts at the centre line and goes right; the negative one ends there.
    pos_cols, neg_cols = np.flatnonzero(positive.any(axis=0)), np.flatnonzero(negative.any(axis=0))
    assert neg_cols.max() < pos_cols.min() + 2
    assert abs(pos_cols.size - neg_cols.size) <= 2  # |0.5| both ways: equal lengths
    blank = _draw({}, np.array([0.0, 0.0], np.float32), ("throttle", "steering"), space)
    assert not np.all(blank == np.array(window._BAR), axis=-1).any()


def test_a_human_window_waits_for_the_first_key_and_shows_the_keys():
    env, human_action = play.make_env("snake")
    played = play.run_play(env, human_action=human_action, frames=20, seed=0, end_pause_s=0, wait_for_key=True,
                           help_text=window.key_help("snake", env, agent=False), fps=1e6)
    assert played.steps == 0  # no key, no step
    pygame.display.init()
    pygame.display.set_mode((10, 10))  # a window to queue the key on (run_play opens its own)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT))
    played = play.run_play(env, human_action=human_action, frames=3, seed=0, end_pause_s=0, wait_for_key=True,
                           fps=1e6)
    assert played.steps >= 1  # a key started the game
    assert "arrows" in window.key_help("snake", env, agent=False) and "Esc quit" in window.key_help("snake", env, False)
    env.close()


def test_human_snake_never_starts_facing_the_wall():
    import gymnasium as gym

    heads = []
    for seed in range(200):
        env = gym.make("envs/Snake-v0", safe_start=True)
        env.reset(seed=seed)
        heads.append(int(env.unwrapped.core.head_x[0]))
    assert max(heads) < 8 and min(heads) == 1, sorted(set(heads))  # 9 columns; every other column is used
    book = gym.make("envs/Snake-v0")  # the learning env keeps the book's starts, the wall column included
    assert any((book.reset(seed=s), int(book.unwrapped.core.head_x[0]))[1] == 8 for s in range(200))


def test_cached_fonts_do_not_outlive_pygame_quit():
    # A Font kept across pygame.quit() is a dangling handle: the next window's panel segfaulted when another test
    # (an env renderer, the level editor) had quit pygame in between. Run in a child: a segfault must not take
    # the test process with it.
    code = ("import os; os.environ['SDL_VIDEODRIVER'] = 'dummy'; import pygame; from playgrad import window; "
            "pygame.init(); window._font(15); pygame.quit(); pygame.init(); print(window._font(15).size('hello'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-500:]}"
