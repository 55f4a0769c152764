"""Train and judge the MetaCar experiments on the CPU; write section ``bench_metacar`` of docs/benchmarks.md.

    python benchmarks/bench_metacar.py            # every config below that exists (~10 minutes on 2 cores)
    python benchmarks/bench_metacar.py --only metacar_level1_ppo --no-write
    python benchmarks/bench_metacar.py --only metacar_level3_ddpg   # re-measures one row group, keeps the others

Each config is trained with ``scripts/train.py``'s machinery at fixed seeds and its step budget (early stop
at ``target_return`` where the config sets one); the final weights, and the "best" checkpoint where it is
an earlier one (the checkpoint with the highest 20-episode training mean, what ``play.py --agent`` loads),
are then played deterministically for ``--episodes`` episodes on fresh worlds (seeded 1,000,000 + seed, so
the starts differ from training). Per experiment it reports
reward per step (episode return / the 800-step budget, so a crash forfeits the remaining steps), the
fraction of episodes that ran the full 800 steps without a crash, the mean speed (px/step), the transitions
trained on and the wall time of training. With ``--only``, the rows of the experiments not run are kept as
the section had them (and the section says so), so one config can be re-measured without the others.

The peers are the original MetaCar demo's own trained agents (agents/originals.py: its Q-table, REINFORCE
policy and two DDPG actors, each in the setting it was trained in), scored exactly as ours: the same worlds
(the same evaluation seeds per seed row), the same episodes, the same level start. Each level gets a
verdict: whether our agent, at every seed and for both the final weights and the checkpoint ``play.py
--agent`` loads, reaches at least the original's crash-free rate from random starts and its reward/step
from the level start. Peer rows take seconds, so they are measured on every run, ``--only`` or not.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: BLAS threads only add overhead

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _benchlib  # noqa: E402

from agents.originals import load_original  # noqa: E402
from agents.runner import load_agent  # noqa: E402
from playgrad.metacar_eval import evaluate_metacar  # noqa: E402
from playgrad.training import train  # noqa: E402


@dataclass
class Experiment:
    """One row: a config, the seeds it is trained with, and its target in words and as a test."""

    config: str
    seeds: tuple[int, ...]
    target: str
    measure: str = "reward_per_step"  # the evaluation figure the target judges, at >= 0.5
    train: bool = True


EXPERIMENTS = [
    # three seeds each: the head-to-head with the originals is judged on every seed (issue 15)
    Experiment("metacar_level0_qtable", (0, 1, 2), "reward/step >= 0.5"),
    Experiment("metacar_level1_ppo", (0, 1, 2), "reward/step >= 0.5"),
    Experiment("metacar_level2_ddpg", (0, 1, 2), "800 steps on the road at >= 1 px/step", "fast_and_safe"),
    Experiment("metacar_level2_ppo", (0, 1, 2), "800 steps on the road at >= 1 px/step", "fast_and_safe"),
    Experiment("metacar_level3_ddpg", (0, 1, 2), "800 steps without a crash", "crash_free"),
    Experiment("metacar_level3_ppo", (0, 1, 2), "800 steps without a crash", "crash_free"),
    Experiment("metacar_full_city_ppo", (0, 1, 2), "reward/step >= 0.5"),  # no original agent for full_city
]


SECTION = "bench_metacar"
# Our experiment -> the original demo agent trained for the same level (agents/originals.py)
ORIGINAL_OF = {"metacar_level0_qtable": "qtable", "metacar_level1_ppo": "policy",
               "metacar_level2_ddpg": "ddpg-road", "metacar_level2_ppo": "ddpg-road",
               "metacar_level3_ddpg": "ddpg-traffic", "metacar_level3_ppo": "ddpg-traffic"}


def previous_rows(path: Path) -> dict[str, list[str]]:
    """The table rows of this script's section now in ``path``, by experiment name (empty if none)."""
    if not path.exists():
        return {}
    match = re.search(rf"<!-- {SECTION}:start -->(.*?)<!-- {SECTION}:end -->", path.read_text(), re.S)
    rows: dict[str, list[str]] = {}
    for line in (match.group(1) if match else "").splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip() in {exp.config for exp in EXPERIMENTS}:
            rows.setdefault(cells[1].strip(), []).append(line)
    return rows


def run_one(exp: Experiment, seed: int, runs_dir: str, episodes: int) -> list[dict[str, float]]:
    """Train one config at one seed; judge its final weights and, if it is an earlier one, its best checkpoint."""
    config = ROOT / "configs" / f"{exp.config}.toml"
    start = time.perf_counter()
    run_dir = train(str(config), ["experiment.eval_episodes=1"], seed=seed, runs_dir=runs_dir, progress=False,
                    argv=["benchmarks/bench_metacar.py"])
    wall_s = time.perf_counter() - start
    results = []
    for tag in ("latest", "best"):
        agent = load_agent(run_dir, tag=tag)
        if results and agent.env_steps == results[0]["env_steps"]:
            break  # the best checkpoint is the final one: nothing more to judge
        result = evaluate_metacar(agent, episodes, seed=1_000_000 + seed)
        # From the level file's start the worlds differ only in the bots' random turns: one episode says it.
        level_start = evaluate_metacar(agent, 1, seed=1_000_000 + seed, shuffle_on_reset=False)
        result.update(wall_s=wall_s, env_steps=agent.env_steps, seed=seed, level_start=level_start, tag=tag,
                      basic=agent.experiment.env.get("motion", "basic") == "basic")
        results.append(result)
    return results


def train_seeds(exp: Experiment, runs_dir: str, episodes: int, jobs: int) -> list[list[dict[str, float]]]:
    """:func:`run_one` for each of ``exp``'s seeds, in order: one after another, or ``jobs`` processes at once."""
    if jobs <= 1:
        return [run_one(exp, seed, runs_dir, episodes) for seed in exp.seeds]
    with ProcessPoolExecutor(min(jobs, len(exp.seeds))) as pool:
        futures = [pool.submit(run_one, exp, seed, runs_dir, episodes) for seed in exp.seeds]
        return [future.result() for future in futures]


def judge_original(exp: Experiment, seed: int, episodes: int) -> dict:
    """The original demo's agent for ``exp``'s level, scored on the same worlds as our seed-``seed`` rows."""
    agent = load_original(f"original:{ORIGINAL_OF[exp.config]}")
    result = evaluate_metacar(agent, episodes, seed=1_000_000 + seed)
    result.update(level_start=evaluate_metacar(agent, 1, seed=1_000_000 + seed, shuffle_on_reset=False),
                  seed=seed, tag="shipped", env_steps=None, wall_s=None,
                  basic=agent.experiment.env.get("motion", "basic") == "basic")
    return result


def row_name(row: str) -> str:
    """The first cell of a table row: our experiment's name, or ``original <agent> (the demo's)``."""
    return row.split("|")[1].strip()


def row_numbers(row: str) -> dict | None:
    """Crash-free (random starts) and level-start reward/step of a table row (kept rows are re-read this way);
    None for a row of another layout."""
    cells = [c.strip() for c in row.split("|")[1:-1]]
    try:
        return {"name": cells[0], "seed": int(cells[1]), "weights": cells[2], "crash_free": float(cells[5]),
                "level_start_rps": float(cells[8].split(",")[0])}
    except (IndexError, ValueError):
        return None


def verdict_lines(ours: list[str], peers: list[str]) -> list[str]:
    """Per level: does each of our judged checkpoints reach the original's crash-free rate and level-start score?"""
    lines = ["| level | ours | original (the demo's agent) | our checkpoints at least as safe (random starts) and as "
             "good (level start) as the original on the same worlds | verdict |", "| --- | --- | --- | --- | --- |"]
    for config, name in ORIGINAL_OF.items():
        mine = [n for n in map(row_numbers, ours) if n and n["name"] == config]
        theirs = {p["seed"]: p for p in map(row_numbers, peers) if p and p["name"].startswith(f"original {name} ")}
        if not mine or not theirs:
            continue
        wins = [m for m in mine if m["seed"] in theirs and m["crash_free"] >= theirs[m["seed"]]["crash_free"]
                and m["level_start_rps"] >= theirs[m["seed"]]["level_start_rps"] - 5e-4]
        seeds = sorted({m["seed"] for m in mine})
        shown = ", ".join(f"seed {m['seed']} {m['weights']}: {'yes' if m in wins else 'no'}" for m in mine)
        level = config.split("_")[1]
        verdict = ("ours beats or equals the original at every seed" if len(wins) == len(mine)
                   else f"the original is ahead on {len(mine) - len(wins)} of {len(mine)} checkpoints")
        seed_count = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
        lines.append(f"| {level} | {config} | {name} | {shown} ({seed_count}) | {verdict} |")
    return lines


def table_row(exp: Experiment, r: dict) -> str:
    """One markdown row of the table for one judged checkpoint."""
    met = r[exp.measure] >= 0.5
    # BasicMotion zeroes the speed after every step (spec §3.1), so speed says nothing there.
    speed = "-" if r["basic"] else f"{r['mean_speed']:.2f}"
    fast = "-" if r["basic"] else f"{r['fast_and_safe']:.2f}"
    ls = r["level_start"]
    ls_text = (f"{ls['reward_per_step']:.3f}, {'yes' if ls['crash_free'] else 'no'}, "
               + ("-" if r["basic"] else f"{ls['mean_speed']:.2f}"))
    weights = {"latest": "final", "best": "best"}.get(r["tag"], r["tag"])
    name = exp.config if r["tag"] != "shipped" else f"original {ORIGINAL_OF[exp.config]} (the demo's)"
    trained = "-" if r["env_steps"] is None else f"{r['env_steps']:,}"
    wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
    return (f"| {name} | {r['seed']} | {weights} | {exp.target} | {r['reward_per_step']:.3f} "
            f"| {r['crash_free']:.2f} | {speed} | {fast} | {ls_text} | {trained} | {wall} "
            f"| {'yes' if met else 'no'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="config name(s) to run (default: all that exist)")
    parser.add_argument("--peers-only", action="store_true",
                        help="train nothing: keep every row of ours, re-score the original agents and the verdicts")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per trained agent")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train this many seeds of an experiment at once, one process each (scores are the "
                             "same; wall times then include the seeds' competition for the cores)")
    args = parser.parse_args(argv)
    names = [exp.config for exp in EXPERIMENTS]
    unknown = [name for name in args.only or [] if name not in names]
    if unknown:
        parser.error(f"--only: unknown experiment {', '.join(unknown)}; valid: {', '.join(names)}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.peers_only and args.only:
        parser.error("--peers-only trains nothing; drop --only")
    selective = bool(args.only) or args.peers_only  # rows of experiments not trained now are kept
    measured = set(args.only or []) if selective else set(names)
    kept = previous_rows(_benchlib.BENCHMARKS_MD) if selective else {}

    rows = ["| experiment | seed | weights | target | reward/step | crash-free | mean speed (px/step) "
            "| 800 steps at >= 1 px/step | from the level's start: reward/step, crash-free, speed "
            "| transitions trained (at the weights) | train wall time (s) | target met (random starts) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    kept_names, ours = [], []
    peers: dict[str, list[str]] = {}  # original agent -> its rows, scored once however many of ours face it
    with tempfile.TemporaryDirectory() as runs_dir:
        for exp in EXPERIMENTS:
            if exp.config not in measured:
                ours.extend(kept.get(exp.config, []))  # not re-measured: the section's rows stay as they were
                kept_names += [exp.config] if exp.config in kept else []
            elif not (ROOT / "configs" / f"{exp.config}.toml").exists():
                print(f"{exp.config}: no config file, skipped")
                continue
            else:
                print(f"training {exp.config} seeds {', '.join(map(str, exp.seeds))} ...", flush=True)
                for results in train_seeds(exp, runs_dir, args.episodes, args.jobs):
                    for r in results:
                        ours.append(table_row(exp, r))
                        print(ours[-1], flush=True)
            original = ORIGINAL_OF.get(exp.config)
            if original and original not in peers and (exp.config in kept or exp.config in measured):
                peers[original] = []
                for seed in exp.seeds:  # the same worlds as our rows of this seed
                    peers[original].append(table_row(exp, judge_original(exp, seed, args.episodes)))
                    print(peers[original][-1], flush=True)
    # Each experiment's rows in the table's order; an original's rows follow the last of ours that faces it.
    for i, exp in enumerate(EXPERIMENTS):
        rows += [r for r in ours if row_name(r) == exp.config]
        original = ORIGINAL_OF.get(exp.config)
        if original and all(ORIGINAL_OF.get(later.config) != original for later in EXPERIMENTS[i + 1:]):
            rows += peers.get(original, [])
    load = os.getloadavg()[0]
    kept_note = (f"Rows of {', '.join(f'`{n}`' for n in kept_names)} are kept from an earlier run of this script "
                 "(this one re-measured only the others, with `--only` or `--peers-only`); their wall times are from "
                 "that run's load."
                 if kept_names else "")
    text = "\n".join([
        "## MetaCar experiments (`benchmarks/bench_metacar.py`)",
        "",
        f"Machine: {_benchlib.machine_description()}; CPU only, one BLAS thread. 1-minute load average at the "
        f"end: {load:.1f} (other work shares the cores, so wall times move; scores do not: they are fixed by "
        f"config and seed). Command: `{_benchlib.command_line(None if argv is None else [__file__, *argv])}`."
        + (f" The seeds of an experiment trained {args.jobs} at a time (`--jobs`): each wall time includes the "
           "others' share of the cores." if args.jobs > 1 else ""),
        "",
        f"Each agent is trained by `scripts/train.py` with the config's budget and seed (stopping early at the "
        "config's `target_return` where it has one); its final weights, and its \"best\" checkpoint where that is "
        "an earlier one (the checkpoint with the highest 20-episode training mean; what `play.py --agent` loads), "
        f"are then driven deterministically for {args.episodes} episodes on fresh worlds (random start tile and lane; "
        f"seed s's worlds are world seeds 1,000,000 + s to 1,000,000 + s + {args.episodes - 1}, so the seeds' sets "
        "share all but one or two worlds: nearly one test set for every seed, and the original's rows differ "
        "from seed to seed by those worlds alone). "
        "Reward/step is the episode return over the 800-step budget (a crash ends the episode and forfeits the "
        "rest); crash-free is the fraction of episodes that lasted 800 steps; \"800 steps at >= 1 px/step\" "
        "is the fraction that also averaged at least 1 px/step. The level's-start column is one more deterministic "
        "episode from the level file's start pose. On level2 some random starts face the closed side of a corner or "
        "T-junction tile, 15-45 px from grass, and end off the road within ~120 steps. The \"target\" column is "
        "each experiment's own absolute bar, set before the original agents became the peers: level1 (and "
        "level0) a reward/step of at least 0.5; level2 at least half the episodes crash-free at >= 1 px/step; "
        "level3 at least half the episodes crash-free. The bar that counts now is the verdict below: at least the "
        "original's crash-free rate and level-start reward/step, on the same worlds.",
        "",
        "Peers: the original MetaCar demo's own trained agents (`agents/originals.py`; rows \"original ... (the "
        "demo's)\"), each in the setting it was trained in, driven on the same worlds as our rows of the same "
        "seed. From the level start they score what they score in the original (the port drives them step for "
        "step as the original JavaScript does). Verdict per level: every one of our judged checkpoints at least as "
        "crash-free from random starts and at least as good from the level start as the original, same worlds.",
        "",
        *verdict_lines(ours, [row for rows_of in peers.values() for row in rows_of]),
        "",
        *([kept_note, ""] if kept_note else []),
        *rows,
    ])
    print(text)
    if not args.no_write:
        _benchlib.write_section(SECTION, text, path=_benchlib.BENCHMARKS_MD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
