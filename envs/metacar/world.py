"""A MetaCar level's road map as lookup tables, and where cars start on it (spec §1.2, §5.5).

:class:`RoadMap` holds what never changes during a run: which tiles are road, their indices and orientations,
the cars' start tiles and lanes from the level file. It places cars on tiles the way the original's
``setCarOnRoad`` does, builds the start of an episode and shuffles cars onto random empty tiles. Poses are
arrays (M, K) over M worlds and K cars, car 0 the agent and cars 1..B the bots in file order.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from envs._common import WorldRNG

from .level import TILE_PX, Level, quantised_orientation

__all__ = ["LANE_OFFSET_PX", "RoadMap", "place_on_tile"]

LANE_OFFSET_PX = 15  # lanes run 15 px either side of a tile's centre line


def place_on_tile(xp: ModuleType, tile_mx: Any, tile_my: Any, orientation: Any, line: Any):
    """Pose of a car put on a road tile in a lane (the original's ``setCarOnRoad``, §1.2).

    All arguments are arrays of one shape (any): tile column/row, the tile's quantised orientation (units
    of pi) and the lane (0 or 1). Returns ``(x, y, theta)``. Lanes sit 15 px either side of the centre
    line with right-hand traffic; the offset is rounded half-up like JS ``Math.round``.
    """
    th = -orientation * math.pi
    off_x = xp.floor(-LANE_OFFSET_PX * xp.sin(th) + 0.5)
    off_y = xp.floor(LANE_OFFSET_PX * xp.cos(th) + 0.5)
    sign = 1 - 2 * line  # line 0 -> +1, line 1 -> -1
    x = tile_mx * TILE_PX + TILE_PX / 2 + sign * off_x
    y = tile_my * TILE_PX + TILE_PX / 2 + sign * off_y
    theta = th + line * math.pi
    return x, y, theta


class RoadMap:
    """The road tiles of a level with an agent, as tables on the array module ``xp``.

    ``road_grid`` is int (rows + 2, cols + 2): 1 for a road tile, padded with a one-tile grass border so that
    lookups just outside the map need no bounds checks. Road tiles are numbered in row-major order
    (:meth:`~envs.metacar.level.Level.road_tiles`); ``tile_mx, tile_my, tile_orient`` (T,) describe them.
    """

    def __init__(self, level: Level, xp: ModuleType):
        self.xp = xp
        self.cols, self.rows = level.cols, level.rows
        roads = level.road_tiles()
        self.num_road_tiles = len(roads)
        self._pad_w = self.cols + 2
        self.road_grid = np.zeros((self.rows + 2, self._pad_w), dtype=np.int64)
        road_index = np.full((self.rows + 2, self._pad_w), -1, dtype=np.int64)
        for i, (mx, my) in enumerate(roads):
            self.road_grid[my + 1, mx + 1] = 1
            road_index[my + 1, mx + 1] = i
        self.is_road_flat = xp.asarray(self.road_grid.ravel())
        self._road_index_flat = xp.asarray(road_index.ravel())
        self.tile_mx = xp.asarray(np.array([t[0] for t in roads], dtype=np.float64))
        self.tile_my = xp.asarray(np.array([t[1] for t in roads], dtype=np.float64))
        self.tile_orient = xp.asarray(np.array([quantised_orientation(level.grid[my][mx]) for mx, my in roads]))
        specs = [*level.cars, level.agent]  # creation order of the original: bots, then the agent
        self._start_tile = [road_index[c.my + 1, c.mx + 1] for c in specs]
        self._start_line = [c.line for c in specs]
        # Lane flipping at load looks at the first car already on the tile (§1.2 step 2).
        self._first_on_tile = [next((j for j in range(i) if self._start_tile[j] == self._start_tile[i]), -1)
                               for i in range(len(specs))]
        self.num_cars = len(specs)

    def lookup(self, table: Any, mx: Any, my: Any) -> Any:
        """``table`` (a padded flat grid) at integer tile coordinates of any shape; outside = the border."""
        xp = self.xp
        col = xp.minimum(xp.maximum(mx, -1), self.cols) + 1
        row = xp.minimum(xp.maximum(my, -1), self.rows) + 1
        return table[(row * self._pad_w + col).astype(xp.int64)]

    def road_index(self, mx: Any, my: Any) -> Any:
        """Road tile index under tile coordinates (any shape), -1 for grass or outside the map."""
        return self.lookup(self._road_index_flat, mx, my)

    def place(self, tile: Any, lane: Any) -> tuple[Any, Any, Any]:
        """Poses ``(x, y, theta)`` of cars put on road tiles ``tile`` in lanes ``lane`` (int arrays, one shape)."""
        return place_on_tile(self.xp, self.tile_mx[tile], self.tile_my[tile], self.tile_orient[tile], lane)

    def start(self, rng: WorldRNG, worlds: Any) -> tuple[Any, Any, Any, Any]:
        """The level file's start for ``worlds`` (int (M,)): ``(x, y, theta, tile)``, each (M, K).

        As at the original's ``load``: cars are placed in creation order (bots, then the agent), a missing lane
        is drawn (one draw per such car), and a car whose tile already holds a car in the same lane (the first
        one on it) takes the other lane.
        """
        xp = self.xp
        m = int(worlds.shape[0])
        lines, tiles = [], []
        for i in range(self.num_cars):
            if self._start_line[i] is None:
                line = (rng.uniform(worlds, 1)[0] < 0.5).astype(xp.int64)
            else:
                line = xp.full(m, self._start_line[i], dtype=xp.int64)
            first = self._first_on_tile[i]
            if first >= 0:
                line = xp.where(lines[first] == line, 1 - line, line)
            lines.append(line)
            tiles.append(xp.full(m, self._start_tile[i], dtype=xp.int64))
        order = [self.num_cars - 1, *range(self.num_cars - 1)]  # car slots: the agent (created last) is slot 0
        tile = xp.stack([tiles[j] for j in order], axis=1)
        x, y, th = self.place(tile, xp.stack([lines[j] for j in order], axis=1))
        return x, y, th, tile

    def shuffle(self, rng: WorldRNG, worlds: Any, x: Any, y: Any, th: Any, tile: Any, all_cars: bool):
        """The original's ``shuffle`` (§5.5) for ``worlds``; poses and tiles (M, K) in, updated copies out.

        The agent, then (``all_cars``) every bot and the agent again, each moves to a road tile drawn uniformly
        among those with no car at that moment (a car's own tile is not empty) in a random lane (T + 1 draws per
        placement); a world with no empty tile leaves the car where it is.
        """
        xp = self.xp
        m = x.shape[0]
        tiles_range = xp.arange(self.num_road_tiles)
        occupancy = ((tile[:, :, None] == tiles_range[None, None, :]) & (tile[:, :, None] >= 0)).sum(axis=1)
        order = [0] + ([*range(1, self.num_cars), 0] if all_cars else [])  # agent, then bots..., agent
        x, y, th, tile = x.copy(), y.copy(), th.copy(), tile.copy()
        rows = xp.arange(m)
        for car in order:
            u = rng.uniform(worlds, self.num_road_tiles).T  # (M, T)
            u = xp.where(occupancy > 0, 2.0, u)
            new_tile = xp.argmin(u, axis=1)
            ok = u[rows, new_tile] < 1.5
            lane = (rng.uniform(worlds, 1)[0] < 0.5).astype(xp.int64)
            nx, ny, nth = self.place(new_tile, lane)
            old = tile[:, car]
            occupancy = occupancy - ((tiles_range[None, :] == old[:, None]) & ok[:, None])
            occupancy = occupancy + ((tiles_range[None, :] == new_tile[:, None]) & ok[:, None])
            x[:, car] = xp.where(ok, nx, x[:, car])
            y[:, car] = xp.where(ok, ny, y[:, car])
            th[:, car] = xp.where(ok, nth, th[:, car])
            tile[:, car] = xp.where(ok, new_tile, old)
        return x, y, th, tile
