"""Replay memory for off-policy agents (DQN): a circular buffer of transitions on the active device.

Every field is one array preallocated at full capacity on the backend's device (NumPy or CuPy), so
adding a batch of transitions is a couple of slice writes and sampling is one gather per field, with
no Python objects per transition. When the buffer is full the oldest transitions are overwritten.

A transition is ``(obs, action, reward, next_obs, terminated)``. ``terminated`` (the episode ended
in a terminal state, e.g. the pole fell or the snake died) is what cuts the bootstrap in the
Q-learning target; a time-limit truncation is *not* terminal, so the caller stores ``False`` there
and the target still bootstraps from ``next_obs`` (the true last observation, not the reset one).

Sampling is uniform, with or without replacement within a batch (the book's snake-dqn shuffles the
buffer and takes the first ``batch_size``, i.e. without replacement), drawn from the host NumPy
stream of a seeded :class:`rl.random.Generator` (host-side index draws are cheap and the stream's
state can be saved exactly, on either backend). :meth:`state_dict` holds the stored transitions and
that stream's state, so a resumed run samples exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl import backend
from rl.experiment import check_memory
from rl.random import Generator

__all__ = ["ReplayBatch", "ReplayBuffer"]


@dataclass
class ReplayBatch:
    """A sampled batch on the active device: ``obs``/``next_obs`` (B, *obs_shape), ``action`` int64 (B,),
    ``reward`` float32 (B,), ``terminated`` float32 (B,) (1.0 where the episode ended in a terminal state)."""

    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: Any


class ReplayBuffer:
    """A circular buffer of ``capacity`` transitions, preallocated on the active device.

    Args:
        capacity: how many transitions are kept; older ones are overwritten.
        obs_shape: shape of one observation, e.g. ``(4,)`` for CartPole or ``(9, 9, 2)`` for Snake.
        obs_dtype: dtype observations are stored in (the observation space's dtype).
        rng: the seeded generator for sampling; a new ``Generator(0)`` when omitted.
        action_shape: shape of one action: ``()`` for a discrete action (DQN), ``(D,)`` for a
            continuous one (DDPG).
        action_dtype: int64 for discrete actions, float32 for continuous ones.
    """

    _FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 rng: Generator | None = None, action_shape: tuple[int, ...] = (), action_dtype: Any = np.int64):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"replay capacity must be a positive int, got {capacity!r}")
        xp = backend.current().xp
        self.xp = xp
        self.capacity = capacity
        self.obs_shape = tuple(int(n) for n in obs_shape)
        per_transition = (2 * math.prod(self.obs_shape) * np.dtype(obs_dtype).itemsize
                          + math.prod(action_shape) * np.dtype(action_dtype).itemsize + 2 * 4)
        check_memory("agent.buffer_size", capacity * per_transition, f"a replay buffer of {capacity:,} transitions")
        self.rng = rng if rng is not None else Generator(0)
        self.obs = xp.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = xp.zeros((capacity, *self.obs_shape), dtype=obs_dtype)
        self.action = xp.zeros((capacity, *action_shape), dtype=action_dtype)
        self.reward = xp.zeros(capacity, dtype=xp.float32)
        self.terminated = xp.zeros(capacity, dtype=xp.float32)
        self.pos = 0  # where the next transition is written
        self.size = 0  # how many slots hold a transition (== capacity once it has wrapped)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any) -> None:
        """Store a batch of ``B`` transitions (host or device arrays).

        Args:
            obs: (B, *obs_shape) observations the actions were taken in.
            action: (B, *action_shape) actions.
            reward: (B,) rewards received.
            next_obs: (B, *obs_shape) observations after the step (the final one at an episode end).
            terminated: (B,) bool, True where the episode ended in a terminal state (not a time limit).
        """
        to_dev = backend.to_device
        values = (to_dev(obs), to_dev(action), to_dev(reward), to_dev(next_obs), to_dev(terminated))
        n = int(values[0].shape[0])
        if n == 0:
            return
        if values[0].shape[1:] != self.obs_shape or values[3].shape[1:] != self.obs_shape:
            raise ValueError(f"replay: observations must have shape (B, {self.obs_shape}), got "
                             f"{tuple(values[0].shape)} and {tuple(values[3].shape)}")
        if n > self.capacity:  # only the newest `capacity` survive anyway
            values = tuple(v[n - self.capacity:] for v in values)
            n = self.capacity
        # At most two contiguous slices: up to the end of the arrays, then from the start (wraparound).
        first = min(n, self.capacity - self.pos)
        for name, v in zip(self._FIELDS, values):
            store = getattr(self, name)
            store[self.pos:self.pos + first] = v[:first]
            if first < n:
                store[:n - first] = v[first:]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int, replace: bool = True) -> np.ndarray:
        """Host int64 (batch_size,) slot indices drawn uniformly from the filled part of the buffer."""
        if self.size == 0:
            raise ValueError("replay: cannot sample from an empty buffer")
        rng = self.rng.numpy
        if replace:
            return rng.integers(0, self.size, size=batch_size)
        if batch_size > self.size:
            raise ValueError(f"replay: cannot draw {batch_size} distinct transitions from {self.size}")
        return rng.choice(self.size, size=batch_size, replace=False)

    def sample(self, batch_size: int, replace: bool = True) -> ReplayBatch:
        """A uniform random batch of ``batch_size`` transitions (arrays on the active device)."""
        idx = backend.to_device(self.sample_indices(batch_size, replace))
        return ReplayBatch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                           self.terminated[idx])

    # ------------------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (host arrays, filled slots only), write position and sampling stream."""
        to_np = backend.to_numpy
        state: dict[str, Any] = {name: np.array(to_np(getattr(self, name)[:self.size])) for name in self._FIELDS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity,
                     rng_state=json.dumps(self.rng.numpy.bit_generator.state))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s contents; a buffer of another capacity or shape is refused by name."""
        missing = [k for k in (*self._FIELDS, "pos", "size", "capacity", "rng_state") if k not in state]
        if missing:
            raise ValueError(f"replay state is missing {', '.join(missing)}")
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay state has capacity {int(state['capacity'])}, this buffer {self.capacity}")
        size = int(state["size"])
        for name in self._FIELDS:
            values = np.asarray(state[name])
            store = getattr(self, name)
            if values.shape != (size, *store.shape[1:]):
                raise ValueError(f"replay state field {name!r} has shape {values.shape}, "
                                 f"expected {(size, *store.shape[1:])}")
            store[:size] = backend.to_device(values.astype(store.dtype, copy=False))
        self.size, self.pos = size, int(state["pos"])
        self.rng.numpy.bit_generator.state = json.loads(str(state["rng_state"]))
