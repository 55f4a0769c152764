"""Config validation, overrides, TOML round trip, atomic writes and the metrics log."""

import dataclasses
import json

import pytest

from rl.experiment import (
    ConfigError,
    MetricsLogger,
    RunDir,
    RunNotFoundError,
    apply_overrides,
    atomic_write_text,
    check_run_name,
    dataclass_from_dict,
    dump_toml,
    load_toml,
    parse_override,
)


@dataclasses.dataclass
class Hyper:
    lr: float = 1e-3
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    double_dqn: bool = False
    target: float | None = None
    name: str = "x"


def test_unknown_key_names_place_suggestion_and_valid_keys():
    with pytest.raises(ConfigError) as info:
        dataclass_from_dict(Hyper, {"lrr": 0.1}, where="cfg.toml [agent]")
    msg = str(info.value)
    assert "cfg.toml [agent]" in msg and "'lrr'" in msg and "did you mean 'lr'" in msg
    assert "Valid keys: double_dqn, hidden, lr, name, target" in msg


def test_wrong_type_names_expected_type():
    with pytest.raises(ConfigError, match="'double_dqn' expects bool, got str"):
        dataclass_from_dict(Hyper, {"double_dqn": "yes"})
    with pytest.raises(ConfigError, match="expects"):
        dataclass_from_dict(Hyper, {"hidden": [64, "a"]})


def test_ints_are_accepted_for_floats_and_optional_values():
    h = dataclass_from_dict(Hyper, {"lr": 1, "target": 475})
    assert h.lr == 1.0 and isinstance(h.lr, float) and h.target == 475.0


def test_overrides_parse_as_toml_values():
    assert parse_override("agent.lr=3e-4") == (["agent", "lr"], 3e-4)
    assert parse_override("env.level=level1") == (["env", "level"], "level1")
    assert parse_override("agent.hidden=[32, 32]") == (["agent", "hidden"], [32, 32])
    cfg = apply_overrides({"agent": {"lr": 1.0}}, ["agent.lr=0.5", "env.motion=\"control\""])
    assert cfg == {"agent": {"lr": 0.5}, "env": {"motion": "control"}}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("agent.lr")


def test_toml_round_trip(tmp_path):
    cfg = {"experiment": {"name": "a b", "seed": 3, "target_return": None}, "agent": {"lr": 0.1, "hidden": [1, 2]}}
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg))
    assert load_toml(path) == {"experiment": {"name": "a b", "seed": 3}, "agent": {"lr": 0.1, "hidden": [1, 2]}}


def test_toml_round_trip_of_any_string(tmp_path):
    names = ["run-\U0001F680", 'quote " and \\ backslash', "tab\tnew\nline", "del\x7f", "é ü 中"]
    path = tmp_path / "s.toml"
    path.write_text(dump_toml({"experiment": {f"k{i}": v for i, v in enumerate(names)}}), encoding="utf-8")
    assert list(load_toml(path)["experiment"].values()) == names
    path.write_text(dump_toml({"tab\u00e9": {"clé": 1, "a b": 2}}), encoding="utf-8")
    assert load_toml(path) == {"tab\u00e9": {"clé": 1, "a b": 2}}


def test_bad_toml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[agent]\nlr = = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML.*line 2"):
        load_toml(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_metrics_logger_resume_truncates(tmp_path):
    run = RunDir(tmp_path / "run")
    with MetricsLogger(run.metrics_path) as log:
        for i in range(5):
            log.log({"env_steps": i})
    with MetricsLogger(run.metrics_path, resume_lines=3) as log:
        log.log({"env_steps": 99})
    assert [r["env_steps"] for r in run.read_metrics()] == [0, 1, 2, 99]
    run.metrics_path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ConfigError, match="metrics.jsonl:2"):
        run.read_metrics()


def test_opening_a_run_creates_nothing_and_names_what_is_wrong(tmp_path):
    # RunDir(path) creates the directory: code that opened an existing run made an empty one from a typo.
    with pytest.raises(RunNotFoundError, match=r"typo does not exist; train.py prints"):
        RunDir.open(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match=r"empty is not a run directory \(no config.toml\)"):
        RunDir.open(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunNotFoundError, match="file is a file, not a run directory"):
        RunDir.open(tmp_path / "file")
    assert issubclass(RunNotFoundError, ConfigError)  # scripts that report ConfigError report this too
    written = RunDir.create(tmp_path, "exp", seed=0)
    written.write_start({"experiment": {"seed": 0}}, ["train.py"], {})
    opened = RunDir.open(written.path)
    assert opened.read_config() == {"experiment": {"seed": 0}} and opened.checkpoints == written.checkpoints


def test_run_dir_records_start(tmp_path):
    run = RunDir.create(tmp_path, "exp", seed=1)
    run.write_start({"experiment": {"seed": 1}}, ["train.py", "c.toml"], {"backend": "numpy"})
    assert run.read_config() == {"experiment": {"seed": 1}}
    assert json.loads((run.path / "info.json").read_text())["backend"] == "numpy"
    assert (run.path / "command.txt").read_text().strip() == "train.py c.toml"


@dataclasses.dataclass
class Shaped:
    size_px: tuple[int, int] = (84, 84)
    scale_and_name: tuple[float, str] = (1.0, "a")
    seeds: tuple[int, ...] = (0,)


def test_fixed_length_tuples_check_length_and_each_position():
    # Before, only the first type was checked, for every item, and the length not at all.
    s = dataclass_from_dict(Shaped, {"size_px": [64, 48], "scale_and_name": [2, "b"], "seeds": [1, 2, 3]})
    assert s.size_px == (64, 48) and s.scale_and_name == (2.0, "b") and s.seeds == (1, 2, 3)
    with pytest.raises(ConfigError, match="'size_px' expects"):
        dataclass_from_dict(Shaped, {"size_px": [64, 48, 3]})
    with pytest.raises(ConfigError, match="'scale_and_name' expects"):
        dataclass_from_dict(Shaped, {"scale_and_name": [2.0, 3.0]})


def test_unreadable_config_files_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}"):
        load_toml(tmp_path)  # before: a bare IsADirectoryError
    binary = tmp_path / "weights.toml"
    binary.write_bytes(b"\x80\x81 not text")
    with pytest.raises(ConfigError, match="weights.toml: not UTF-8 text"):
        load_toml(binary)


def test_load_tables_validates_every_table_and_refuses_unknown_ones(tmp_path):
    from rl.experiment import load_tables

    @dataclasses.dataclass
    class Data:
        size: int = 28

    @dataclasses.dataclass
    class Head:
        units: int = 64
        dropout: float = 0.0

    path = tmp_path / "t.toml"
    path.write_text("[data]\nsize = 32\n")
    cfg = load_tables(path, ["head.units=8"], {"data": Data, "head": Head})
    assert cfg == {"data": Data(size=32), "head": Head(units=8)}
    assert load_tables(None, [], {"data": Data}) == {"data": Data()}  # no file: every default
    with pytest.raises(ConfigError, match=r"t.toml: unknown table\(s\) \['heads'\]; valid: \['data', 'head'\]"):
        load_tables(path, ["heads.units=8"], {"data": Data, "head": Head})
    with pytest.raises(ConfigError, match=r"t.toml \[head\]: unknown key 'unit'"):
        load_tables(path, ["head.unit=8"], {"data": Data, "head": Head})


@pytest.mark.parametrize("name, says", [
    ("../../escape", r"contains '/'"), ("/tmp/abs", r"contains '/'"), ("a\\b", r"contains '\\\\'"),
    ("nul\x00byte", r"contains '\\x00'"), ("x" * 300, "300 characters long; at most 100"),
    ("..", "starts with '.'"), (".hidden", "starts with '.'"), ("", "non-empty"),
])
def test_run_names_that_would_leave_the_runs_dir_are_refused(tmp_path, name, says):
    with pytest.raises(ConfigError, match=says) as info:
        check_run_name(name)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        RunDir.create(tmp_path / "runs", name, seed=0)
    assert sorted(p.name for p in tmp_path.rglob("*")) in ([], ["runs"])  # nothing written anywhere


def test_run_names_that_are_plain_names_make_their_directory(tmp_path):
    for name in ("cartpole_ppo", "sweep-3.lr_1e-4", "voiture_é"):
        check_run_name(name)
        run = RunDir.create(tmp_path, name, seed=2)
        assert run.path.parent == tmp_path and run.path.name.startswith(f"{name}-s2-")


def test_a_file_as_runs_dir_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--runs-dir .*file is a file, not a directory"):
        RunDir.create(tmp_path / "file", "run", seed=0)
    with pytest.raises(ConfigError, match="cannot make the run directory"):  # a file where a parent should be
        RunDir.create(tmp_path / "file" / "deeper", "run", seed=0)


def test_deeply_nested_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("[env]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_toml(path)
    path.write_text("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_toml(path)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_override("env.x=" + "[" * 5000 + "]" * 5000)


def test_metrics_with_invalid_utf8_resume_and_read_as_clear_errors(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"env_steps": 1}\n{"env_steps": 2}\n{"env_steps": 3, "x": "\xff\xfe"}\n')
    with MetricsLogger(path, resume_lines=2) as log:  # a crash left a broken line after the checkpoint's
        log.log({"env_steps": 3})
    assert path.read_bytes() == b'{"env_steps": 1}\n{"env_steps": 2}\n{"env_steps": 3}\n'
    run = RunDir(tmp_path)
    path.write_bytes(b'{"env_steps": 1}\n\xff\n')
    with pytest.raises(ConfigError, match=r"metrics.jsonl:2: not UTF-8 text"):
        run.read_metrics()
