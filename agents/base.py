"""What every agent shares: the experiment table, the hooks a run hands to an agent, the Agent
interface, and the registry that maps a config's ``agent = "ppo"`` to its module.

An agent module (``agents/ppo.py``) defines:

* ``Config``: a dataclass of its hyperparameters, each field commented (CleanRL's layout); it is the
  schema of the ``[agent]`` table in an experiment file.
* ``Agent(Agent base)``: ``learn(total_steps, hooks)`` runs the algorithm top to bottom; ``act``
  maps a batch of observations to actions; ``state_dict``/``load_state_dict`` capture everything a
  resumed run needs (networks, optimizer state, counters, RNG and env state).

The runner (:mod:`agents.runner`, driven by ``scripts/train.py``) owns the run directory, the progress
bar, Ctrl-C, checkpoints and evaluation; agents only call ``hooks``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["AGENTS", "Agent", "ExperimentConfig", "Hooks", "get_agent_module", "make_vec_env"]

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
    total_steps: int = 100_000  # environment steps (summed over vector envs) to train for
    device: str = "cpu"  # "cpu", "gpu" or "auto" (see rl.backend)
    eval_episodes: int = 20  # episodes of the final deterministic evaluation
    checkpoint_every_steps: int = 10_000  # how often "latest" is saved (also on Ctrl-C and at the end)
    target_return: float | None = None  # stop early once the logged mean return reaches this
    env: dict = field(default_factory=dict)  # filled from the [env] table

    def __post_init__(self) -> None:
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


class Hooks(Protocol):
    """What a run offers an agent while it learns (implemented by the runner; tests use a fake)."""

    def log(self, record: dict[str, Any]) -> None:
        """Record one metrics event. Must contain ``env_steps``; episode ends add
        ``episode_return`` and ``episode_length``; updates add losses, ``sps``, ``epsilon`` or
        ``entropy``."""

    def checkpoint_due(self, env_steps: int) -> bool:
        """True when the agent should call :meth:`save` at its next safe point."""

    def save(self, agent: Agent, tag: str = "latest") -> None:
        """Write a checkpoint of ``agent`` atomically (tags: ``latest``, ``best``)."""

    @property
    def stop_requested(self) -> bool:
        """True after Ctrl-C or once ``target_return`` is reached: save and return at a safe point."""


class Agent:
    """Base class: the shared bookkeeping of every agent.

    Args:
        config: the agent's ``Config`` dataclass instance.
        experiment: the ``[experiment]`` table (env id and kwargs, seed, budget).
    """

    Config: type = object

    def __init__(self, config: Any, experiment: ExperimentConfig):
        self.config = config
        self.experiment = experiment
        self.env_steps = 0  # environment steps taken so far (the x-axis of every curve)

    # ---- what each agent implements
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        """Train until ``env_steps >= total_steps`` or ``hooks.stop_requested``."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations ``(B, *obs_shape)`` -> ``(B, *action_shape)``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: arrays (``np.ndarray``) and JSON-able scalars."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        raise NotImplementedError

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Overlay data for the play window for ONE observation ``obs_shape``:
        ``{"q_values": (A,)}`` or ``{"probs": (A,)}``."""
        return {}

    def hyperparameters(self) -> dict[str, Any]:
        """The agent's config as a plain dict."""
        return dataclasses.asdict(self.config)


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
