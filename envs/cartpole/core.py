"""Cart-pole physics for N worlds at once, as array operations (NumPy or CuPy).

The dynamics are the Barto-Sutton-Anderson cart-pole with explicit Euler steps, written so that
the arithmetic (operation order included) is exactly Gymnasium's ``CartPole-v1``: the same start
state and actions give bit-identical trajectories. :func:`cartpole_dynamics` is the one physics
function; the batched core calls it on arrays, the single env on Python floats (its fast path).

Two variants differ only in the start state and the reward:

========  ==========================================  =====================================
variant   start state, uniform per component          reward
========  ==========================================  =====================================
gym       all four in [-0.05, 0.05)                   +1 every step, the failing one too
book      x, x_dot in [-0.5, 0.5); theta in [-6, 6)   +1 every step that does not end the
          degrees; theta_dot in [-0.25, 0.25)         game, 0 for the failing step
========  ==========================================  =====================================

The book variant is tfjs-examples' ``cart-pole/cart_pole.js`` (the TensorFlow.js book's REINFORCE
example); its physics constants are the same as Gymnasium's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs._common import WorldRNG
from rl import _fused

GRAVITY = 9.8
MASS_CART_KG = 1.0
MASS_POLE_KG = 0.1
TOTAL_MASS_KG = MASS_POLE_KG + MASS_CART_KG
HALF_POLE_LENGTH_M = 0.5
POLE_MASS_LENGTH = MASS_POLE_KG * HALF_POLE_LENGTH_M
FORCE_N = 10.0
TAU_S = 0.02  # seconds per step
X_THRESHOLD_M = 2.4
THETA_THRESHOLD_RAD = 12 * 2 * math.pi / 360

# Half-widths of the uniform start distribution, per state component (x, x_dot, theta, theta_dot).
START_HALF_WIDTH = {
    "gym": (0.05, 0.05, 0.05, 0.05),
    "book": (0.5, 0.5, 6 / 360 * 2 * math.pi, 0.25),
}
VARIANTS = tuple(START_HALF_WIDTH)


def check_variant(variant: str) -> str:
    """Return ``variant`` or raise ``ValueError`` listing the valid ones."""
    if not isinstance(variant, str) or variant not in START_HALF_WIDTH:  # a list from a config is unhashable
        raise ValueError(f"unknown cart-pole variant {variant!r}; expected one of {list(VARIANTS)}")
    return variant


def cartpole_dynamics(x: Any, x_dot: Any, theta: Any, theta_dot: Any, force: Any, cos: Any, sin: Any):
    """One Euler step of the cart-pole; every argument is a float or an array of one shape (N,).

    ``force`` is +-FORCE_N; ``cos``/``sin`` are the functions to use (``math.*`` for floats,
    ``xp.*`` for arrays). Returns the new ``(x, x_dot, theta, theta_dot)``. The expression order
    follows Gymnasium's so that results are bit-identical, not merely close.
    """
    costheta = cos(theta)
    sintheta = sin(theta)
    temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS_KG
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        HALF_POLE_LENGTH_M * (4.0 / 3.0 - MASS_POLE_KG * (costheta * costheta) / TOTAL_MASS_KG)
    )
    xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS_KG
    # Explicit Euler: positions advance with the old velocities.
    return x + TAU_S * x_dot, x_dot + TAU_S * xacc, theta + TAU_S * theta_dot, theta_dot + TAU_S * thetaacc


def start_bounds(variant: str, options: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Low and high (each float64 (4,)) of the start distribution; ``options`` may override with
    scalars ``{"low": l, "high": h}`` (applied to all four components, as Gymnasium's reset does;
    one left out keeps the variant's own bound)."""
    half = np.asarray(START_HALF_WIDTH[variant])
    low, high = -half, half.copy()
    if options:
        unknown = set(options) - {"low", "high"}
        if unknown:
            raise ValueError(f"unknown cart-pole reset option(s) {sorted(unknown)}; expected 'low' and/or 'high'")
        # A bound left out keeps the variant's own (for "gym" that is Gymnasium's -0.05 / 0.05).
        if "low" in options:
            low = np.full(4, float(options["low"]))
        if "high" in options:
            high = np.full(4, float(options["high"]))
        if np.any(low > high):
            raise ValueError(f"reset option low={low[0]} is above high={high[0]}")
    return low, high


def sample_start_states(rng: WorldRNG, worlds: Any, low: Any, high: Any) -> Any:
    """Start states, float64 (4, len(worlds)), drawn from the listed worlds' streams (4 draws each)."""
    xp = rng.xp
    u = rng.uniform(worlds, 4)  # (4, n)
    u *= xp.asarray(high - low)[:, None]
    u += xp.asarray(low)[:, None]
    return u


def _build_step(numba: Any) -> Any:
    """The compiled batched step (built once by :func:`rl._fused.compiled`)."""

    @numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
    def step(state, actions, forces, terminal_reward, reward, terminated):  # pragma: no cover - compiled
        """:meth:`CartPoleCore.step` for ``state`` float64 ``(4, N)`` in place, one pass over the worlds.

        The physics is :func:`cartpole_dynamics`' float64 arithmetic written out, operation for operation in
        the same order (no fast-math, so no reassociation or fused multiply-add): the NumPy path's results
        bit for bit (``tests/envs/test_cartpole.py`` compares both over many steps and resets).
        Writes ``reward`` float32 ``(N,)`` and ``terminated`` bool ``(N,)``.
        """
        for i in range(state.shape[1]):
            x, x_dot, theta, theta_dot = state[0, i], state[1, i], state[2, i], state[3, i]
            force = forces[actions[i]]
            costheta = math.cos(theta)
            sintheta = math.sin(theta)
            temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS_KG
            thetaacc = (GRAVITY * sintheta - costheta * temp) / (
                HALF_POLE_LENGTH_M * (4.0 / 3.0 - MASS_POLE_KG * (costheta * costheta) / TOTAL_MASS_KG)
            )
            xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS_KG
            x = x + TAU_S * x_dot
            theta = theta + TAU_S * theta_dot
            state[0, i] = x
            state[1, i] = x_dot + TAU_S * xacc
            state[2, i] = theta
            state[3, i] = theta_dot + TAU_S * thetaacc
            done = abs(x) > X_THRESHOLD_M or abs(theta) > THETA_THRESHOLD_RAD
            terminated[i] = done
            reward[i] = np.float32(0.0) if done and terminal_reward == 0.0 else np.float32(1.0)

    return step


class CartPoleCore:
    """The state of ``num_worlds`` cart-poles and one ``step`` that advances all of them.

    ``state`` is float64 (4, N): rows x [m], x_dot [m/s], theta [rad], theta_dot [rad/s].
    """

    # The per-world arrays and their world axis. ``step`` and ``reset_worlds`` treat each world on its own (its
    # own random stream, elementwise physics), so the snapshots of several cores laid side by side along these
    # axes are one core whose worlds step exactly as in their own (agents.ppo_seeds merges K seeds' envs so).
    WORLD_AXES = {"state": 1}

    def __init__(self, num_worlds: int, variant: str = "gym", xp: Any = np):
        self.xp = xp
        self.num_worlds = num_worlds
        self.variant = check_variant(variant)
        self.rng = WorldRNG(num_worlds, xp)
        self.low, self.high = start_bounds(variant, None)
        self.state = xp.zeros((4, num_worlds), dtype=xp.float64)
        self._forces = xp.asarray([-FORCE_N, FORCE_N])
        self._terminal_reward = 1.0 if variant == "gym" else 0.0

    def reset_worlds(self, worlds: Any) -> None:
        """Draw new start states for the worlds with indices ``worlds`` (int array)."""
        self.state[:, worlds] = sample_start_states(self.rng, worlds, self.low, self.high)

    def step(self, actions: Any, active: Any = None):
        """Push each cart left (action 0) or right (1) and advance one step.

        ``actions``: int (N,); ``active`` is ignored (this core draws no random numbers while
        stepping). Returns ``(reward float32 (N,), terminated bool (N,))``.
        """
        xp = self.xp
        s = self.state
        if xp is np:
            # the engine's kernel switch (no numba, PLAYGRAD_FUSED=0, rl._fused.disabled: NumPy below)
            kernel = _fused.compiled("cartpole_step", _build_step)
            if kernel is not None and type(s) is np.ndarray and s.dtype == np.float64:
                # envpool-style: the env's own compiled step, one pass over the worlds instead of ~15 NumPy
                # calls on N-element arrays (the same arithmetic, bit for bit)
                reward = np.empty(self.num_worlds, dtype=np.float32)
                terminated = np.empty(self.num_worlds, dtype=np.bool_)
                kernel(s, actions, self._forces, self._terminal_reward, reward, terminated)
                return reward, terminated
        x, x_dot, theta, theta_dot = cartpole_dynamics(
            s[0], s[1], s[2], s[3], self._forces[actions], xp.cos, xp.sin
        )
        s[0], s[1], s[2], s[3] = x, x_dot, theta, theta_dot
        terminated = xp.abs(x) > X_THRESHOLD_M
        terminated |= xp.abs(theta) > THETA_THRESHOLD_RAD
        if self._terminal_reward == 1.0:
            reward = xp.ones(self.num_worlds, dtype=xp.float32)
        else:
            reward = (~terminated).astype(xp.float32)
        return reward, terminated

    def observe(self) -> Any:
        """Observations float32 (N, 4), as Gymnasium's (the state rounded to float32)."""
        return self.state.T.astype(self.xp.float32)
