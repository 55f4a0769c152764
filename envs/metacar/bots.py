"""MetaCar's bot cars: the original's autopilot (``BotMotionEngine``, spec §4) for B bots in each of N worlds.

A bot keeps its lane, stops while a car is in its small lidar, turns at the end of a road (right first, then
left, then a U-turn) and at junctions turns with probability 1/2 (one uniform draw per tile). Every rule,
quirks included, is the original's; ``fix_quirks`` repairs the quirks (§8.17).

The poses live with the other cars' in :class:`~envs.metacar.core.MetaCarCore` (``x, y, theta`` columns
1..B); :class:`Bots` holds the rest of the autopilot's state, (N, B) arrays:

===================  ===========================================================================
array                meaning
===================  ===========================================================================
``lidar``            (N, B, 4) 2x2 lidar ``[s00, s01, s10, s11]`` from the bot's last detection
``speed``            px/step of the last step (0.8 or 0 when stopped)
``mx, my``           the bot's tile
``turned``           it has turned on this tile (the original's ``haveTurned``)
``optional``         that turn was optional (a junction, not the end of the road)
``has_draw, draw``   the bot drew its junction coin on this tile, and the draw (``turnedRandom``)
``pending``          a manoeuvre is planned (``next_road``): ``pending_type`` 0 right, 1 left, 2 U-turn,
                     towards the centre ``target_x, target_y`` of the tile ahead along ``dir_x, dir_y``
``prev_theta``       heading before the last turn (a stopped bot abandons an optional turn)
===================  ===========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .level import TILE_PX
from .world import RoadMap

__all__ = ["BOT_SPEED_PX_PER_STEP", "Bots"]

BOT_SPEED_PX_PER_STEP = 0.8

# Heading index 0..3 = E, S, W, N and the tile offset ahead.
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, 1, 0, -1])
# Manoeuvre types 0 = right, 1 = left, 2 = U-turn: trigger distance and rotation (§4.2).
_TURN_DIST = np.array([TILE_PX + TILE_PX / 3, TILE_PX - TILE_PX / 3.5, TILE_PX])
_TURN_ANGLE = np.array([math.pi / 2, -math.pi / 2, -math.pi])


class Bots:
    """The autopilot state of B bots in N worlds (see the module docstring) and its step.

    Args:
        num_worlds: N.
        num_bots: B.
        roads: the level's :class:`~envs.metacar.world.RoadMap`.
        cars_moving: bots drive (True) or stay parked (False; they still plan and turn, as the original).
        fix_quirks: fix the original's quirks (§8.17): the stop test also sees lidar cell [0][0], an optional
            turn goes to the side that was drawn, a stopped bot keeps its turn, dead-end U-turns swap lanes in
            place instead of teleporting off the map, and parked bots do not rotate.
        xp: array module.
    """

    def __init__(self, num_worlds: int, num_bots: int, roads: RoadMap, cars_moving: bool, fix_quirks: bool,
                 xp: ModuleType):
        self.xp = xp
        self._roads = roads
        self._cars_moving = bool(cars_moving)
        self._fix = bool(fix_quirks)
        self._dx, self._dy = xp.asarray(_DX), xp.asarray(_DY)
        # Per heading: offsets of the tiles ahead, to the right, to the left and here, (4, 4).
        probe = [[h, (h + 1) % 4, (h + 3) % 4] for h in range(4)]
        self._probe_dx = xp.asarray(np.array([[*_DX[p], 0] for p in probe]))
        self._probe_dy = xp.asarray(np.array([[*_DY[p], 0] for p in probe]))
        self._turn_dist = xp.asarray(_TURN_DIST)
        self._turn_angle = xp.asarray(_TURN_ANGLE)
        n, b, f64 = num_worlds, num_bots, xp.float64
        self.lidar = xp.zeros((n, b, 4), dtype=f64)
        self.speed = xp.zeros((n, b), dtype=f64)
        self.mx = xp.zeros((n, b), dtype=xp.int64)
        self.my = xp.zeros((n, b), dtype=xp.int64)
        self.turned = xp.zeros((n, b), dtype=bool)
        self.optional = xp.zeros((n, b), dtype=bool)
        self.has_draw = xp.zeros((n, b), dtype=bool)
        self.draw = xp.zeros((n, b), dtype=f64)
        self.pending = xp.zeros((n, b), dtype=bool)
        self.pending_type = xp.zeros((n, b), dtype=xp.int64)
        self.target_x = xp.zeros((n, b), dtype=f64)
        self.target_y = xp.zeros((n, b), dtype=f64)
        self.dir_x = xp.zeros((n, b), dtype=f64)
        self.dir_y = xp.zeros((n, b), dtype=f64)
        self.prev_theta = xp.zeros((n, b), dtype=f64)

    def reset(self, worlds: Any, x: Any, y: Any, theta: Any) -> None:
        """Start worlds ``worlds`` (int (M,)) with bots at poses (M, B): nothing planned, nothing seen yet."""
        xp = self.xp
        self.speed[worlds] = 0.0
        self.mx[worlds] = xp.floor(x / TILE_PX).astype(xp.int64)
        self.my[worlds] = xp.floor(y / TILE_PX).astype(xp.int64)
        for flags in (self.turned, self.optional, self.has_draw, self.pending):
            flags[worlds] = False
        self.lidar[worlds] = 0.0
        self.prev_theta[worlds] = theta

    def step(self, x: Any, y: Any, theta: Any, tile: Any, draw: Callable[[Any], Any], active: Any):
        """Move every bot one step (§4.1-4.4); each reads only its own previous lidar.

        ``x, y, theta, tile`` (N, B) are the bots' poses and road tiles; returns the new ones. ``draw(worlds)``
        returns uniform draws (len(worlds), B) for the listed worlds, called only for worlds where a bot draws
        its junction coin this step; worlds where ``active`` (N,) is False draw nothing. Branches that no bot
        takes this step are skipped (``.any()`` checks): most steps nobody turns.
        """
        xp = self.xp
        fix = self._fix
        roads = self._roads
        lid = self.lidar == 1.0
        # Stop test: the original searches ",1" in "s00,s01,s10,s11", which misses cell [0][0].
        stop = lid[:, :, 1] | lid[:, :, 2] | lid[:, :, 3]
        if fix:
            stop = stop | lid[:, :, 0]
        elif stop.any():
            # A stopped bot abandons an optional turn it already made on this tile.
            theta = xp.where(stop & self.turned & self.optional, self.prev_theta, theta)
        v = xp.where(stop, 0.0, BOT_SPEED_PX_PER_STEP)
        run = ~stop
        if fix and not self._cars_moving:
            run = xp.zeros_like(run)
        pending0 = self.pending
        new_x, new_y, new_th = x, y, theta
        turned = self.turned

        # --- B: a manoeuvre is pending; turn when close enough to the centre of the tile ahead.
        if pending0.any():
            ptype = self.pending_type
            dist_y = xp.abs((self.target_y - y) * self.dir_y)
            dist_x = xp.abs((self.target_x - x) * self.dir_x)
            limit = self._turn_dist[ptype]
            fire = run & pending0 & (dist_y < limit) & (dist_x < limit)
            if fire.any():
                self.prev_theta = xp.where(fire, theta, self.prev_theta)
                new_th = xp.where(fire, xp.fmod(theta + self._turn_angle[ptype], 2 * math.pi), theta)
                uturn = fire & (ptype == 2)
                if uturn.any():
                    new_x, new_y = self._uturn_position(uturn, x, y, dist_x, dist_y)
                turned = turned | fire
                self.pending = pending0 & ~fire

        # --- A: no manoeuvre pending; look at the tiles ahead, right and left.
        decide = run & ~pending0
        heading = xp.rint(theta / (math.pi / 2)).astype(xp.int64) % 4
        mx, my = self.mx, self.my
        # Tiles ahead, right, left and here in one lookup: (N, B, 4).
        road = roads.lookup(roads.is_road_flat, mx[:, :, None] + self._probe_dx[heading],
                            my[:, :, None] + self._probe_dy[heading]) > 0
        ahead_road, right_road, left_road = road[:, :, 0], road[:, :, 1], road[:, :, 2]
        need = decide & ~ahead_road
        free = decide & ahead_road & ~self.turned
        draw_now = free & ~self.has_draw & active[:, None]
        if draw_now.any():  # a bot draws once per tile, so most steps need no random numbers
            worlds = xp.flatnonzero(draw_now.any(axis=1))
            drawn = self.draw[worlds]
            self.draw[worlds] = xp.where(draw_now[worlds], draw(worlds), drawn)
        goes_right = self.draw < 0.5
        optional = free & self.has_draw & xp.where(goes_right, right_road, left_road)
        turn = need | optional
        if turn.any():
            self.optional = xp.where(need, False, xp.where(optional, True, self.optional))
            if fix:
                # Try the drawn side first, so "left" draws really turn left.
                kind = xp.where(optional & ~goes_right & left_road, 1,
                                xp.where(right_road, 0, xp.where(left_road, 1, 2)))
            else:
                kind = xp.where(right_road, 0, xp.where(left_road, 1, 2))  # right is always tried first
            start = turn & (right_road | left_road | road[:, :, 3])
            dxh, dyh = self._dx[heading], self._dy[heading]
            self.pending = self.pending | start
            self.pending_type = xp.where(start, kind, self.pending_type)
            self.target_x = xp.where(start, (mx + dxh) * TILE_PX + TILE_PX / 2, self.target_x)
            self.target_y = xp.where(start, (my + dyh) * TILE_PX + TILE_PX / 2, self.target_y)
            self.dir_x = xp.where(start, dxh, self.dir_x)
            self.dir_y = xp.where(start, dyh, self.dir_y)

        # --- move, then update the tile membership (flags reset when the road tile changes).
        if self._cars_moving:
            new_x = new_x + v * xp.cos(new_th)
            new_y = new_y + v * xp.sin(new_th)
        self.speed = v
        self.mx = mx = xp.floor(new_x / TILE_PX).astype(xp.int64)
        self.my = my = xp.floor(new_y / TILE_PX).astype(xp.int64)
        new_tile = roads.road_index(mx, my)
        has_draw = self.has_draw | draw_now
        changed = new_tile != tile
        if changed.any():
            keep = ~changed
            turned = turned & keep
            self.optional = self.optional & keep
            has_draw = has_draw & keep
            self.pending = self.pending & keep
        self.turned = turned
        self.has_draw = has_draw
        return new_x, new_y, new_th, new_tile

    def _uturn_position(self, uturn, x, y, dist_x, dist_y):
        """Bot positions after a dead-end U-turn (§4.3); (N, B) arrays, only ``uturn`` entries change."""
        xp = self.xp
        if self._fix:
            # Swap lanes in place: mirror across the current tile's centre line, stay on the map.
            cx = self.mx * TILE_PX + TILE_PX / 2
            cy = self.my * TILE_PX + TILE_PX / 2
            vertical = self.dir_y != 0
            return xp.where(uturn & vertical, 2 * cx - x, x), xp.where(uturn & ~vertical, 2 * cy - y, y)
        # The original's teleport: the lane swap is right, the jump along the road is not.
        ox, oy = self.target_x - TILE_PX / 2, self.target_y - TILE_PX / 2  # tile ahead, top-left
        c1 = uturn & (dist_y != 0) & (x < self.target_x)
        c2 = uturn & (dist_y != 0) & (x > self.target_x) & ~c1
        rest = uturn & ~c1 & ~c2 & (dist_x != 0)
        c3 = rest & (y < self.target_y)
        c4 = rest & (y > self.target_y)
        new_x = xp.where(c1, ox + 45.0, xp.where(c2, ox + 15.0, xp.where(c3 | c4, ox, x)))
        new_y = xp.where(c1 | c2, oy, xp.where(c3, oy + 45.0, xp.where(c4, oy + 15.0, y)))
        return new_x, new_y
