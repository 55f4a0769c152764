"""Options several commands share, read one way everywhere: "which checkpoint" is --checkpoint, also spelled --tag
(play.py and the export commands said --tag, evaluate.py and record.py --checkpoint, and each refused the other's
spelling); --seed is a non-negative integer."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from playgrad.cli import add_checkpoint_option

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dest", ["checkpoint", "tag"])
def test_both_spellings_set_the_same_destination(dest):
    parser = argparse.ArgumentParser()
    add_checkpoint_option(parser, dest=dest)
    assert getattr(parser.parse_args([]), dest) == "best"
    assert getattr(parser.parse_args(["--checkpoint", "latest"]), dest) == "latest"
    assert getattr(parser.parse_args(["--tag", "latest"]), dest) == "latest"
    with pytest.raises(SystemExit):
        parser.parse_args(["--tag", "newest"])


@pytest.mark.parametrize("script", ["evaluate", "record", "play", "export_onnx", "export_tfjs", "serve_web"])
def test_every_command_takes_both_spellings(script):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--checkpoint {best,latest}, --tag {best,latest}" in " ".join(out.stdout.split()), out.stdout


def test_evaluate_with_tag(cartpole_run):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(cartpole_run), "--tag", "latest",
                          "--episodes", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(latest, " in out.stdout, out.stdout


@pytest.mark.parametrize("script, args", [("evaluate", ["nowhere"]), ("record", ["nowhere"]),
                                          ("play", ["cartpole", "--headless"]),
                                          ("train", ["configs/cartpole_ppo.toml"])])
def test_a_negative_seed_is_one_line(script, args):
    # Gymnasium refuses seeds below 0: its traceback used to be what evaluate, record and play printed.
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args, "--seed", "-5"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "argument --seed: must be a non-negative integer, got -5" in out.stderr
