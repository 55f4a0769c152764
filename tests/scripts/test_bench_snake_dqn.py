"""bench_snake_dqn times the book's snake DQN frame by frame on the config's own agent."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_snake_dqn  # noqa: E402


def test_cpu_row_times_every_part_and_projects_the_frame_budget(capsys):
    assert bench_snake_dqn.main(["--device", "cpu", "--repeats", "1", "--no-write"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu"))
    update_ms, act_ms, env_ms, fps, hours = (float(x.replace(",", "")) for x in re.findall(r"\| ([\d.,]+)", row))
    assert min(update_ms, act_ms, env_ms) > 0  # every part was timed (no claim about their order: timings move)
    frame_s = (update_ms + act_ms + env_ms) / 1e3
    assert abs(fps - 1 / frame_s) <= 1 and abs(hours - frame_s * 1e6 / 3600) <= 0.1
