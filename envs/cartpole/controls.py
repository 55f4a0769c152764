"""Keyboard controls for playing CartPole in ``scripts/play.py``: hold Left/Right to push."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner in the player's terminal
import pygame  # noqa: E402


def human_action(pressed_keys: Any, env: Any) -> int:
    """Map pygame key state (indexable by ``pygame.K_*``) to an action: Left -> 0, Right -> 1.

    With neither (or both) held, the pushes alternate left/right, which nets out to no push: the
    cart-pole has no "do nothing" action.
    """
    left, right = pressed_keys[pygame.K_LEFT], pressed_keys[pygame.K_RIGHT]
    if left and not right:
        return 0
    if right and not left:
        return 1
    return getattr(env.unwrapped, "steps", 0) % 2


def key_help(env: Any) -> str:
    """The keys, for the strip under the play window."""
    return "Left/Right push the cart"
