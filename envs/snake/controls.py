"""Keyboard controls for playing Snake in ``scripts/play.py``: the arrow keys steer.

The game's actions are relative (straight, turn left, turn right), but people think in screen
directions, so an arrow is turned into the relative action that heads that way. The arrow
pointing backwards (a U-turn the game does not allow) and no arrow both mean "go straight".
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner in the player's terminal
import pygame  # noqa: E402

from envs.snake.core import ACTION_GO_STRAIGHT, ACTION_TURN_LEFT, ACTION_TURN_RIGHT, DOWN, LEFT, RIGHT, UP

_ARROWS = ((pygame.K_UP, UP), (pygame.K_RIGHT, RIGHT), (pygame.K_DOWN, DOWN), (pygame.K_LEFT, LEFT))


def relative_action(heading: int, wanted: int) -> int:
    """The relative action that turns a snake heading ``heading`` towards ``wanted`` (directions 0-3)."""
    turn = (wanted - heading) % 4  # clockwise quarter turns
    return {1: ACTION_TURN_RIGHT, 3: ACTION_TURN_LEFT}.get(turn, ACTION_GO_STRAIGHT)


def human_action(pressed_keys: Any, env: Any) -> int:
    """Map pygame key state (indexable by ``pygame.K_*``) to a relative action for board 0 of ``env``."""
    heading = int(env.unwrapped.core.direction[0])
    for key, direction in _ARROWS:
        if pressed_keys[key] and relative_action(heading, direction) != ACTION_GO_STRAIGHT:
            return relative_action(heading, direction)
    return ACTION_GO_STRAIGHT


def key_help(env: Any) -> str:
    """The keys, for the strip under the play window."""
    return "arrows turn the snake"
