"""Episode bookkeeping for every loop over a vector env: the one place that counts ``env_steps``,
accumulates each world's return and length, sees episodes end and knows which steps are autoresets.

In the spirit of Gymnasium's ``RecordEpisodeStatistics`` and Stable-Baselines3's ``VecMonitor``, but
outside the env, so that its counters go into an agent's checkpoint with the rest of its state.

What a step is (the one definition every agent, log and budget uses). ``env_steps`` counts every
``step`` call of every world, Gymnasium's (and CleanRL's ``global_step``) definition: a vector env of
``N`` worlds adds ``N`` per call, *including* the calls that only restart a world. Our vector envs
autoreset on the *next* step (Gymnasium 1.x ``NEXT_STEP``): the call that ends an episode returns its
real last observation, and the following call resets that world (its action is ignored, reward 0,
terminated and truncated False). That autoreset step is a ``step`` call, so it counts, but it is not a
transition of the MDP: :meth:`EpisodeTracker.step` marks it in ``transitions`` so that agents neither
store nor train on it, and it adds nothing to the episode's return or length.

So ``experiment.total_steps`` is the same budget for every agent: that many world-steps of the env,
and ``env_steps`` is the x-axis of every metrics record and the clock of the checkpoint schedule.

The tracker also counts ``transitions``: the steps that were real transitions (``env_steps`` minus the
autoreset steps). Off-policy agents schedule their algorithm by it (DQN's "frames" and epsilon, DDPG's
update rounds), as the book and Stable-Baselines3 count their timesteps, whose envs have no reset steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl import _fused, backend

__all__ = ["EpisodeTracker", "FinishedEpisodes", "StepResult", "first_episodes"]


@dataclass
class FinishedEpisodes:
    """The episodes that ended on one step: ``worlds`` (K,) int64, and per world its ``returns`` (K,)
    float64, ``lengths`` (K,) int64 (transitions, autoreset step excluded), ``terminated`` (K,) bool (False:
    truncated) and ``sums`` (name -> (K,) float64, see :class:`EpisodeTracker`)."""

    worlds: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    sums: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.worlds)

    def __iter__(self) -> Iterator[FinishedEpisodes]:
        """Each episode on its own (a ``FinishedEpisodes`` of length 1), in world order."""
        return (self.select(slice(k, k + 1)) for k in range(len(self)))

    def select(self, mask: np.ndarray | slice) -> FinishedEpisodes:
        """The episodes where ``mask`` (K,) bool is True (or a slice of them)."""
        return FinishedEpisodes(self.worlds[mask], self.returns[mask], self.lengths[mask], self.terminated[mask],
                                {name: s[mask] for name, s in self.sums.items()})

    def records(self, env_steps: int, **extra: Any) -> list[dict[str, Any]]:
        """One metrics record per finished episode: ``env_steps``, ``episode_return``, ``episode_length``
        and ``extra`` (the same values for each record)."""
        return [{"env_steps": int(env_steps), "episode_return": float(r), "episode_length": int(n), **extra}
                for r, n in zip(self.returns, self.lengths)]


# The fields of a step on which no episode ended (read-only: shared by every such step).
_EMPTY_FLOAT = np.zeros(0)
_EMPTY_INT = np.zeros(0, dtype=np.int64)
_EMPTY_BOOL = np.zeros(0, dtype=bool)
for _empty in (_EMPTY_FLOAT, _EMPTY_INT, _EMPTY_BOOL):
    _empty.flags.writeable = False


_NO_WORLDS = np.zeros(0, dtype=np.intp)
_NO_WORLDS.flags.writeable = False


def _build_step(numba: Any) -> Any:
    """:meth:`EpisodeTracker.step`'s bookkeeping as one compiled pass (built once by :func:`rl._fused.compiled`)."""

    @numba.njit(cache=True, nogil=True)
    def step(reward, terminated, truncated, resetting, returns, lengths, transitions, done):  # pragma: no cover
        """For ``N`` worlds: ``transitions = ~resetting``; ``returns += reward`` (0.0 where not a transition,
        as the NumPy path adds) and ``lengths += 1`` on transitions; ``done = (terminated | truncated) &
        transitions``. Returns ``(autoreset steps, episodes ended)``."""
        skipped = 0
        ended = 0
        for i in range(returns.shape[0]):
            real = not resetting[i]
            transitions[i] = real
            returns[i] += np.float64(reward[i]) if real else 0.0
            if real:
                lengths[i] += 1
            else:
                skipped += 1
            d = (terminated[i] or truncated[i]) and real
            done[i] = d
            if d:
                ended += 1
        return skipped, ended

    return step


@dataclass
class StepResult:
    """What one ``step`` call meant: ``transitions`` (N,) bool, False for the worlds whose step was an
    autoreset (not a transition: neither stored nor trained on), and the episodes that ended."""

    transitions: np.ndarray
    finished: FinishedEpisodes


class EpisodeTracker:
    """Running return and length of each of ``num_envs`` worlds over a next-step-autoreset vector env.

    Call :meth:`reset` after ``env.reset`` and :meth:`step` after every ``env.step``. ``sums`` names
    extra per-step values to add up over each episode (DDPG's ``"speed"``), passed to :meth:`step` as
    keyword arguments and reported with the finished episodes.

    Attributes:
        env_steps: world-steps taken so far (see the module docstring): ``num_envs`` per ``step`` call.
        transitions: the real transitions among them (autoreset steps excluded).
        episodes: episodes finished so far.
        returns, lengths: (N,) the running episode of each world.
        resetting: (N,) bool, True for worlds whose episode ended on the last step (their next step
            is the env's autoreset).
    """

    def __init__(self, num_envs: int, sums: tuple[str, ...] = ()):
        self.num_envs = int(num_envs)
        self.sum_names = tuple(sums)
        self.env_steps = 0
        self.transitions = 0
        self.episodes = 0
        self.returns = np.zeros(self.num_envs)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.resetting = np.zeros(self.num_envs, dtype=bool)
        self.sums = {name: np.zeros(self.num_envs) for name in self.sum_names}

    def reset(self) -> None:
        """Every world starts a new episode (after ``env.reset``); the counters are kept."""
        self.returns[:] = 0.0
        self.lengths[:] = 0
        self.resetting[:] = False
        for values in self.sums.values():
            values[:] = 0.0

    def step(self, reward: Any, terminated: Any, truncated: Any, **values: Any) -> StepResult:
        """Account for one ``env.step`` call of every world.

        Args:
            reward, terminated, truncated: (N,) what the env returned (NumPy or device arrays).
            values: (N,) per-step values for the ``sums`` named at construction.
        Returns:
            The worlds whose step was a transition, and the episodes that ended on it.
        """
        # Called once per env step: plain statements, and no per-episode work on the (usual) steps where no
        # episode ends.
        reward = np.asarray(backend.to_numpy(reward))
        terminated = np.asarray(backend.to_numpy(terminated))
        truncated = np.asarray(backend.to_numpy(truncated))
        kernel = None if self.sum_names else _fused.compiled("episode_tracker_step", _build_step)
        if kernel is not None:
            # one pass over the worlds instead of ~10 NumPy calls on (N,) arrays (the same float64 sums)
            transitions = np.empty(self.num_envs, dtype=bool)
            done = np.empty(self.num_envs, dtype=bool)
            skipped, ended = kernel(reward, terminated, truncated, self.resetting, self.returns, self.lengths,
                                    transitions, done)
            self.env_steps += self.num_envs
            self.transitions += self.num_envs - skipped
            self.resetting = done
            worlds = np.flatnonzero(done) if ended else _NO_WORLDS
        else:
            transitions = ~self.resetting
            self.env_steps += self.num_envs
            self.transitions += self.num_envs - int(np.count_nonzero(self.resetting))
            self.returns += np.where(transitions, reward, 0.0)
            self.lengths += transitions
            for name in self.sum_names:
                self.sums[name] += np.where(transitions, np.asarray(backend.to_numpy(values[name]), dtype=np.float64),
                                            0.0)
            # An autoreset step reports neither flag, so ``& transitions`` only guards envs that would.
            done = (terminated | truncated) & transitions
            self.resetting = done
            worlds = np.flatnonzero(done)
        if not len(worlds):
            return StepResult(transitions=transitions, finished=FinishedEpisodes(
                worlds, _EMPTY_FLOAT, _EMPTY_INT, _EMPTY_BOOL, {name: _EMPTY_FLOAT for name in self.sum_names}))
        finished = FinishedEpisodes(worlds=worlds, returns=self.returns[worlds].copy(),
                                    lengths=self.lengths[worlds].copy(),
                                    terminated=terminated[worlds].astype(bool),
                                    sums={name: s[worlds].copy() for name, s in self.sums.items()})
        self.episodes += len(worlds)
        self.returns[worlds] = 0.0
        self.lengths[worlds] = 0
        for values_ in self.sums.values():
            values_[worlds] = 0.0
        return StepResult(transitions=transitions, finished=finished)

    def state_dict(self) -> dict[str, Any]:
        """Counters and running episodes (copies), for an exact resume."""
        return {"env_steps": self.env_steps, "transitions": self.transitions, "episodes": self.episodes,
                "returns": self.returns.copy(),
                "lengths": self.lengths.copy(), "resetting": self.resetting.copy(),
                "sums": {name: s.copy() for name, s in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; arrays for another number of worlds are refused by name."""
        for key in ("returns", "lengths", "resetting"):
            if np.shape(state[key]) != (self.num_envs,):
                raise ValueError(f"episode tracker {key!r} has shape {np.shape(state[key])}, this agent steps "
                                 f"{self.num_envs} worlds")
        self.env_steps = int(state["env_steps"])
        self.transitions = int(state["transitions"])
        self.episodes = int(state["episodes"])
        self.returns = np.array(state["returns"], dtype=np.float64)
        self.lengths = np.array(state["lengths"], dtype=np.int64)
        self.resetting = np.array(state["resetting"], dtype=bool)
        saved_sums = state.get("sums", {})
        self.sums = {name: np.array(saved_sums.get(name, np.zeros(self.num_envs)), dtype=np.float64)
                     for name in self.sum_names}


@dataclass
class FirstEpisodes:
    """Each world's first episode from :func:`first_episodes`: ``returns`` (N,), ``lengths`` (N,),
    ``terminated`` (N,) bool and ``finished`` (N,) bool (False: still running after ``max_steps``, its
    return and length so far)."""

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    finished: np.ndarray


def first_episodes(env: Any, policy: Callable[[np.ndarray], np.ndarray], seed: int, max_steps: int) -> FirstEpisodes:
    """Play one episode in every world of a vector env with ``policy(obs (N, ...)) -> actions (N, ...)``.

    Used by evaluation (``agents.runner.evaluate``, ``agents.qtable.crash_free_rate``): the env is reset
    with ``seed``, stepped until every world finished its first episode or ``max_steps`` calls passed,
    and the later episodes of early finishers are ignored.
    """
    tracker = EpisodeTracker(env.num_envs)
    obs, _ = env.reset(seed=seed)
    tracker.reset()
    n = env.num_envs
    out = FirstEpisodes(np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        ended = tracker.step(reward, terminated, truncated).finished
        first = ended.select(~out.finished[ended.worlds])
        out.returns[first.worlds] = first.returns
        out.lengths[first.worlds] = first.lengths
        out.terminated[first.worlds] = first.terminated
        out.finished[first.worlds] = True
        if out.finished.all():
            break
    running = ~out.finished
    out.returns[running] = tracker.returns[running]
    out.lengths[running] = tracker.lengths[running]
    return out
