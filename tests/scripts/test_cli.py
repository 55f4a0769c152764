"""The ``playgrad`` command and scripts/: every console entry point and subcommand imports and answers --help; each
converted script is a shim over its playgrad.cli module; no script imports another script or edits sys.path."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from playgrad import cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"

# Scripts still holding their code in scripts/, with the sys.path edits and script imports that come with it,
# because their owners were changing them when the rest moved to playgrad/cli: the benchmarks (bound for
# benchmarks/, where they may share _benchlib). Remove a name once it is clean.
NOT_YET_MOVED: set[str] = set()  # every script under scripts/ is clean
# The one module of scripts/ that the others import: what the shims run, which must work (and say so in one line)
# where playgrad is not installed, so it cannot live in the package.
SHIM_HELPER = "_shim"


def _entry_points() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _resolve(target: str):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@pytest.mark.parametrize("name", sorted(_entry_points()))
def test_every_console_entry_point_imports_and_its_help_exits_0(name, capsys):
    main = _resolve(_entry_points()[name])
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in cli.COMMANDS), out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_answers_help_with_its_own_name(command, capsys):
    with pytest.raises(SystemExit) as exited:  # argparse's --help
        cli.main([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: playgrad {command} ")
    assert sys.argv[0] != f"playgrad {command}"  # the usage line's program name is put back


def test_an_unknown_or_missing_command_is_one_line_and_exit_2(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'trian'" in err and "train" in err
    assert cli.main([]) == 2
    assert "usage: playgrad COMMAND" in capsys.readouterr().err


def _shim_command(path: Path) -> str | None:
    """The command a shim runs: ``NAME`` when ``path`` holds only a docstring and ``if __name__ == "__main__":``
    importing ``run_command`` from scripts/_shim.py and calling ``run_command("NAME")``; else None."""
    body = ast.parse(path.read_text()).body
    if len(body) != 2 or not isinstance(body[0], ast.Expr) or not isinstance(body[1], ast.If):
        return None
    guard, block = body[1].test, body[1].body
    if ast.unparse(guard) not in ("__name__ == '__main__'", '__name__ == "__main__"') or len(block) != 2:
        return None
    imports, call = block
    if not (isinstance(imports, ast.ImportFrom) and imports.module == SHIM_HELPER
            and [a.name for a in imports.names] == ["run_command"]):
        return None
    if not (isinstance(call, ast.Expr) and isinstance(call.value, ast.Call) and ast.unparse(call.value.func) ==
            "run_command" and len(call.value.args) == 1 and isinstance(call.value.args[0], ast.Constant)):
        return None
    return call.value.args[0].value


def test_every_cli_module_is_a_command_and_every_command_has_its_shim():
    modules = {p.stem for p in (ROOT / "playgrad" / "cli").glob("*.py") if p.stem != "__init__"}
    assert modules == {c.replace("-", "_") for c in cli.COMMANDS}, "a playgrad/cli module without a COMMANDS line"
    for command in cli.COMMANDS:
        name = command.replace("-", "_")
        assert _shim_command(SCRIPTS / f"{name}.py") == name, f"scripts/{name}.py: not a shim over playgrad.cli.{name}"


def test_the_shim_check_refuses_more_than_the_shim(tmp_path):
    shim = 'if __name__ == "__main__":\n    from _shim import run_command\n\n    run_command("train")\n'
    for text, want in [('"""doc."""\n' + shim, "train"), ('"""doc."""\nimport os\n' + shim, None),
                       ('"""doc."""\n' + shim.replace("_shim", "shim"), None),
                       ('"""doc."""\n' + shim.replace('run_command("train")', 'run_command("train"); 1'), None),
                       (shim, None)]:
        (tmp_path / "s.py").write_text(text)
        assert _shim_command(tmp_path / "s.py") == want, text


def _script_imports_and_path_edits(path: Path, script_names: set[str]) -> list[str]:
    """What in ``path`` imports another script (``import train``, ``from scripts.play import ...``) or touches
    ``sys.path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in script_names | {"scripts"}]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in script_names | {"scripts"}:
                found.append(f"from {node.module}")
        elif (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
              and node.value.id == "sys"):
            found.append(f"sys.path (line {node.lineno})")
    return found


def test_no_script_imports_another_script_or_edits_sys_path():
    names = {p.stem for p in SCRIPTS.glob("*.py")} - {SHIM_HELPER}
    offenders = {p.name: found for p in sorted(SCRIPTS.glob("*.py"))
                 if p.stem not in NOT_YET_MOVED and (found := _script_imports_and_path_edits(p, names))}
    assert offenders == {}, f"shared code belongs in the packages (playgrad/, envs/, ...): {offenders}"
    now_clean = sorted(n for n in NOT_YET_MOVED if (SCRIPTS / f"{n}.py").exists()
                       and not _script_imports_and_path_edits(SCRIPTS / f"{n}.py", names))
    assert now_clean == [], f"take these off NOT_YET_MOVED: {now_clean}"


def test_the_scan_finds_a_script_import_and_a_path_edit(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.path.insert(0, '.')\nimport train\nfrom scripts.play import GAMES\n")
    assert sorted(_script_imports_and_path_edits(bad, {"train", "play"})) == \
        ["from scripts.play", "sys.path (line 2)", "train"]


def test_python_m_playgrad_runs_a_command():
    out = subprocess.run([sys.executable, "-m", "playgrad", "plot", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: playgrad plot "), out.stderr


def test_the_installed_console_script_runs():
    exe = Path(sys.executable).parent / "playgrad"
    if not exe.exists():
        pytest.skip(f"no {exe}: the project was installed before [project.scripts]; run pip install -e .")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "train" in out.stdout and "main-job" in out.stdout, out.stderr


def test_a_script_run_where_playgrad_is_not_installed_says_so_in_one_line(tmp_path):
    # -S: no site-packages, so neither the editable install nor anything else of the venv is importable (a system
    # Python in a fresh clone); run from elsewhere, so the checkout is not on sys.path either.
    out = subprocess.run([sys.executable, "-S", str(SCRIPTS / "train.py"), "configs/cartpole_ppo.toml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "has no playgrad installed: run make run once" in out.stderr
    assert out.stderr.rstrip().endswith(".venv/bin/python scripts/train.py")


@pytest.mark.parametrize("name", ["plot", "export_onnx"])
def test_a_shim_runs_its_command(name):
    out = subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith(f"usage: {name}.py "), out.stderr
