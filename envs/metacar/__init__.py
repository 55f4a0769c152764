"""MetaCar: a faithful Gymnasium port of Thibault Neveu's MetaCar (a self-driving car in a small city).

``core.py`` holds the batched array world, ``env.py`` the single-world Gymnasium env, ``vector.py`` the
native vector env, ``render.py`` the pygame renderer, ``controls.py`` the keyboard mapping, ``level.py``
the level format, ``editor.py`` the level editor's logic and ``levels/`` the original's five levels.
"""

from .level import LEVEL_NAMES, Level, LevelError, load_level, save_level

__all__ = ["LEVEL_NAMES", "Level", "LevelError", "load_level", "save_level"]
