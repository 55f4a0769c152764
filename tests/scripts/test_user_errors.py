"""User mistakes on the command line end in one clear line and a non-zero exit, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"OPENBLAS_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(
    "override, message",
    [
        ("env.variant=foo", "unknown cart-pole variant 'foo'"),
        ("env.max_steps=0", "max_steps must be a positive int"),
        ("experiment.eval_episodes=0", "eval_episodes must be at least 1"),
        ("experiment.checkpoint_every_steps=-1", "checkpoint_every_steps must be at least 1"),
    ],
)
def test_bad_values_in_a_config(tmp_path, override, message):
    out = _run("scripts/train.py", "configs/cartpole_ppo.toml", "--set", override, "--runs-dir", str(tmp_path),
               tmp_path=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "cartpole_ppo.toml" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_board_too_small_for_the_network(tmp_path):
    out = _run("scripts/train.py", "configs/snake_dqn.toml", "--set", "env.height=2", "--runs-dir", str(tmp_path),
               tmp_path=tmp_path)
    assert out.returncode == 2 and "too small for 3 valid 3x3 convolutions" in out.stderr
    assert "Traceback" not in out.stderr


def test_evaluate_needs_at_least_one_episode(tmp_path):
    out = _run("scripts/evaluate.py", str(tmp_path), "--episodes", "0", tmp_path=tmp_path)
    assert out.returncode == 2 and "must be at least 1" in out.stderr and "Traceback" not in out.stderr


def _gpu_run_dir(tmp_path):
    """A run directory whose config asks for the GPU (trained on a GPU machine); no checkpoint needed."""
    run = tmp_path / "gpu_run"
    run.mkdir()
    config = (ROOT / "configs/cartpole_ppo_fast.toml").read_text().replace('device = "cpu"', "")
    config = config.replace("[experiment]", '[experiment]\ndevice = "gpu"', 1)
    (run / "config.toml").write_text(config)
    return run


def test_a_gpu_run_on_a_machine_without_cupy_names_the_way_out(tmp_path):
    # The subprocess has no CuPy (the simulated one is installed only with PLAYGRAD_SIMULATED_GPU=1): loading a
    # GPU run used to end in a BackendError traceback from evaluate.py and export_tfjs.py.
    run = _gpu_run_dir(tmp_path)
    out = _run("scripts/evaluate.py", str(run), tmp_path=tmp_path)
    assert out.returncode == 1 and "GPU was requested" in out.stderr and "--device cpu" in out.stderr
    assert "Traceback" not in out.stderr
    out = _run("scripts/export_tfjs.py", str(run), str(tmp_path / "web"), tmp_path=tmp_path)
    assert out.returncode == 2 and "GPU was requested" in out.stderr and "Traceback" not in out.stderr
    # --device cpu gets past the backend: what stops it now is the missing checkpoint, named.
    out = _run("scripts/evaluate.py", str(run), "--device", "cpu", tmp_path=tmp_path)
    assert out.returncode == 1 and "no checkpoint at" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("override, hint", [("lr=1e-3", "did you mean agent.lr?"),
                                            ("max_steps=10", "did you mean env.max_steps?"),
                                            ("nosuchkey=1", "keys go in a table")])
def test_a_key_outside_its_table_names_the_table_that_has_it(tmp_path, override, hint):
    # `--set lr=1e-3` answered "unknown table(s) ['lr']".
    out = _run("scripts/train.py", "configs/cartpole_ppo.toml", "--set", override, "--runs-dir", str(tmp_path),
               tmp_path=tmp_path)
    assert out.returncode == 2 and hint in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


@pytest.mark.parametrize("args", [[], ["configs/cartpole_pp.toml"]])
def test_train_without_a_config_lists_the_configs(tmp_path, args):
    out = _run("scripts/train.py", *args, tmp_path=tmp_path)
    assert out.returncode == 2 and "configs/cartpole_ppo.toml" in out.stderr and "Traceback" not in out.stderr
    assert "configs/digits_transfer.toml" not in out.stderr  # not a training config


def test_help_examples_name_configs_that_exist():
    # export_tfjs.py --help showed runs/metacar_ddpg-s0-..., a config that does not exist.
    import re

    for script in sorted((ROOT / "scripts").glob("*.py")):
        for name in re.findall(r"runs/([a-z0-9_]+)-s\d", script.read_text()):
            assert (ROOT / "configs" / f"{name}.toml").exists(), f"{script.name} names runs/{name}-s..., no such config"
