"""On-policy rollout storage and the return/advantage estimators that read it.

A :class:`RolloutBuffer` holds ``num_steps`` transitions of ``num_envs`` worlds in arrays made
once, so collecting a rollout writes rows and never allocates. What the policy produces
(observations as fed to it, actions, log-probabilities, values) lives on the active device; what the
env hands back (rewards, episode ends, the valid mask) stays in host arrays until the rollout is
complete, so a GPU rollout makes one copy to the device per step (the observation) and one back (the
actions), and the estimators move the env's fields over once per rollout.

Autoreset. Our vector envs use Gymnasium 1.x ``NEXT_STEP`` autoreset: the step that ends an
episode returns the *real* last observation (so a truncated episode can be bootstrapped from it),
and the following ``step`` call resets that world instead of moving it (its action is ignored,
reward 0). That reset step is not a transition of the MDP, so the buffer marks it ``valid = False``
and the estimators give it no advantage; losses skip it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rl import backend
from rl.experiment import check_memory

__all__ = ["RolloutBuffer", "discounted_returns", "gae"]


class RolloutBuffer:
    """Preallocated ``(num_steps, num_envs, ...)`` arrays for one rollout.

    Device fields: ``obs (T, N, *obs_shape)`` float32, ``actions (T, N, *action_shape)``,
    ``logprobs`` and ``values`` ``(T, N)`` float32, and ``next_values (N,)``: the value of the
    observation after the last step, for bootstrapping. Host (NumPy) fields, written from the env's
    results: ``rewards``, ``terminated``, ``dones`` (terminated or truncated) ``(T, N)`` float32 and
    ``valid (T, N)`` bool.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 action_dtype: Any):
        xp = backend.current().xp
        t, n = num_steps, num_envs
        action_bytes = math.prod(action_shape) * np.dtype(action_dtype).itemsize
        per_sample = 4 * math.prod(obs_shape) + action_bytes + 4 * 5 + 1  # the fields below, per step and world
        check_memory("agent.num_steps x agent.num_envs", t * n * per_sample,
                     f"a rollout of {t:,} steps x {n:,} worlds")
        self.num_steps, self.num_envs = t, n
        self.obs = xp.zeros((t, n, *obs_shape), dtype=xp.float32)
        self.actions = xp.zeros((t, n, *action_shape), dtype=action_dtype)
        self.logprobs = xp.zeros((t, n), dtype=xp.float32)
        self.values = xp.zeros((t, n), dtype=xp.float32)
        self.next_values = xp.zeros((n,), dtype=xp.float32)
        self.rewards = np.zeros((t, n), dtype=np.float32)
        self.terminated = np.zeros((t, n), dtype=np.float32)
        self.dones = np.zeros((t, n), dtype=np.float32)
        self.valid = np.zeros((t, n), dtype=bool)

    def flat(self, name: str) -> Any:
        """Field ``name`` with the step and env axes merged: ``(T * N, ...)``."""
        a = getattr(self, name)
        return a.reshape(self.num_steps * self.num_envs, *a.shape[2:])


def gae(buf: RolloutBuffer, gamma: float, lam: float) -> tuple[Any, Any]:
    """Generalized advantage estimation (Schulman et al. 2016) over a filled buffer.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)`` and
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``. A truncated episode is bootstrapped
    from the value of its real last observation (the next row's value, see the module docstring);
    a terminated one is not. Reset steps (``valid`` False) get ``A = 0``.

    Returns:
        ``(advantages, returns)``, both ``(T, N)`` float32, with ``returns = advantages + values``
        (the value targets).
    """
    xp = backend.get_array_module(buf.values)
    # The env's fields cross to the values' device here, once per rollout (no copy on the CPU).
    rewards, terminated, dones = (backend.to_device(a) for a in (buf.rewards, buf.terminated, buf.dones))
    valid = backend.to_device(buf.valid.astype(np.float32))
    advantages = xp.zeros_like(buf.values)
    next_adv = xp.zeros_like(buf.next_values)
    for t in reversed(range(buf.num_steps)):
        next_value = buf.values[t + 1] if t + 1 < buf.num_steps else buf.next_values
        delta = rewards[t] + gamma * next_value * (1.0 - terminated[t]) - buf.values[t]
        next_adv = valid[t] * (delta + gamma * lam * (1.0 - dones[t]) * next_adv)
        advantages[t] = next_adv
    return advantages, advantages + buf.values


def discounted_returns(rewards: Any, alive: Any, gamma: float) -> Any:
    """Monte-Carlo returns ``G_t = r_t + gamma * G_{t+1}`` of whole episodes, one per column.

    Args:
        rewards: ``(T, N)``: world ``n``'s reward at its step ``t``.
        alive: ``(T, N)`` bool: True while world ``n``'s episode is running (its steps
            ``0..len_n-1``); later entries are ignored and get ``G = 0``.
        gamma: discount factor.
    Returns:
        ``(T, N)`` float32 returns (the book's ``discountRewards`` applied to each game).
    """
    xp = backend.get_array_module(rewards)
    returns = xp.zeros(rewards.shape, dtype=xp.float32)
    mask = alive.astype(xp.float32)
    running = xp.zeros(rewards.shape[1:], dtype=xp.float32)
    for t in reversed(range(rewards.shape[0])):
        running = mask[t] * (rewards[t] + gamma * running)
        returns[t] = running
    return returns
