"""What every agent shares: the experiment table, the hooks a run hands to an agent, the Agent
interface, and the registry that maps a config's ``agent = "ppo"`` to its module.

An agent module (``agents/ppo.py``) defines:

* ``Config``: a dataclass of its hyperparameters, each field commented (CleanRL's layout); it is the
  schema of the ``[agent]`` table in an experiment file.
* ``Agent(Agent base)``: ``learn(total_steps, hooks)`` runs the algorithm top to bottom; ``act``
  maps a batch of observations to actions; its ``STATE`` (a :class:`StateSpec`) lists once what a
  resumed run needs (networks, optimizers, random generators, counters, arrays, replay memory), and the
  base class builds ``state_dict``/``load_state_dict`` from it, adding the vector env's state, the
  current observation and the :class:`~agents.episodes.EpisodeTracker` (``env_steps``, running episodes).

The runner (:mod:`agents.runner`, driven by ``scripts/train.py``) owns the run directory, the progress
bar, Ctrl-C, checkpoints and evaluation; agents only call ``hooks``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agents.episodes import EpisodeTracker
from rl import backend
from rl.experiment import check_run_name
from rl.tensor import Tensor

__all__ = ["AGENTS", "Agent", "ExperimentConfig", "Hooks", "StateSpec", "get_agent_module", "make_vec_env"]

# config name -> module path; each module defines ``Config`` and ``Agent``.
AGENTS = {
    "reinforce": "agents.reinforce",
    "dqn": "agents.dqn",
    "ppo": "agents.ppo",
    "ddpg": "agents.ddpg",
    "qtable": "agents.qtable",
}


@dataclass
class ExperimentConfig:
    """The ``[experiment]`` table: what to train, where, for how long, and how to judge it."""

    name: str = "experiment"  # run directories are named <name>-s<seed>-<time>
    agent: str = "ppo"  # one of AGENTS
    env_id: str = "envs/CartPole-v1"  # a Gymnasium id; the [env] table holds its keyword arguments
    seed: int = 0  # seeds networks, exploration and environments
    total_steps: int = 100_000  # env steps to train for: every step call of every world (agents.episodes)
    device: str = "cpu"  # "cpu", "gpu" or "auto" (see rl.backend)
    eval_episodes: int = 20  # episodes of the final deterministic evaluation
    checkpoint_every_steps: int = 10_000  # how often "latest" is saved (also on Ctrl-C and at the end)
    target_return: float | None = None  # stop early once the logged mean return reaches this
    histogram_every: int = 0  # weight+gradient histograms every N updates into histograms.jsonl (0: off; dashboard)
    tensorboard: bool = False  # also write TensorBoard event files to <run>/tensorboard (the tensorboard extra)
    env: dict = field(default_factory=dict)  # filled from the [env] table

    def __post_init__(self) -> None:
        check_run_name(self.name)  # one directory inside --runs-dir: no "../", no absolute path
        if self.agent not in AGENTS:
            raise ValueError(f"unknown agent {self.agent!r}; valid: {', '.join(sorted(AGENTS))}")
        if self.device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"device must be 'cpu', 'gpu' or 'auto', got {self.device!r}")
        if self.total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {self.total_steps}")
        if self.eval_episodes < 1:
            raise ValueError(f"eval_episodes must be at least 1, got {self.eval_episodes}")
        if self.checkpoint_every_steps < 1:
            raise ValueError(f"checkpoint_every_steps must be at least 1, got {self.checkpoint_every_steps}")
        if self.histogram_every < 0:
            raise ValueError(f"histogram_every must be 0 (off) or a number of updates, got {self.histogram_every}")


class Hooks(Protocol):
    """What a run offers an agent while it learns (implemented by the runner; tests use a fake)."""

    def log(self, record: dict[str, Any]) -> None:
        """Record one metrics event. Must contain ``env_steps``; episode ends add
        ``episode_return`` and ``episode_length``; updates add losses, ``epsilon`` or ``entropy``
        (the runner stamps every record that is not an episode end with ``sps`` and ``time_s``)."""

    def checkpoint_due(self, env_steps: int) -> bool:
        """True when the agent should call :meth:`save` at its next safe point."""

    def save(self, agent: Agent, tag: str = "latest") -> None:
        """Write a checkpoint of ``agent`` atomically (tags: ``latest``, ``best``)."""

    @property
    def stop_requested(self) -> bool:
        """True after Ctrl-C or once ``target_return`` is reached: save and return at a safe point."""


# The most worlds one vector env may hold: far beyond what training uses (8 to 64), far below what
# exhausts memory (a MemoryError traceback came from num_envs = 100,000,000).
MAX_WORLDS = 65_536


def check_hyperparameters(config: Any, rates: tuple[str, ...] = (), clip_norms: tuple[str, ...] = (),
                          worlds: tuple[str, ...] = ()) -> None:
    """Range checks every agent's ``Config.__post_init__`` shares; ``ValueError`` names the field.

    ``rates`` (learning rates) must be finite and positive; ``clip_norms`` (gradient-norm limits) finite
    and positive or None (a NaN limit silently disabled clipping); ``worlds`` (vector env sizes) between 1
    and :data:`MAX_WORLDS`.
    """
    for name in rates + clip_norms:
        value = getattr(config, name)
        if value is None and name in clip_norms:
            continue
        if not (math.isfinite(value) and value > 0):
            extra = " or None (no clipping)" if name in clip_norms else ""
            raise ValueError(f"{name} must be a finite number > 0{extra}, got {value}")
    for name in worlds:
        value = getattr(config, name)
        if not 1 <= value <= MAX_WORLDS:
            raise ValueError(f"{name} must be between 1 and {MAX_WORLDS:,} worlds, got {value:,}")


@dataclass(frozen=True)
class StateSpec:
    """What an agent's checkpoint holds, listed once by attribute name (an attribute that is ``None``,
    e.g. a second critic that is switched off, is skipped). The base class saves and restores it.

    Attributes:
        networks: the trained ``rl.models.Model`` s (weights and buffers); :meth:`Agent.networks` lists them.
        targets: models that follow a network without being trained (DQN's and DDPG's target networks).
        optimizers: ``rl.optimizers`` objects (moments and step counts).
        generators: random streams, ``rl.random.Generator`` or ``numpy.random.Generator``.
        counters: JSON-able scalars (ints, floats, None).
        arrays: arrays (NumPy, device, or a ``Tensor``'s data) or lists of arrays, restored in place.
        parts: objects with their own ``state_dict``/``load_state_dict`` (a replay memory).
    """

    networks: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    generators: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()


class Agent:
    """Base class: the shared bookkeeping of every agent.

    Args:
        config: the agent's ``Config`` dataclass instance.
        experiment: the ``[experiment]`` table (env id and kwargs, seed, budget).

    An agent makes its vector env with :meth:`make_envs`, which also makes ``self.tracker`` (an
    :class:`~agents.episodes.EpisodeTracker`, the one count of ``env_steps``); ``self.obs`` is the
    envs' current observation (None before the first :meth:`start_envs`).
    """

    Config: type = object
    STATE = StateSpec()

    def __init__(self, config: Any, experiment: ExperimentConfig):
        self.config = config
        self.experiment = experiment
        self.envs: Any = None
        self.obs: Any = None
        self.tracker = EpisodeTracker(0)

    # ---- the vector env and its episodes
    def make_envs(self, num_envs: int, sums: tuple[str, ...] = ()) -> Any:
        """Make the experiment's vector env of ``num_envs`` worlds (``self.envs``) and its episode tracker
        (``sums``: see :class:`~agents.episodes.EpisodeTracker`). Not reset yet: see :meth:`start_envs`."""
        self.envs = make_vec_env(self.experiment, num_envs)
        self.tracker = EpisodeTracker(num_envs, sums=sums)
        self.obs = None
        return self.envs

    def start_envs(self) -> Any:
        """The envs' current observation, resetting them first if there is none.

        A fresh run resets with the experiment seed; a resume whose checkpoint could not hold the env's
        worlds (an env without ``get_state``) starts new episodes at ``seed + env_steps``.
        """
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self.experiment.seed + self.env_steps)
            self.tracker.reset()
        return self.obs

    @property
    def env_steps(self) -> int:
        """World-steps taken so far (every ``step`` call of every world; see :mod:`agents.episodes`)."""
        return self.tracker.env_steps

    @env_steps.setter
    def env_steps(self, value: int) -> None:
        self.tracker.env_steps = int(value)

    # ---- what each agent implements
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        """Train until ``env_steps >= total_steps`` or ``hooks.stop_requested``."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations ``(B, *obs_shape)`` -> ``(B, *action_shape)``."""
        raise NotImplementedError

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Overlay data for the play window for ONE observation ``obs_shape``:
        ``{"q_values": (A,)}`` or ``{"probs": (A,)}``."""
        return {}

    def hyperparameters(self) -> dict[str, Any]:
        """The agent's config as a plain dict."""
        return dataclasses.asdict(self.config)

    def networks(self) -> dict[str, Any]:
        """The trained networks by name (``STATE.networks``; ``rl.models.Model`` each), e.g. for
        weight and gradient histograms."""
        return {name: getattr(self, name) for name in self.STATE.networks if getattr(self, name) is not None}

    # ---- checkpoints, built from STATE
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: host arrays (``np.ndarray``, copies) and JSON-able scalars.

        Keys: each name in ``STATE``, ``"tracker"`` and, once the envs run and can snapshot their worlds,
        ``"obs"`` and ``"env"``.
        """
        spec = self.STATE
        state: dict[str, Any] = {"tracker": self.tracker.state_dict()}
        for name, value in self._present(spec.networks + spec.targets + spec.optimizers):
            state[name] = {k: _host_copy(v) for k, v in value.state_dict().items()}
        for name, gen in self._present(spec.generators):
            state[name] = json.dumps(gen.get_state() if hasattr(gen, "get_state") else gen.bit_generator.state)
        for name in spec.counters:
            state[name] = getattr(self, name)
        for name, value in self._present(spec.arrays):
            value = value.data if isinstance(value, Tensor) else value
            state[name] = ({str(i): _host_copy(v) for i, v in enumerate(value)} if isinstance(value, list)
                           else _host_copy(value))
        for name, part in self._present(spec.parts):
            state[name] = part.state_dict()
        # Resuming mid-episode needs the worlds themselves; without the env's state a resume starts new episodes.
        if self.obs is not None and hasattr(self.envs, "get_state"):
            state["obs"] = _host_copy(self.obs)
            state["env"] = self.envs.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. A missing part raises ``KeyError``, a part that does not fit this
        agent (another shape, number of worlds) ``ValueError``, each naming the part."""
        spec = self.STATE
        missing = [name for name, _ in self._present(spec.networks + spec.targets + spec.optimizers
                                                     + spec.generators + spec.arrays + spec.parts)
                   if name not in state] + [name for name in ("tracker", *spec.counters) if name not in state]
        if missing:
            raise KeyError(f"the checkpoint lacks {', '.join(map(repr, missing))} (is it from another agent "
                           f"or configuration?)")
        part = ""
        try:
            for part, value in self._present(spec.networks + spec.targets + spec.optimizers + spec.parts):
                value.load_state_dict(state[part])
            for part, gen in self._present(spec.generators):
                saved = json.loads(state[part])
                if hasattr(gen, "set_state"):
                    gen.set_state(saved)
                else:
                    gen.bit_generator.state = saved
            for part in spec.counters:
                setattr(self, part, state[part])
            for part, value in self._present(spec.arrays):
                _load_arrays(part, value.data if isinstance(value, Tensor) else value, state[part])
            part = "tracker"
            self.tracker.load_state_dict(state["tracker"])
            part = "env"
            if "env" in state and hasattr(self.envs, "set_state"):
                self.envs.set_state(state["env"])
                self.obs = np.array(state["obs"])
            else:
                self.obs = None
                self.tracker.reset()  # start_envs() begins new episodes
        except (TypeError, AttributeError, IndexError) as exc:
            # A part with the right name but the wrong content (a string where arrays were saved, an unknown
            # env key, an empty array) trips whatever loads it: the checkpoint's fault, said as ValueError.
            raise ValueError(f"the checkpoint's {part!r} does not fit this agent ({type(exc).__name__}: {exc})") \
                from None

    def _present(self, names: tuple[str, ...]) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in names if getattr(self, name) is not None]


def _host_copy(value: Any) -> np.ndarray:
    # A snapshot, not the live array: a checkpoint must not change when training goes on.
    return np.array(backend.to_numpy(value))


def _load_arrays(name: str, target: Any, saved: Any) -> None:
    """Copy ``saved`` into ``target`` (an array or a list of arrays) in place, refusing other shapes."""
    if isinstance(target, list):
        if len(saved) != len(target):
            raise ValueError(f"{name!r} holds {len(saved)} arrays in the checkpoint, {len(target)} in this agent")
        for i, array in enumerate(target):
            _load_arrays(f"{name}[{i}]", array, saved[str(i)])
        return
    if tuple(np.shape(saved)) != tuple(target.shape):
        raise ValueError(f"{name!r} has shape {tuple(np.shape(saved))} in the checkpoint, {tuple(target.shape)} here")
    target[...] = backend.get_array_module(target).asarray(saved, dtype=target.dtype)


def get_agent_module(name: str) -> Any:
    """Import the module for agent ``name`` (``"ppo"`` -> ``agents.ppo``); unknown names list the valid ones."""
    try:
        path = AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; valid: {', '.join(sorted(AGENTS))}") from None
    return importlib.import_module(path)


def make_vec_env(experiment: ExperimentConfig, num_envs: int, **overrides: Any) -> Any:
    """The experiment's env as a native vector env of ``num_envs`` worlds (kwargs from its ``[env]`` table).

    ``overrides`` replace table entries (e.g. ``render_mode``). Not yet reset: call ``reset(seed=...)``.
    """
    import gymnasium as gym  # noqa: PLC0415 - agents import this module before they need an env

    import envs  # noqa: F401, PLC0415 - registers the ids

    kwargs = {**experiment.env, **overrides}
    return gym.make_vec(experiment.env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
