"""MetaCar level files: the bundled levels, and malformed files naming file, row and column."""

import json

import numpy as np
import pytest

from envs.metacar.core import MetaCarCore
from envs.metacar.level import (
    LEVEL_NAMES,
    LevelError,
    level_path,
    load_level,
    parse_level,
    quantised_orientation,
    save_level,
)


@pytest.mark.parametrize("name", LEVEL_NAMES)
def test_bundled_levels_load_with_spec_sizes(name):
    expected = {"level0": (5, 5, 8, 0), "level1": (10, 5, 12, 3), "level2": (11, 8, 35, 0),
                "level3": (13, 10, 44, 16), "full_city": (11, 8, 21, 8)}[name]
    lvl = load_level(name, require_agent=False)
    assert (lvl.cols, lvl.rows, len(lvl.road_tiles()), len(lvl.cars)) == expected
    assert (lvl.agent is None) == (name == "full_city")


def test_aliases_and_full_city_refused_for_rl():
    assert load_level("fullCity", require_agent=False).cols == 11
    assert load_level("level_1").agent.mx == 4
    with pytest.raises(LevelError, match="no 'agent'.*full_city"):
        load_level("full_city")
    with pytest.raises(LevelError, match="unknown level name 'level9'"):
        load_level("level9")


def test_quantised_orientations_of_spec_table():
    # §1.1: corners quantise down to multiples of 0.5.
    assert [quantised_orientation(c) for c in "↱↰↲↳"] == [1.0, 0.5, 0.0, 1.5]
    assert [quantised_orientation(c) for c in "↕↔↤↦↥↧"] == [1.5, 0.0, 0.0, 1.0, 0.5, 1.5]


def _write(tmp_path, data, name="bad.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _good():
    return {"map": [[0, 0, 0, 0, 0], [0, "↱", "↔", "↰", 0], [0, "↳", "↔", "↲", 0]],
            "cars": [{"mx": 2, "my": 2, "line": 0}], "agent": {"mx": 2, "my": 1, "line": 0}}


def test_unknown_tile_names_file_row_column(tmp_path):
    data = _good()
    data["map"][2][3] = "X"
    path = _write(tmp_path, data)
    with pytest.raises(LevelError) as err:
        load_level(path)
    msg = str(err.value)
    assert str(path) in msg and "row 2" in msg and "column 3" in msg and "'X'" in msg


@pytest.mark.parametrize("tile", [["↔"], {"road": "↔"}])
def test_unhashable_tile_is_a_level_error(tmp_path, tile):
    # A list or object where a tile belongs used to escape as "TypeError: unhashable type".
    data = _good()
    data["map"][1][2] = tile
    path = _write(tmp_path, data)
    with pytest.raises(LevelError, match=r"unknown tile .* at row 1, column 2"):
        load_level(path)


def test_ragged_rows_name_row_and_column(tmp_path):
    data = _good()
    data["map"][1] = data["map"][1][:4]
    path = _write(tmp_path, data)
    with pytest.raises(LevelError, match=r"bad\.json: map row 1 has 4 columns but row 0 has 5.*column 4"):
        load_level(path)


def test_agent_outside_map_and_off_road(tmp_path):
    data = _good()
    data["agent"] = {"mx": 7, "my": 1}
    path = _write(tmp_path, data)
    with pytest.raises(LevelError, match=r"bad\.json: agent at row 1, column 7 is outside the 5x3 map"):
        load_level(path)
    data["agent"] = {"mx": 0, "my": 2}
    path = _write(tmp_path, data)
    with pytest.raises(LevelError, match=r"bad\.json: agent at row 2, column 0 is off road"):
        load_level(path)
    data = _good()
    data["cars"][0] = {"mx": 4, "my": 0, "line": 0}
    with pytest.raises(LevelError, match=r"car 0 at row 0, column 4 is off road"):
        load_level(_write(tmp_path, data))


def test_missing_agent_and_bad_line(tmp_path):
    data = _good()
    del data["agent"]
    path = _write(tmp_path, data)
    with pytest.raises(LevelError, match=r"bad\.json: the level has no 'agent'"):
        load_level(path)
    assert load_level(path, require_agent=False).agent is None
    data = _good()
    data["agent"]["line"] = 2
    with pytest.raises(LevelError, match=r"agent at row 1, column 2 has line 2"):
        load_level(_write(tmp_path, data))


def test_bad_json_names_file_line_and_column(tmp_path):
    path = _write(tmp_path, '{"map": [[0, 0],\n  [0, 0,]]}')
    with pytest.raises(LevelError) as err:
        load_level(path)
    msg = str(err.value)
    assert str(path) in msg and "invalid JSON at line 2, column" in msg
    with pytest.raises(LevelError, match="level file not found"):
        load_level(tmp_path / "missing.json")
    with pytest.raises(LevelError, match="missing key 'map'"):
        parse_level({"cars": []}, source="x.json")


def test_level_error_is_a_value_error():
    assert issubclass(LevelError, ValueError)


def test_save_and_load_round_trip(tmp_path):
    lvl = load_level("level3")
    path = save_level(lvl, tmp_path / "copy.json")
    again = load_level(path)
    assert again.grid == lvl.grid and again.cars == lvl.cars and again.agent == lvl.agent
    assert again.decorations == lvl.decorations
    assert "↱" in path.read_text(encoding="utf-8")  # arrow characters are kept, not escaped


# ------------------------------------------------------------------- files from outside: limits and fuzzing
def _level1_dict():
    return json.loads((level_path("level1")).read_text(encoding="utf-8"))


def test_deeply_nested_json_is_a_level_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"map": [[0]], "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LevelError, match=r"deep\.json: JSON nested 100001 deep; .* at most 16"):
        load_level(path, require_agent=False)


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    data = _level1_dict()
    data["note"] = '[' * 20 + ' \\" {' + '[' * 20  # escaped quote inside: still one string
    path = tmp_path / "note.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert load_level(path).cols == 10


@pytest.mark.parametrize("x, y", [(1e308, 10), (10, -1e308), (601, 10), (10, 301), (-61, 0)])
def test_decoration_off_the_map_is_a_level_error(tmp_path, x, y):
    # A tree at x=1e308 made the renderer fail with a TypeError; level1 is 600x300 px.
    data = _level1_dict()
    data["tree"] = [{"x": x, "y": y}]
    path = tmp_path / "far_tree.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(LevelError, match=r"far_tree\.json: tree 0 at .* is off the 600x300 px map"):
        load_level(path)


def test_decorations_may_overhang_the_edge_by_up_to_a_tile():
    data = _level1_dict()
    data["tree"] = [{"x": -60, "y": -3.5}, {"x": 600, "y": 300}]
    assert parse_level(data).decorations["tree"] == [(-60, -3.5), (600, 300)]


@pytest.mark.parametrize("cols, rows", [(400, 400), (65, 5), (5, 65)])
def test_level_size_is_capped_at_64_tiles_each_way(tmp_path, cols, rows):
    # A 400x400 map made play.py's window a 24000x24000 px surface (a segfault).
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"map": [[0] * cols for _ in range(rows)]}))
    with pytest.raises(LevelError, match=r"huge\.json: 'map' has \d+ (rows|columns); levels are at most 64x64"):
        load_level(path, require_agent=False)


def test_largest_allowed_level_loads_and_steps():
    # A 64x64 ring road with the agent on it: the cap is usable, not just a number.
    grid = [[0] * 64 for _ in range(64)]
    for i in range(1, 63):
        grid[1][i] = grid[62][i] = "↔"
        grid[i][1] = grid[i][62] = "↕"
    grid[1][1], grid[1][62], grid[62][62], grid[62][1] = "↱", "↰", "↲", "↳"
    level = parse_level({"map": grid, "agent": {"mx": 5, "my": 62, "line": 0},
                         "cars": [{"mx": 30, "my": 1, "line": 0}]})
    core = MetaCarCore(level, 2)
    core.reset()
    core.step(np.zeros(2, dtype=np.int64))
    assert level.width_px == 3840 and bool(core.on_road.all())


def test_too_many_cars_and_decorations_and_too_big_a_file(tmp_path):
    data = _level1_dict()
    with pytest.raises(LevelError, match="257 cars; a level may have at most 256"):
        parse_level({**data, "cars": [{"mx": 4, "my": 1}] * 257})
    with pytest.raises(LevelError, match="more than 4096 decorations"):
        parse_level({**data, "tree": [{"x": 1, "y": 1}] * 4000, "bench": [{"x": 1, "y": 1}] * 97})
    path = tmp_path / "big.json"
    path.write_text(json.dumps({**data, "padding": "x" * (4 << 20)}))
    with pytest.raises(LevelError, match=r"big\.json: level file larger than 4 MiB"):
        load_level(path)


def test_a_directory_or_an_integer_too_long_is_a_level_error(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(LevelError, match="level file not found"):
        load_level(tmp_path / "dir.json")
    path = tmp_path / "longint.json"
    path.write_text('{"map": [[' + "9" * 5000 + "]]}")
    with pytest.raises(LevelError, match=r"longint\.json: invalid JSON"):
        load_level(path)


# Seeded fuzzing of the level reader (damaged real level files must load, step and render, or raise
# LevelError) lives with the other readers' in tests/fuzz/test_fuzz_level.py.
