"""Draws one cart-pole in the style of the TensorFlow.js book's page: a track, a cart on it and a
pole on the cart, with the step count and return in a corner. Reads state only; draws with pygame
primitives (no image files)."""

from __future__ import annotations

import math
import os

from envs._common import PygameCanvas
from envs.cartpole.core import HALF_POLE_LENGTH_M, X_THRESHOLD_M

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame is imported when drawing starts: no banner

WIDTH_PX, HEIGHT_PX = 600, 240
_BACKGROUND = (250, 250, 250)
_TRACK = (60, 60, 60)
_LIMIT = (200, 60, 60)
_CART = (40, 90, 160)
_WHEEL = (30, 30, 30)
_POLE = (202, 152, 101)
_AXLE = (129, 132, 203)
_TEXT = (20, 20, 20)


class CartPoleRenderer:
    """Renders ``(x_m, theta_rad)`` to a window (``"human"``) or an RGB array (``"rgb_array"``)."""

    def __init__(self, render_mode: str, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX):
        self.canvas = PygameCanvas(width_px, height_px, render_mode, "CartPole")
        # The track spans the termination limits with a margin, as the world is drawn to scale.
        self.px_per_m = width_px / (2 * X_THRESHOLD_M * 1.25)
        self.track_y_px = int(height_px * 0.78)

    def render(self, x_m: float, theta_rad: float, steps: int, episode_return: float | None, fps: float):
        """Draw one frame; returns uint8 (height_px, width_px, 3) in rgb_array mode, else None."""
        import pygame  # noqa: PLC0415

        surf = self.canvas.surface()
        w, h = surf.get_size()
        surf.fill(_BACKGROUND)
        mid_px = w / 2
        scale = self.px_per_m
        ty = self.track_y_px
        pygame.draw.line(surf, _TRACK, (0, ty), (w, ty), 3)
        for side in (-1, 1):  # where the episode ends
            lx = int(mid_px + side * X_THRESHOLD_M * scale)
            pygame.draw.line(surf, _LIMIT, (lx, ty - 12), (lx, ty + 12), 3)

        cart_w, cart_h = 0.5 * scale, 0.3 * scale
        cx = mid_px + x_m * scale
        cart = pygame.Rect(0, 0, int(cart_w), int(cart_h))
        cart.midbottom = (int(cx), ty - 6)
        pygame.draw.rect(surf, _CART, cart, border_radius=4)
        for wx in (cart.left + cart_w * 0.22, cart.right - cart_w * 0.22):
            pygame.draw.circle(surf, _WHEEL, (int(wx), ty - 6), 6)

        pivot = (cx, cart.top + 2)
        pole_len_px = 2 * HALF_POLE_LENGTH_M * scale
        half_w = max(3.0, 0.025 * scale)
        # The pole as a rotated rectangle (theta is measured from upright, positive clockwise on screen).
        ux, uy = math.sin(theta_rad), -math.cos(theta_rad)  # along the pole
        nx, ny = -uy, ux  # across it
        corners = [
            (pivot[0] + nx * sw * half_w + ux * along, pivot[1] + ny * sw * half_w + uy * along)
            for sw, along in ((-1, 0.0), (1, 0.0), (1, pole_len_px), (-1, pole_len_px))
        ]
        pygame.draw.polygon(surf, _POLE, corners)
        pygame.draw.aalines(surf, _POLE, True, corners)  # smooth edges: a nearly upright pole shows no stair-steps
        pygame.draw.circle(surf, _AXLE, (int(pivot[0]), int(pivot[1])), 5)

        hud = f"steps {steps}" if episode_return is None else f"steps {steps}   return {episode_return:g}"
        text = self.canvas.font(22).render(hud, True, _TEXT)
        surf.blit(text, (8, 8))
        return self.canvas.present(fps)

    def close(self) -> None:
        self.canvas.close()
