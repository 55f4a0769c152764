"""agents/originals.py: the original MetaCar demo's agents load, drive in our port as in the original, and
anything else is refused with the list of known agents."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.originals import BUNDLED, OriginalAgentError, load_original
from playgrad.metacar_eval import evaluate_metacar
from rl import layers, models, tfjs

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "metacar-demo-models"

# From each level's own start, one deterministic 800-step episode scores what the original scores when its agent
# drives it (independent testing ran the original JavaScript: the same crash steps from every shared start).
LEVEL_START = {  # name -> (reward per step, mean speed px/step)
    "qtable": (0.985, 0.0), "policy": (0.9925, 0.0), "ddpg-road": (0.4755, 0.951), "ddpg-traffic": (0.7506, 1.501),
}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_originals_drive_from_the_level_start_as_in_the_original(name):
    agent = load_original(f"original:{name}")
    assert agent.setting.name == name
    result = evaluate_metacar(agent, 1, seed=1_000_000, shuffle_on_reset=False)
    reward, speed = LEVEL_START[name]
    assert result["crash_free"] == 1.0
    assert result["reward_per_step"] == pytest.approx(reward, abs=5e-5)
    assert result["mean_speed"] == pytest.approx(speed, abs=5e-4)


@pytest.mark.skip_ok_in_ci  # the shared copy lives beside this workspace's checkout, not in a fresh clone
def test_bundled_copies_are_the_originals_files():
    if not SHARED.exists():
        pytest.skip(f"{SHARED} (the shared copy of the demo's models) is not beside the repository")
    for path in BUNDLED.values():
        assert path.read_bytes() == (SHARED / path.name).read_bytes()


def test_paths_folders_and_names_load_the_same_agent(tmp_path):
    folder = tmp_path / "road"
    folder.mkdir()
    for f in ("actor-model-ddpg-road.json", "actor-model-ddpg-road.weights.bin"):
        shutil.copy(BUNDLED["ddpg-road"].parent / f, folder / f)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 26)).astype(np.float32)
    by_name, by_folder = load_original("original:ddpg-road"), load_original(folder)
    np.testing.assert_array_equal(by_name.act(obs), by_folder.act(obs))
    assert by_name.act(obs).shape == (5, 2)


def test_qtable_keys_follow_the_demo_and_unknown_states_go_up():
    agent = load_original("original:qtable")
    obs = np.array([[-1, -1, -1, -1, 0.0], [1, 1, 1, 1, 0.0]], dtype=np.float32)  # all road; a state never seen
    q = json.loads(BUNDLED["qtable"].read_text())["-1,-1,-1,-1"]
    assert agent.act(obs).tolist() == [int(np.argmax(q)), 0]
    np.testing.assert_allclose(agent.action_values(obs)[0], q)


def _save(model, path, foreign=True):
    """A TF.js export of ``model``; ``foreign``: without playgrad's ``generatedBy``, as another tool writes it."""
    tfjs.save_tfjs(model, path)
    if foreign:
        doc = json.loads((path / "model.json").read_text())
        doc.pop("generatedBy"), doc.pop("convertedBy")
        (path / "model.json").write_text(json.dumps(doc))
    return path / "model.json"


@pytest.mark.parametrize("which, message", [
    ("critic", "is a DDPG critic; give its actor"),
    ("value", "value baseline; give its policy"),
    ("size", "matches none of the original agents"),
    ("ours", "exported by playgrad .*, not one of the original MetaCar agents; give the run directory"),
])
def test_other_models_are_refused_with_what_is_known(tmp_path, which, message):
    if which == "critic":
        path = SHARED / "critic-model-ddpg-road.json"
        if not path.exists():
            obs, act = layers.Input((26,)), layers.Input((2,))
            model = models.Model([obs, act], layers.Dense(1)(layers.Concatenate()([obs, act])))
            path = _save(model, tmp_path / "critic")
    elif which == "value":
        path = _save(models.Sequential([layers.Input((25,)), layers.Dense(9, activation="tanh"), layers.Dense(1)]),
                     tmp_path / "value")
    elif which == "size":
        path = _save(models.Sequential([layers.Input((10,)), layers.Dense(2)]), tmp_path / "other")
    else:  # our own level3 actor exported to TF.js: the original's input size, but not its setting to assume
        path = _save(models.Sequential([layers.Input((50,)), layers.Dense(2, activation="tanh")]), tmp_path / "ours",
                     foreign=False)
    with pytest.raises(OriginalAgentError, match=message):
        load_original(path)


@pytest.mark.parametrize("content, message", [
    ('{"-1,-1,-1": [1, 2, 3]}', "not 4 lidar cells"),
    ('{"-1,-1,-1,-1": [1, 2]}', "needs 3 finite Q-values"),
    ('{"-1,-1,-1,-1": [1, 2, NaN]}', "needs 3 finite Q-values"),
    ("[1, 2]", "an object of state keys"),
    ("{not json", "not a JSON Q-table"),
    ("[" * 100000, "not a JSON Q-table"),
])
def test_damaged_qtables_are_refused(tmp_path, content, message):
    path = tmp_path / "qtable.json"
    path.write_text(content)
    with pytest.raises(OriginalAgentError, match=message):
        load_original(path)


def test_unknown_bundled_name_lists_the_known_ones():
    with pytest.raises(OriginalAgentError, match="original:qtable, original:policy"):
        load_original("original:nope")


def test_evaluate_and_record_take_an_original_like_a_run(tmp_path):
    import subprocess

    env = {"SDL_VIDEODRIVER": "dummy", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    ev = subprocess.run([sys.executable, "scripts/evaluate.py", "original:qtable", "--episodes", "3"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300, env=env)
    assert ev.returncode == 0, ev.stderr
    assert "original:qtable (the original demo's agent): mean return" in ev.stdout
    rec = subprocess.run([sys.executable, "scripts/record.py", "original:qtable", "--out", str(tmp_path / "q.gif"),
                          "--max-steps", "50"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert rec.returncode == 0, rec.stderr
    assert (tmp_path / "q.gif").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "scripts/evaluate.py", str(BUNDLED["policy"].parent / "LICENSE")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_a_runs_layer_table_is_refused_as_no_agent(tmp_path):
    # Runs write the dashboard's layer tables as layers.json; older ones as model.json, the name of a TF.js
    # export's topology. Either, given as an agent, is named for what it is (the model.json went to the TF.js
    # reader: "missing required key(s)"; a layers.json to the Q-table reader: "state 'networks' ...").
    from rl.summaries import write_layers_json

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[experiment]\nagent = "ppo"\n')
    net = models.Sequential([layers.Input((25,)), layers.Dense(3)])
    net.build((None, 25))
    shutil.copy(write_layers_json(run, {"policy": net}), run / "model.json")  # as an older run names it
    for path in (run / "layers.json", run / "model.json"):
        with pytest.raises(OriginalAgentError, match=f"not an agent; give the run folder {run} to load"):
            load_original(path)
    (run / "config.toml").unlink()  # a folder of the run's files, not a run: the folder's model.json is picked
    with pytest.raises(OriginalAgentError, match=r"not an agent; give one of the original agents: qtable \("):
        load_original(run)
