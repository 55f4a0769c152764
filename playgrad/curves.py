"""Learning curves of runs: episode returns against environment steps, smoothed, grouped and drawn to a PNG.

:func:`plot` is what ``python scripts/plot.py`` (:mod:`playgrad.cli.plot`) and ``make run``
(:mod:`playgrad.cli.main_job`) draw. Runs of one config name and the same ``--set`` overrides are one curve (the
mean over seeds with a min..max band); a sweep's grid points are one curve each, labelled by the overrides that
tell them apart.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rl.experiment import ConfigError, RunDir


def episode_curve(run: RunDir, window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Env steps ``(E,)`` and moving-average episode returns ``(E,)`` of a run's episodes (``window`` >= 1)."""
    if window < 1:
        raise ValueError(f"the moving-average window must be at least 1 episode, got {window}")
    records = [r for r in run.read_metrics() if "episode_return" in r]
    if not records:
        raise ConfigError(f"{run.metrics_path} has no episode records yet")
    steps = np.array([r["env_steps"] for r in records], dtype=np.float64)
    returns = np.array([r["episode_return"] for r in records], dtype=np.float64)
    kernel = np.ones(min(window, len(returns)))
    smooth = np.convolve(returns, kernel, mode="full")[: len(returns)] / np.convolve(
        np.ones_like(returns), kernel, mode="full")[: len(returns)]
    return steps, smooth


def run_overrides(run: RunDir) -> tuple[str, ...]:
    """The ``--set`` overrides a run was started with (from its ``info.json``), less the seed.

    Runs of one config with different overrides (a sweep's grid points) are different curves; the
    seeds of one grid point are one curve with a band.
    """
    try:
        overrides = json.loads((run.path / "info.json").read_text()).get("overrides", [])
    except (OSError, ValueError):  # an older or hand-made run without info.json: the config alone
        return ()
    return tuple(sorted(o for o in overrides if not o.replace(" ", "").startswith("experiment.seed=")))


SeededCurve = tuple[int | None, np.ndarray, np.ndarray]  # (seed, steps (E,), smoothed returns (E,))


def seeded_curve_groups(run_dirs: list[str], window: int = 20) -> dict[str, list[SeededCurve]]:
    """The curves to draw: label -> each run's ``(seed, steps (E,), smoothed returns (E,))`` in that group.

    A group is one config name with one set of overrides; its label adds the overrides that tell it
    from the other groups of the same config (a sweep's ``agent.lr=...``), not those they all share.
    """
    groups: dict[tuple[str, tuple[str, ...]], list[SeededCurve]] = defaultdict(list)
    for d in run_dirs:
        run = RunDir.open(d)  # a mistyped path raises RunNotFoundError (a ConfigError) and creates nothing
        experiment = run.read_config().get("experiment", {})
        name = experiment.get("name", Path(d).name)
        groups[name, run_overrides(run)].append((experiment.get("seed"), *episode_curve(run, window)))
    labelled = {}
    for (name, overrides), curves in groups.items():
        shared = set.intersection(*(set(o) for (n, o) in groups if n == name))
        labelled[" ".join([name, *(o for o in overrides if o not in shared)])] = curves
    return labelled


def curve_groups(run_dirs: list[str], window: int = 20) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`seeded_curve_groups` without the seeds: label -> each run's ``(steps (E,), returns (E,))``."""
    return {label: [(steps, smooth) for _, steps, smooth in curves]
            for label, curves in seeded_curve_groups(run_dirs, window).items()}


def seeds_label(seeds: list[int | None]) -> str:
    """How a band's runs were seeded: "mean of 3 seeds (0, 1, 2)", or, when runs share a seed, say so
    ("mean of 4 runs of 2 seeds (0, 1); runs repeat a seed") -- two runs of one seed are not two samples."""
    known = sorted({s for s in seeds if s is not None})
    listed = ", ".join(str(s) for s in known) + (", unknown" if None in seeds else "")
    distinct = len(known) + (seeds.count(None) if None in seeds else 0)
    if distinct == len(seeds):
        return f"mean of {len(seeds)} seeds ({listed})"
    return f"mean of {len(seeds)} runs of {len(known)} seed{'s' if len(known) != 1 else ''} ({listed}); " \
           f"runs repeat a seed"


def plot(run_dirs: list[str], out: str | Path, window: int = 20, title: str | None = None) -> Path:
    """Write the learning-curve figure of ``run_dirs`` to ``out`` (PNG); returns its path.

    The legend goes under the axes, so it never covers a curve.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, curves in seeded_curve_groups(run_dirs, window).items():
        if len(curves) == 1:
            seed = curves[0][0]
            ax.plot(*curves[0][1:], label=name if seed is None else f"{name} (seed {seed})")
            continue
        end = min(c[1][-1] for c in curves)
        grid = np.linspace(max(c[1][0] for c in curves), end, 200)
        ys = np.stack([np.interp(grid, s, r) for _, s, r in curves])
        label = f"{name}, {seeds_label([c[0] for c in curves])}; band: min..max"
        line = ax.plot(grid, ys.mean(axis=0), label=label)[0]
        ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"episode return (moving average of {window})")
    ax.set_title(title or "learning curves")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize="small")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")  # grows the picture to hold the legend below the axes
    plt.close(fig)
    return out
