"""Draws one snake board in the style of the TensorFlow.js book's demo: a grid, the body in blue,
the head in orange (with eyes looking where it heads), fruit in green, and a status line
"Reward=...; Fruits=..." (plus "Game Over!"). Reads the core's state only; pygame primitives only.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from envs._common import PygameCanvas
from rl import backend

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame is imported when drawing starts: no banner

_BACKGROUND = (255, 255, 255)
_GRID = (215, 215, 215)
_BODY = (40, 110, 210)
_HEAD = (245, 140, 30)
_FRUIT = (40, 170, 60)
_LEAF = (30, 110, 40)
_EYE = (20, 20, 20)
_TEXT = (20, 20, 20)
_DEAD = (200, 40, 40)
_HUD_PX = 34
_BOARD_PX = 400  # the book's canvas


class SnakeRenderer:
    """Renders board ``i`` of a :class:`~envs.snake.core.SnakeCore` to a window or an RGB array."""

    def __init__(self, height: int, width: int, render_mode: str):
        self.height, self.width = height, width
        self.cell_px = max(8, _BOARD_PX // max(height, width))
        self.canvas = PygameCanvas(width * self.cell_px, height * self.cell_px + _HUD_PX, render_mode, "Snake")

    def render(self, core: Any, i: int, episode_return: float | None, fps: float):
        """Draw board ``i``; returns uint8 (H_px, W_px, 3) in rgb_array mode, else None."""
        import pygame  # noqa: PLC0415

        to_np = backend.to_numpy
        c, w = self.cell_px, self.width
        ages = to_np(core.clock[i] - core.enter_time[i])
        length = int(core.length[i])
        body = np.flatnonzero(ages < length)
        body = body[np.argsort(ages[body])]  # head first, tail last
        fruits = np.flatnonzero(to_np(core.fruit[i]))
        dead = bool(core.dead[i])
        direction = int(core.direction[i])

        surf = self.canvas.surface()
        surf.fill(_BACKGROUND)
        top = _HUD_PX
        for r in range(self.height + 1):
            pygame.draw.line(surf, _GRID, (0, top + r * c), (w * c, top + r * c))
        for col in range(w + 1):
            pygame.draw.line(surf, _GRID, (col * c, top), (col * c, top + self.height * c))

        def center(cell: int) -> tuple[int, int]:
            return (int(cell % w) * c + c // 2, top + int(cell // w) * c + c // 2)

        for cell in fruits:
            cx, cy = center(cell)
            pygame.draw.circle(surf, _FRUIT, (cx, cy + c // 16), int(c * 0.33))
            pygame.draw.ellipse(surf, _LEAF, pygame.Rect(cx, cy - c // 2 + c // 8, c // 4, c // 6))
        # Joints between consecutive segments make the body read as one snake.
        for a, b in zip(body[1:-1], body[2:]):
            pygame.draw.line(surf, _BODY, center(a), center(b), int(c * 0.6))
        if len(body) > 1:
            pygame.draw.line(surf, _BODY, center(body[0]), center(body[1]), int(c * 0.6))
        inset = max(2, c // 10)
        for cell in body[1:]:
            side_px = c - 2 * inset
            rect = pygame.Rect(int(cell % w) * c + inset, top + int(cell // w) * c + inset, side_px, side_px)
            pygame.draw.rect(surf, _BODY, rect, border_radius=c // 4)
        if len(body):
            head = int(body[0])
            rect = pygame.Rect(head % w * c + inset // 2, top + head // w * c + inset // 2, c - inset, c - inset)
            pygame.draw.rect(surf, _HEAD, rect, border_radius=c // 3)
            hx, hy = center(head)
            dy, dx = ((-1, 0), (0, 1), (1, 0), (0, -1))[direction]
            for side in (-1, 1):  # two eyes, ahead of the centre, either side of the heading
                ex = hx + dx * c // 6 + (-dy) * side * c // 6
                ey = hy + dy * c // 6 + dx * side * c // 6
                pygame.draw.circle(surf, _EYE, (ex, ey), max(2, c // 12))

        status = f"Fruits={int(core.fruits_eaten[i])}"
        if episode_return is not None:
            status = f"Reward={episode_return:.1f}; " + status
        if dead:
            status += ". Game Over!"
        text = self.canvas.font(26).render(status, True, _DEAD if dead else _TEXT)
        surf.blit(text, (8, (_HUD_PX - text.get_height()) // 2))
        return self.canvas.present(fps)

    def close(self) -> None:
        self.canvas.close()
