"""The original MetaCar demo's trained agents, driving in our port: the peers our MetaCar agents must beat.

The original MetaCar (thibo73800/metacar, MIT) ships four trained agents: a Q-table for level0, a REINFORCE
policy for level1, and DDPG actors for level2 ("road") and level3 ("traffic"), as TensorFlow.js 0.11 files
and one JSON table (``docs/specs/metacar.md`` §6). :func:`load_original` reads one of them and returns an
agent with the same face as ours (``act(obs, deterministic)``, ``experiment``), so ``play.py --agent``,
``evaluate.py``, ``record.py`` and ``benchmarks/bench_metacar.py`` drive and score it exactly as they do ours.

Each file is matched to the setting it was trained in by what it is, never guessed from a run:

============  ======================  ========  ===========================================  ==================
setting       file                    level     env (motion, lidar {pts, width, height, pos})  input
============  ======================  ========  ===========================================  ==================
qtable        ``qtable.json``         level0    basic, 45-degree turns, {2, 1, 1, 1}, cars still  4 lidar cells
policy        ``policy-model-*.json`` level1    basic, default {5, 4, 5, 0}, 3 bots           25 lidar cells
ddpg-road     ``actor-model-*.json``  level2    control, {5, 3, 7, -0.5}                      25 cells + speed
ddpg-traffic  ``actor-model-*.json``  level3    control, {7, 3, 7, -0.5}, 16 bots             49 cells + speed
============  ======================  ========  ===========================================  ==================

Copies of the four ship in ``agents/original_models/`` (MIT): ``load_original("original:ddpg-traffic")``.
A TF.js model is told apart by its input size (25, 26 or 50); a critic (two inputs), the value baseline
(one output), any other size or a model playgrad itself exported (``generatedBy``) is refused with the list
of what is known. Actions: the Q-table and the
policy choose among UP, LEFT, RIGHT (our BasicMotion indices 0-2); the actors' ``[throttle, steering]`` go
to the env as they are (it clips to [-1, 1], as the original).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import ExperimentConfig
from rl import backend, tfjs

__all__ = ["BUNDLED", "SETTINGS", "OriginalAgent", "OriginalAgentError", "OriginalSetting", "bundled_path",
           "is_original_source", "load_original"]

# The four agents ship with playgrad (MIT, agents/original_models/LICENSE): name -> file.
BUNDLED_DIR = Path(__file__).resolve().parent / "original_models"
BUNDLED = {
    "qtable": BUNDLED_DIR / "qtable.json",
    "policy": BUNDLED_DIR / "policy-model-policy-agent.json",
    "ddpg-road": BUNDLED_DIR / "actor-model-ddpg-road.json",
    "ddpg-traffic": BUNDLED_DIR / "actor-model-ddpg-traffic-epoch-120.json",
}

MAX_QTABLE_BYTES = 1 << 20  # the shipped table is 1 KB; a lidar of 4 cells has at most 81 states


class OriginalAgentError(ValueError):
    """The file is not one of the original MetaCar agents (or is damaged); the message says which are known."""


@dataclass(frozen=True)
class OriginalSetting:
    """Where and how one of the original agents was trained (spec §6), as our env's keyword arguments."""

    name: str
    algorithm: str  # our agent of the same family: qtable, reinforce, ddpg
    inputs: int  # values the agent reads: lidar cells, plus the speed for the DDPG actors
    env: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _env(level: str, motion: str, lidar: dict[str, float] | None, **extra: Any) -> dict[str, Any]:
    # Scored as our own MetaCar experiments are: 800-step episodes, a crash ends one, random starts.
    env = {"level": level, "motion": motion, "observation": "linear", "terminate_on_crash": True,
           "max_steps": 800, "shuffle_on_reset": "agent", **extra}
    if lidar is not None:
        env["lidar"] = lidar
    return env


SETTINGS = {
    "qtable": OriginalSetting(
        "qtable", "qtable", 4, _env("level0", "basic", {"pts": 2, "width": 1, "height": 1, "pos": 1},
                                    rotation_step=0.25, cars_moving=False),
        "the Q-table demo: level0, 45-degree turns, 4 lidar cells in front of the bumper"),
    "policy": OriginalSetting(
        "policy", "reinforce", 25, _env("level1", "basic", None),
        "the REINFORCE demo: level1 with 3 bots, the default 5x5 lidar, no speed"),
    "ddpg-road": OriginalSetting(
        "ddpg-road", "ddpg", 26, _env("level2", "control", {"pts": 5, "width": 3, "height": 7, "pos": -0.5}),
        "the DDPG demo: level2, ControlMotion, 5x5 lidar + speed"),
    "ddpg-traffic": OriginalSetting(
        "ddpg-traffic", "ddpg", 50, _env("level3", "control", {"pts": 7, "width": 3, "height": 7, "pos": -0.5}),
        "the DDPG-traffic demo: level3 with 16 bots, ControlMotion, 7x7 lidar + speed"),
}


def _known() -> str:
    return "; ".join(f"{s.name} ({s.description}, {s.inputs} inputs)" for s in SETTINGS.values())


class OriginalAgent:
    """One of the original agents, acting on our env's ``linear`` observations of its own setting.

    Attributes:
        setting: the :class:`OriginalSetting` it was trained in.
        experiment: an :class:`~agents.base.ExperimentConfig` naming that env, so the tools that build an
            agent's env (``make_vec_env(agent.experiment, n)``) build the right one.
        source: the file it was read from.
    """

    def __init__(self, setting: OriginalSetting, source: Path, model: Any = None,
                 table: dict[str, np.ndarray] | None = None):
        self.setting, self.source = setting, source
        self.model, self.table = model, table
        self.experiment = ExperimentConfig(name=f"original-{setting.name}", agent=setting.algorithm,
                                           env_id="envs/MetaCar-v0", eval_episodes=20, env=dict(setting.env))
        self.env_steps = 0  # scoring tools report "trained on" counts; the originals' are unknown here

    def _inputs(self, obs: Any) -> np.ndarray:
        obs = np.asarray(backend.to_numpy(obs), dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] < self.setting.inputs:
            raise OriginalAgentError(f"{self.source.name} reads {self.setting.inputs} values per world; got "
                                     f"observations of shape {obs.shape} (is the env {self.setting.name}'s?)")
        return obs[:, : self.setting.inputs]  # the lidar cells (and the speed for the actors), as the demo fed it

    def action_values(self, obs: Any) -> np.ndarray | None:
        """What the agent decides by: Q-values ``(N, 3)`` (table), probabilities ``(N, 3)`` (policy), or None."""
        x = self._inputs(obs)
        if self.table is not None:
            return np.stack([self.table.get(self.state_key(row), np.zeros(3)) for row in x])
        if self.setting.algorithm == "reinforce":
            return np.asarray(backend.to_numpy(self.model.predict(x)), dtype=np.float64)
        return None

    def explain(self, obs: Any) -> dict[str, np.ndarray]:
        """For the play window's panel, ONE observation ``(D,)``: ``{"q_values": (3,)}`` (table), ``{"probs": (3,)}``
        (policy), or ``{}`` for an actor (the panel shows its action; its critic is not shipped with it)."""
        values = self.action_values(np.asarray(obs).reshape(1, -1))
        if values is None:
            return {}
        return {"q_values" if self.table is not None else "probs": values[0]}

    @staticmethod
    def state_key(cells: np.ndarray) -> str:
        """The Q-table demo's state key: the lidar cells as ``"-1,0,-1,-1"`` (far row first, left to right)."""
        return ",".join(str(int(round(float(c)))) for c in cells)

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations ``(N, D)``: ``(N,)`` ints (0 UP, 1 LEFT, 2 RIGHT) or ``(N, 2)``.

        Always the demos' play mode (argmax, or the actor's output): ``deterministic`` is accepted for the
        common agent interface. An unknown Q-table state goes UP, as in the demo.
        """
        x = self._inputs(obs)
        if self.table is not None:
            return np.array([int(np.argmax(self.table[k])) if (k := self.state_key(r)) in self.table else 0
                             for r in x], dtype=np.int64)
        out = np.asarray(backend.to_numpy(self.model.predict(x)))
        if self.setting.algorithm == "reinforce":
            return out.argmax(axis=1).astype(np.int64)
        return out.astype(np.float32)


def _read_qtable(path: Path) -> dict[str, np.ndarray]:
    size = path.stat().st_size
    if size > MAX_QTABLE_BYTES:
        raise OriginalAgentError(f"{path}: {size:,} bytes is not the demo's Q-table (at most {MAX_QTABLE_BYTES:,})")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise OriginalAgentError(f"{path}: not a JSON Q-table ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise OriginalAgentError(f"{path}: a Q-table is an object of state keys, got {type(doc).__name__}")
    table = {}
    for key, values in doc.items():
        cells = key.split(",")
        if len(cells) != 4 or any(c not in ("-1", "0", "1") for c in cells):
            raise OriginalAgentError(f"{path}: state {key!r} is not 4 lidar cells of -1, 0 or 1 (the Q-table demo's "
                                     f"2x2 lidar); known agents: {_known()}")
        if not (isinstance(values, list) and len(values) == 3 and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            raise OriginalAgentError(f"{path}: state {key!r} needs 3 finite Q-values (UP, LEFT, RIGHT), got {values!r}")
        table[key] = np.asarray(values, dtype=np.float64)
    return table


# A run's layer table ({"networks": [...]}, rl.summaries.write_layers_json): runs written before it was called
# layers.json hold it as model.json, the name of a TF.js export's topology, so a run folder can look like an agent.
LAYER_TABLE_START = re.compile(rb'\s*\{\s*"networks"\s*:')


def _layer_table_message(path: Path) -> str:
    if (path.parent / "config.toml").is_file():
        where = f"give the run folder {path.parent} to load the run's own agent"
    else:
        where = f"give one of the original agents: {_known()}"
    return (f"{path}: the layer table a training run writes for the dashboard (runs before layers.json named it "
            f"model.json), not an agent; {where}")


def _find_file(path: Path) -> Path:
    """A folder holding one agent -> its file (the actor or policy model, or qtable.json)."""
    if not path.is_dir():
        return path
    candidates = [p for p in sorted(path.glob("*.json")) if p.name == "qtable.json"
                  or p.name.startswith(("actor-", "policy-")) or p.name == "model.json"]
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise OriginalAgentError(f"{path}: expected one agent file (qtable.json, actor-*.json, policy-*.json or "
                                 f"model.json) in the folder, found {names}; name the file")
    return candidates[0]


def is_original_source(source: str | Path) -> bool:
    """True when ``source`` names an original agent rather than a run directory: ``original:NAME``, a ``.json``
    file, or a folder of ``.json`` files without a run's ``config.toml``."""
    path = Path(source)
    if str(source).startswith("original:"):
        return True
    if path.is_file():
        return path.suffix == ".json"
    return path.is_dir() and not (path / "config.toml").exists() and any(path.glob("*.json"))


def bundled_path(source: str | Path) -> Path:
    """``source`` as a path: ``"original:NAME"`` is the bundled copy of that agent (:class:`OriginalAgentError`
    naming the four for another name); anything else is taken as given."""
    if not str(source).startswith("original:"):
        return Path(source)
    name = str(source).removeprefix("original:")
    if name not in BUNDLED:
        raise OriginalAgentError(f"{source}: the bundled originals are {', '.join(f'original:{n}' for n in BUNDLED)}")
    return BUNDLED[name]


def load_original(path: str | Path) -> OriginalAgent:
    """Read one of the original MetaCar agents (a TF.js ``.json`` model, a folder holding one, or ``qtable.json``).

    ``path`` may also name a bundled copy: ``"original:ddpg-traffic"`` (or ``qtable``, ``policy``, ``ddpg-road``).

    Raises :class:`OriginalAgentError` for a file that is none of the known agents (a critic, the value
    baseline, another input size, a damaged table, a run's layer table), naming the known settings, and
    :class:`rl.tfjs.TfjsFormatError` for a model file that cannot be read.
    """
    path = _find_file(bundled_path(path))
    if not path.is_file():
        raise OriginalAgentError(f"{path}: no such file")
    if path.suffix != ".json":
        raise OriginalAgentError(f"{path}: the original agents are .json files (TF.js models or qtable.json)")
    with path.open("rb") as f:
        head = f.read(4096)
    if LAYER_TABLE_START.match(head):
        raise OriginalAgentError(_layer_table_message(path))
    if b"modelTopology" not in head and b"weightsManifest" not in head and path.name != "model.json":
        return OriginalAgent(SETTINGS["qtable"], path, table=_read_qtable(path))
    generated_by = str(tfjs.read_model_json(path).get("generatedBy", ""))
    if generated_by.startswith("playgrad"):
        # Our own TF.js export of a 25/26/50-input net would otherwise pass for an original by its size alone,
        # and be driven with an observation guessed from that size rather than the run's own config.
        raise OriginalAgentError(f"{path}: exported by {generated_by}, not one of the original MetaCar agents; "
                                 "give the run directory it was exported from (play.py metacar --agent runs/NAME)")
    model = tfjs.load_tfjs(path)
    inputs, outputs = model.input_shape, model.output_shape
    if isinstance(inputs, list):
        raise OriginalAgentError(f"{path}: a model with {len(inputs)} inputs is a DDPG critic; give its actor "
                                 f"(actor-model-*.json). Known agents: {_known()}")
    n_in, n_out = inputs[-1], outputs[-1] if not isinstance(outputs, list) else None
    if n_in == 25 and n_out == 1:
        raise OriginalAgentError(f"{path}: one output is the REINFORCE demo's value baseline; give its policy "
                                 "(policy-model-*.json)")
    setting = next((s for s in SETTINGS.values() if s.inputs == n_in and s.name != "qtable"), None)
    expected_out = {"reinforce": 3, "ddpg": 2}
    if setting is None or n_out != expected_out[setting.algorithm]:
        raise OriginalAgentError(f"{path}: a model of {n_in} inputs and {n_out} outputs matches none of the original "
                                 f"agents: {_known()}")
    return OriginalAgent(setting, path, model=model)
