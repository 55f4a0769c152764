"""bench_metacar: ``--only`` re-measures the named experiments and keeps every other row of its section as it
was (and says so); an unknown name is refused with the valid ones."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_metacar  # noqa: E402

OLD_ROWS = {
    "metacar_level0_qtable": ["| metacar_level0_qtable | 0 | final | reward/step >= 0.5 | 0.985 | old |"],
    "metacar_level1_ppo": ["| metacar_level1_ppo | 0 | final | reward/step >= 0.5 | 0.995 | old |",
                           "| metacar_level1_ppo | 1 | best | reward/step >= 0.5 | 0.979 | old |"],
    "metacar_level2_ddpg": ["| metacar_level2_ddpg | 0 | final | 800 steps | 0.567 | old |"],
    "metacar_level3_ddpg": ["| metacar_level3_ddpg | 0 | final | 800 steps without a crash | 0.166 | old |",
                            "| metacar_level3_ddpg | 0 | best | 800 steps without a crash | 0.497 | old |"],
}


def fake_result(seed, tag):
    level_start = {"reward_per_step": 0.9, "crash_free": 1.0, "mean_speed": 1.5}
    return {"reward_per_step": 0.8, "crash_free": 0.75, "mean_speed": 1.2, "fast_and_safe": 0.7, "episodes": 20,
            "wall_s": 300.0, "env_steps": 2_000_000, "seed": seed, "level_start": level_start, "tag": tag,
            "basic": False}


def test_only_replaces_its_rows_and_keeps_the_others(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    table = "\n".join(["| experiment | seed | weights |", "| --- | --- | --- |",
                       *(row for rows in OLD_ROWS.values() for row in rows)])
    md.write_text(f"# Benchmarks\n\n<!-- other:start -->\nuntouched\n<!-- other:end -->\n\n"
                  f"<!-- bench_metacar:start -->\n## old header\n\n{table}\n<!-- bench_metacar:end -->\n")
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    trained = []

    def run_one(exp, seed, runs_dir, episodes):
        trained.append(exp.config)
        return [fake_result(seed, "latest")]

    monkeypatch.setattr(bench_metacar, "run_one", run_one)
    assert bench_metacar.main(["--only", "metacar_level3_ddpg"]) == 0
    assert trained == ["metacar_level3_ddpg"] * 3  # its three seeds
    text = md.read_text()
    assert "<!-- other:start -->\nuntouched\n<!-- other:end -->" in text
    section = text[text.index("<!-- bench_metacar:start -->"):]
    lines = section.splitlines()
    table_rows = [line for line in lines if line.startswith("| metacar_")]
    kept = [row for name in ("metacar_level0_qtable", "metacar_level1_ppo", "metacar_level2_ddpg")
            for row in OLD_ROWS[name]]
    assert table_rows[:4] == kept  # the other experiments' rows, unchanged and in the table's order
    assert len(table_rows) == 7 and table_rows[4].startswith("| metacar_level3_ddpg | 0 | final |")
    assert "| 0.800 | 0.75 |" in table_rows[4] and "old" not in table_rows[4]  # the new measurement
    assert "Rows of `metacar_level0_qtable`, `metacar_level1_ppo`, `metacar_level2_ddpg` are kept" in section


def test_a_full_run_keeps_nothing_old(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    md.write_text("<!-- bench_metacar:start -->\n" + "\n".join(OLD_ROWS["metacar_level1_ppo"])
                  + "\n<!-- bench_metacar:end -->\n")
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    monkeypatch.setattr(bench_metacar, "run_one", lambda exp, seed, runs_dir, episodes: [fake_result(seed, "latest")])
    bench_metacar.main([])
    text = md.read_text()
    assert "old" not in text and "are kept from an earlier run" not in text
    assert text.count("\n| metacar_level1_ppo |") == 3  # rows of seeds 0, 1, 2


def test_only_refuses_an_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_metacar.main(["--only", "metacar_level9_ddpg"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown experiment metacar_level9_ddpg" in err and "metacar_level3_ddpg" in err


def test_the_section_names_the_command_it_was_given(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    monkeypatch.setattr(bench_metacar, "run_one", lambda exp, seed, runs_dir, episodes: [fake_result(seed, "latest")])
    bench_metacar.main(["--only", "metacar_level2_ddpg", "--episodes", "5"])
    assert "Command: `python benchmarks/bench_metacar.py --only metacar_level2_ddpg --episodes 5`." in md.read_text()


def test_the_originals_are_scored_on_the_same_worlds_and_judged_per_level(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    monkeypatch.setattr(bench_metacar, "EXPERIMENTS", [e for e in bench_metacar.EXPERIMENTS
                                                       if e.config == "metacar_level3_ddpg"])
    monkeypatch.setattr(bench_metacar, "run_one", lambda exp, seed, runs_dir, episodes: [fake_result(seed, "latest")])
    assert bench_metacar.main(["--episodes", "20"]) == 0
    section = md.read_text()
    peer = next(line for line in section.splitlines() if line.startswith("| original ddpg-traffic (the demo's) | 0 |"))
    # the shipped actor on the evaluation worlds of seed 0: 16 of 20 crash-free; from the level start 0.7506
    assert "| 0.80 |" in peer and "| 0.751, yes, 1.50 |" in peer
    verdict = next(line for line in section.splitlines()
                   if line.startswith("| level3 | metacar_level3_ddpg | ddpg-traffic |"))
    # ours (fake): 0.75 crash-free, 0.9 from the level start; the original: 0.80, 0.80, 0.75 on seeds 0-2
    assert "seed 0 final: no, seed 1 final: no, seed 2 final: yes" in verdict
    assert "the original is ahead on 2 of 3 checkpoints" in verdict


def test_two_of_ours_facing_one_original_share_its_rows_and_get_a_verdict_each(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    monkeypatch.setattr(bench_metacar, "EXPERIMENTS", [e for e in bench_metacar.EXPERIMENTS
                                                       if e.config.startswith("metacar_level2_")])
    scored = []
    monkeypatch.setattr(bench_metacar, "run_one", lambda exp, seed, runs_dir, episodes: [fake_result(seed, "latest")])
    monkeypatch.setattr(bench_metacar, "judge_original", lambda exp, seed, episodes: scored.append(seed)
                        or {**fake_result(seed, "shipped"), "crash_free": 0.8, "env_steps": None, "wall_s": None})
    assert bench_metacar.main(["--no-write"]) == 0 and not md.exists()
    assert scored == [0, 1, 2]  # the original's three seeds, once
    bench_metacar.main([])
    lines = md.read_text().splitlines()
    names = [line.split("|")[1].strip() for line in lines if line.startswith(("| metacar_", "| original "))]
    assert names == ["metacar_level2_ddpg"] * 3 + ["metacar_level2_ppo"] * 3 + ["original ddpg-road (the demo's)"] * 3
    verdicts = [line for line in lines if line.startswith("| level2 |")]
    assert [v.split("|")[2].strip() for v in verdicts] == ["metacar_level2_ddpg", "metacar_level2_ppo"]
    # ours (fake): 0.75 crash-free against the original's 0.80 on every seed
    assert all("the original is ahead on 3 of 3 checkpoints" in v for v in verdicts)


def fake_run_one(exp, seed, runs_dir, episodes):  # module level: --jobs sends it to worker processes by name
    return [{**fake_result(seed, "latest"), "crash_free": 0.05 * seed}]


def test_jobs_trains_the_seeds_in_processes_and_gives_the_same_rows(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    monkeypatch.setattr(bench_metacar._benchlib, "BENCHMARKS_MD", md)
    monkeypatch.setattr(bench_metacar, "EXPERIMENTS", [e for e in bench_metacar.EXPERIMENTS
                                                       if e.config == "metacar_full_city_ppo"])  # no peer to score
    monkeypatch.setattr(bench_metacar, "run_one", fake_run_one)
    tables = []
    for jobs in ("1", "3"):
        bench_metacar.main(["--jobs", jobs])
        tables.append([line for line in md.read_text().splitlines() if line.startswith("| metacar_")])
    assert tables[0] == tables[1] and [row.split("|")[6].strip() for row in tables[1]] == ["0.00", "0.05", "0.10"]
    assert "trained 3 at a time" in md.read_text()
    with pytest.raises(SystemExit):
        bench_metacar.main(["--jobs", "0"])
