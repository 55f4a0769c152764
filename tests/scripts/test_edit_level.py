"""The MetaCar level editor: its logic (place/remove/resize/save) and a headless run of the script."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.metacar.editor import PALETTE, LevelEditor
from envs.metacar.env import MetaCarEnv
from envs.metacar.level import LevelError, load_level

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def _ring(editor: LevelEditor) -> None:
    """A 3x3 ring of road tiles with the agent and two bots."""
    for item, mx, my in [("↱", 1, 1), ("↔", 2, 1), ("↰", 3, 1), ("↕", 1, 2), ("↕", 3, 2), ("↳", 1, 3),
                         ("↠", 2, 3), ("↲", 3, 3)]:
        assert editor.place(item, mx, my)
    assert editor.place("agent", 2, 1)
    assert editor.place("bot", 2, 3) and editor.place("bot", 2, 3)


def test_palette_has_12_roads_agent_and_bot():
    assert len(PALETTE) == 14 and PALETTE[-2:] == ("agent", "bot")


def test_place_remove_rules():
    ed = LevelEditor.new(5, 5)
    assert not ed.place("bot", 0, 0)  # cars only go on roads
    _ring(ed)
    assert [c.line for c in ed.cars] == [0, 1]  # the second bot on a tile takes the other lane
    assert not ed.place("bot", 2, 3)  # two lanes, two bots at most
    assert ed.place("agent", 1, 2) and (ed.agent.mx, ed.agent.my) == (1, 2)  # one agent: it moves
    assert ed.remove(2, 3) and len(ed.cars) == 1  # right click takes the car first
    assert ed.remove(2, 3) and ed.remove(2, 3) and ed.grid[3][2] == 0  # then the road
    assert not ed.remove(2, 3) and not ed.place("↔", 9, 9)


def test_resize_limits_and_cropping():
    ed = LevelEditor.new(5, 5)
    _ring(ed)
    ed.resize(15, 6)
    assert (ed.cols, ed.rows) == (15, 6) and ed.grid[1][1] == "↱" and ed.grid[5][14] == 0
    ed.resize(5, 5)
    ed.place("↔", 4, 4)
    ed.place("bot", 4, 4)
    ed.resize(5, 5)
    with pytest.raises(ValueError, match="5..15"):
        ed.resize(4, 5)
    with pytest.raises(ValueError, match="5..15"):
        ed.resize(5, 16)


def test_save_round_trip_loads_in_env(tmp_path):
    ed = LevelEditor.new(5, 5)
    _ring(ed)
    path = ed.save(tmp_path / "ring.json")
    lvl = load_level(path)
    assert lvl.grid == ed.grid and len(lvl.cars) == 2 and (lvl.agent.mx, lvl.agent.my) == (2, 1)
    env = MetaCarEnv(str(path))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (26,)
    rewards = [env.step(0)[1] for _ in range(10)]
    assert rewards == [1.0] * 10  # the agent drives along its road
    again = LevelEditor.from_level(path)
    assert again.grid == ed.grid and again.cars == ed.cars and again.agent == ed.agent


def test_save_without_agent_is_refused(tmp_path):
    ed = LevelEditor.new(5, 5)
    ed.place("↔", 2, 2)
    with pytest.raises(LevelError, match="place the agent"):
        ed.save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_edit_level_script_headless_and_play(tmp_path):
    out = tmp_path / "mylevel.json"
    ed = LevelEditor.from_level("level1")
    ed.save(out)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "edit_level.py"), str(out),
                          "--headless-frames", "3"], capture_output=True, text=True, env=ENV, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "drew 3 frames of a 10x5 map" in res.stdout
    play = ROOT / "scripts" / "play.py"
    if play.exists():  # the saved level also plays in the play script
        res = subprocess.run([sys.executable, str(play), "metacar", "--level", str(out), "--headless",
                              "--frames", "20"], capture_output=True, text=True, env=ENV, timeout=60, cwd=ROOT)
        assert res.returncode == 0, res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"map": [[0, "Q"]]}', encoding="utf-8")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "edit_level.py"), str(bad),
                          "--headless-frames", "1"], capture_output=True, text=True, env=ENV, timeout=60, cwd=ROOT)
    assert res.returncode == 2 and "row 0, column 1" in res.stderr and np.isscalar(res.returncode)


def _edit_level_script():
    from playgrad.cli import edit_level  # noqa: PLC0415

    return edit_level


def test_saving_where_it_cannot_write_keeps_the_editor_open(tmp_path, monkeypatch):
    # S with a path in a missing folder used to end the editor with an OSError traceback, losing the edits.
    pg = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    script = _edit_level_script()
    keys = [[pg.event.Event(pg.KEYDOWN, key=pg.K_s)]]
    monkeypatch.setattr(pg.event, "get", lambda: keys.pop() if keys else [])
    statuses = []
    draw = script.draw

    def draw_and_record(pg_, screen, editor, selected, status, font):
        statuses.append(status)
        draw(pg_, screen, editor, selected, status, font)

    monkeypatch.setattr(script, "draw", draw_and_record)
    editor = LevelEditor.from_level("level1")
    assert script.run(editor, tmp_path / "missing" / "x.json", headless_frames=2) == 2
    assert statuses[0].startswith("not saved:") and "missing" in statuses[0]


def test_size_must_be_cols_x_rows(capsys):
    script = _edit_level_script()
    assert script.parse_size("12X6") == (12, 6)
    for bad in ("10", "10x5x2", "tenx5"):
        assert script.main([f"--size={bad}", "--headless-frames", "1", "new.json"]) == 2
        assert "--size must look like COLSxROWS" in capsys.readouterr().err
