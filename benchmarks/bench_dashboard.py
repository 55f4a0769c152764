"""What watching costs: the dashboard serving a 1M-line run's curve, and weight histograms' cost on `make run`.

    python benchmarks/bench_dashboard.py                       # both, writes its section of docs/benchmarks.md
    python benchmarks/bench_dashboard.py --only serve --lines 1000000 --repeats 21
    python benchmarks/bench_dashboard.py --only histograms --pairs 5 --steps 200000

* serve: a synthetic ``metrics.jsonl`` of ``--lines`` lines shaped like PPO's (one update record per 16
  episode ends); the time of the first answer (8 MiB of the file parsed) and of reading all of it over the
  following requests, then the median of
  ``--repeats`` HTTP requests of the downsampled ``episode_return`` curve (2,000 points) with the file
  unchanged and with 1,000 lines appended before each (the incremental read). Targets: < 200 ms.
* histograms: ``configs/metacar_level1_ppo.toml`` (what `make run` trains) shortened to ``--steps``, trained
  with ``experiment.histogram_every=0`` and ``=10`` (make run's setting) alternately, ``--pairs`` times;
  the training time is the last metrics record's ``time_s``. Target: histograms cost <= 5%.
"""

from __future__ import annotations

from _benchlib import one_compute_thread

one_compute_thread()  # before NumPy loads: one core per training, as make run trains

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _benchlib import ROOT, command_line, machine_description, verdict, write_section

CONFIG = ROOT / "configs" / "metacar_level1_ppo.toml"
TARGET_MS = 200.0
TARGET_OVERHEAD = 0.05


def write_metrics(path: Path, lines: int, start: int = 0) -> None:
    """``lines`` PPO-like records: 16 episode ends, then one update record, repeated."""
    rng_state = 12345 + start
    with open(path, "a", encoding="utf-8") as f:
        for i in range(start, start + lines):
            rng_state = (1103515245 * rng_state + 12345) % 2**31
            steps = 128 * i
            if i % 17 == 16:
                rec = {"env_steps": steps, "iteration": i // 17, "policy_loss": -0.01 * (rng_state % 100) / 100,
                       "value_loss": 0.5 + (rng_state % 1000) / 1000, "entropy": 1.2, "approx_kl": 0.01,
                       "clip_fraction": 0.1, "lr": 3e-4, "sps": 30000.0, "time_s": i / 1000}
            else:
                rec = {"env_steps": steps, "episode_return": float(rng_state % 800), "episode_length": 800}
            f.write(json.dumps(rec, sort_keys=True) + "\n")


def bench_serve(lines: int, repeats: int) -> dict[str, float]:
    from playgrad.dashboard import make_server  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "big-run"
        run.mkdir()
        (run / "config.toml").write_text('[experiment]\nname = "big"\n')
        t = time.perf_counter()
        write_metrics(run / "metrics.jsonl", lines)
        print(f"wrote {lines:,} lines ({(run / 'metrics.jsonl').stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        server = make_server(tmp, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"{server.url}api/series?run=big-run&key=episode_return&max_points=2000"

        def fetch() -> tuple[float, bool]:
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=600) as r:
                body = json.load(r)
            assert len(body["series"]["episode_return"]["x"]) == 2000, "not downsampled to 2000 points"
            return time.perf_counter() - t0, body["complete"]

        try:
            first, complete = fetch()  # the first answer: the file's first READ_BUDGET bytes
            whole, requests = first, 1
            while not complete:  # the page's next polls read the rest
                t, complete = fetch()
                whole, requests = whole + t, requests + 1
            warm = statistics.median(fetch()[0] for _ in range(repeats))
            appended = []
            done = lines
            for _ in range(repeats):
                write_metrics(run / "metrics.jsonl", 1000, start=done)
                done += 1000
                appended.append(fetch()[0])
            rows = len(server.index.entry(run).metrics.columns["episode_return"][0])
        finally:
            server.shutdown()
            server.server_close()
    return {"first_s": first, "whole_s": whole, "requests": requests, "warm_s": warm,
            "append_s": statistics.median(appended), "points": rows}


def bench_histograms(pairs: int, steps: int, runs_dir: Path) -> dict[str, list[float]]:
    from playgrad.training import train  # noqa: PLC0415

    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(pairs):
        for label, every in (("off", 0), ("on", 10)) if i % 2 == 0 else (("on", 10), ("off", 0)):
            run = train(str(CONFIG), [f"experiment.total_steps={steps}", "experiment.eval_episodes=1",
                                                   f"experiment.histogram_every={every}"],
                                     runs_dir=str(runs_dir), progress=False)
            recs = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
            times[label].append(max(r.get("time_s", 0.0) for r in recs))
            snaps = (Path(run) / "histograms.jsonl")
            print(f"  pair {i + 1}: histograms {label}: {times[label][-1]:.2f} s"
                  f"{f' ({len(snaps.read_text().splitlines())} snapshots)' if snaps.exists() else ''}", flush=True)
    return times


def bench_snapshot(repeats: int) -> dict[str, float]:
    """Median seconds of one histogram snapshot of make run's two networks (weights and gradients), and how many
    snapshots make run writes (its updates / 10)."""
    import numpy as np  # noqa: PLC0415

    from agents.runner import make_agent  # noqa: PLC0415
    from rl.experiment import load_toml  # noqa: PLC0415
    from rl.summaries import HistogramWriter, named_tensors  # noqa: PLC0415

    config = load_toml(CONFIG)
    agent = make_agent(config)
    networks = agent.networks()
    rng = np.random.default_rng(0)
    for _, tensor in named_tensors(networks):  # a gradient on every weight, as after an update
        tensor.grad = rng.normal(size=tensor.shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        writer = HistogramWriter(Path(tmp) / "histograms.jsonl")
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            writer.write(0, networks)
            samples.append(time.perf_counter() - t)
        writer.close()
        size = (Path(tmp) / "histograms.jsonl").stat().st_size / repeats
    a = config["agent"]
    updates = config["experiment"]["total_steps"] // (a["num_envs"] * a["num_steps"])
    every = config["experiment"]["histogram_every"]
    return {"snapshot_s": statistics.median(samples), "snapshots": -(-updates // every), "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["serve", "histograms"],
                        help="one part only (its section then holds that part's rows only)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the synthetic metrics.jsonl")
    parser.add_argument("--repeats", type=int, default=21, help="requests timed (median)")
    parser.add_argument("--pairs", type=int, default=5, help="with/without histogram trainings, alternating")
    parser.add_argument("--steps", type=int, default=200_000, help="env steps of each shortened make-run training")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    rows = []
    if args.only in (None, "serve"):
        s = bench_serve(args.lines, args.repeats)
        print(json.dumps(s))
        rows.append(f"| serve a {args.lines:,}-line run's episode_return curve, downsampled to 2,000 points "
                    f"(median of {args.repeats} HTTP requests) | {1000 * s['warm_s']:.1f} ms | "
                    f"{verdict(1000 * s['warm_s'], TARGET_MS, unit=' ms')} |")
        rows.append(f"| the same after 1,000 lines were appended (incremental read + downsample) | "
                    f"{1000 * s['append_s']:.1f} ms | {verdict(1000 * s['append_s'], TARGET_MS, unit=' ms')} |")
        rows.append(f"| a fresh server's first answer about the file (its first 8 MiB parsed) | "
                    f"{1000 * s['first_s']:.0f} ms | - |")
        rows.append(f"| the whole file parsed, over {s['requests']} requests (the page's polls; "
                    f"{s['points']:,} episode points) | {s['whole_s']:.1f} s | once per server start |")
    if args.only in (None, "histograms"):
        snap = bench_snapshot(args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            t = bench_histograms(args.pairs, args.steps, Path(tmp))
        off, on = statistics.median(t["off"]), statistics.median(t["on"])
        ratio = on / off
        print(json.dumps({"off": t["off"], "on": t["on"], "ratio": ratio, **snap}))
        rows.append(f"| `make run`'s training ({args.steps:,} of its 1M steps) with weight+gradient histograms every "
                    f"10 updates vs none: median of {args.pairs} each, alternating | {on:.2f} s vs {off:.2f} s "
                    f"(x{ratio:.3f}; runs varied {min(t['off'] + t['on']):.1f}-{max(t['off'] + t['on']):.1f} s) | "
                    f"{verdict(100 * (ratio - 1), 100 * TARGET_OVERHEAD, unit='%')} |")
        total = snap["snapshot_s"] * snap["snapshots"]
        share = 100 * total / (off * 1_000_000 / args.steps)  # of a full make run, scaled from the shortened one
        rows.append(f"| one histogram snapshot of make run's networks (policy + value, weights and gradients, "
                    f"{snap['bytes'] / 1024:.1f} KiB a line; median of {args.repeats}) x the {snap['snapshots']} "
                    f"snapshots of a full make run | {1000 * snap['snapshot_s']:.2f} ms x {snap['snapshots']} = "
                    f"{total:.2f} s, {share:.2f}% of the full run's training time (scaled from the row above) | "
                    f"{verdict(share, 100 * TARGET_OVERHEAD, unit='%')} |")
    md = (f"## Dashboard and histograms (`benchmarks/bench_dashboard.py`)\n\n"
          f"Measured with `{command_line(argv and ['benchmarks/bench_dashboard.py', *argv])}` on "
          f"{machine_description()}"
          f" (a shared, loaded 2-core machine: other jobs ran at the same time).\n\n"
          f"| what | measured | target |\n|---|---|---|\n" + "\n".join(rows) + "\n"
          + ("\nThe alternating trainings resolve the cost only as finely as the machine's noise allows (the spread of "
             "runs of one setting, in the row, can exceed the effect); the snapshot row times the histograms "
             "themselves, which is the cost they add.\n" if args.only != "serve" else ""))
    print(md)
    if not args.no_write:
        write_section("bench_dashboard", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
