"""MetaCar's car bodies, lidars and captors, and the detection pass that reads them (spec §2.2-§2.3).

Every overlap test of the original is between the axis-aligned boxes Pixi 4.7's ``getBounds()`` returns, with
strict inequalities (touching edges do not count). A port that computes the same boxes in exact (or merely
different float64) arithmetic disagrees with the original whenever two edges meet, which BasicMotion's
whole-pixel moves next to bots at 0.8 px/step make common. So the boxes here are computed the way Pixi
computes them, operation for operation:

* **Car bodies** (sprites): Pixi writes a sprite's four corners into ``vertexData``, a ``Float32Array``, and
  takes the box from those. A car box edge is therefore the float32 rounding of
  ``a*w + c*h + x`` with ``a = 0.8 cos(theta)``, ``c = -0.8 sin(theta)``, ``w = +-21``, ``h = +-12``
  (the 42x24 texture, anchor 0.5, scale 0.8). Example: a bot's edge at x = 398.8 is 398.79998779 in the
  original, so a lidar point starting at 398.8 overlaps it there; in exact arithmetic they only touch.
* **Lidar points and captors** (``Graphics`` children of the car's lidar container): their boxes stay float64
  but go through the container's matrix (rotation, position, pivot) and the child's offset, in Pixi's order of
  operations, down to the last bit (a point's top edge at 239.99999999999997, not 240, touches the road
  tile above it).
* A box is compared as Pixi's ``Rectangle``: ``x + width`` with ``width = maxX - minX``, not ``maxX``
  (they can differ in the last bit).

Both were checked step for step against the original JavaScript running in headless Chromium
(``tests/envs/test_metacar_parity.py``).

Car frame (used by :func:`lidar_points`, :func:`captor_rects` and the renderer): origin at the car's centre,
+X forward, +Y to the car's right; world = ``(x, y) + R(theta) (X, Y)``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .level import TILE_PX

__all__ = [
    "BOT_LIDAR",
    "CAPTORS",
    "CAR_LENGTH_PX",
    "CAR_WIDTH_PX",
    "DEFAULT_LIDAR",
    "LIDAR_POINT_PX",
    "Detector",
    "SensorLayout",
    "captor_rects",
    "car_boxes",
    "check_lidar",
    "lidar_lateral_shift_px",
    "lidar_points",
    "sensor_layout",
]

_SPRITE_W, _SPRITE_H, _SPRITE_SCALE = 42, 24, 0.8  # car.png / car_agent.png, drawn at scale 0.8
CAR_LENGTH_PX = _SPRITE_SCALE * _SPRITE_W  # 33.6, along the heading (Pixi's sprite.width: scale * width)
CAR_WIDTH_PX = _SPRITE_SCALE * _SPRITE_H  # 19.2, across the heading
LIDAR_POINT_PX = 5.0  # each lidar point is a 5x5 px square
_CAPTOR_PX = 3.0  # each captor is a 3x3 px square

DEFAULT_LIDAR = {"pts": 5, "width": 4.0, "height": 5.0, "pos": 0.0}
BOT_LIDAR = {"pts": 2, "width": 0.5, "height": 1.0, "pos": 1.0}

# The agent's four collision/on-road captors in the car frame (X0, X1, Y0, Y1) for every lidar the original's
# demos use (§2.2); :func:`captor_rects` derives them from the original's drawing code for any lidar.
CAPTORS = np.array([
    [11.8, 14.8, 0.0, 3.0],  # front
    [-17.8, -14.8, -2.0, 1.0],  # back
    [0.0, 3.0, -4.6, -1.6],  # left
    [0.0, 3.0, 1.6, 4.6],  # right
])


class SensorLayout(NamedTuple):
    """A lidar container as the original builds it (``Car.createLidar``), in the container's local frame.

    ``x0, x1, y0, y1`` (R,) are the children's local rectangles (the ``drawRect`` arguments), ``child_x`` (R,)
    their ``x`` offset (captors move by ``-pos * W``), rows ``0..pts*pts-1`` the lidar points row by row
    (row 0 farthest ahead, column 0 the car's left) and the last four the captors front, back, left, right.
    ``pivot_x, pivot_y``: the container's pivot (the car's centre sits there).
    """

    x0: np.ndarray
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    child_x: np.ndarray
    pivot_x: float
    pivot_y: float


def sensor_layout(pts: int, width: float, height: float, pos: float) -> SensorLayout:
    """The original's lidar container for ``{pts, width, height, pos}``: points, then the four captors."""
    w, h = CAR_LENGTH_PX, CAR_WIDTH_PX
    area_w, area_h = w * width, h * height  # the grey area drawRect(0, 0, W*width, H*height)
    sx, sy = area_w / pts, area_h / pts
    x0, y0 = [], []
    for xs in range(pts - 1, -1, -1):  # the original's loop order: farthest row first, left column first
        for ys in range(pts):
            x0.append(sx / 4 + xs * sx)
            y0.append(sy / 4 + ys * sy)
    x1 = [x + LIDAR_POINT_PX for x in x0]
    y1 = [y + LIDAR_POINT_PX for y in y0]
    captors = [(w - 5, area_h / 2), (-1, area_h / 2 - 2), (w / 2, area_h / 2 - h / 2 + 5),
               (w / 2, area_h / 2 + h / 2 - 8)]  # front, back, left, right
    for cx, cy in captors:
        x0.append(cx)
        x1.append(cx + _CAPTOR_PX)
        y0.append(cy)
        y1.append(cy + _CAPTOR_PX)
    child_x = [0.0] * (pts * pts) + [0.0 - pos * w] * 4
    # pivot.y = half the container's local bounds height: its children are the area [0, aH], the points and
    # the captors. That is aH/2 unless points or captors stick out of the area.
    top = min(0.0, *y0)
    bottom = max(area_h, *y1)
    arr = np.asarray
    return SensorLayout(arr(x0), arr(x1), arr(y0), arr(y1), arr(child_x), w / 2 - pos * w, (bottom - top) / 2)


def lidar_lateral_shift_px(pts: int, height: float) -> float:
    """How far (px, car frame, + = the car's right) the original's lidar and captors sit off the car's axis.

    The original sets the lidar container's ``pivot.y`` to half its local bounds height: ``aH/2``, so no shift,
    unless the points overflow the area (``aH/pts < 20/3`` px, e.g. ``pts >= 15`` at ``height`` 5) or the
    captors do (``aH < 9.2`` px); then everything moves towards the car's left (§2.2).
    """
    return CAR_WIDTH_PX * height / 2 - sensor_layout(pts, 1.0, height, 0.0).pivot_y


def _car_frame(layout: SensorLayout) -> np.ndarray:
    """Car-frame ``(X0, X1, Y0, Y1)`` of every child of ``layout``, (R, 4)."""
    dx = layout.child_x - layout.pivot_x
    return np.stack([layout.x0 + dx, layout.x1 + dx, layout.y0 - layout.pivot_y, layout.y1 - layout.pivot_y], axis=1)


def lidar_points(pts: int, width: float, height: float, pos: float) -> np.ndarray:
    """Car-frame rectangles of a lidar's points, shape (pts*pts, 4) as ``(X0, X1, Y0, Y1)``.

    Row-major: entry ``r*pts + c`` is row r (0 = farthest ahead) and column c (0 = the car's left).
    Each point is a 5x5 px square whose smallest-(X, Y) corner is at
    ``X = -W/2 + pos*W + sx/4 + (pts-1-r)*sx``, ``Y = -aH/2 + sy/4 + c*sy`` (§2.2), plus
    :func:`lidar_lateral_shift_px` on Y (0 for every lidar the original's demos use).
    """
    return _car_frame(sensor_layout(pts, width, height, pos))[: pts * pts]


def captor_rects(pts: int, height: float) -> np.ndarray:
    """Car-frame ``(X0, X1, Y0, Y1)`` of a car's four captors (front, back, left, right), (4, 4): :data:`CAPTORS`
    moved across the car by :func:`lidar_lateral_shift_px`, since the original's captors are children of the
    lidar container. They do not depend on the lidar's ``width`` or ``pos``."""
    return _car_frame(sensor_layout(pts, 1.0, height, 0.0))[pts * pts:]


def check_lidar(lidar: dict | None) -> dict:
    """Validate lidar options; unlike the original's ``||`` defaults, 0 or junk is an error, not a default."""
    opts = dict(DEFAULT_LIDAR)
    if lidar is None:
        return opts
    if not isinstance(lidar, dict):
        raise ValueError(f"lidar must be a dict with keys {sorted(DEFAULT_LIDAR)}, got {lidar!r}")
    unknown = set(lidar) - set(DEFAULT_LIDAR)
    if unknown:
        raise ValueError(f"unknown lidar option(s) {sorted(unknown)}; valid keys are {sorted(DEFAULT_LIDAR)}")
    opts.update(lidar)
    pts = opts["pts"]
    if isinstance(pts, bool) or not isinstance(pts, int | np.integer) or pts < 1:
        raise ValueError(f"lidar pts must be a positive integer, got {pts!r}")
    for name in ("width", "height"):
        val = opts[name]
        if isinstance(val, bool) or not isinstance(val, int | float) or not (math.isfinite(val) and val > 0):
            raise ValueError(f"lidar {name} must be a positive number (in car lengths/widths), got {val!r}")
    pos = opts["pos"]
    if isinstance(pos, bool) or not isinstance(pos, int | float) or not math.isfinite(pos):
        raise ValueError(f"lidar pos must be a finite number (in car lengths), got {pos!r}")
    return {"pts": int(pts), "width": float(opts["width"]), "height": float(opts["height"]), "pos": float(pos)}


def car_boxes(xp: Any, x: Any, y: Any, cos_th: Any, sin_th: Any) -> tuple[Any, Any, Any, Any]:
    """Boxes ``(left, right, top, bottom)`` of car bodies as Pixi's ``getBounds()`` gives them; arrays of one shape.

    A corner is ``a*w + c*h + x`` (x) and ``d*h + b*w + y`` (y) with the sprite's matrix ``a = d = 0.8 cos``,
    ``b = 0.8 sin``, ``c = -0.8 sin`` and ``w = +-21``, ``h = +-12``, stored as float32. Rounded addition is
    monotone, so the extreme corner is the sum of the extreme terms; rounding to float32 is monotone too.
    """
    a, b = cos_th * _SPRITE_SCALE, sin_th * _SPRITE_SCALE
    c = -sin_th * _SPRITE_SCALE
    hw, hh = _SPRITE_W / 2, _SPRITE_H / 2
    aw, ch = xp.abs(a * hw), xp.abs(c * hh)  # a*(-21) == -(a*21) exactly: the terms are symmetric
    dh, bw = xp.abs(a * hh), xp.abs(b * hw)
    f32, f64 = xp.float32, xp.float64
    edges = ((-aw + -ch) + x, (aw + ch) + x, (-dh + -bw) + y, (dh + bw) + y)
    return tuple(e.astype(f32).astype(f64) for e in edges)


def _tile_span(xp: Any, lo: Any, hi: Any, limit: int) -> tuple[Any, Any]:
    """First and last tile index (float arrays) a box ``[lo, hi]`` strictly overlaps along one axis, clipped to
    ``[-1, limit]`` (the grass border).

    Exact, although ``lo / 60`` is rounded: rounding is monotone and exact at multiples of 60, so
    ``floor(lo / 60)`` can only come out one too big (``lo`` just below a tile edge, the quotient rounded up
    to it) and ``ceil(hi / 60) - 1`` one too small (``hi`` just past an edge, rounded down to it); one strict
    comparison each corrects them.
    """
    first = xp.floor(lo / TILE_PX)
    first -= first * TILE_PX > lo
    last = xp.ceil(hi / TILE_PX) - 1
    last += (last + 1) * TILE_PX < hi
    mn, mxm = xp.minimum, xp.maximum  # np.clip is several times slower on small arrays
    return mn(mxm(first, -1), limit), mn(mxm(last, -1), limit)


class Detector:
    """One detection pass (§2.3) over every sensor of every car of M worlds.

    Sensors, in order: the agent's ``pts*pts`` lidar points and 4 captors, then each bot's 4 lidar points.
    ``owner`` (S,) is the car (0 = agent, 1.. = bots) a sensor rides on. The original updates bots one after
    another (each bot moves, then detects, so later bots see earlier bots' new positions); a bot's move reads
    only its own previous lidar, so the core moves all bots at once and this reproduces the sequential order
    with a static mask: bot i sees bots j < i at their new pose, bots j > i at their old pose and the agent at
    its old pose (the agent moves last).

    Args:
        agent_lidar: the agent's checked lidar options.
        num_bots: B.
        road_grid: int (rows + 2, cols + 2), 1 for road, padded with a one-tile grass border.
        xp: array module.
    """

    def __init__(self, agent_lidar: dict, num_bots: int, road_grid: np.ndarray, xp: Any):
        self.xp = xp
        self.num_lidar = p = agent_lidar["pts"] ** 2
        self.num_bots = nb = num_bots
        self.num_cars = k = 1 + nb
        self.rows, self.cols = road_grid.shape[0] - 2, road_grid.shape[1] - 2
        self._pad_w = road_grid.shape[1]
        self._grid = xp.asarray(road_grid.ravel())
        layouts = [sensor_layout(**agent_lidar)] + [sensor_layout(**BOT_LIDAR)] * nb
        per_layout = [len(lay.x0) if i == 0 else 4 for i, lay in enumerate(layouts)]  # bots: points only
        cat = np.concatenate
        fields = {name: cat([getattr(lay, name)[:n] for lay, n in zip(layouts, per_layout)])
                  for name in ("x0", "x1", "y0", "y1", "child_x")}
        self._x0, self._x1, self._y0, self._y1 = (xp.asarray(fields[n]) for n in ("x0", "x1", "y0", "y1"))
        # Children with an x offset (the agent's captors when pos != 0): their columns and offsets.
        shifted = np.flatnonzero(fields["child_x"] != 0)
        self._shifted = xp.asarray(shifted)
        self._child_x = xp.asarray(fields["child_x"][shifted])
        self._pivot_x = xp.asarray(np.array([lay.pivot_x for lay in layouts]))  # per car (K,)
        self._pivot_y = xp.asarray(np.array([lay.pivot_y for lay in layouts]))
        owner = [0] * (p + 4) + [1 + b for b in range(nb) for _ in range(4)]
        self._owner = xp.asarray(np.array(owner, dtype=np.int64))
        # Candidate cars per bot sensor: columns 0..K-1 are the cars' old poses, K..2K-1 their new poses.
        mask = np.zeros((4 * nb, 2 * k), dtype=bool)
        for b in range(nb):
            rows_b = slice(4 * b, 4 * b + 4)
            mask[rows_b, 0] = True  # the agent's old pose (it moves after the bots)
            mask[rows_b, k + 1: k + 1 + b] = True  # earlier bots, already moved
            mask[rows_b, 2 + b: k] = True  # later bots, not moved yet
        self._num_agent_sensors = p + 4
        self._bot_sensor_mask = xp.asarray(mask)

    def sensor_boxes(self, x: Any, y: Any, cos_th: Any, sin_th: Any) -> tuple[Any, Any, Any, Any]:
        """Every sensor's box ``(left, right, top, bottom)`` (M, S) from its owner's pose (cars' arrays (M, K)).

        ``right``/``bottom`` are Pixi's ``x + width``/``y + height``. A car's lidar container has the matrix
        ``a = d = cos``, ``b = sin``, ``c = -sin`` and the translation ``pos - (pivot_x*a + pivot_y*c, ...)``;
        a child adds ``child_x * (a, b)`` to it; a corner is ``(a*x0 + c*y0) + tx``. Same operations, same order.
        """
        xp = self.xp
        px, py = self._pivot_x, self._pivot_y
        # Per car first (K columns, not S): the containers' translations.
        car_tx = x - (px * cos_th + py * -sin_th)
        car_ty = y - (px * sin_th + py * cos_th)
        own = self._owner
        a, b, tx, ty = cos_th[:, own], sin_th[:, own], car_tx[:, own], car_ty[:, own]
        if self._shifted.size:  # (child_x*a + 0*c) + tx: the zero term never changes the sum
            cols, cx = self._shifted, self._child_x
            tx[:, cols] = cx * a[:, cols] + tx[:, cols]
            ty[:, cols] = cx * b[:, cols] + ty[:, cols]
        c = -b
        mn, mxm = xp.minimum, xp.maximum
        ax0, ax1, cy0, cy1 = a * self._x0, a * self._x1, c * self._y0, c * self._y1
        bx0, bx1, dy0, dy1 = b * self._x0, b * self._x1, a * self._y0, a * self._y1
        left = (mn(ax0, ax1) + mn(cy0, cy1)) + tx
        right = (mxm(ax0, ax1) + mxm(cy0, cy1)) + tx
        top = (mn(bx0, bx1) + mn(dy0, dy1)) + ty
        bottom = (mxm(bx0, bx1) + mxm(dy0, dy1)) + ty
        return left, left + (right - left), top, top + (bottom - top)

    def detect(self, old_boxes, x_new, y_new, th_new):
        """One detection pass for M worlds; ``old_boxes`` are the cars' boxes before the step (4 arrays (M, K)),
        the poses after it are (M, K).

        Returns ``(values, car_hit, road_count, new_boxes)``: for every sensor (M, S) the lidar cell value
        (1 car, -1 road, 0 ground), whether its box overlaps a car it may see, and how many road tiles it
        overlaps; and the cars' boxes at the new poses (the next step's old boxes).
        """
        xp = self.xp
        cos_new, sin_new = xp.cos(th_new), xp.sin(th_new)
        new_boxes = car_boxes(xp, x_new, y_new, cos_new, sin_new)
        # Candidate car boxes, old poses then new poses: (M, 2K).
        car_l, car_r, car_t, car_b = (xp.concatenate([o, n], axis=1) for o, n in zip(old_boxes, new_boxes))
        left, right, top, bottom = self.sensor_boxes(x_new, y_new, cos_new, sin_new)

        # Strict AABB overlap with the candidate cars. The agent's sensors only see the bots' new boxes
        # (columns K+1..2K-1, no mask needed); the bots' sensors use the static mask: (M, S, candidates).
        a, k = self._num_agent_sensors, self.num_cars

        def overlap(sl, cl, cr, ct, cb):
            return ((cr[:, None, :] > left[:, sl, None]) & (cl[:, None, :] < right[:, sl, None])
                    & (cb[:, None, :] > top[:, sl, None]) & (ct[:, None, :] < bottom[:, sl, None]))

        agent_sl, bots_sl = slice(0, a), slice(a, None)
        hit_agent = overlap(agent_sl, car_l[:, k + 1:], car_r[:, k + 1:], car_t[:, k + 1:], car_b[:, k + 1:])
        car_hit = hit_agent.any(axis=2)
        if self.num_bots:
            hit_bots = (overlap(bots_sl, car_l, car_r, car_t, car_b) & self._bot_sensor_mask).any(axis=2)
            car_hit = xp.concatenate([car_hit, hit_bots], axis=1)

        # Road tiles overlapped: at most two per axis because sensors are smaller than a tile. Indices are
        # clipped into the one-tile grass border.
        pad_w = self._pad_w
        col_a, col_b = (c.astype(xp.int64) + 1 for c in _tile_span(xp, left, right, self.cols))
        row_a, row_b = ((r.astype(xp.int64) + 1) * pad_w for r in _tile_span(xp, top, bottom, self.rows))
        two_cols = col_b != col_a
        two_rows = row_b != row_a
        grid = self._grid
        road_count = (grid[row_a + col_a] + two_cols * grid[row_a + col_b] + two_rows * grid[row_b + col_a]
                      + (two_cols & two_rows) * grid[row_b + col_b])
        values = xp.where(car_hit, 1.0, xp.where(road_count > 0, -1.0, 0.0))
        return values, car_hit, road_count, new_boxes

    def split(self, values, car_hit, road_count) -> tuple[Any, Any, Any, Any]:
        """Split a detection pass into (agent lidar (M, P), collided (M,), on_road (M,), bot lidar (M, B, 4))."""
        p = self.num_lidar
        return (values[:, :p], car_hit[:, p: p + 4].any(axis=1), road_count[:, p: p + 4].sum(axis=1) >= 4,
                values[:, p + 4:].reshape(values.shape[0], self.num_bots, 4))
