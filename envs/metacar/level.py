"""MetaCar levels: load, validate and save the original's JSON level format.

A level is a JSON object (the format of MetaCar's ``src/embedded/level/*.ts`` and of its editor's export):

==============================  ===========================================================================
key                             meaning
==============================  ===========================================================================
``map``                         ``rows x cols`` grid, ``map[my][mx]``: ``0`` is grass, one of the 12 arrow
                                characters of :data:`TILE_ORIENTATION` is a 60 px road tile
``cars``                        bot cars ``{"mx", "my", "line"}``; ``line`` 0/1 is the lane (random if absent)
``agent``                       ``{"mx", "my", "line"}``, the agent's start tile; absent in ``full_city``
``house`` ... ``tree``          decorations ``{"x", "y"}`` (pixel top-left); drawn only, never sensed
anything else                   ignored (the original ignores ``agent.motion``, ``auto``, ``asset``, ``road``)
==============================  ===========================================================================

:func:`load_level` accepts a bundled level name (``"level0"`` ... ``"level3"``, ``"full_city"``, plus the
original's spellings ``"fullCity"`` and ``"level_1"``) or a path to a JSON file. Every mistake in a file
raises :class:`LevelError` naming the file and, where it applies, the row and column of the grid.

Limits (a level file comes from outside; these keep a bad or hostile one from exhausting memory or crashing
the renderer, and each is named in the error that enforces it):

* at most :data:`MAX_LEVEL_TILES` (64) tiles each way: a 64x64 map is a 3840x3840 px picture (the original's
  editor makes 5..15; a 400x400 map would be a 24000x24000 px window);
* at most :data:`MAX_CARS` (256) bots and :data:`MAX_DECORATIONS` (4096) decorations;
* decorations' top-left corners within one tile of the map (``-60 <= x <= width_px``, same for y);
* JSON nested at most :data:`MAX_JSON_DEPTH` (16) deep (a level needs 3) and files of at most
  :data:`MAX_LEVEL_BYTES` (4 MiB).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DECORATION_KINDS",
    "LEVEL_NAMES",
    "MAX_CARS",
    "MAX_DECORATIONS",
    "MAX_JSON_DEPTH",
    "MAX_LEVEL_BYTES",
    "MAX_LEVEL_TILES",
    "TILE_ORIENTATION",
    "TILE_PX",
    "CarSpec",
    "Level",
    "LevelError",
    "level_path",
    "load_level",
    "parse_level",
    "quantised_orientation",
    "save_level",
]

TILE_PX = 60
"""Side of a map tile in pixels (the original's ``ROADSIZE``)."""

# Road tiles (the original's ASSETS.ROADS): char -> orientation in units of pi. The orientation only
# decides where a car placed on the tile goes and which way it faces (see core.place_on_tile).
TILE_ORIENTATION: dict[str, float] = {
    "↕": 1.5,  # vertical straight
    "↔": 0.0,  # horizontal straight
    "↟": 1.5,  # vertical straight with zebra crossing
    "↠": 0.0,  # horizontal straight with zebra crossing
    "↱": 1.25,  # corner joining E and S
    "↰": 0.75,  # corner joining W and S
    "↲": 0.25,  # corner joining W and N
    "↳": 1.75,  # corner joining N and E
    "↤": 0.0,  # T-junction open W, N, S
    "↦": 1.0,  # T-junction open E, N, S
    "↥": 0.5,  # T-junction open W, E, N
    "↧": 1.5,  # T-junction open W, E, S
}

DECORATION_KINDS = ("house", "house2", "house3", "bench", "tree")

MAX_LEVEL_TILES = 64
"""Most tiles a level may have each way (64x64 tiles = 3840x3840 px)."""
MAX_CARS = 256
"""Most bot cars in a level (detection costs grow with the square of the number of cars)."""
MAX_DECORATIONS = 4096
"""Most decorations (houses, benches, trees) in a level, all kinds together."""
MAX_JSON_DEPTH = 16
"""Deepest JSON nesting a level file may have (a level needs 3: object, map, row)."""
MAX_LEVEL_BYTES = 4 << 20
"""Largest level file read, in bytes (a full 64x64 level with every decoration is well under 1 MiB)."""

LEVEL_NAMES = ("level0", "level1", "level2", "level3", "full_city")
_ALIASES = {
    "fullcity": "full_city",
    "full_city": "full_city",
    "level_0": "level0",
    "level_1": "level1",
    "level_2": "level2",
    "level_3": "level3",
}
_LEVEL_DIR = Path(__file__).resolve().parent / "levels"


def quantised_orientation(char: str) -> float:
    """The orientation the original actually uses for a tile: ``floor(o / 0.5) * 0.5`` (units of pi)."""
    return math.floor(TILE_ORIENTATION[char] / 0.5) * 0.5


class LevelError(ValueError):
    """A level file (or level object) is malformed; the message names the file, and the row/column."""


@dataclass(frozen=True)
class CarSpec:
    """A car's start: tile column ``mx``, tile row ``my`` and lane ``line`` (0, 1, or None = random)."""

    mx: int
    my: int
    line: int | None


@dataclass
class Level:
    """A validated level.

    ``grid[my][mx]`` is ``0`` or a road char; ``cars`` are the bots in file order; ``agent`` is None for a
    showcase level without agent; ``decorations`` maps a kind to a list of ``(x_px, y_px)``; ``source``
    names where it came from (for messages).
    """

    grid: list[list[Any]]
    cars: list[CarSpec]
    agent: CarSpec | None
    decorations: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    name: str = "level"
    source: str = "<level object>"

    @property
    def rows(self) -> int:
        """Tiles top to bottom."""
        return len(self.grid)

    @property
    def cols(self) -> int:
        """Tiles left to right."""
        return len(self.grid[0])

    @property
    def width_px(self) -> int:
        """Map width in pixels."""
        return self.cols * TILE_PX

    @property
    def height_px(self) -> int:
        """Map height in pixels."""
        return self.rows * TILE_PX

    def is_road(self, mx: int, my: int) -> bool:
        """True when tile ``(mx, my)`` is inside the map and is a road tile."""
        return 0 <= my < self.rows and 0 <= mx < self.cols and self.grid[my][mx] != 0

    def road_tiles(self) -> list[tuple[int, int]]:
        """Road tiles ``(mx, my)`` in row-major order; this order defines road tile indices in the core."""
        return [(mx, my) for my in range(self.rows) for mx in range(self.cols) if self.grid[my][mx] != 0]

    def to_dict(self) -> dict[str, Any]:
        """The level as a JSON-ready object in the original's format."""
        out: dict[str, Any] = {"map": [list(row) for row in self.grid]}
        out["cars"] = [_car_dict(c) for c in self.cars]
        if self.agent is not None:
            out["agent"] = _car_dict(self.agent)
        for kind in DECORATION_KINDS:
            if self.decorations.get(kind):
                out[kind] = [{"x": x, "y": y} for x, y in self.decorations[kind]]
        return out

    def dumps(self) -> str:
        """JSON text with one map row per line, so the file reads as a picture of the level."""
        data = self.to_dict()
        rows = ",\n    ".join(json.dumps(r, ensure_ascii=False) for r in data.pop("map"))
        parts = [f'  "map": [\n    {rows}\n  ]']
        parts += [f'  "{k}": ' + json.dumps(v, ensure_ascii=False) for k, v in data.items()]
        return "{\n" + ",\n".join(parts) + "\n}\n"


def _car_dict(c: CarSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"mx": c.mx, "my": c.my}
    if c.line is not None:
        d["line"] = c.line
    return d


def level_path(name: str) -> Path:
    """Path of a bundled level from its name (``level1``, ``full_city``, ``fullCity``, ``level_1``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in LEVEL_NAMES:
        raise LevelError(f"unknown level name {name!r}; bundled levels are {', '.join(LEVEL_NAMES)} "
                         "(or give a path to a .json file)")
    return _LEVEL_DIR / f"{key}.json"


def load_level(level: str | Path | Level | dict, require_agent: bool = True) -> Level:
    """Load and validate a level.

    ``level`` is a bundled level name, a path to a JSON file, a level dict in the original's format, or an
    already-loaded :class:`Level` (returned as is after the agent check). ``require_agent`` refuses levels
    without an agent (e.g. ``full_city``), which cannot be used for RL.
    Raises :class:`LevelError` naming the file, row and column of the first mistake.
    """
    if isinstance(level, Level):
        lvl = level
    elif isinstance(level, dict):
        lvl = parse_level(level, source="<level object>")
    else:
        text = str(level)
        is_path = isinstance(level, Path) or text.endswith(".json") or "/" in text or "\\" in text
        path = Path(text) if is_path else level_path(text)
        lvl = parse_level(_read_json(path), source=str(path), name=path.stem)
    if require_agent and lvl.agent is None:
        raise LevelError(f"{lvl.source}: the level has no 'agent', so it cannot be used as an RL environment "
                         "(full_city is a bots-only showcase); add an agent with scripts/edit_level.py")
    return lvl


def _read_json(path: Path) -> Any:
    """The JSON value in the level file ``path``, or a :class:`LevelError` naming the file and the problem."""
    if not path.is_file():
        raise LevelError(f"{path}: level file not found")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_LEVEL_BYTES + 1)
    except OSError as exc:
        raise LevelError(f"{path}: cannot read the level file ({exc.strerror or exc})") from None
    if len(raw) > MAX_LEVEL_BYTES:
        raise LevelError(f"{path}: level file larger than {MAX_LEVEL_BYTES >> 20} MiB (the limit; levels are "
                         f"at most {MAX_LEVEL_TILES}x{MAX_LEVEL_TILES} tiles)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LevelError(f"{path}: not UTF-8 text ({exc.reason})") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise LevelError(f"{path}: JSON nested {depth} deep; a level file may nest at most {MAX_JSON_DEPTH} "
                         "(a level needs 3)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LevelError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer literal too long to convert
        raise LevelError(f"{path}: invalid JSON: {exc}") from None


def _json_depth(text: str) -> int:
    """Deepest bracket nesting of JSON ``text``, brackets inside strings not counted (checked before parsing,
    because Python's parser recurses and a deep enough file ends in RecursionError)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_level(data: Any, source: str = "<level object>", name: str = "level") -> Level:
    """Validate a level object in the original's format and return a :class:`Level`.

    Checks: ``map`` is a non-empty rectangular list of rows of ``0`` or road chars; every car and the agent
    has integer ``mx``/``my`` inside the map on a road tile and ``line`` in {0, 1} (or absent/null);
    decorations have numeric ``x``/``y``. Raises :class:`LevelError` naming ``source`` and the row/column.
    """
    if not isinstance(data, dict):
        raise LevelError(f"{source}: a level must be a JSON object with a 'map' key, got {type(data).__name__}")
    if "map" not in data:
        raise LevelError(f"{source}: missing key 'map' (the grid of tiles)")
    grid_in = data["map"]
    if not isinstance(grid_in, list) or not grid_in:
        raise LevelError(f"{source}: 'map' must be a non-empty list of rows")
    if len(grid_in) > MAX_LEVEL_TILES:
        raise LevelError(f"{source}: 'map' has {len(grid_in)} rows; levels are at most {MAX_LEVEL_TILES}x"
                         f"{MAX_LEVEL_TILES} tiles")
    grid: list[list[Any]] = []
    cols = None
    for my, row in enumerate(grid_in):
        if not isinstance(row, list) or not row:
            raise LevelError(f"{source}: map row {my} must be a non-empty list of tiles")
        if cols is None:
            cols = len(row)
            if cols > MAX_LEVEL_TILES:
                raise LevelError(f"{source}: 'map' has {cols} columns; levels are at most {MAX_LEVEL_TILES}x"
                                 f"{MAX_LEVEL_TILES} tiles")
        elif len(row) != cols:
            raise LevelError(f"{source}: map row {my} has {len(row)} columns but row 0 has {cols} "
                             f"(ragged rows; first bad column {min(len(row), cols)})")
        out_row: list[Any] = []
        for mx, tile in enumerate(row):
            if isinstance(tile, bool) or not (tile == 0 or isinstance(tile, str) and tile in TILE_ORIENTATION):
                raise LevelError(f"{source}: unknown tile {_short(tile)} at row {my}, column {mx}; expected 0 (grass) "
                                 f"or one of {' '.join(TILE_ORIENTATION)}")
            out_row.append(0 if tile == 0 else tile)
        grid.append(out_row)
    lvl = Level(grid=grid, cars=[], agent=None, name=name, source=source)

    cars_in = data.get("cars", [])
    if not isinstance(cars_in, list):
        raise LevelError(f"{source}: 'cars' must be a list of {{mx, my, line}} objects")
    if len(cars_in) > MAX_CARS:
        raise LevelError(f"{source}: {len(cars_in)} cars; a level may have at most {MAX_CARS}")
    lvl.cars = [_parse_car(c, f"car {i}", lvl) for i, c in enumerate(cars_in)]
    if data.get("agent") is not None:
        lvl.agent = _parse_car(data["agent"], "agent", lvl)
    total = 0
    for kind in DECORATION_KINDS:
        items = data.get(kind, [])
        if not isinstance(items, list):
            raise LevelError(f"{source}: '{kind}' must be a list of {{x, y}} objects")
        total += len(items)
        if total > MAX_DECORATIONS:
            raise LevelError(f"{source}: more than {MAX_DECORATIONS} decorations (houses, benches, trees), "
                             "the limit")
        pts = []
        for i, item in enumerate(items):
            if not (isinstance(item, dict) and _is_number(item.get("x")) and _is_number(item.get("y"))):
                raise LevelError(f"{source}: {kind} {i} must be an object with numeric 'x' and 'y', "
                                 f"got {_short(item)}")
            x, y = item["x"], item["y"]
            if not (-TILE_PX <= x <= lvl.width_px and -TILE_PX <= y <= lvl.height_px):
                raise LevelError(f"{source}: {kind} {i} at x={x!r}, y={y!r} is off the {lvl.width_px}x"
                                 f"{lvl.height_px} px map (its top-left corner must lie within one tile, "
                                 f"{TILE_PX} px, of the map)")
            pts.append((x, y))
        if pts:
            lvl.decorations[kind] = pts
    return lvl


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about values from a file."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(v: Any) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer literal beyond float's range (1e308): no pixel position
        return False


def _parse_car(c: Any, what: str, lvl: Level) -> CarSpec:
    src = lvl.source
    if not isinstance(c, dict):
        raise LevelError(f"{src}: {what} must be an object {{mx, my, line}}, got {_short(c)}")
    mx, my = c.get("mx"), c.get("my")
    if not (isinstance(mx, int) and isinstance(my, int)) or isinstance(mx, bool) or isinstance(my, bool):
        raise LevelError(f"{src}: {what} needs integer tile coordinates 'mx' (column) and 'my' (row), "
                         f"got mx={_short(mx)}, my={_short(my)}")
    if not (0 <= my < lvl.rows and 0 <= mx < lvl.cols):
        raise LevelError(f"{src}: {what} at row {my}, column {mx} is outside the {lvl.cols}x{lvl.rows} map")
    if lvl.grid[my][mx] == 0:
        raise LevelError(f"{src}: {what} at row {my}, column {mx} is off road (that tile is grass)")
    line = c.get("line")
    if line is not None and (isinstance(line, bool) or line not in (0, 1)):
        raise LevelError(f"{src}: {what} at row {my}, column {mx} has line {_short(line)}; expected 0, 1 or absent")
    return CarSpec(mx=mx, my=my, line=None if line is None else int(line))


def save_level(level: Level, path: str | Path) -> Path:
    """Write ``level`` as JSON in the original's format (UTF-8, arrow chars kept) and return the path."""
    path = Path(path)
    path.write_text(level.dumps(), encoding="utf-8")
    return path
