"""MetaCar audit against docs/specs/metacar.md: each expected value is computed here from the spec's text,
by a deliberately naive route (one rectangle at a time, one bot after another), never by calling the core's
own geometry helpers, so a slip in the batched implementation cannot hide behind the same slip in the test.
"""

import math

import numpy as np
import pytest

from envs.metacar.core import MetaCarCore
from envs.metacar.level import CarSpec, load_level, parse_level

L, H = 42 * 0.8, 24 * 0.8  # car sprite, scaled (§2.1)
# Captors, car frame (X0, X1, Y0, Y1), as §2.2's table lists them.
SPEC_CAPTORS = [(11.8, 14.8, 0.0, 3.0), (-17.8, -14.8, -2.0, 1.0), (0.0, 3.0, -4.6, -1.6), (0.0, 3.0, 1.6, 4.6)]


def _core(level="level1", n=1, seed=0, **kw):
    core = MetaCarCore(load_level(level) if isinstance(level, str) else level, n, **kw)
    core.rng.seed(seed, None)
    core.reset()
    return core


# ------------------------------------------------------------------------ naive detection (§2.2, §2.3)
def _aabb(x, y, th, x0, x1, y0, y1):
    """AABB (left, right, top, bottom) of a car-frame rectangle placed at pose (x, y, th): its 4 corners."""
    c, s = math.cos(th), math.sin(th)
    xs, ys = [], []
    for px, py in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        xs.append(x + px * c - py * s)
        ys.append(y + px * s + py * c)
    return min(xs), max(xs), min(ys), max(ys)


def _hit(a, b):
    """Strict overlap, as Pixi's boxesIntersect: touching edges do not count."""
    return a[1] > b[0] and a[0] < b[1] and a[3] > b[2] and a[2] < b[3]


def _spec_points(pts, width, height, pos):
    """Lidar points (row-major, row 0 farthest, column 0 left) straight from §2.2's formulas."""
    aw, ah = L * width, H * height
    sx, sy = aw / pts, ah / pts
    out = []
    for r in range(pts):
        for c in range(pts):
            x0 = -L / 2 + pos * L + sx / 4 + (pts - 1 - r) * sx
            y0 = -ah / 2 + sy / 4 + c * sy
            out.append((x0, x0 + 5, y0, y0 + 5))
    return out


def _roads(level):
    return [(mx * 60, mx * 60 + 60, my * 60, my * 60 + 60) for my, row in enumerate(level.grid)
            for mx, t in enumerate(row) if t != 0]


def _sense(pose, rects, others, roads):
    """Cell values (car 1 > road -1 > ground 0) of ``rects`` on a car at ``pose`` among ``others`` (poses)."""
    car_boxes = [_aabb(*p, -L / 2, L / 2, -H / 2, H / 2) for p in others]
    values = []
    for r in rects:
        box = _aabb(*pose, *r)
        if any(_hit(box, cb) for cb in car_boxes):
            values.append(1.0)
        elif any(_hit(box, rb) for rb in roads):
            values.append(-1.0)
        else:
            values.append(0.0)
    return values


def _agent_expected(core, lidar):
    """(lidar cells, collided, on_road) of world 0's agent from §2.3, given the core's current poses."""
    poses = [(float(core.x[0, k]), float(core.y[0, k]), float(core.theta[0, k])) for k in range(core.num_cars)]
    roads = _roads(core.level)
    cells = _sense(poses[0], _spec_points(**lidar), poses[1:], roads)
    car_boxes = [_aabb(*p, -L / 2, L / 2, -H / 2, H / 2) for p in poses[1:]]
    captors = [_aabb(*poses[0], *c) for c in SPEC_CAPTORS]
    collided = any(_hit(c, cb) for c in captors for cb in car_boxes)
    on_road = sum(_hit(c, rb) for c in captors for rb in roads) >= 4
    return cells, collided, on_road


@pytest.mark.parametrize("lidar", [
    {"pts": 5, "width": 4, "height": 5, "pos": 0},
    {"pts": 7, "width": 3, "height": 7, "pos": -0.5},  # the DDPG-traffic demo's lidar
    {"pts": 2, "width": 1, "height": 1, "pos": 1},  # the Q-table demo's lidar
])
def test_agent_lidar_collision_and_on_road_match_a_naive_spec_reading(lidar):
    # Hand-placed agent poses around level1's bots, at arbitrary angles (where AABBs grow) and across tile
    # seams and the map border; after each WAIT step (bots move first) the agent's cells, collision flag and
    # on-road flag must equal what §2.3 gives rectangle by rectangle.
    rng = np.random.default_rng(0)
    core = _core("level1", lidar=lidar, cars_moving=False)
    for i in range(120):
        x = 330 + rng.uniform(-90, 90) if i % 3 else rng.uniform(-40, 640)
        y = 225 + rng.uniform(-60, 20) if i % 3 else rng.uniform(-40, 340)
        th = rng.choice([0.0, math.pi / 4, -math.pi / 2, rng.uniform(-7, 7)])
        core.x[0, 0], core.y[0, 0], core.theta[0, 0] = x, y, th
        core.refresh_derived()
        core.step(np.array([4]))  # WAIT: the agent does not move
        cells, collided, on_road = _agent_expected(core, lidar)
        assert core.agent_lidar[0].tolist() == cells, (x, y, th)
        assert (bool(core.collided[0]), bool(core.on_road[0])) == (collided, on_road), (x, y, th)


def _poses(core):
    return [(float(core.x[0, k]), float(core.y[0, k]), float(core.theta[0, k])) for k in range(core.num_cars)]


def _replayed_bot_lidars(core, old, new):
    """Bots' 2x2 lidars after one step replayed as the original runs it (§5.1): bot after bot, each moving
    and then re-detecting among the others' current poses; the agent still at its old pose."""
    roads = _roads(core.level)
    bot_rects = _spec_points(2, 0.5, 1, 1)
    poses = list(old)
    out = []
    for b in range(1, core.num_cars):
        poses[b] = new[b]
        out.append(_sense(poses[b], bot_rects, [p for k, p in enumerate(poses) if k != b], roads))
    return out


def test_bots_lidar_follows_the_original_one_bot_after_another_order():
    core = _core("level3", n=1, seed=2)
    for _ in range(300):
        old = _poses(core)
        core.step(np.array([0]))
        assert core.bots.lidar[0].tolist() == _replayed_bot_lidars(core, old, _poses(core))


# Hand-made edge crossings in level1 (bots A, B, C = car slots 1, 2, 3; agent = slot 0), where the order of
# §5.1 decides a reading: (slot placed at x on y 225 heading East, ...), stopped bots, agent action, and the
# (slot, cells) the original reads: A's far points end at x 362.3 while it stands at 330.
@pytest.mark.parametrize("placed, stopped, action, expected", [
    # C moves after A: A re-detects while C (left edge 362.0) has not yet moved away (to 362.8).
    ({3: 378.8, 0: -1000.0}, [1], 4, (1, [1.0, 1.0])),
    # C moves after A: A already moved on (left edge 313.2 -> 314.0) when stopped C (far edge 313.6) looks.
    ({3: 281.3, 0: -1000.0}, [3], 4, (3, [-1.0, -1.0])),
    # The agent moves last: A sees the agent before its 1 px UP takes its left edge from 362.0 to 363.0.
    ({0: 378.8}, [1], 0, (1, [1.0, 1.0])),
])
def test_bots_see_earlier_bots_moved_and_later_cars_not_yet(placed, stopped, action, expected):
    core = _core("level1")
    for slot, x in placed.items():
        core.x[0, slot], core.y[0, slot], core.theta[0, slot] = x, 225.0, 0.0
    core.refresh_derived()
    core.bots.lidar[0] = -1.0
    for slot in stopped:
        core.bots.lidar[0, slot - 1] = [-1.0, 1.0, -1.0, -1.0]  # a car in the far-right cell: stop
    old = _poses(core)
    core.step(np.array([action]))
    assert core.bots.lidar[0].tolist() == _replayed_bot_lidars(core, old, _poses(core))
    slot, far_cells = expected
    assert core.bots.lidar[0, slot - 1, :2].tolist() == far_cells


def test_touching_edges_do_not_count():
    # The agent heading East on level1's grass row 2 (tile (4, 2)), so that the bottom edge of its lidar's
    # column 0 lies exactly on y = 180, the top of the road row 3: strict overlap (§2.3) reads grass, 0.
    core = _core("level1")
    y_bottom = -H * 5 / 2 + (H * 5 / 5) / 4 + 5  # column 0's bottom edge, car frame
    y = 180.0 - y_bottom
    while y + y_bottom != 180.0:  # the float pose whose edge lands exactly on the seam
        y = np.nextafter(y, 0.0) if y + y_bottom > 180.0 else np.nextafter(y, 1e9)
    core.x[0, 0], core.y[0, 0], core.theta[0, 0] = 260.0, float(y), 0.0
    core.refresh_derived()
    core.step(np.array([4]))
    grid = core.agent_lidar[0].reshape(5, 5)
    assert (grid[:, 0] == 0.0).all()
    assert (grid[:, 1] != 0.0).all()  # column 1 reaches into row 3 (road, and bot B in row 1)


# ------------------------------------------------------------------------------------- §3 motion engines
def test_basic_motion_quarter_turn_then_one_pixel_along_the_heading():
    core = _core("level0", rotation_step=0.25)  # the Q-table demo's 45 degree turns; agent (150, 75) W
    core.step(np.array([1]))  # LEFT: theta -= 0.25 pi, in place
    assert float(core.theta[0, 0]) == pytest.approx(math.pi - math.pi / 4)
    assert (float(core.x[0, 0]), float(core.y[0, 0])) == (150.0, 75.0)
    core.step(np.array([0]))  # UP: 1 px along (cos, sin) of the new heading (y down: up-left on screen)
    assert float(core.x[0, 0]) == pytest.approx(150 + math.cos(0.75 * math.pi))
    assert float(core.y[0, 0]) == pytest.approx(75 + math.sin(0.75 * math.pi))
    assert float(core.speed[0]) == 0.0  # v zeroed after every env.step


@pytest.mark.parametrize("v0, throttle, steering", [
    (1.0, 0.2, 0.5),  # accelerate while turning right
    (0.5, -0.4, -1.0),  # braking (0.03 per unit) while turning left
    (-0.3, 0.0, 0.7),  # drag towards 0 in reverse: steering acts the other way
    (-0.02, 1.0, 0.3),  # throttle out of reverse (0.03), sign change within the step
    (0.0, 0.0, 1.0),  # standstill: turns by s * 0.01 * 0.001 * pi without moving
])
def test_control_motion_one_step_matches_the_spec_equations(v0, throttle, steering):
    core = _core("level2", motion="control")
    x0, y0, th0 = 300.0, 200.0, 0.3
    core.x[0, 0], core.y[0, 0], core.theta[0, 0], core.speed[0] = x0, y0, th0, v0
    core.refresh_derived()
    core.step(np.array([[throttle, steering]]))
    # §3.2, written out by hand.
    v = v0
    if throttle == 0:
        v = max(0.0, v - 0.01) if v > 0 else (min(0.0, v + 0.01) if v < 0 else v)
    if throttle > 0:
        v = min(2.0, v + (0.005 if v >= 0 else 0.03) * throttle)
    if throttle < 0:
        v = max(-2.0, v + (0.005 if v <= 0 else 0.03) * throttle)
    w = steering * 0.01 * (v + 0.001) * math.pi
    x = x0 + (v / w) * (math.sin(th0 + w) - math.sin(th0))
    y = y0 + (v / w) * (math.cos(th0) - math.cos(th0 + w))
    assert float(core.speed[0]) == pytest.approx(v, abs=1e-15)
    assert float(core.theta[0, 0]) == pytest.approx(th0 + w, abs=1e-15)
    assert float(core.x[0, 0]) == pytest.approx(x, abs=1e-12)
    assert float(core.y[0, 0]) == pytest.approx(y, abs=1e-12)


def test_control_motion_at_the_original_divide_by_zero_moves_straight():
    # v == -0.001 makes omega 0 with steering on: the original divides by zero (NaN pose); we move straight.
    core = _core("level2", motion="control")  # v = 0: one step of throttle -0.2 lands on v = -0.001
    core.step(np.array([[-0.2, 1.0]]))
    assert float(core.speed[0]) == pytest.approx(-0.001)
    assert np.isfinite(core.x[0, 0]) and float(core.x[0, 0]) == pytest.approx(270 - 0.001)
    assert float(core.theta[0, 0]) == 0.0


# --------------------------------------------------------------------------------------- §4 bots
def _first_heading_change(core, bot, steps):
    """(pre-move x, y, post-step x, y, theta) of ``bot`` on the first step its heading changes."""
    for _ in range(steps):
        px, py, th = float(core.x[0, bot]), float(core.y[0, bot]), float(core.theta[0, bot])
        core.step(np.array([4]))
        if float(core.theta[0, bot]) != th:
            return px, py, float(core.x[0, bot]), float(core.y[0, bot]), float(core.theta[0, bot])
    raise AssertionError("the bot never turned")


def _walk(start, target, limit):
    """The first position of a bot walking +0.8 px/step from ``start`` whose distance to ``target`` < limit."""
    x = start
    while abs(target - x) >= limit:
        x += 0.8 * math.cos(0.0)
    return x


def test_bot_right_turn_triggers_within_80_px_of_the_tile_ahead():
    # level1 bot C (330, 105) heads E to the corner (7, 1): (8, 1) is grass, right (S) is road: a right turn
    # (type 0) towards the centre of (8, 1) = x 510, when 510 - x < 60 + 60/3.
    core = _core("level1")
    core.x[0, 0] = -1000.0  # the agent out of the way
    core.refresh_derived()
    px, py, x, y, th = _first_heading_change(core, 3, 400)
    assert px == pytest.approx(_walk(330.0, 510.0, 80.0)) and py == 105.0
    assert th == pytest.approx(math.pi / 2)
    assert (x, y) == pytest.approx((px, py + 0.8))  # turned in place, then 0.8 px South


def test_bot_left_turn_triggers_within_42_86_px_of_the_tile_ahead():
    # level1 bot A (330, 225) heads E to the corner (7, 3): right (S) is grass, left (N) is road: type 1,
    # fires when 510 - x < 60 - 60/3.5, about 17 px past the tile's centre.
    core = _core("level1")
    core.x[0, 0] = -1000.0
    core.refresh_derived()
    px, py, x, y, th = _first_heading_change(core, 1, 400)
    assert px == pytest.approx(_walk(330.0, 510.0, 60 - 60 / 3.5)) and py == 225.0
    assert th == pytest.approx(-math.pi / 2)
    assert (x, y) == pytest.approx((px, py - 0.8))


def test_bot_dead_end_u_turn_teleports_as_the_spec_table_says():
    # full_city bot [8, 2, 0] at (510, 165) heads E to the map edge: (11, 2) is off the map, so it U-turns
    # (type 2) when 690 - x < 60; heading horizontally, below O.y + 30 = 150: y = O.y + 15, x = O.x (§4.3).
    lvl = load_level("full_city", require_agent=False)
    lvl.agent = CarSpec(0, 4, 0)
    core = _core(lvl)
    core.x[0, 0] = -1000.0
    core.refresh_derived()
    px, _, x, y, th = _first_heading_change(core, 6, 400)
    assert px == pytest.approx(_walk(510.0, 690.0, 60.0))
    assert th == pytest.approx(-math.pi)  # fmod(0 - pi, 2 pi), JS % keeps the sign
    assert (x, y) == pytest.approx((660 - 0.8, 135.0))  # landed on the edge, then one step West


def test_bot_stop_test_ignores_far_left_cell_and_a_stop_cancels_an_optional_turn():
    core = _core("level1", cars_moving=True)
    core.x[0, 0] = -1000.0
    core.refresh_derived()
    x0 = float(core.x[0, 1])
    core.bots.lidar[0, 0] = [1.0, -1.0, -1.0, -1.0]  # a car only in cell [0][0]: "1,-1,-1,-1" has no ",1"
    core.step(np.array([4]))
    assert float(core.x[0, 1]) == pytest.approx(x0 + 0.8)
    # Bot A pretends it took an optional right turn on this tile; a car in cell [1][1] stops it and it
    # turns back to its previous heading (East), without moving.
    core.theta[0, 1] = math.pi / 2
    core.bots.turned[0, 0], core.bots.optional[0, 0], core.bots.prev_theta[0, 0] = True, True, 0.0
    core.bots.lidar[0, 0] = [-1.0, -1.0, -1.0, 1.0]
    x1, y1 = float(core.x[0, 1]), float(core.y[0, 1])
    core.step(np.array([4]))
    assert (float(core.x[0, 1]), float(core.y[0, 1]), float(core.theta[0, 1])) == (x1, y1, 0.0)
    assert float(core.bots.speed[0, 0]) == 0.0


# ------------------------------------------------------------------------------------- §1.2 placement
def test_lane_flip_compares_with_the_first_car_on_the_tile_only():
    # Three cars on one tile with file lines 0, 0, 1: the second is flipped to 1 (the first car has 0); the
    # third keeps 1 because only the *first* car's lane is compared, so two cars share lane 1.
    grid = [[0] * 5 for _ in range(5)]
    for mx in range(5):
        grid[2][mx] = "↔"
    data = {"map": grid, "cars": [{"mx": 2, "my": 2, "line": 0}, {"mx": 2, "my": 2, "line": 0},
                                  {"mx": 2, "my": 2, "line": 1}], "agent": {"mx": 0, "my": 2, "line": 0}}
    core = _core(parse_level(data))
    ys = core.y[0, 1:].tolist()
    assert ys == [150.0 + 15, 150.0 - 15, 150.0 - 15]  # line 0 below the centre line, line 1 above
    np.testing.assert_allclose(core.theta[0, 1:] % (2 * math.pi), [0.0, math.pi, math.pi])


# --------------------------------------------------------------------- §2.2 lidar's lateral centring
def _spec_pivot_y(pts, height):
    """The original's ``pivot.y``: half the lidar container's local bounds height. Its children, in local
    coordinates: the area [0, aH], the points [sy/4, sy/4 + (pts-1)*sy + 5] and the captors aH/2 + [-4.6, 4.6]."""
    ah = H * height
    sy = ah / pts
    top = min(0.0, ah / 2 - 4.6)
    bottom = max(ah, sy / 4 + (pts - 1) * sy + 5, ah / 2 + 4.6)
    return (bottom - top) / 2


@pytest.mark.parametrize("pts, height", [(15, 5.0), (25, 5.0), (1, 0.4), (3, 0.3), (5, 5.0), (7, 7.0)])
def test_points_and_captors_use_the_original_bounds_centring(pts, height):
    # When the points overflow the area (aH/pts < 6.67 px) or the captors do (aH < 9.2 px), the container's
    # bounds are taller than aH and the original's pivot.y = bounds/2 shifts points *and* captors across
    # the car. For the demos' lidars (last two rows) the shift is 0.
    core = _core("level2", lidar={"pts": pts, "width": 2.0, "height": height, "pos": 0.0})
    shift = H * height / 2 - _spec_pivot_y(pts, height)
    rects = core.lidar_rects()
    sy = H * height / pts
    np.testing.assert_allclose(rects[:pts, 2], [sy / 4 + c * sy - _spec_pivot_y(pts, height) for c in range(pts)])
    np.testing.assert_allclose(core.agent_captors()[:, 2:], np.array(SPEC_CAPTORS)[:, 2:] + shift)
    if pts in (5, 7):
        assert shift == 0.0
