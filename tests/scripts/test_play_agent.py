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


@pytest.mark.parametrize("options, plays", [(["--motion", "basic"], False), (["--level", "level1"], True)])
def test_env_options_may_change_the_level_but_not_what_the_agent_sees_or_does(options, plays):
    # --motion basic under a Box-action driver ended in the env's traceback; another level is fine.
    out = subprocess.run([sys.executable, str(PLAY), "metacar", "--agent", "original:ddpg-traffic", *options,
                          "--headless", "--frames", "20"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "Traceback" not in out.stderr
    if plays:
        assert out.returncode == 0 and "20 frames" in out.stdout, out.stderr
    else:
        assert out.returncode == 2 and "--motion basic gives the agent" in out.stderr
        assert "leave those options out" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("original", ["original:qtable", "original:ddpg-road"])
def test_an_original_metacar_agent_plays_in_its_own_setting(original):
    # The original demo's agents (agents/originals.py) play like a run: its own level, motion and lidar.
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "play.py"), "metacar", "--agent", original,
                          "--headless", "--frames", "40"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "frames" in out.stdout and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def old_metacar_run(tmp_path_factory):
    """A MetaCar PPO run as runs before layers.json wrote it: its layer table named model.json, the name of a
    TF.js export's topology, which is also how a folder holding an original agent is told."""
    runs = tmp_path_factory.mktemp("runs")
    out = subprocess.run([sys.executable, str(TRAIN), "configs/metacar_level1_ppo.toml", "--runs-dir", str(runs),
                          "--set", "experiment.total_steps=256", "--set", "experiment.eval_episodes=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = runs.iterdir()
    (run / "layers.json").rename(run / "model.json")
    return run


def test_an_old_run_dir_holding_model_json_plays_as_the_run(old_metacar_run):
    out = subprocess.run([sys.executable, str(PLAY), "metacar", "--agent", str(old_metacar_run), "--headless",
                          "--frames", "20"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("metacar: 20 frames, ")


def _copy_without_config(run, folder):
    import shutil

    shutil.copytree(run, folder)
    (folder / "config.toml").unlink()
    return folder


@pytest.mark.parametrize("which, message", [
    ("run's model.json", "not an agent; give the run folder {run} to load the run's own agent"),
    ("run without config.toml", "not an agent; give one of the original agents: qtable ("),
    ("not a TF.js model", "missing required key(s) ['modelTopology', 'weightsManifest']"),
    ("not JSON", "model.json is not valid JSON"),
])
def test_a_model_json_that_is_no_agent_is_one_line_error(old_metacar_run, tmp_path, which, message):
    # A run's layer table under the name model.json used to go to the TF.js reader ("missing required key(s)");
    # now it is named for what it is, and a model.json of any other kind is still a one-line error.
    if which == "run's model.json":
        agent = old_metacar_run / "model.json"
    elif which == "run without config.toml":
        agent = _copy_without_config(old_metacar_run, tmp_path / "copied-run")
    else:
        agent = tmp_path / "agent"
        agent.mkdir()
        (agent / "model.json").write_text('{"format": "layers-model"}' if which == "not a TF.js model" else "{nope")
    out = subprocess.run([sys.executable, str(PLAY), "metacar", "--agent", str(agent), "--headless", "--frames", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message.format(run=old_metacar_run) in out.stderr, out.stderr
