"""The level editor's logic, separate from its pygame window (``scripts/edit_level.py``), so it can be tested.

Like the original's editor (§7): a palette of the 12 road tiles, the agent car and a bot car; placing snaps
to the 60 px grid; removing takes off the car on a tile first, else the road; at most one agent (placing it
again moves it); new cars get lane 0; the map is 5 to 15 tiles wide and high; saving writes the original's
JSON format. Decorations of a loaded level are kept (those outside a shrunk map are dropped).

Deviations from the original's editor: the palette has no decorations (they cannot be placed or removed
here); a tile takes at most two bots and the second is written with lane 1 (the original writes lane 0 for
every new car and its load-time lane flip moves the second one to lane 1, the same placement); saving
needs the agent (the original also saves levels without one, which cannot be driven).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .level import TILE_ORIENTATION, TILE_PX, CarSpec, Level, LevelError, load_level, save_level

__all__ = ["MAX_TILES", "MIN_TILES", "PALETTE", "LevelEditor"]

MIN_TILES, MAX_TILES = 5, 15
PALETTE: tuple[str, ...] = (*TILE_ORIENTATION, "agent", "bot")
"""Palette items: the 12 road characters, then ``"agent"`` and ``"bot"``."""


@dataclass
class LevelEditor:
    """An editable level: ``grid[my][mx]`` (0 or a road char), bot cars, the agent, decorations."""

    grid: list[list[object]]
    cars: list[CarSpec] = field(default_factory=list)
    agent: CarSpec | None = None
    decorations: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    name: str = "mylevel"

    @classmethod
    def new(cls, cols: int = 10, rows: int = 5) -> LevelEditor:
        """An empty grass map of ``cols x rows`` tiles (each within 5..15)."""
        _check_size(cols, rows)
        return cls(grid=[[0] * cols for _ in range(rows)])

    @classmethod
    def from_level(cls, level: str | Path | Level) -> LevelEditor:
        """Start from a bundled level name, a JSON path, or a Level (one without agent is fine)."""
        lvl = load_level(level, require_agent=False)
        return cls(grid=[list(r) for r in lvl.grid], cars=list(lvl.cars), agent=lvl.agent,
                   decorations={k: list(v) for k, v in lvl.decorations.items()}, name=lvl.name)

    @property
    def cols(self) -> int:
        """Map width in tiles."""
        return len(self.grid[0])

    @property
    def rows(self) -> int:
        """Map height in tiles."""
        return len(self.grid)

    def inside(self, mx: int, my: int) -> bool:
        """True when tile ``(mx, my)`` lies on the map."""
        return 0 <= mx < self.cols and 0 <= my < self.rows

    def place(self, item: str, mx: int, my: int) -> bool:
        """Place palette ``item`` on tile ``(mx, my)``; returns whether anything changed.

        Road chars replace the tile. ``"agent"``/``"bot"`` need a road tile; the agent moves if it exists;
        a tile holds at most two bots (one per lane: the second gets lane 1).
        """
        if item not in PALETTE:
            raise ValueError(f"unknown palette item {item!r}; expected one of {PALETTE}")
        if not self.inside(mx, my):
            return False
        if item in TILE_ORIENTATION:
            if self.grid[my][mx] == item:
                return False
            self.grid[my][mx] = item
            return True
        if self.grid[my][mx] == 0:
            return False  # cars only go on roads
        if item == "agent":
            if self.agent is not None and (self.agent.mx, self.agent.my) == (mx, my):
                return False
            self.agent = CarSpec(mx, my, 0)
            return True
        here = [c for c in self.cars if (c.mx, c.my) == (mx, my)]
        if len(here) >= 2:
            return False
        self.cars.append(CarSpec(mx, my, 1 if here and here[0].line == 0 else 0))
        return True

    def remove(self, mx: int, my: int) -> bool:
        """Right click: remove the last car placed on the tile, else the agent there, else the road.

        A road goes only once its cars and agent are gone, so no car is ever left on grass. Returns whether
        anything changed.
        """
        if not self.inside(mx, my):
            return False
        for i in range(len(self.cars) - 1, -1, -1):
            if (self.cars[i].mx, self.cars[i].my) == (mx, my):
                del self.cars[i]
                return True
        if self.agent is not None and (self.agent.mx, self.agent.my) == (mx, my):
            self.agent = None
            return True
        if self.grid[my][mx] != 0:
            self.grid[my][mx] = 0
            return True
        return False

    def resize(self, cols: int, rows: int) -> None:
        """Set the map size (5..15 each way): new tiles are grass; cars and decorations outside are dropped."""
        _check_size(cols, rows)
        self.grid = [[(self.grid[my][mx] if my < self.rows and mx < self.cols else 0) for mx in range(cols)]
                     for my in range(rows)]
        self.cars = [c for c in self.cars if c.mx < cols and c.my < rows]
        if self.agent is not None and not (self.agent.mx < cols and self.agent.my < rows):
            self.agent = None
        self.decorations = {k: [(x, y) for x, y in v if x < cols * TILE_PX and y < rows * TILE_PX]
                            for k, v in self.decorations.items()}

    def to_level(self) -> Level:
        """The edited level as a :class:`Level` (validated like a file would be)."""
        from .level import parse_level

        return parse_level(self.to_dict(), source=f"<editor: {self.name}>", name=self.name)

    def to_dict(self) -> dict:
        """The level in the original's JSON format (not validated; :meth:`to_level` validates)."""
        lvl = Level(grid=self.grid, cars=self.cars, agent=self.agent, decorations=self.decorations)
        return lvl.to_dict()

    def save(self, path: str | Path) -> Path:
        """Validate and write the level as JSON; raises LevelError if it would not load."""
        level = self.to_level()
        if level.agent is None:
            raise LevelError(f"{path}: place the agent car before saving (an RL level needs one)")
        return save_level(level, path)


def _check_size(cols: int, rows: int) -> None:
    if not (MIN_TILES <= cols <= MAX_TILES and MIN_TILES <= rows <= MAX_TILES):
        raise ValueError(f"map size must be {MIN_TILES}..{MAX_TILES} tiles each way, got {cols}x{rows}")
