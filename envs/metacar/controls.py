"""Keyboard driving with the original's arrow-key controls (§3.1, §3.2), for ``scripts/play.py``.

BasicMotion: UP held = UP (0), DOWN held = DOWN (3), LEFT/RIGHT turn **once per key press** (1/2; holding
the key does not keep turning, as the original), nothing pressed = WAIT (4). A fresh turn press wins over a
held UP/DOWN for that frame (one action per step; the original's free-running mode turns and moves in the
same frame).

ControlMotion: UP/DOWN hold throttle +1/-1, LEFT/RIGHT hold steering -0.7/+0.7 (negative = left).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .render import import_pygame

__all__ = ["STEERING", "human_action", "key_help"]

STEERING = 0.7  # the original's keyboard steering magnitude

# Previous LEFT/RIGHT state per env, for press edges (weak, so envs are not kept alive).
_previous: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def human_action(pressed_keys: Any, env: Any) -> Any:
    """Map pygame key state (indexable by ``pygame.K_*``, e.g. ``pygame.key.get_pressed()``) to an action.

    Returns an int in 0..4 for BasicMotion or a float32 array ``[throttle, steering]`` for ControlMotion.
    """
    pg = import_pygame()
    up, down = bool(pressed_keys[pg.K_UP]), bool(pressed_keys[pg.K_DOWN])
    left, right = bool(pressed_keys[pg.K_LEFT]), bool(pressed_keys[pg.K_RIGHT])
    base = env.unwrapped
    if not base.core.discrete:
        throttle = float(up) - float(down)
        steering = STEERING * (float(right) - float(left))
        return np.array([throttle, steering], dtype=np.float32)
    was_left, was_right = _previous.get(base, (False, False))
    _previous[base] = (left, right)
    if left and not was_left:
        return 1
    if right and not was_right:
        return 2
    if up:
        return 0
    if down:
        return 3
    return 4


def key_help(env: Any) -> str:
    """The keys of ``env``'s motion, for the strip under the play window."""
    if env.unwrapped.core.discrete:
        return "Up drive   Down back   Left/Right turn   no key: wait"
    return "Up/Down throttle   Left/Right steer"
