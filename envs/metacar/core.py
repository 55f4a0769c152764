"""Batched MetaCar: N worlds of one level as arrays, one ``step`` advances all of them.

This is a port of the behaviour of MetaCar 0.1.1 (thibo73800/metacar; the spec facts it follows are in the
docstrings, § numbers refer to the sections of the port's specification). Every quantity is in the
original's units: pixels, y pointing down, ``theta`` in radians with 0 = East and positive = clockwise
(a right turn), one step = one frame with ``delta = 1``.

The pieces: :mod:`envs.metacar.world` (the road map, start placement and shuffles), :mod:`envs.metacar.bots`
(the bots' autopilot and its state), :mod:`envs.metacar.sensors` (car, lidar and captor boxes, computed as
Pixi computes them, and the detection pass). This module moves the agent (BasicMotion or ControlMotion), runs
a step in the original's order and computes the reward.

State layout (``K = 1 + B`` cars per world, car 0 is the agent, cars 1..B the bots in file order):

=====================  ==========  ===========================================================
array                  shape       meaning
=====================  ==========  ===========================================================
``x, y``               (N, K)      car centres, px
``theta``              (N, K)      headings, rad (never wrapped for the agent, as the original)
``tile``               (N, K)      road tile index under each car, -1 for none
``speed``              (N,)        agent speed, px/step (kept between steps by ControlMotion)
``agent_lidar``        (N, P)      agent lidar cells, row by row (row 0 farthest, column 0 left)
``collided``           (N,)        agent captors touch another car after the last move
``on_road``            (N,)        all four agent captors on road tiles after the last move
``bots.*``             (N, B)      the bots' autopilot state (:class:`~envs.metacar.bots.Bots`)
=====================  ==========  ===========================================================

Randomness (bots' junction draws, missing lanes, shuffles) comes from ``rng``, the per-world streams every
playgrad env uses (:class:`envs._common.WorldRNG`, seeded ``s + i`` for world i): a world draws only for
itself, so N batched worlds equal N single worlds with the same seeds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from envs._common import WorldRNG

from .bots import BOT_SPEED_PX_PER_STEP, Bots
from .level import TILE_PX, Level
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
from .world import RoadMap, place_on_tile

__all__ = [
    "BOT_LIDAR",
    "BOT_SPEED_PX_PER_STEP",
    "CAPTORS",
    "CAR_LENGTH_PX",
    "CAR_WIDTH_PX",
    "DEFAULT_LIDAR",
    "LIDAR_POINT_PX",
    "MetaCarCore",
    "RewardInputs",
    "captor_rects",
    "check_crash_reward",
    "default_reward",
    "lidar_lateral_shift_px",
    "lidar_points",
    "place_on_tile",
]

# ControlMotion constants (§3.2).
CONTROL_MAX_SPEED = 2.0
CONTROL_DRAG = 0.01
CONTROL_ACCEL = 0.005
CONTROL_BRAKE = 0.03
CONTROL_TURN = 0.01


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


def default_reward(inp: RewardInputs, crash_reward: float = -1.0, collision_reward: float | None = None) -> Any:
    """The original's reward (v0.1.1, §5.2), shape (N,).

    Discrete actions: 1 for UP (action 0), else 0. Continuous actions: ``max(0, v) / max_speed``.
    Either way ``crash_reward`` (the original's -1) when the agent is off road, and ``collision_reward`` (None: the
    same) when it touches another car; the lower of the two when both.
    """
    xp = inp.xp
    base = (inp.action == 0).astype(xp.float64) if inp.discrete else xp.maximum(inp.speed, 0.0) / inp.max_speed
    if collision_reward is None or collision_reward == crash_reward:
        return xp.where(inp.collided | ~inp.on_road, crash_reward, base)
    crash = xp.where(inp.on_road, collision_reward, min(crash_reward, collision_reward))
    return xp.where(inp.collided, crash, xp.where(inp.on_road, base, crash_reward))


CRASH_KINDS = ("off_road", "collision")


def check_crash_reward(crash_reward: Any, reward_fn: Any) -> tuple[float, float]:
    """``crash_reward`` as ``(off_road, collision)`` floats: one finite number for both, or a table
    ``{off_road = x, collision = y}`` (a kind left out keeps the original's -1); only with the default reward (a
    custom ``reward_fn`` sets its own). Anything else is a ``ValueError`` naming the argument."""
    def number(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metacar {what} must be a finite number (the original's is -1), got {value!r}")
        return float(value)

    if isinstance(crash_reward, dict):
        unknown = sorted(set(map(str, crash_reward)) - set(CRASH_KINDS))
        if unknown:
            raise ValueError(f"metacar crash_reward: unknown kind(s) {unknown}; the kinds are {list(CRASH_KINDS)}")
        values = tuple(number(crash_reward.get(kind, -1.0), f"crash_reward.{kind}") for kind in CRASH_KINDS)
    else:
        values = (number(crash_reward, "crash_reward"),) * 2
    if reward_fn is not None and values != (-1.0, -1.0):
        raise ValueError(f"metacar crash_reward={crash_reward!r} applies to the default reward only; "
                         "a custom reward_fn sets its own crash reward")
    return values


class MetaCarCore:
    """N worlds of one MetaCar level, stepped together with array ops on ``xp`` (NumPy or CuPy).

    Args:
        level: a loaded :class:`~envs.metacar.level.Level` with an agent.
        num_worlds: N.
        motion: ``"basic"`` (5 discrete actions) or ``"control"`` (``[throttle, steering]``).
        lidar: agent lidar options ``{pts, width, height, pos}`` (defaults 5, 4, 5, 0).
        rotation_step: BasicMotion turn per LEFT/RIGHT, in units of pi (0.5 = 90 degrees).
        cars_moving: bots drive (True) or stay parked (False; they still plan, as the original).
        fix_bot_quirks: fix the original bots' quirks (§8.17), see :class:`~envs.metacar.bots.Bots`.
        reward_fn: ``f(RewardInputs) -> (N,)`` array; None for :func:`default_reward`.
        crash_reward: the default reward's value for a crash (the original's -1): one number, or a table
            ``{off_road = x, collision = y}`` for leaving the road and touching a car. A training option: a
            stronger penalty makes leaving the road worse than stopping; scores stay judged with -1.
        xp: array module; None for NumPy.
    """

    STATE_PARTS = ("bots",)  # snapshots (envs._common.capture_state) save the bots' arrays too

    def __init__(self, level: Level, num_worlds: int, *, motion: str = "basic", lidar: dict | None = None,
                 rotation_step: float = 0.5, cars_moving: bool = True, fix_bot_quirks: bool = False,
                 reward_fn: Callable[[RewardInputs], Any] | None = None, crash_reward: float | dict = -1.0,
                 xp: ModuleType | None = None):
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
        self.num_lidar = self.pts * self.pts
        self.rotation_step = float(rotation_step)
        self.cars_moving = bool(cars_moving)
        self.fix_bot_quirks = bool(fix_bot_quirks)
        self.crash_reward = off_road, collision = check_crash_reward(crash_reward, reward_fn)
        self.reward_fn = reward_fn or (default_reward if self.crash_reward == (-1.0, -1.0) else
                                       functools.partial(default_reward, crash_reward=off_road,
                                                         collision_reward=collision))
        self.num_bots = nb = len(level.cars)
        self.num_cars = k = 1 + nb

        self.roads = RoadMap(level, xp)
        self.bots = Bots(n, nb, self.roads, cars_moving, fix_bot_quirks, xp)
        self._detector = Detector(self.lidar_options, nb, self.roads.road_grid, xp)
        self.rng = WorldRNG(n, xp)
        # BasicMotion per action (UP, LEFT, RIGHT, DOWN, WAIT): heading change and speed.
        step_rad = self.rotation_step * math.pi
        self._basic_dtheta = xp.asarray(np.array([0.0, -step_rad, step_rad, 0.0, 0.0]))
        self._basic_speed = xp.asarray(np.array([1.0, 0.0, 0.0, -1.0, 0.0]))

        f64 = xp.float64
        self.x = xp.zeros((n, k), dtype=f64)
        self.y = xp.zeros((n, k), dtype=f64)
        self.theta = xp.zeros((n, k), dtype=f64)
        self.tile = xp.full((n, k), -1, dtype=xp.int64)
        self.speed = xp.zeros(n, dtype=f64)
        self.last_throttle = xp.zeros(n, dtype=f64)
        self.last_steering = xp.zeros(n, dtype=f64)
        self.agent_lidar = xp.zeros((n, self.num_lidar), dtype=f64)
        self.previous_lidar = xp.zeros((n, self.num_lidar), dtype=f64)  # the step before's (a reset: the same)
        self.collided = xp.zeros(n, dtype=bool)
        self.on_road = xp.ones(n, dtype=bool)
        self.reward = xp.zeros(n, dtype=f64)
        self._boxes = tuple(xp.zeros((n, k), dtype=f64) for _ in range(4))  # car boxes after the last step

    def refresh_derived(self) -> None:
        """Recompute the cars' boxes (a private cache of ``x, y, theta``) after the poses were written from
        outside: a snapshot restore (``set_state``) or a test placing cars by hand. The next step's detection
        reads them as the cars' old poses."""
        xp = self.xp
        self._boxes = car_boxes(xp, self.x, self.y, xp.cos(self.theta), xp.sin(self.theta))

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
        if shuffle not in (None, "agent", "all"):
            raise ValueError(f"shuffle must be None, 'agent' or 'all', got {shuffle!r}")
        idx = xp.arange(self.num_worlds) if idx is None else xp.asarray(idx, dtype=xp.int64)
        if int(idx.shape[0]) == 0:
            return
        x, y, th, tile = self.roads.start(self.rng, idx)
        if shuffle is not None:
            x, y, th, tile = self.roads.shuffle(self.rng, idx, x, y, th, tile, shuffle == "all")
        self.x[idx], self.y[idx], self.theta[idx], self.tile[idx] = x, y, th, tile
        # Copy-on-write: arrays handed out by step() (rewards, flags, lidar) must not change under the caller.
        for name in ("speed", "last_throttle", "last_steering", "reward", "agent_lidar", "previous_lidar", "collided",
                     "on_road"):
            setattr(self, name, getattr(self, name).copy())
        self.speed[idx] = 0.0
        self.last_throttle[idx] = 0.0
        self.last_steering[idx] = 0.0
        self.reward[idx] = 0.0
        if self.num_bots:
            self.bots.reset(idx, x[:, 1:], y[:, 1:], th[:, 1:])
        boxes = car_boxes(xp, x, y, xp.cos(th), xp.sin(th))
        detection = self._detector.detect(boxes, x, y, th)
        for cached, fresh in zip(self._boxes, boxes):
            cached[idx] = fresh
        lidar, collided, on_road, _ = self._detector.split(*detection[:3])
        self.agent_lidar[idx] = lidar
        self.previous_lidar[idx] = lidar  # nothing has moved yet
        self.collided[idx] = collided
        self.on_road[idx] = on_road

    # ------------------------------------------------------------------------------------------- step
    def step(self, action: Any, active: Any = None) -> Any:
        """Advance every world by one frame: bots (§4), then the agent (§3), then the reward (§5.2).

        ``action``: (N,) ints in 0..4 for basic (UP, LEFT, RIGHT, DOWN, WAIT) or (N, 2) floats
        ``[throttle, steering]`` for control (clipped to [-1, 1]). ``active`` (N,) bool, None for all: worlds
        that are not active still move but draw no random numbers (a vector env resets them right after).
        Returns the reward, shape (N,).
        """
        xp = self.xp
        if self.num_bots:
            if active is None:
                active = xp.ones(self.num_worlds, dtype=bool)
            x, y, th, tile = self.bots.step(self.x[:, 1:], self.y[:, 1:], self.theta[:, 1:], self.tile[:, 1:],
                                            self._draw_bot_turns, active)
            self.x[:, 1:], self.y[:, 1:], self.theta[:, 1:], self.tile[:, 1:] = x, y, th, tile
        if self.discrete:
            self._step_basic(action)
        else:
            self._step_control(action)
        values, car_hit, road_count, self._boxes = self._detector.detect(self._boxes, self.x, self.y, self.theta)
        self.previous_lidar = self.agent_lidar  # split() makes new arrays: this one is not written again
        self.agent_lidar, self.collided, self.on_road, bot_lidar = self._detector.split(values, car_hit, road_count)
        if self.num_bots:
            self.bots.lidar = bot_lidar
        # A collision stops the agent but does not undo the move (§3, step 7).
        self.speed = xp.where(self.collided, 0.0, self.speed)
        inputs = RewardInputs(self.collided, self.on_road, action, self.speed, self.max_speed, self.agent_lidar,
                              self.x[:, 0], self.y[:, 0], self.theta[:, 0], self.discrete, xp)
        self.reward = xp.asarray(self.reward_fn(inputs), dtype=xp.float64)
        if self.discrete:
            self.speed = xp.zeros_like(self.speed)  # BasicMotion zeroes v after each env.step (§3.1)
        return self.reward

    def _draw_bot_turns(self, worlds: Any) -> Any:
        """The bots' junction coins for ``worlds`` (int (W,)): uniform (W, B), one draw per bot of each world."""
        return self.rng.uniform(worlds, self.num_bots).T

    def _step_basic(self, action: Any) -> None:
        """BasicMotion (§3.1): LEFT/RIGHT turn in place by rotation_step*pi, UP/DOWN move 1 px."""
        xp = self.xp
        th = self.theta[:, 0] + self._basic_dtheta[action]
        v = self._basic_speed[action]
        self.theta[:, 0] = th
        self.x[:, 0] += v * xp.cos(th)
        self.y[:, 0] += v * xp.sin(th)
        self.speed = v
        self.tile[:, 0] = self.roads.road_index(xp.floor(self.x[:, 0] / TILE_PX), xp.floor(self.y[:, 0] / TILE_PX))

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
        self.tile[:, 0] = self.roads.road_index(xp.floor(self.x[:, 0] / TILE_PX), xp.floor(self.y[:, 0] / TILE_PX))

    # ----------------------------------------------------------------------------------- observation
    def observation(self, kind: str = "linear") -> Any:
        """Agent observation, float32: ``"linear"`` (N, P+1) = lidar row by row then speed (the original's
        ``getState().linear``); ``"linear_and_previous"`` (N, 2P+1) = the same, then the previous step's lidar
        (how the cars in view move); ``"grid"`` (N, pts, pts) = the lidar picture."""
        xp = self.xp
        p = self.num_lidar
        if kind in ("linear", "linear_and_previous"):
            out = xp.empty((self.num_worlds, p + 1 if kind == "linear" else 2 * p + 1), dtype=xp.float32)
            out[:, :p] = self.agent_lidar
            out[:, p] = self.speed
            if kind == "linear_and_previous":
                out[:, p + 1:] = self.previous_lidar
            return out
        return self.agent_lidar.reshape(self.num_worlds, self.pts, self.pts).astype(xp.float32)

    def lidar_rects(self) -> np.ndarray:
        """Car-frame rectangles of the agent's lidar points, (P, 4) ``(X0, X1, Y0, Y1)`` (for rendering)."""
        return lidar_points(**self.lidar_options)

    def agent_captors(self) -> np.ndarray:
        """Car-frame rectangles of the agent's four captors (front, back, left, right), (4, 4)."""
        return captor_rects(self.pts, self.lidar_options["height"])

