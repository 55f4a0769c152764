"""pygame drawing of a MetaCar world; it only reads the core's state, never changes it.

Everything is drawn by our own code (no textures are shipped or downloaded), in the original's order
(§7 "Rendering order"): grass, light-grey sidewalks 90x90 px under each road tile, road tiles with their
markings, decorations, bots, the agent's lidar (grey translucent area, white points that turn opaque when
they see a car), the agent, then a HUD line (step, reward, and under ControlMotion the speed; BasicMotion zeroes
the speed after every step, so "speed 0.00" there read as a stopped car and is left out).

``MetaCarRenderer(core, mode="human" | "rgb_array")``; ``render(world, step, reward)`` draws world ``world``
and shows it (human) or returns an (H, W, 3) uint8 array (rgb_array). Works with ``SDL_VIDEODRIVER=dummy``.
The drawing helpers (:func:`draw_tile`, :func:`draw_car`, :func:`draw_decoration`) are shared with the level
editor.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .core import CAR_LENGTH_PX, CAR_WIDTH_PX, LIDAR_POINT_PX, MetaCarCore, lidar_lateral_shift_px
from .level import TILE_PX

__all__ = ["MetaCarRenderer", "draw_background", "draw_car", "draw_decoration", "draw_tile", "import_pygame"]

GRASS = (0x80, 0xBF, 0x3E)
SIDEWALK = (0xC8, 0xC8, 0xC4)
ROAD = (0x48, 0x48, 0x48)
MARKING = (0xF0, 0xF0, 0xF0)
AGENT_COLOUR = (0xD0, 0x30, 0x30)
BOT_COLOUR = (0xF4, 0xF4, 0xF0)
LIDAR_AREA = (0x51, 0x51, 0x51, 77)  # alpha 0.3
LIDAR_POINT = (255, 255, 255, 77)
LIDAR_POINT_HIT = (255, 255, 255, 255)
HUD_HEIGHT_PX = 20

# Openings of each road tile (N, E, S, W); corners also get a rounded outer corner.
OPENINGS = {
    "↕": "NS", "↔": "EW", "↟": "NS", "↠": "EW", "↱": "ES", "↰": "WS", "↲": "WN", "↳": "NE",
    "↤": "WNS", "↦": "ENS", "↥": "WEN", "↧": "WES",
}
_DIRS = {"N": (0, -1), "S": (0, 1), "E": (1, 0), "W": (-1, 0)}


def import_pygame():
    """Import pygame quietly (no banner) and return it."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


def draw_tile(pg: Any, surface: Any, char: str, left: float, top: float) -> None:
    """Draw road tile ``char`` with its top-left corner at ``(left, top)`` px."""
    rect = pg.Rect(int(left), int(top), TILE_PX, TILE_PX)
    pg.draw.rect(surface, ROAD, rect)
    openings = OPENINGS[char]
    cx, cy = rect.centerx, rect.centery
    if len(openings) == 2 and openings not in ("NS", "EW"):
        # A corner: the corner opposite both openings is rounded grass (still road for physics).
        ox = -1 if "W" not in openings else 1
        oy = -1 if "N" not in openings else 1
        corner = (rect.left if ox < 0 else rect.right, rect.top if oy < 0 else rect.bottom)
        r = 24
        sq = pg.Rect(0, 0, r, r)
        sq.topleft = (corner[0] if ox < 0 else corner[0] - r, corner[1] if oy < 0 else corner[1] - r)
        pg.draw.rect(surface, GRASS, sq)
        pg.draw.circle(surface, ROAD, (corner[0] - ox * r, corner[1] - oy * r), r)
    # Dashed centre lines from the centre towards each opening.
    for d in openings:
        dx, dy = _DIRS[d]
        for k in range(3, 30, 10):
            a = (cx + dx * k, cy + dy * k)
            b = (cx + dx * min(k + 5, 30), cy + dy * min(k + 5, 30))
            pg.draw.line(surface, MARKING, a, b, 2)
    if char in ("↟", "↠"):  # zebra crossing across the road
        for k in range(-24, 25, 8):
            if char == "↟":
                pg.draw.rect(surface, MARKING, pg.Rect(cx + k - 2, cy - 8, 4, 16))
            else:
                pg.draw.rect(surface, MARKING, pg.Rect(cx - 8, cy + k - 2, 16, 4))


def draw_decoration(pg: Any, surface: Any, kind: str, x: float, y: float) -> None:
    """Draw a decoration with its top-left corner at ``(x, y)`` px, at the original's texture size."""
    x, y = int(round(x)), int(round(y))
    if kind == "tree":
        pg.draw.circle(surface, (0x2E, 0x7D, 0x32), (x + 24, y + 23), 22)
        pg.draw.circle(surface, (0x43, 0xA0, 0x47), (x + 19, y + 18), 12)
    elif kind == "bench":
        pg.draw.rect(surface, (0x8D, 0x5A, 0x2B), pg.Rect(x, y, 31, 16), border_radius=3)
        pg.draw.line(surface, (0x5D, 0x3A, 0x1B), (x + 2, y + 8), (x + 29, y + 8), 2)
    else:
        w, h, roof = {"house": (88, 62, (0xB0, 0x4A, 0x3A)), "house2": (60, 85, (0x5A, 0x6F, 0x9A)),
                      "house3": (89, 67, (0x8A, 0x7A, 0x5A))}[kind]
        pg.draw.rect(surface, roof, pg.Rect(x, y, w, h), border_radius=4)
        pg.draw.line(surface, (0x40, 0x30, 0x28), (x + 4, y + h // 2), (x + w - 4, y + h // 2), 2)


def _car_frame_polygon(x: float, y: float, theta: float, x0: float, x1: float, y0: float, y1: float):
    c, s = math.cos(theta), math.sin(theta)
    return [(x + px * c - py * s, y + px * s + py * c) for px, py in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def draw_car(pg: Any, surface: Any, x: float, y: float, theta: float, colour: tuple) -> None:
    """Draw a 33.6 x 19.2 px car centred at ``(x, y)`` heading ``theta`` (rad, 0 = East, clockwise)."""
    hl, hw = CAR_LENGTH_PX / 2, CAR_WIDTH_PX / 2
    pg.draw.polygon(surface, colour, _car_frame_polygon(x, y, theta, -hl, hl, -hw, hw))
    pg.draw.polygon(surface, (0x20, 0x20, 0x20), _car_frame_polygon(x, y, theta, -hl, hl, -hw, hw), 1)
    # Windscreen towards the front, so the heading is visible.
    pg.draw.polygon(surface, (0x30, 0x40, 0x58), _car_frame_polygon(x, y, theta, 3, 9, -hw + 3, hw - 3))


def draw_background(pg: Any, surface: Any, grid: list[list[Any]], decorations: dict) -> None:
    """Grass, sidewalks, road tiles and decorations of a level onto ``surface``."""
    surface.fill(GRASS)
    for my, row in enumerate(grid):
        for mx, char in enumerate(row):
            if char != 0:
                pg.draw.rect(surface, SIDEWALK, pg.Rect(mx * TILE_PX - 15, my * TILE_PX - 15, 90, 90),
                             border_radius=14)
    for my, row in enumerate(grid):
        for mx, char in enumerate(row):
            if char != 0:
                draw_tile(pg, surface, char, mx * TILE_PX, my * TILE_PX)
    for kind, points in decorations.items():
        for x, y in points:
            draw_decoration(pg, surface, kind, x, y)


class MetaCarRenderer:
    """Draws world ``w`` of a :class:`MetaCarCore`; ``mode`` is ``"human"`` (a window) or ``"rgb_array"``."""

    def __init__(self, core: MetaCarCore, mode: str = "rgb_array", fps: float = 60):
        if mode not in ("human", "rgb_array"):
            raise ValueError(f"mode must be 'human' or 'rgb_array', got {mode!r}")
        self.pg = pg = import_pygame()
        self.core = core
        self.mode = mode
        self.fps = fps
        pg.font.init()  # display only in human mode, never audio
        level = core.level
        self.size = (level.width_px, level.height_px + HUD_HEIGHT_PX)
        self.background = pg.Surface((level.width_px, level.height_px))
        draw_background(pg, self.background, level.grid, level.decorations)
        self.canvas = pg.Surface(self.size)
        self.overlay = pg.Surface((level.width_px, level.height_px), pg.SRCALPHA)
        self.font = pg.font.Font(None, 20)
        self.window = None
        self.clock = None
        self.lidar_rects = core.lidar_rects()
        opts = core.lidar_options
        shift = lidar_lateral_shift_px(opts["pts"], opts["height"])
        self.lidar_area = (-CAR_LENGTH_PX / 2 + opts["pos"] * CAR_LENGTH_PX,
                           -CAR_LENGTH_PX / 2 + opts["pos"] * CAR_LENGTH_PX + CAR_LENGTH_PX * opts["width"],
                           -CAR_WIDTH_PX * opts["height"] / 2 + shift, CAR_WIDTH_PX * opts["height"] / 2 + shift)

    def hud_text(self, world: int = 0, step: int = 0, reward: float = 0.0) -> str:
        """The HUD line under the map: step and reward, plus the speed under ControlMotion.

        BasicMotion moves the car by its action alone and zeroes ``core.speed`` after each step (the original's
        behaviour, kept in the observation), so its speed would always read 0.00 while the car moves.
        """
        from rl import backend

        hud = f"step {step}   reward {reward:+.2f}"
        if not self.core.discrete:
            hud += f"   speed {float(backend.to_numpy(self.core.speed[world])):.2f} px/step"
        return hud

    def render(self, world: int = 0, step: int = 0, reward: float = 0.0) -> np.ndarray | None:
        """Draw world ``world``; return an (H, W, 3) uint8 frame in rgb_array mode, else None."""
        from rl import backend

        pg = self.pg
        core = self.core
        xs = backend.to_numpy(core.x[world])
        ys = backend.to_numpy(core.y[world])
        ths = backend.to_numpy(core.theta[world])
        lidar = backend.to_numpy(core.agent_lidar[world])
        canvas = self.canvas
        canvas.fill((0x20, 0x20, 0x20))
        canvas.blit(self.background, (0, 0))
        for k in range(1, core.num_cars):
            draw_car(pg, canvas, xs[k], ys[k], ths[k], BOT_COLOUR)
        # Lidar on a translucent overlay, under the agent (as the original).
        ov = self.overlay
        ov.fill((0, 0, 0, 0))
        x, y, th = xs[0], ys[0], ths[0]
        pg.draw.polygon(ov, LIDAR_AREA, _car_frame_polygon(x, y, th, *self.lidar_area))
        for (x0, _x1, y0, _y1), value in zip(self.lidar_rects, lidar):
            colour = LIDAR_POINT_HIT if value == 1 else LIDAR_POINT
            pts = _car_frame_polygon(x, y, th, x0, x0 + LIDAR_POINT_PX, y0, y0 + LIDAR_POINT_PX)
            pg.draw.polygon(ov, colour, pts)
        canvas.blit(ov, (0, 0))
        draw_car(pg, canvas, x, y, th, AGENT_COLOUR)
        hud = self.hud_text(world, step, reward)
        canvas.blit(self.font.render(hud, True, (0xEE, 0xEE, 0xEE)), (6, self.size[1] - HUD_HEIGHT_PX + 3))
        if self.mode == "rgb_array":
            return np.ascontiguousarray(pg.surfarray.array3d(canvas).transpose(1, 0, 2))
        if self.window is None:
            pg.display.init()
            self.window = pg.display.set_mode(self.size)
            pg.display.set_caption(f"MetaCar - {core.level.name}")
            self.clock = pg.time.Clock()
        self.window.blit(canvas, (0, 0))
        pg.event.pump()
        pg.display.flip()
        self.clock.tick(self.fps)
        return None

    def close(self) -> None:
        if self.window is not None:
            self.pg.display.quit()
            self.window = None
