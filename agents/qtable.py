"""Tabular Q-learning, as MetaCar's level0 demo trains it (``demo/webapp/public/js/q_table/``).

The demo's car sees only 4 lidar cells just ahead of its bumper (lidar ``{pts: 2, width: 1,
height: 1, pos: 1}``), each -1 (road), 0 (ground) or 1 (a car), so the whole state space is
``3**4 = 81`` situations and a table of Q-values, one row per situation and one column per
action (UP, LEFT, RIGHT), is enough. The algorithm, top to bottom as :meth:`Agent.learn` runs it:

1. **state**: the lidar cells ``c_i`` become one integer ``sum((c_i + 1) * 3**i)`` (the demo keys a
   JS object by the string ``"-1,-1,-1,-1"``; a base-3 number is the same partition of states).
2. **act**: epsilon-greedy over the 3 actions, ties to the first maximum. Epsilon starts at 1.0 and
   is multiplied by 0.99 every 10 episodes, episode 0 included, never below 0.05.
3. **update**: ``Q[s, a] += alpha * (r + gamma * Q[s', argmax Q[s']] - Q[s, a])`` with the demo's
   alpha 0.01 and gamma 0.99 (``(1 - terminated)`` cuts the bootstrap when the env ends an episode
   on a crash; the demo's never does).

The demo runs 2000 episodes of 800 steps one after another, moving the car to a random road tile
(``shuffle({cars: false})``) between them; ``configs/metacar_level0_qtable.toml`` sets the env up the
same way. Here ``num_envs`` worlds play their episodes side by side and the table is updated with
one batched scatter-add per step (simultaneous updates of the same entry add up, as consecutive
ones nearly would with a step size of 0.01); with ``num_envs = 1`` it is the demo's loop exactly.
Epsilon follows the number of *finished* episodes, so the schedule is the demo's whatever
``num_envs`` is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent as BaseAgent
from agents.base import ExperimentConfig, Hooks, StateSpec, check_hyperparameters, make_vec_env
from agents.episodes import first_episodes
from rl import random as rl_random
from rl.schedules import ExponentialDecay

__all__ = ["Agent", "Config", "crash_free_rate", "q_update", "state_index"]


@dataclass
class Config:
    """Tabular Q-learning hyperparameters: the ``[agent]`` table (defaults: MetaCar's q_table demo)."""

    num_actions: int = 3  # the first actions of the env's Discrete space (MetaCar: UP, LEFT, RIGHT)
    alpha: float = 0.01  # learning rate of the table update
    gamma: float = 0.99  # discount
    epsilon_start: float = 1.0  # exploration before the first decay
    epsilon_decay: float = 0.99  # multiplied into epsilon every `epsilon_decay_every` episodes
    epsilon_decay_every: int = 10  # episodes between decays (the first decay is at episode 0)
    epsilon_min: float = 0.05  # floor (the demo's 2000 episodes stop at ~0.134, above it)
    num_envs: int = 1  # worlds playing side by side (1 = the demo's sequential loop)
    log_every_steps: int = 10_000  # env steps between epsilon records (the runner adds sps, time_s)

    def __post_init__(self) -> None:
        check_hyperparameters(self, worlds=("num_envs",))
        if self.num_actions < 1 or self.num_envs < 1 or self.epsilon_decay_every < 1 or self.log_every_steps < 1:
            raise ValueError("num_actions, num_envs, epsilon_decay_every and log_every_steps must be >= 1")
        for name in ("alpha", "gamma", "epsilon_start", "epsilon_decay", "epsilon_min"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


def lidar_cells(obs_shape: tuple[int, ...]) -> int:
    """How many lidar cells an observation holds: MetaCar's ``"linear"`` appends the speed, ``"grid"`` does not."""
    return obs_shape[0] - 1 if len(obs_shape) == 1 else math.prod(obs_shape)


def state_index(obs: np.ndarray, cells: int) -> np.ndarray:
    """Table rows (B,) int64 for observations (B, ...): the first ``cells`` values (each -1, 0 or 1) in base 3."""
    flat = np.asarray(obs).reshape(len(obs), -1)[:, :cells]
    digits = np.rint(flat).astype(np.int64) + 1
    if digits.min(initial=0) < 0 or digits.max(initial=2) > 2:
        raise ValueError("tabular Q-learning needs lidar cells in {-1, 0, 1}; got values outside")
    return digits @ (3 ** np.arange(cells, dtype=np.int64))


def q_update(table: np.ndarray, s: np.ndarray, a: np.ndarray, r: np.ndarray, s_next: np.ndarray,
             terminated: np.ndarray, alpha: float, gamma: float) -> None:
    """In place: ``table[s, a] += alpha * (r + gamma * (1 - terminated) * table[s', argmax table[s']] - table[s, a])``.

    ``table`` (S, A); the rest (B,) arrays of one batch of transitions. The TD errors are all taken
    from the table before the batch, and repeated ``(s, a)`` pairs add their updates.
    """
    bootstrap = table[s_next, table[s_next].argmax(axis=1)] * (1.0 - terminated)
    td_error = r + gamma * bootstrap - table[s, a]
    np.add.at(table, (s, a), alpha * td_error)


class Agent(BaseAgent):
    """Tabular Q-learning on a small discrete observation (``learn``, ``act``, ``explain``, ``state_dict``).

    Args:
        config: the ``[agent]`` table as a :class:`Config`.
        experiment: env id and kwargs, seed, step budget.
    """

    Config = Config
    STATE = StateSpec(generators=("rng",), arrays=("q_table",))

    def __init__(self, config: Config, experiment: ExperimentConfig):
        super().__init__(config, experiment)
        self.make_envs(config.num_envs)
        n_env_actions = getattr(self.envs.single_action_space, "n", None)
        if n_env_actions is None or config.num_actions > n_env_actions:
            raise ValueError(f"num_actions = {config.num_actions} needs a Discrete action space with at least that "
                             f"many actions; {experiment.env_id} has {self.envs.single_action_space}")
        if experiment.env.get("observation") == "linear_and_previous":
            raise ValueError("tabular Q-learning indexes one lidar picture; give [env] observation = \"linear\" "
                             "or \"grid\", not \"linear_and_previous\"")
        self.cells = lidar_cells(tuple(self.envs.single_observation_space.shape))
        if self.cells > 10:
            raise ValueError(f"{self.cells} observation cells make 3**{self.cells} table rows; tabular Q-learning "
                             "needs a small lidar (the demo's {pts: 2} gives 4 cells)")
        self.q_table = np.zeros((3**self.cells, config.num_actions))  # Q values start at 0, as the demo's
        self.rng = rl_random.Generator(experiment.seed).numpy  # host stream: exploration draws
        # The demo's schedule by finished episodes, start * decay**(episodes // every + 1), floored: a staircase
        # read ``every`` episodes ahead, since the demo decays at episode 0 already.
        self._epsilon = ExponentialDecay(config.epsilon_start, config.epsilon_decay_every, config.epsilon_decay,
                                         staircase=True, minimum=config.epsilon_min)

    @property
    def epsilon(self) -> float:
        """Exploration rate now, after ``tracker.episodes`` finished episodes."""
        return self.epsilon_after(self.tracker.episodes)

    def epsilon_after(self, episodes: int) -> float:
        """The demo's exploration rate once ``episodes`` episodes finished."""
        return self._epsilon(episodes + self.config.epsilon_decay_every)

    # -------------------------------------------------------------------------------- acting
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Greedy actions (B,) (ties to the first maximum); ``deterministic=False`` is epsilon-greedy."""
        greedy = self.q_table[state_index(obs, self.cells)].argmax(axis=1)
        if deterministic:
            return greedy
        return self._explore(greedy, self.epsilon)

    def _explore(self, greedy: np.ndarray, epsilon: float) -> np.ndarray:
        explore = self.rng.random(len(greedy)) < epsilon
        random_actions = self.rng.integers(0, self.config.num_actions, size=len(greedy))
        return np.where(explore, random_actions, greedy)

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``{"q_values": (A,)}``: the table row of one observation."""
        return {"q_values": self.q_table[state_index(np.asarray(obs)[None], self.cells)[0]].copy()}

    # -------------------------------------------------------------------------------- learning
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        """Play epsilon-greedy and update the table until ``env_steps >= total_steps`` or a stop is requested."""
        cfg = self.config
        obs = self.start_envs()
        state = state_index(obs, self.cells)
        next_log = (self.env_steps // cfg.log_every_steps + 1) * cfg.log_every_steps
        while self.env_steps < total_steps and not hooks.stop_requested:
            # 1. act epsilon-greedily on every world
            actions = self._explore(self.q_table[state].argmax(axis=1), self.epsilon)
            next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
            next_state = state_index(next_obs, self.cells)
            step = self.tracker.step(reward, terminated, truncated)

            # 2. Q-learning update for the real transitions (not the autoreset steps)
            live = step.transitions
            q_update(self.q_table, state[live], actions[live], reward[live], next_state[live], terminated[live],
                     cfg.alpha, cfg.gamma)

            # 3. logs and checkpoints; epsilon is read after each finished episode, as the demo decays it
            before = self.tracker.episodes - len(step.finished)
            for k, record in enumerate(step.finished.records(self.env_steps), start=1):
                hooks.log({**record, "epsilon": self.epsilon_after(before + k)})
            obs, state = next_obs, next_state
            self.obs = obs
            if self.env_steps >= next_log:
                hooks.log({"env_steps": self.env_steps, "epsilon": self.epsilon,
                           "states_visited": int((self.q_table != 0).any(axis=1).sum())})
                next_log = (self.env_steps // cfg.log_every_steps + 1) * cfg.log_every_steps
            if hooks.checkpoint_due(self.env_steps):
                hooks.save(self)


def crash_free_rate(agent: Agent, episodes: int = 100, seed: int = 1_000_000, max_steps: int = 800) -> dict[str, Any]:
    """Greedy episodes from shuffled starts that end on the first crash: how many last ``max_steps`` steps.

    Plays ``episodes`` worlds of the agent's env (its ``[env]`` table, with ``terminate_on_crash=True``,
    ``max_steps`` and ``shuffle_on_reset="agent"``) side by side. Returns ``{"episodes", "crash_free",
    "rate", "mean_length", "mean_return"}``.
    """
    env = make_vec_env(agent.experiment, episodes, terminate_on_crash=True, max_steps=max_steps,
                       shuffle_on_reset="agent")
    try:
        played = first_episodes(env, agent.act, seed=seed, max_steps=max_steps)
    finally:
        env.close()
    ok = int((~(played.finished & played.terminated)).sum())  # a crash is a terminated episode
    return {"episodes": episodes, "crash_free": ok, "rate": ok / episodes, "mean_length": float(played.lengths.mean()),
            "mean_return": float(played.returns.mean())}
