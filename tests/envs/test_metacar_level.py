"""MetaCar level files: the bundled levels, and malformed files naming file, row and column."""

import json

import pytest

from envs.metacar.level import LEVEL_NAMES, LevelError, load_level, parse_level, quantised_orientation, save_level


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
