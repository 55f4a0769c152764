"""MetaCar level editor (pygame), in the spirit of the original's editor page.

    python scripts/edit_level.py [FILE]          # edit FILE (created on save if missing)
    python scripts/edit_level.py --from level1 out.json
    python scripts/edit_level.py --headless-frames 30 out.json   # smoke test, no window

Palette on the right: the 12 road tiles, the agent car (red) and a bot car (white). Left click a palette
item, then left click the map to place it (roads and cars snap to the 60 px grid); right click removes the
car on a tile, else the agent, else the road. Keys: arrows resize the map (LEFT/RIGHT width, UP/DOWN height,
5 to 15 tiles), S saves to FILE (default ``mylevel.json``), Esc quits. A saved level plays with
``python scripts/play.py metacar --level FILE``. The editing logic lives in ``envs.metacar.editor``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from envs.metacar.editor import PALETTE, LevelEditor
from envs.metacar.level import TILE_PX, LevelError

PALETTE_COLS = 2
PALETTE_W = PALETTE_COLS * (TILE_PX + 8) + 8
STATUS_H = 22


def palette_rect(pg, index: int, map_w: int):
    """Screen rectangle of palette item ``index`` (to the right of the map)."""
    col, row = index % PALETTE_COLS, index // PALETTE_COLS
    return pg.Rect(map_w + 8 + col * (TILE_PX + 8), 8 + row * (TILE_PX + 8), TILE_PX, TILE_PX)


def draw(pg, screen, editor: LevelEditor, selected: str, status: str, font) -> None:
    """One frame: the map with its cars, the palette (``selected`` framed) and the status line."""
    from envs.metacar.core import place_on_tile
    from envs.metacar.level import quantised_orientation
    from envs.metacar.render import AGENT_COLOUR, BOT_COLOUR, draw_background, draw_car, draw_tile

    map_w = editor.cols * TILE_PX
    screen.fill((0x30, 0x30, 0x30))
    board = pg.Surface((map_w, editor.rows * TILE_PX))
    draw_background(pg, board, editor.grid, editor.decorations)
    for my in range(editor.rows):  # grid lines help placing
        for mx in range(editor.cols):
            pg.draw.rect(board, (0x70, 0xA0, 0x38), pg.Rect(mx * TILE_PX, my * TILE_PX, TILE_PX, TILE_PX), 1)
    import numpy as np

    cars = [(c, BOT_COLOUR) for c in editor.cars]
    if editor.agent is not None:
        cars.append((editor.agent, AGENT_COLOUR))
    for car, colour in cars:
        o = quantised_orientation(editor.grid[car.my][car.mx])
        x, y, th = place_on_tile(np, np.float64(car.mx), np.float64(car.my), np.float64(o), car.line or 0)
        draw_car(pg, board, float(x), float(y), float(th), colour)
    screen.blit(board, (0, 0))
    for i, item in enumerate(PALETTE):
        r = palette_rect(pg, i, map_w)
        pg.draw.rect(screen, (0x80, 0xBF, 0x3E), r)
        if item in ("agent", "bot"):
            draw_car(pg, screen, r.centerx, r.centery, 0.0, AGENT_COLOUR if item == "agent" else BOT_COLOUR)
        else:
            draw_tile(pg, screen, item, r.left, r.top)
        if item == selected:
            pg.draw.rect(screen, (0xFF, 0xD0, 0x20), r.inflate(6, 6), 3)
    text = f"{editor.cols}x{editor.rows}  {status}"
    screen.blit(font.render(text, True, (0xEE, 0xEE, 0xEE)), (6, screen.get_height() - STATUS_H + 4))


def screen_size(editor: LevelEditor) -> tuple[int, int]:
    """Window size in px ``(width, height)``: the map, the palette beside it, the status line below."""
    palette_h = 8 + ((len(PALETTE) + PALETTE_COLS - 1) // PALETTE_COLS) * (TILE_PX + 8)
    return editor.cols * TILE_PX + PALETTE_W, max(editor.rows * TILE_PX, palette_h) + STATUS_H


def run(editor: LevelEditor, path: Path, headless_frames: int | None = None) -> int:
    """The pygame loop; returns the number of frames drawn. ``headless_frames`` stops after that many."""
    if headless_frames is not None:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    from envs.metacar.render import import_pygame

    pg = import_pygame()
    pg.display.init()
    pg.font.init()
    screen = pg.display.set_mode(screen_size(editor))
    pg.display.set_caption(f"MetaCar level editor - {path}")
    font = pg.font.Font(None, 20)
    clock = pg.time.Clock()
    selected, status = PALETTE[0], "left click: place, right click: remove, arrows: resize, S: save"
    frames = 0
    running = True
    while running and (headless_frames is None or frames < headless_frames):
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                running = False
            elif event.type == pg.KEYDOWN:
                dc = {pg.K_LEFT: -1, pg.K_RIGHT: 1}.get(event.key, 0)
                dr = {pg.K_UP: -1, pg.K_DOWN: 1}.get(event.key, 0)
                if dc or dr:
                    try:
                        editor.resize(editor.cols + dc, editor.rows + dr)
                        screen = pg.display.set_mode(screen_size(editor))
                    except ValueError as exc:
                        status = str(exc)
                elif event.key == pg.K_s:
                    try:
                        status = f"saved {editor.save(path)}"
                    except (LevelError, OSError) as exc:  # e.g. a missing folder: keep editing, say why
                        status = f"not saved: {exc}"
            elif event.type == pg.MOUSEBUTTONDOWN:
                mx, my = event.pos[0] // TILE_PX, event.pos[1] // TILE_PX
                map_w = editor.cols * TILE_PX
                hit = [i for i in range(len(PALETTE)) if palette_rect(pg, i, map_w).collidepoint(event.pos)]
                if event.button == 1 and hit:
                    selected = PALETTE[hit[0]]
                elif event.button == 1 and event.pos[0] < map_w:
                    editor.place(selected, mx, my)
                elif event.button == 3 and event.pos[0] < map_w:
                    editor.remove(mx, my)
        draw(pg, screen, editor, selected, status, font)
        pg.display.flip()
        frames += 1
        if headless_frames is None:
            clock.tick(30)
    pg.quit()
    return frames


def parse_size(text: str) -> tuple[int, int]:
    """``"10x5"`` -> ``(10, 5)`` (columns, rows); anything else is a ``ValueError`` quoting ``--size``."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:  # "10", "10x5x2", "tenx5": int() and unpacking both raise ValueError
        raise ValueError(f"--size must look like COLSxROWS, e.g. 10x5, got {text!r}") from None
    return cols, rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", default="mylevel.json", help="level JSON to edit and save (S key)")
    p.add_argument("--from", dest="source", default=None,
                   help="start from this level (bundled name or path) instead of FILE")
    p.add_argument("--size", default="10x5", help="size of a new map, COLSxROWS (default 10x5)")
    p.add_argument("--headless-frames", type=int, default=None,
                   help="run this many frames without a window, then exit (smoke test)")
    args = p.parse_args(argv)
    path = Path(args.file)
    try:
        if args.source:
            editor = LevelEditor.from_level(args.source)
        elif path.is_file():
            editor = LevelEditor.from_level(path)
        else:
            cols, rows = parse_size(args.size)
            editor = LevelEditor.new(cols, rows)
    except (LevelError, ValueError) as exc:
        print(f"edit_level: {exc}", file=sys.stderr)
        return 2
    frames = run(editor, path, args.headless_frames)
    if args.headless_frames is not None:
        print(f"edit_level: drew {frames} frames of a {editor.cols}x{editor.rows} map")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
