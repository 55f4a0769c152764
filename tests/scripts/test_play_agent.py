"""scripts/play.py --agent: a trained run plays in the window with its overlay panel."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = ROOT / "scripts" / "play.py"
TRAIN = ROOT / "scripts" / "train.py"


def test_agent_plays_headless(cartpole_run):
    out = subprocess.run([sys.executable, str(PLAY), "cartpole", "--agent", str(cartpole_run), "--headless",
                          "--frames", "120"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("cartpole: 120 frames, ")  # how many episodes end depends on the random starts


def test_agent_for_another_game_is_refused(cartpole_run):
    out = subprocess.run([sys.executable, str(PLAY), "snake", "--agent", str(cartpole_run), "--headless"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not snake" in out.stderr and "Traceback" not in out.stderr


def test_missing_run_dir_is_reported(tmp_path):
    out = subprocess.run([sys.executable, str(PLAY), "cartpole", "--agent", str(tmp_path), "--headless"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot load agent" in out.stderr and "Traceback" not in out.stderr


def test_tag_must_name_a_checkpoint(cartpole_run):
    out = subprocess.run([sys.executable, str(PLAY), "cartpole", "--agent", str(cartpole_run), "--tag", "bset"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "invalid choice: 'bset'" in out.stderr


def test_a_run_whose_env_table_names_the_vector_device_plays(cartpole_run, tmp_path):
    # [env] device = "cpu" (a vector-env option) used to be passed to the single env: "cannot make cartpole".
    import shutil

    run = tmp_path / cartpole_run.name
    shutil.copytree(cartpole_run, run)
    config = (run / "config.toml").read_text()
    assert "[env]\n" in config
    (run / "config.toml").write_text(config.replace("[env]\n", '[env]\ndevice = "cpu"\n', 1))
    out = subprocess.run([sys.executable, str(PLAY), "cartpole", "--agent", str(run), "--headless", "--frames", "30"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("original", ["original:qtable", "original:ddpg-road"])
def test_an_original_metacar_agent_plays_in_its_own_setting(original):
    # The original demo's agents (agents/originals.py) play like a run: its own level, motion and lidar.
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "play.py"), "metacar", "--agent", original,
                          "--headless", "--frames", "40"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "frames" in out.stdout and "Traceback" not in out.stderr
