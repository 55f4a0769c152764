"""Batched MetaCar physics: N worlds of one level as arrays, one ``step`` advances all of them.

This is a port of the behaviour of MetaCar 0.1.1 (thibo73800/metacar) as written down in
``docs/specs/metacar.md``; section numbers (§) below refer to that spec. Every quantity is in the
original's units: pixels, y pointing down, ``theta`` in radians with 0 = East and positive = clockwise
(a right turn), one step = one frame with ``delta = 1``.

State layout (``K = 1 + B`` cars per world, car 0 is the agent, cars 1..B the bots in file order):

=====================  ==========  ===========================================================
array                  shape       meaning
=====================  ==========  ===========================================================
``x, y``               (N, K)      car centres, px
``theta``              (N, K)      headings, rad (never wrapped for the agent, as the original)
``speed``              (N,)        agent speed, px/step (kept between steps by ControlMotion)
``agent_lidar``        (N, P)      agent lidar cells, row by row (row 0 farthest, column 0 left)
``collided``           (N,)        agent captors touch another car after the last move
``on_road``            (N,)        all four agent captors on road tiles after the last move
``bot_lidar``          (N, B, 4)   bots' 2x2 lidar ``[s00, s01, s10, s11]`` from their last detection
=====================  ==========  ===========================================================

Detection (§2.3) is one pass over all sensors of all cars: every sensor rectangle (agent lidar points,
agent captors, bots' lidar points) is turned into its axis-aligned box in world space and tested with strict
inequalities against every car's box and against the road grid. The original updates bots one after
another (each bot moves, then re-detects, so later bots see earlier bots' new positions); a bot's move only
reads its own previous lidar, so we move all bots at once and reproduce the sequential detection with a
static mask: bot i sees bots j < i at their new pose, bots j > i at their old pose and the agent at its
old pose (the agent moves last). The result is the same as the original's loop, without a loop.

Randomness (bots' turn draws, random lanes, shuffles) comes from a counter-based hash of
``(world key, episode, step, stream, index)``, so a world's random numbers do not depend on how many
worlds are batched with it: N batched worlds equal N single worlds with the same keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .level import TILE_PX, Level, quantised_orientation
from .sensors import (
    BOT_LIDAR,
    CAPTORS,
    CAR_LENGTH_PX,
    CAR_WIDTH_PX,
    DEFAULT_LIDAR,
    LIDAR_POINT_PX,
    Detector,
    captor_rects,
    car_boxes,
    check_lidar,
    lidar_lateral_shift_px,
    lidar_points,
)

__all__ = [
    "BOT_LIDAR",
    "CAPTORS",
    "CAR_LENGTH_PX",
    "CAR_WIDTH_PX",
    "DEFAULT_LIDAR",
    "LIDAR_POINT_PX",
    "MetaCarCore",
    "RewardInputs",
    "captor_rects",
    "default_reward",
    "lidar_lateral_shift_px",
    "lidar_points",
    "place_on_tile",
]

LANE_OFFSET_PX = 15  # lanes run 15 px either side of a tile's centre line
BOT_SPEED_PX_PER_STEP = 0.8

# ControlMotion constants (§3.2).
CONTROL_MAX_SPEED = 2.0
CONTROL_DRAG = 0.01
CONTROL_ACCEL = 0.005
CONTROL_BRAKE = 0.03
CONTROL_TURN = 0.01

# Bots' route choice (§4.2): heading index 0..3 = E, S, W, N and the tile offset ahead.
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, 1, 0, -1])
# Manoeuvre types 0 = right, 1 = left, 2 = U-turn: trigger distance and rotation.
_TURN_DIST = np.array([TILE_PX + TILE_PX / 3, TILE_PX - TILE_PX / 3.5, TILE_PX])
_TURN_ANGLE = np.array([math.pi / 2, -math.pi / 2, -math.pi])


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


class RewardInputs(NamedTuple):
    """What a reward function sees after a step, all batched over N worlds.

    ``collided`` (N,) bool, ``on_road`` (N,) bool, ``action`` (N,) int (basic) or (N, 2) float (control),
    ``speed`` (N,) px/step after the step, ``max_speed`` (1 for basic, 2 for control), ``lidar`` (N, P),
    ``x, y, theta`` (N,) agent pose, ``discrete`` (True for BasicMotion), ``xp`` the array module.
    """

    collided: Any
    on_road: Any
    action: Any
    speed: Any
    max_speed: float
    lidar: Any
    x: Any
    y: Any
    theta: Any
    discrete: bool
    xp: ModuleType


def default_reward(inp: RewardInputs) -> Any:
    """The original's reward (v0.1.1, §5.2), shape (N,).

    Discrete actions: 1 for UP (action 0), else 0. Continuous actions: ``max(0, v) / max_speed``.
    Either way -1 when the agent touches another car or is off road.
    """
    xp = inp.xp
    base = (inp.action == 0).astype(xp.float64) if inp.discrete else xp.maximum(inp.speed, 0.0) / inp.max_speed
    return xp.where(inp.collided | ~inp.on_road, -1.0, base)


_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_M3 = _U64(0xD1B54A32D192ED03)


def _mix64(z: Any) -> Any:
    """SplitMix64 finaliser on a uint64 array (wraps modulo 2**64, as intended)."""
    z = (z ^ (z >> _U64(30))) * _M1
    z = (z ^ (z >> _U64(27))) * _M2
    return z ^ (z >> _U64(31))


def key_from_seed(seed: int) -> int:
    """A world's 64-bit random key from an integer seed (the same function for single and vector envs)."""
    z = _mix64(np.array([seed % (1 << 64)], dtype=np.uint64) + _GOLDEN)
    return int(z[0])


class MetaCarCore:
    """N worlds of one MetaCar level, stepped together with array ops on ``xp`` (NumPy or CuPy).

    Args:
        level: a loaded :class:`~envs.metacar.level.Level` with an agent.
        num_worlds: N.
        motion: ``"basic"`` (5 discrete actions) or ``"control"`` (``[throttle, steering]``).
        lidar: agent lidar options ``{pts, width, height, pos}`` (defaults 5, 4, 5, 0).
        rotation_step: BasicMotion turn per LEFT/RIGHT, in units of pi (0.5 = 90 degrees).
        cars_moving: bots drive (True) or stay parked (False; they still plan, as the original).
        fix_bot_quirks: fix the original bots' quirks (§8.17): the stop test also sees lidar cell [0][0],
            an optional turn goes to the side that was drawn, a stopped bot keeps its turn, dead-end U-turns
            swap lanes in place instead of teleporting off the map, and parked bots do not rotate.
        reward_fn: ``f(RewardInputs) -> (N,)`` array; None for :func:`default_reward`.
        xp: array module; None for NumPy.
    """

    def __init__(self, level: Level, num_worlds: int, *, motion: str = "basic", lidar: dict | None = None,
                 rotation_step: float = 0.5, cars_moving: bool = True, fix_bot_quirks: bool = False,
                 reward_fn: Callable[[RewardInputs], Any] | None = None, xp: ModuleType | None = None):
        if level.agent is None:
            raise ValueError(f"{level.source}: level has no agent; MetaCarCore needs one")
        if motion not in ("basic", "control"):
            raise ValueError(f"motion must be 'basic' or 'control', got {motion!r}")
        if not (isinstance(rotation_step, int | float) and math.isfinite(rotation_step) and rotation_step > 0):
            raise ValueError(f"rotation_step must be a positive number (units of pi), got {rotation_step!r}")
        self.xp = xp = np if xp is None else xp
        self.level = level
        self.num_worlds = n = int(num_worlds)
        self.motion = motion
        self.discrete = motion == "basic"
        self.max_speed = 1.0 if self.discrete else CONTROL_MAX_SPEED
        self.lidar_options = check_lidar(lidar)
        self.pts = self.lidar_options["pts"]
        self.rotation_step = float(rotation_step)
        self.cars_moving = bool(cars_moving)
        self.fix_bot_quirks = bool(fix_bot_quirks)
        self.reward_fn = reward_fn or default_reward

        # --- static level data -------------------------------------------------------------------
        self.num_bots = nb = len(level.cars)
        self.num_cars = k = 1 + nb
        roads = level.road_tiles()
        self.num_road_tiles = len(roads)
        self.cols, self.rows = level.cols, level.rows
        pad_w = self.cols + 2
        is_road = np.zeros((self.rows + 2, pad_w), dtype=np.int64)
        road_index = np.full((self.rows + 2, pad_w), -1, dtype=np.int64)
        for i, (mx, my) in enumerate(roads):
            is_road[my + 1, mx + 1] = 1
            road_index[my + 1, mx + 1] = i
        self._pad_w = pad_w
        self._is_road_flat = xp.asarray(is_road.ravel())
        self._road_index_flat = xp.asarray(road_index.ravel())
        self._tile_mx = xp.asarray(np.array([t[0] for t in roads], dtype=np.float64))
        self._tile_my = xp.asarray(np.array([t[1] for t in roads], dtype=np.float64))
        self._tile_orient = xp.asarray(np.array([quantised_orientation(level.grid[my][mx]) for mx, my in roads]))
        specs = [*level.cars, level.agent]  # creation order of the original: bots, then the agent
        self._start_tile = [road_index[c.my + 1, c.mx + 1] for c in specs]
        self._start_line = [c.line for c in specs]
        # Lane flipping at load looks at the first car already on the tile (§1.2 step 2).
        self._first_on_tile = [next((j for j in range(i) if self._start_tile[j] == self._start_tile[i]), -1)
                               for i in range(len(specs))]

        # --- sensors: agent lidar points, agent captors, bots' lidar points -------------------------
        self.num_lidar = p = self.pts * self.pts
        self._detector = Detector(self.lidar_options, nb, is_road, xp)

        # --- BasicMotion lookup tables -----------------------------------------------------------
        step_rad = self.rotation_step * math.pi
        self._basic_dtheta = xp.asarray(np.array([0.0, -step_rad, step_rad, 0.0, 0.0]))
        self._basic_speed = xp.asarray(np.array([1.0, 0.0, 0.0, -1.0, 0.0]))
        self._dx = xp.asarray(_DX)
        # Per heading: offsets of the tiles ahead, to the right, to the left and here, (4, 4).
        probe = [[h, (h + 1) % 4, (h + 3) % 4] for h in range(4)]
        self._probe_dx = xp.asarray(np.array([[*_DX[p], 0] for p in probe]))
        self._probe_dy = xp.asarray(np.array([[*_DY[p], 0] for p in probe]))
        self._dy = xp.asarray(_DY)
        self._turn_dist = xp.asarray(_TURN_DIST)
        self._turn_angle = xp.asarray(_TURN_ANGLE)
        self._bot_index = xp.asarray(np.arange(nb, dtype=np.uint64))
        self._all_worlds = xp.arange(n)

        # --- dynamic state ---------------------------------------------------------------------------
        f64 = xp.float64
        self.x = xp.zeros((n, k), dtype=f64)
        self.y = xp.zeros((n, k), dtype=f64)
        self.theta = xp.zeros((n, k), dtype=f64)
        self.tile = xp.full((n, k), -1, dtype=xp.int64)  # road tile index under each car, -1 = none
        self.speed = xp.zeros(n, dtype=f64)
        self.last_throttle = xp.zeros(n, dtype=f64)
        self.last_steering = xp.zeros(n, dtype=f64)
        self.agent_lidar = xp.zeros((n, p), dtype=f64)
        self.collided = xp.zeros(n, dtype=bool)
        self.on_road = xp.ones(n, dtype=bool)
        self.reward = xp.zeros(n, dtype=f64)
        self.bot_lidar = xp.zeros((n, nb, 4), dtype=f64)
        self.bot_speed = xp.zeros((n, nb), dtype=f64)
        self.bot_mx = xp.zeros((n, nb), dtype=xp.int64)
        self.bot_my = xp.zeros((n, nb), dtype=xp.int64)
        self.bot_turned = xp.zeros((n, nb), dtype=bool)  # haveTurned on the current tile
        self.bot_optional = xp.zeros((n, nb), dtype=bool)  # that turn was optional
        self.bot_has_draw = xp.zeros((n, nb), dtype=bool)  # turnedRandom drawn on this tile
        self.bot_draw = xp.zeros((n, nb), dtype=f64)
        self.bot_pending = xp.zeros((n, nb), dtype=bool)  # next_road is set
        self.bot_pending_type = xp.zeros((n, nb), dtype=xp.int64)
        self.bot_target_x = xp.zeros((n, nb), dtype=f64)  # centre of the tile ahead at decision time
        self.bot_target_y = xp.zeros((n, nb), dtype=f64)
        self.bot_dir_x = xp.zeros((n, nb), dtype=f64)  # heading axis at decision time
        self.bot_dir_y = xp.zeros((n, nb), dtype=f64)
        self.bot_prev_theta = xp.zeros((n, nb), dtype=f64)
        self._boxes = tuple(xp.zeros((n, k), dtype=f64) for _ in range(4))  # car boxes after the last step
        self.key = xp.zeros(n, dtype=xp.uint64)
        self.episode = xp.zeros(n, dtype=xp.uint64)
        self.step_count = xp.zeros(n, dtype=xp.uint64)

    def refresh_derived(self) -> None:
        """Recompute the cars' boxes (a private cache of ``x, y, theta``) after the poses were written from
        outside: a snapshot restore (``set_state``) or a test placing cars by hand. The next step's detection
        reads them as the cars' old poses."""
        xp = self.xp
        self._boxes = self._car_boxes(self.x, self.y, xp.cos(self.theta), xp.sin(self.theta))

    # ------------------------------------------------------------------------------------ randomness
    def _uniform(self, idx: Any, stream: int, index: Any) -> Any:
        """Uniform [0, 1) draws for worlds ``idx`` (M,), one per entry of ``index`` (uint64, shape (J,)).

        Returns (M, J). A pure function of (key, episode, step, stream, index) of each world.
        """
        xp = self.xp
        base = (self.key[idx] ^ (self.episode[idx] * _M3)) + self.step_count[idx] * _GOLDEN
        base = _mix64(base + _U64((stream * int(_M1)) % (1 << 64)))  # Python ints: no scalar overflow
        z = _mix64(base[:, None] + (index[None, :] + _U64(1)) * _GOLDEN)
        return (z >> _U64(11)).astype(xp.float64) * (1.0 / (1 << 53))

    def set_keys(self, idx: Any, keys: Any) -> None:
        """Give worlds ``idx`` new random keys (uint64, one per world) and restart their episode count."""
        xp = self.xp
        self.key[idx] = xp.asarray(keys, dtype=xp.uint64)
        self.episode[idx] = 0

    # ------------------------------------------------------------------------------------- detection
    def _car_boxes(self, x, y, cos_th, sin_th):
        """Axis-aligned boxes ``(left, right, top, bottom)`` of car bodies, as the original's; all arrays (M, K)."""
        return car_boxes(self.xp, x, y, cos_th, sin_th)

    def _detect(self, old_boxes, x_new, y_new, th_new):
        """One detection pass (§2.3), see :meth:`~envs.metacar.sensors.Detector.detect`."""
        return self._detector.detect(old_boxes, x_new, y_new, th_new)

    def _apply_detection(self, values, car_hit, road_count, _boxes=None) -> tuple[Any, Any, Any, Any]:
        """Split a detection pass into (agent lidar, collided, on_road, bot lidar (M, B, 4))."""
        return self._detector.split(values, car_hit, road_count)

    def _tile_lookup(self, table: Any, mx: Any, my: Any) -> Any:
        """``table`` (a padded flat grid) at integer tile coordinates of any shape; outside = the border."""
        xp = self.xp
        col = xp.minimum(xp.maximum(mx, -1), self.cols) + 1
        row = xp.minimum(xp.maximum(my, -1), self.rows) + 1
        return table[(row * self._pad_w + col).astype(xp.int64)]

    def _road_index(self, mx: Any, my: Any) -> Any:
        """Road tile index under tile coordinates (any shape), -1 for grass or outside the map."""
        return self._tile_lookup(self._road_index_flat, mx, my)

    # ------------------------------------------------------------------------------------------ reset
    def reset(self, idx: Any = None, shuffle: str | None = None) -> None:
        """Put worlds ``idx`` (int array; None = all) at their start and recompute the agent's sensors.

        Start = the level file's placement as at the original's ``load`` (lanes flipped where a tile already
        holds a car in the same lane, missing lanes random). ``shuffle``: None, ``"agent"`` (the agent
        moves to a random empty road tile, random lane: ``shuffle({cars: false})``) or ``"all"``
        (``shuffle({agent: true, cars: true})``: the agent, then every car in order, each to a random empty
        tile). Bots' lidar starts at zero (nothing detected yet, as after ``load``).
        """
        xp = self.xp
        if idx is None:
            idx = xp.arange(self.num_worlds)
        idx = xp.asarray(idx, dtype=xp.int64)
        m = int(idx.shape[0])
        if m == 0:
            return
        self.episode[idx] += _U64(1)
        self.step_count[idx] = 0
        k = self.num_cars
        # Placement in creation order (bots then agent): tile, lane, first-car lane flip.
        lines = []
        tiles = []
        for i in range(k):
            tile = xp.full(m, self._start_tile[i], dtype=xp.int64)
            if self._start_line[i] is None:
                line = (self._uniform(idx, 1, xp.asarray(np.array([i], dtype=np.uint64)))[:, 0] < 0.5)
                line = line.astype(xp.int64)
            else:
                line = xp.full(m, self._start_line[i], dtype=xp.int64)
            first = self._first_on_tile[i]
            if first >= 0:
                line = xp.where(lines[first] == line, 1 - line, line)
            lines.append(line)
            tiles.append(tile)
        order = [k - 1, *range(k - 1)]  # car slots: creation index of the agent is last, slot 0
        tile_arr = xp.stack([tiles[j] for j in order], axis=1)  # (m, K)
        line_arr = xp.stack([lines[j] for j in order], axis=1)
        x, y, th = place_on_tile(xp, self._tile_mx[tile_arr], self._tile_my[tile_arr],
                                 self._tile_orient[tile_arr], line_arr)
        if shuffle is not None:
            if shuffle not in ("agent", "all"):
                raise ValueError(f"shuffle must be None, 'agent' or 'all', got {shuffle!r}")
            x, y, th, tile_arr = self._shuffle(idx, x, y, th, tile_arr, shuffle == "all")
        self.x[idx], self.y[idx], self.theta[idx], self.tile[idx] = x, y, th, tile_arr
        # Copy-on-write: arrays handed out by step() (rewards, flags, lidar) must not change under the caller.
        for name in ("speed", "last_throttle", "last_steering", "reward", "agent_lidar", "collided", "on_road"):
            setattr(self, name, getattr(self, name).copy())
        self.speed[idx] = 0.0
        self.last_throttle[idx] = 0.0
        self.last_steering[idx] = 0.0
        self.reward[idx] = 0.0
        nb = self.num_bots
        if nb:
            self.bot_speed[idx] = 0.0
            self.bot_mx[idx] = xp.floor(x[:, 1:] / TILE_PX).astype(xp.int64)
            self.bot_my[idx] = xp.floor(y[:, 1:] / TILE_PX).astype(xp.int64)
            for arr in (self.bot_turned, self.bot_optional, self.bot_has_draw, self.bot_pending):
                arr[idx] = False
            self.bot_lidar[idx] = 0.0
            self.bot_prev_theta[idx] = th[:, 1:]
        boxes = self._car_boxes(x, y, xp.cos(th), xp.sin(th))
        detection = self._detect(boxes, x, y, th)
        for cached, fresh in zip(self._boxes, boxes):
            cached[idx] = fresh
        lidar, collided, on_road, _ = self._apply_detection(*detection)
        self.agent_lidar[idx] = lidar
        self.collided[idx] = collided
        self.on_road[idx] = on_road

    def _shuffle(self, idx, x, y, th, tile, all_cars: bool):
        """The original's ``shuffle`` (§5.5) for worlds ``idx``; poses/tiles are (M, K), returns them updated.

        Each placement takes a uniformly random road tile among those with no car at that moment (a car's
        own tile is not empty) and a random lane; a world with no empty tile leaves the car where it is.
        """
        xp = self.xp
        t = self.num_road_tiles
        m = x.shape[0]
        tiles_range = xp.arange(t)
        occupancy = ((tile[:, :, None] == tiles_range[None, None, :]) & (tile[:, :, None] >= 0)).sum(axis=1)
        tile_ids = xp.asarray(np.arange(t, dtype=np.uint64))
        order = [0] + ([*range(1, self.num_cars), 0] if all_cars else [])  # agent, then bots..., agent
        x, y, th, tile = x.copy(), y.copy(), th.copy(), tile.copy()
        rows = xp.arange(m)
        for n_draw, car in enumerate(order):
            u = self._uniform(idx, 100 + n_draw, tile_ids)  # (M, T)
            u = xp.where(occupancy > 0, 2.0, u)
            new_tile = xp.argmin(u, axis=1)
            ok = u[rows, new_tile] < 1.5
            lane = (self._uniform(idx, 200 + n_draw, tile_ids[:1])[:, 0] < 0.5).astype(xp.int64)
            nx, ny, nth = place_on_tile(xp, self._tile_mx[new_tile], self._tile_my[new_tile],
                                        self._tile_orient[new_tile], lane)
            old = tile[:, car]
            occupancy = occupancy - ((tiles_range[None, :] == old[:, None]) & ok[:, None])
            occupancy = occupancy + ((tiles_range[None, :] == new_tile[:, None]) & ok[:, None])
            x[:, car] = xp.where(ok, nx, x[:, car])
            y[:, car] = xp.where(ok, ny, y[:, car])
            th[:, car] = xp.where(ok, nth, th[:, car])
            tile[:, car] = xp.where(ok, new_tile, old)
        return x, y, th, tile

    # ------------------------------------------------------------------------------------------- step
    def step(self, action: Any) -> Any:
        """Advance every world by one frame: bots (§4), then the agent (§3), then the reward (§5.2).

        ``action``: (N,) ints in 0..4 for basic (UP, LEFT, RIGHT, DOWN, WAIT) or (N, 2) floats
        ``[throttle, steering]`` for control (clipped to [-1, 1]). Returns the reward, shape (N,).
        """
        xp = self.xp
        if self.num_bots:
            self._step_bots()
        if self.discrete:
            self._step_basic(action)
        else:
            self._step_control(action)
        values, car_hit, road_count, self._boxes = self._detect(self._boxes, self.x, self.y, self.theta)
        self.agent_lidar, self.collided, self.on_road, bot_lidar = self._apply_detection(
            values, car_hit, road_count)
        if self.num_bots:
            self.bot_lidar = bot_lidar
        # A collision stops the agent but does not undo the move (§3, step 7).
        self.speed = xp.where(self.collided, 0.0, self.speed)
        inputs = RewardInputs(self.collided, self.on_road, action, self.speed, self.max_speed, self.agent_lidar,
                              self.x[:, 0], self.y[:, 0], self.theta[:, 0], self.discrete, xp)
        self.reward = xp.asarray(self.reward_fn(inputs), dtype=xp.float64)
        if self.discrete:
            self.speed = xp.zeros_like(self.speed)  # BasicMotion zeroes v after each env.step (§3.1)
        self.step_count += _U64(1)
        return self.reward

    def _step_basic(self, action: Any) -> None:
        """BasicMotion (§3.1): LEFT/RIGHT turn in place by rotation_step*pi, UP/DOWN move 1 px."""
        xp = self.xp
        th = self.theta[:, 0] + self._basic_dtheta[action]
        v = self._basic_speed[action]
        self.theta[:, 0] = th
        self.x[:, 0] += v * xp.cos(th)
        self.y[:, 0] += v * xp.sin(th)
        self.speed = v
        self.tile[:, 0] = self._road_index(xp.floor(self.x[:, 0] / TILE_PX), xp.floor(self.y[:, 0] / TILE_PX))

    def _step_control(self, action: Any) -> None:
        """ControlMotion (§3.2): throttle/brake/drag on v, then exact constant-turn-rate arc integration."""
        xp = self.xp
        a = xp.minimum(xp.maximum(action[:, 0], -1.0), 1.0)
        s = xp.minimum(xp.maximum(action[:, 1], -1.0), 1.0)
        v = self.speed
        self.last_throttle, self.last_steering = a, s
        # Drag only when the throttle is exactly zero.
        drag = xp.where(v > 0, xp.maximum(0.0, v - CONTROL_DRAG), xp.minimum(0.0, v + CONTROL_DRAG))
        v = xp.where(a == 0, drag, v)
        # Two `if` chains in sequence, the second one reading the speed the first one produced.
        v = xp.where(a > 0, xp.minimum(CONTROL_MAX_SPEED, v + xp.where(v >= 0, CONTROL_ACCEL, CONTROL_BRAKE) * a), v)
        v = xp.where(a < 0, xp.maximum(-CONTROL_MAX_SPEED, v + xp.where(v <= 0, CONTROL_ACCEL, CONTROL_BRAKE) * a),
                     v)
        th = self.theta[:, 0]
        omega = s * CONTROL_TURN * (v + 0.001) * math.pi
        # omega == 0 with s != 0 happens at v == -0.001 exactly, where the original divides by zero.
        straight = omega == 0
        safe_omega = xp.where(straight, 1.0, omega)
        sin_th, cos_th = xp.sin(th), xp.cos(th)
        th_new = th + omega
        ratio = v / safe_omega
        self.x[:, 0] += xp.where(straight, v * cos_th, ratio * (xp.sin(th_new) - sin_th))
        self.y[:, 0] += xp.where(straight, v * sin_th, ratio * (cos_th - xp.cos(th_new)))
        self.theta[:, 0] = th_new
        self.speed = v
        self.tile[:, 0] = self._road_index(xp.floor(self.x[:, 0] / TILE_PX), xp.floor(self.y[:, 0] / TILE_PX))

    def _step_bots(self) -> None:
        """All bots' autopilot (§4.1-4.4) at once; each reads only its own previous lidar.

        Branches that no bot takes this step are skipped (``.any()`` checks): most steps nobody turns.
        """
        xp = self.xp
        fix = self.fix_bot_quirks
        bx, by, bth = self.x[:, 1:], self.y[:, 1:], self.theta[:, 1:]
        lid = self.bot_lidar == 1.0
        # Stop test: the original searches ",1" in "s00,s01,s10,s11", which misses cell [0][0].
        stop = lid[:, :, 1] | lid[:, :, 2] | lid[:, :, 3]
        if fix:
            stop = stop | lid[:, :, 0]
        elif stop.any():
            # A stopped bot abandons an optional turn it already made on this tile.
            bth = xp.where(stop & self.bot_turned & self.bot_optional, self.bot_prev_theta, bth)
        v = xp.where(stop, 0.0, BOT_SPEED_PX_PER_STEP)
        run = ~stop
        if fix and not self.cars_moving:
            run = xp.zeros_like(run)
        pending0 = self.bot_pending
        new_x, new_y, new_th = bx, by, bth
        turned = self.bot_turned

        # --- B: a manoeuvre is pending; turn when close enough to the centre of the tile ahead.
        if pending0.any():
            ptype = self.bot_pending_type
            dist_y = xp.abs((self.bot_target_y - by) * self.bot_dir_y)
            dist_x = xp.abs((self.bot_target_x - bx) * self.bot_dir_x)
            limit = self._turn_dist[ptype]
            fire = run & pending0 & (dist_y < limit) & (dist_x < limit)
            if fire.any():
                self.bot_prev_theta = xp.where(fire, bth, self.bot_prev_theta)
                new_th = xp.where(fire, xp.fmod(bth + self._turn_angle[ptype], 2 * math.pi), bth)
                uturn = fire & (ptype == 2)
                if uturn.any():
                    new_x, new_y = self._uturn_position(uturn, bx, by, dist_x, dist_y)
                turned = turned | fire
                self.bot_pending = pending0 & ~fire

        # --- A: no manoeuvre pending; look at the tiles ahead, right and left.
        decide = run & ~pending0
        heading = xp.rint(bth / (math.pi / 2)).astype(xp.int64) % 4
        mx, my = self.bot_mx, self.bot_my
        # Tiles ahead, right, left and here in one lookup: (N, B, 4).
        road = self._tile_lookup(self._is_road_flat, mx[:, :, None] + self._probe_dx[heading],
                                 my[:, :, None] + self._probe_dy[heading]) > 0
        ahead_road, right_road, left_road = road[:, :, 0], road[:, :, 1], road[:, :, 2]
        need = decide & ~ahead_road
        free = decide & ahead_road & ~self.bot_turned
        draw_now = free & ~self.bot_has_draw
        if draw_now.any():  # a bot draws once per tile, so most steps need no random numbers
            u = self._uniform(self._all_worlds, 0, self._bot_index)
            self.bot_draw = xp.where(draw_now, u, self.bot_draw)
        goes_right = self.bot_draw < 0.5
        optional = free & self.bot_has_draw & xp.where(goes_right, right_road, left_road)
        turn = need | optional
        if turn.any():
            self.bot_optional = xp.where(need, False, xp.where(optional, True, self.bot_optional))
            if fix:
                # Try the drawn side first, so "left" draws really turn left.
                kind = xp.where(optional & ~goes_right & left_road, 1,
                                xp.where(right_road, 0, xp.where(left_road, 1, 2)))
            else:
                kind = xp.where(right_road, 0, xp.where(left_road, 1, 2))  # right is always tried first
            start = turn & (right_road | left_road | road[:, :, 3])
            dxh, dyh = self._dx[heading], self._dy[heading]
            self.bot_pending = self.bot_pending | start
            self.bot_pending_type = xp.where(start, kind, self.bot_pending_type)
            self.bot_target_x = xp.where(start, (mx + dxh) * TILE_PX + TILE_PX / 2, self.bot_target_x)
            self.bot_target_y = xp.where(start, (my + dyh) * TILE_PX + TILE_PX / 2, self.bot_target_y)
            self.bot_dir_x = xp.where(start, dxh, self.bot_dir_x)
            self.bot_dir_y = xp.where(start, dyh, self.bot_dir_y)

        # --- move, then update the tile membership (flags reset when the road tile changes).
        if self.cars_moving:
            new_x = new_x + v * xp.cos(new_th)
            new_y = new_y + v * xp.sin(new_th)
        self.x[:, 1:], self.y[:, 1:], self.theta[:, 1:] = new_x, new_y, new_th
        self.bot_speed = v
        self.bot_mx = mx = xp.floor(new_x / TILE_PX).astype(xp.int64)
        self.bot_my = my = xp.floor(new_y / TILE_PX).astype(xp.int64)
        tile = self._road_index(mx, my)
        has_draw = self.bot_has_draw | draw_now
        changed = tile != self.tile[:, 1:]
        if changed.any():
            keep = ~changed
            self.tile[:, 1:] = tile
            turned = turned & keep
            self.bot_optional = self.bot_optional & keep
            has_draw = has_draw & keep
            self.bot_pending = self.bot_pending & keep
        self.bot_turned = turned
        self.bot_has_draw = has_draw

    def _uturn_position(self, uturn, bx, by, dist_x, dist_y):
        """Bot positions after a dead-end U-turn (§4.3); (N, B) arrays, only ``uturn`` entries change."""
        xp = self.xp
        if self.fix_bot_quirks:
            # Swap lanes in place: mirror across the current tile's centre line, stay on the map.
            cx = self.bot_mx * TILE_PX + TILE_PX / 2
            cy = self.bot_my * TILE_PX + TILE_PX / 2
            vertical = self.bot_dir_y != 0
            return xp.where(uturn & vertical, 2 * cx - bx, bx), xp.where(uturn & ~vertical, 2 * cy - by, by)
        # The original's teleport: the lane swap is right, the jump along the road is not.
        ox, oy = self.bot_target_x - TILE_PX / 2, self.bot_target_y - TILE_PX / 2  # tile ahead, top-left
        c1 = uturn & (dist_y != 0) & (bx < self.bot_target_x)
        c2 = uturn & (dist_y != 0) & (bx > self.bot_target_x) & ~c1
        rest = uturn & ~c1 & ~c2 & (dist_x != 0)
        c3 = rest & (by < self.bot_target_y)
        c4 = rest & (by > self.bot_target_y)
        new_x = xp.where(c1, ox + 45.0, xp.where(c2, ox + 15.0, xp.where(c3 | c4, ox, bx)))
        new_y = xp.where(c1 | c2, oy, xp.where(c3, oy + 45.0, xp.where(c4, oy + 15.0, by)))
        return new_x, new_y

    def cars_on_road(self) -> Any:
        """(N, K) bool: every car judged by the agent's on-road rule (all four captors on road tiles).

        Not used by the dynamics (bots are never off road in the original); for tests and analysis.
        """
        xp = self.xp
        c, s = xp.cos(self.theta)[:, :, None], xp.sin(self.theta)[:, :, None]
        x0, x1, y0, y1 = (xp.asarray(CAPTORS[:, i]) for i in range(4))
        left = self.x[:, :, None] + xp.minimum(x0 * c, x1 * c) - xp.maximum(y0 * s, y1 * s)
        right = self.x[:, :, None] + xp.maximum(x0 * c, x1 * c) - xp.minimum(y0 * s, y1 * s)
        top = self.y[:, :, None] + xp.minimum(x0 * s, x1 * s) + xp.minimum(y0 * c, y1 * c)
        bottom = self.y[:, :, None] + xp.maximum(x0 * s, x1 * s) + xp.maximum(y0 * c, y1 * c)
        count = 0
        for lo_x, hi_x in ((left, None), (None, right)):
            for lo_y, hi_y in ((top, None), (None, bottom)):
                tx = xp.floor(lo_x / TILE_PX) if lo_x is not None else xp.ceil(hi_x / TILE_PX) - 1
                ty = xp.floor(lo_y / TILE_PX) if lo_y is not None else xp.ceil(hi_y / TILE_PX) - 1
                count = count + (self._tile_lookup(self._is_road_flat, tx, ty) > 0)
        # Corners counted above are the box's four corner tiles; a box inside one tile counts it 4 times,
        # so "every captor on road" is "all four corner tiles of every captor are road".
        return (count == 4).all(axis=2)

    # ----------------------------------------------------------------------------------- observation
    def observation(self, kind: str = "linear") -> Any:
        """Agent observation, float32: ``"linear"`` (N, P+1) = lidar row by row then speed (the original's
        ``getState().linear``); ``"grid"`` (N, pts, pts) = the lidar picture."""
        xp = self.xp
        if kind == "linear":
            out = xp.empty((self.num_worlds, self.num_lidar + 1), dtype=xp.float32)
            out[:, :-1] = self.agent_lidar
            out[:, -1] = self.speed
            return out
        return self.agent_lidar.reshape(self.num_worlds, self.pts, self.pts).astype(xp.float32)

    def lidar_rects(self) -> np.ndarray:
        """Car-frame rectangles of the agent's lidar points, (P, 4) ``(X0, X1, Y0, Y1)`` (for rendering)."""
        return lidar_points(**self.lidar_options)

    def agent_captors(self) -> np.ndarray:
        """Car-frame rectangles of the agent's four captors (front, back, left, right), (4, 4)."""
        return captor_rects(self.pts, self.lidar_options["height"])

