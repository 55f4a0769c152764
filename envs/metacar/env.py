"""MetaCar as a Gymnasium environment: drive a car around a small city with a lidar, among bot cars.

A faithful port of MetaCar 0.1.1 (Thibault Neveu, MIT; ``docs/specs/metacar.md``): the same levels, car and
lidar geometry, axis-aligned-box detection, motion engines, bots' autopilot and reward. The world lives in
:class:`~envs.metacar.core.MetaCarCore` (batched arrays); this class is a thin one-world shell around it,
and :mod:`envs.metacar.render` draws it.

    import gymnasium as gym, envs
    env = gym.make("envs/MetaCar-v0", level="level1", motion="basic", render_mode="human")

## Action space

``motion="basic"`` (BasicMotion, the original's default): ``Discrete(5)``

| action | name  | effect                                                               |
|--------|-------|----------------------------------------------------------------------|
| 0      | UP    | move 1 px forward                                                    |
| 1      | LEFT  | turn in place by ``rotation_step * pi`` (default 90 degrees), no move |
| 2      | RIGHT | same, clockwise                                                      |
| 3      | DOWN  | move 1 px backward                                                   |
| 4      | WAIT  | nothing                                                              |

``motion="control"`` (ControlMotion): ``Box(-1, 1, (2,), float32)`` = ``[throttle, steering]``.
Throttle accelerates by 0.005 px/step per step (brakes by 0.03 when against the motion, drag 0.01 when
exactly 0), speed within [-2, 2] px/step and kept between steps; steering turns at
``0.01 * pi * steering * (v + 0.001)`` rad/step, positive = right. Out-of-range values are clipped (as the
original); a wrong shape or a non-finite value raises ``ValueError``.

## Observation space

``observation="linear"`` (default, the original's ``getState().linear``): ``Box((pts*pts + 1,), float32)``:
the lidar cells row by row (row 0 = farthest ahead, column 0 = the car's left), each -1 (road), 0 (ground)
or 1 (a car), then the speed in px/step (always 0 with BasicMotion, which zeroes it after each step).
Default lidar ``{pts: 5, width: 4, height: 5, pos: 0}`` gives 26 values.
``observation="linear_and_previous"`` (ours): ``Box((2*pts*pts + 1,), float32)``: ``"linear"``, then the
previous step's lidar cells (after a reset: the same as now). One lidar picture cannot tell a car coming from one
going away; two can.
``observation="grid"``: ``Box((pts, pts), float32)``, the lidar picture alone (no speed).

## Rewards (the original's default, v0.1.1)

| situation (after the move)                         | reward            |
|----------------------------------------------------|-------------------|
| touching another car, or any captor off road       | -1                |
| BasicMotion, action UP                             | +1                |
| BasicMotion, any other action                      | 0                 |
| ControlMotion                                      | ``max(0, v) / 2`` |

``crash_reward`` (a training option, default -1 = the original's) changes the crash row alone: a stronger
penalty makes leaving the road worse than stopping. A table ``{off_road = x, collision = y}`` sets the two kinds
of crash apart (a kind left out stays -1; touching a car while off road earns the lower).
``reward_fn(inputs) -> (N,) array`` replaces the whole table (see :class:`~envs.metacar.core.RewardInputs`); it
cannot be combined with another ``crash_reward``.

## Starting state

The level file's start: the agent on its tile and lane (level1: (270, 225) heading East), bots on theirs,
speed 0. ``shuffle_on_reset="agent"`` (or True) then moves the agent to a random empty road tile and lane
(the original's ``shuffle({cars: false})``, used by its demos between episodes); ``"all"`` also reshuffles
every bot (``shuffle()``).

## Episode end

* terminated: with ``terminate_on_crash=True`` (default, as the original's REINFORCE and DDPG demos), when
  the agent touches a car or leaves the road after a step;
* truncated: after ``max_steps`` steps (default 800, the demos' budget; None or 0: never).

## Fidelity

Given the same start and actions (and the same numbers for the bots' junction draws), a world steps exactly
as the original: poses, lidar cells and rewards are equal, floats included, step after step
(``tests/envs/test_metacar_parity.py`` runs the original JavaScript in headless Chromium to check it).
That needs the original's arithmetic where edges meet. Every overlap test compares Pixi 4.7 ``getBounds()``
boxes with strict inequalities, and Pixi keeps a sprite's corners in a ``Float32Array``: **car boxes (agent
and bots) are the float32 rounding of their corners** (a bot edge at x = 398.8 is 398.79998779, so a lidar
point starting at 398.8 sees it; exact arithmetic says they only touch). Lidar points and captors stay
float64 but follow Pixi's matrix order (a point's top edge comes out at 239.99999999999997, not 240, and
touches the road above). BasicMotion's whole-pixel moves next to bots at 0.8 px/step make such meetings
common; without the rounding, level1 with bots leaves the original within about a hundred steps and the
bots then drift apart by several pixels. See :mod:`envs.metacar.sensors`.

## Deviations from the original

The original never defines episodes, seeding or the observation before the first step; these are our
decisions:

* **Observation on reset**: computed by a fresh detection pass. The original returns all zeros before the
  first step and a stale state after ``reset()``/``shuffle()``.
* **Episode end**: the original has none (§5.3); see "Episode end" above.
* **Reset** reproduces the placement of the original's ``load`` (lanes flipped where a tile already holds a
  car in the same lane), not of its ``reset()`` (which forces the file's lanes); they differ only for a file
  with two cars in one lane of one tile. Everything is reset (ControlMotion's last throttle/steering and
  the bots' pending manoeuvres too); bots' lidar starts empty, as after ``load``.
* **Randomness** (bots' turn draws, random lanes, shuffles) comes from the world's own seeded stream (the
  one every playgrad env uses, :class:`envs._common.WorldRNG`: ``reset(seed=s)`` here equals world i of a
  vector env reset with ``seed=s - i``), not ``Math.random``; shuffles pick uniformly among empty tiles
  (the original's ``sort(random - 0.5)`` is biased).
* **Validation**: lidar ``pts/width/height`` of 0 and ``rotation_step`` 0 raise ``ValueError`` (the original
  silently falls back to the default through ``||``); a level with no agent raises ``LevelError``.
* **Bots** use no neighbourhood pre-filter in detection (the original's ``|dmx| < 2`` filter provably never
  changes a bot's lidar, whose reach is under 40 px); ``fix_bot_quirks=True`` fixes the quirks of §8.17.
* ``info`` carries ``collided``, ``on_road`` and ``speed``; the original exposes them only through the reward.
* ``observation="grid"`` (the lidar picture without the speed) is ours; the original's ``getState().lidar``.
* ControlMotion actions out of [-1, 1] are clipped like the original, but a wrong shape or NaN raises. The
  space is ``Box(-1, 1)`` for both: the original's ``actionSpace()`` claims throttle in [0, 1] but uses [-1, 1].
* ControlMotion at ``v == -0.001`` exactly with steering on has ``omega == 0``: the original divides by zero
  (the pose becomes NaN); we move straight.
* BasicMotion: always the five actions (the original's custom ``actions`` list option is not offered); an
  index outside 0..4 raises (the original ignores it).
* ``shuffle_on_reset`` puts the bots back at their start before shuffling the agent. The original's REINFORCE
  demo (level1) calls ``shuffle({cars: false})`` between episodes without ``reset()``, so its bots keep
  driving from wherever the last episode left them (its DDPG-traffic demo resets, then shuffles, as we do).
* Cars per tile are derived from the cars' positions; the original's per-tile id lists have a latent
  ``splice(indexOf(id), 1)`` bug (a missing id removes the list's last car), not reproduced. They matter
  only for the load-time lane flip and the shuffles' "empty tile".
* Level files: a car or agent outside the map or on grass, or a ``line`` other than 0, 1 or absent, is a
  ``LevelError`` (the original leaves such a car at the tile's top-left corner heading East).
* Levels: the grids, cars and agents are the spec's (MetaCar HEAD); level2's decorations are our own
  placements with the original's counts (visual only). Sprites are drawn by our code, not the textures.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .core import MetaCarCore
from .level import Level, load_level

__all__ = ["OBSERVATIONS", "MetaCarEnv", "check_max_steps", "make_spaces", "normalise_shuffle", "reset_shuffle"]

OBSERVATIONS = ("linear", "linear_and_previous", "grid")  # the observation kinds (module docstring)

RESET_OPTIONS = ("shuffle",)  # the keys reset(options=...) understands


def check_max_steps(max_steps: Any) -> int:
    """``max_steps`` as the truncation limit in steps, 0 for none (None or 0); anything else but a
    positive int is a ``ValueError`` naming the argument."""
    if max_steps is None:
        return 0
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 0:
        raise ValueError(f"metacar max_steps must be a positive int, or None or 0 for no limit, got {max_steps!r}")
    return int(max_steps)


def reset_shuffle(options: dict | None, default: str | None) -> str | None:
    """The shuffle of one ``reset(options=...)``: ``options["shuffle"]`` if given, else ``default``.

    Unknown keys raise ``ValueError`` (as CartPole's and Snake's resets do), so a misspelt option is
    not silently ignored.
    """
    if not options:
        return default
    unknown = sorted(set(options) - set(RESET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown metacar reset option(s) {unknown}; valid: {list(RESET_OPTIONS)}")
    return normalise_shuffle(options["shuffle"]) if "shuffle" in options else default


def normalise_shuffle(shuffle_on_reset: Any) -> str | None:
    """``shuffle_on_reset`` as None, ``"agent"`` or ``"all"`` (True means ``"agent"``, like the demos)."""
    if shuffle_on_reset is None or shuffle_on_reset is False:
        return None
    if shuffle_on_reset is True:
        return "agent"
    if shuffle_on_reset in ("agent", "all"):
        return shuffle_on_reset
    raise ValueError(f"shuffle_on_reset must be False, True, 'agent' or 'all', got {shuffle_on_reset!r}")


def make_spaces(core: MetaCarCore, observation: str) -> tuple[spaces.Space, spaces.Space]:
    """The single-world ``(observation_space, action_space)`` for a core and an observation kind."""
    p = core.num_lidar
    if observation in ("linear", "linear_and_previous"):
        size = p + 1 if observation == "linear" else 2 * p + 1
        low = np.full(size, -1.0, dtype=np.float32)
        high = np.full(size, 1.0, dtype=np.float32)
        low[p], high[p] = -core.max_speed, core.max_speed
        obs_space = spaces.Box(low, high, dtype=np.float32)
    elif observation == "grid":
        obs_space = spaces.Box(-1.0, 1.0, (core.pts, core.pts), dtype=np.float32)
    else:
        raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
    if core.discrete:
        act_space: spaces.Space = spaces.Discrete(5)
    else:
        act_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    return obs_space, act_space


class MetaCarEnv(gym.Env):
    """One MetaCar world (see the module docstring for spaces, rewards and episode end).

    Args:
        level: bundled level name (``"level0"`` ... ``"level3"``), a path to a level JSON file, or a Level.
        motion: ``"basic"`` or ``"control"``.
        lidar: ``{pts, width, height, pos}`` (defaults 5, 4, 5, 0).
        observation: ``"linear"``, ``"linear_and_previous"`` or ``"grid"``.
        terminate_on_crash: end the episode when the agent touches a car or leaves the road.
        max_steps: truncation limit in steps (None or 0 for none; negative raises ``ValueError``).
        shuffle_on_reset: False, True/``"agent"`` or ``"all"``.
        cars_moving: bots drive (True) or stay parked.
        reward_fn: custom batched reward, ``f(RewardInputs) -> (N,)``.
        crash_reward: the default reward's crash value (the original's -1): a finite number, or a table
            ``{"off_road": x, "collision": y}``.
        rotation_step: BasicMotion turn, units of pi.
        fix_bot_quirks: fix the original bots' quirks (see ``MetaCarCore``).
        render_mode: None, ``"human"`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 60}

    def __init__(self, level: str | Level = "level1", motion: str = "basic", lidar: dict | None = None,
                 observation: str = "linear", terminate_on_crash: bool = True, max_steps: int | None = 800,
                 shuffle_on_reset: Any = False, cars_moving: bool = True, reward_fn=None,
                 rotation_step: float = 0.5, fix_bot_quirks: bool = False, render_mode: str | None = None,
                 crash_reward: float | dict = -1.0):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.level = load_level(level)
        self.core = MetaCarCore(self.level, 1, motion=motion, lidar=lidar, rotation_step=rotation_step,
                                cars_moving=cars_moving, fix_bot_quirks=fix_bot_quirks, reward_fn=reward_fn,
                                crash_reward=crash_reward)
        self.observation_kind = observation
        self.observation_space, self.action_space = make_spaces(self.core, observation)
        self.terminate_on_crash = bool(terminate_on_crash)
        self.max_steps = check_max_steps(max_steps)
        self.shuffle_on_reset = normalise_shuffle(shuffle_on_reset)
        self.render_mode = render_mode
        self.steps = 0
        self.last_reward = 0.0
        self.last_action: Any = None
        self._seeded = False
        self._renderer = None
        self._act = np.zeros(1, dtype=np.int64)
        self._obs_len = self.observation_space.shape[0]

    # ------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode: ``(obs, info)``. ``seed`` keys the world's random stream; ``options``
        ``{"shuffle": False | True | "agent" | "all"}`` overrides ``shuffle_on_reset`` for this reset."""
        shuffle = reset_shuffle(options, self.shuffle_on_reset)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.core.rng.seed(seed, self.np_random)
            self._seeded = True
        self.core.reset(None, shuffle=shuffle)
        self.steps = 0
        self.last_reward = 0.0
        self.last_action = None
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info()

    def step(self, action: Any):
        """Advance one step: ``(obs, reward, terminated, truncated, info)``; an action outside the
        action space raises ``ValueError`` naming it."""
        core = self.core
        if core.discrete:
            if type(action) is not int:
                action = self._check_discrete(action)
            elif not 0 <= action < 5:
                raise ValueError(f"action {action!r} is not in the action space {self.action_space} "
                                 "(BasicMotion: 0=UP, 1=LEFT, 2=RIGHT, 3=DOWN, 4=WAIT)")
            self._act[0] = action
            reward = core.step(self._act)
        else:
            act = np.asarray(action, dtype=np.float64)
            if act.shape != (2,) or not (math.isfinite(act[0]) and math.isfinite(act[1])):
                raise ValueError(f"action {action!r} is not in the action space {self.action_space} "
                                 "(ControlMotion: [throttle, steering], finite, shape (2,))")
            reward = core.step(act[None, :])
        self.steps += 1
        self.last_reward = r = float(reward[0])
        self.last_action = action
        crashed = bool(core.collided[0]) or not bool(core.on_road[0])
        terminated = self.terminate_on_crash and crashed
        truncated = self.max_steps > 0 and self.steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return self._observation(), r, terminated, truncated, self._info()

    def render(self):
        """Draw the world (a window for ``"human"``, an RGB array (H, W, 3) for ``"rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='human' or 'rgb_array'")
            return None
        if self._renderer is None:
            from .render import MetaCarRenderer  # pygame is only imported when rendering

            self._renderer = MetaCarRenderer(self.core, mode=self.render_mode, fps=self.metadata["render_fps"])
        return self._renderer.render(world=0, step=self.steps, reward=self.last_reward)

    def close(self):
        """Close the window, if any."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -------------------------------------------------------------------------------------- helpers
    def _check_discrete(self, action: Any) -> int:
        arr = np.asarray(action)
        if arr.shape == () and np.issubdtype(arr.dtype, np.integer) and 0 <= int(arr) < 5:
            return int(arr)
        raise ValueError(f"action {action!r} is not in the action space {self.action_space} "
                         "(BasicMotion: 0=UP, 1=LEFT, 2=RIGHT, 3=DOWN, 4=WAIT)")

    def _observation(self) -> np.ndarray:
        core = self.core
        if self.observation_kind == "grid":
            return core.agent_lidar[0].reshape(core.pts, core.pts).astype(np.float32)
        p = core.num_lidar
        obs = np.empty(self._obs_len, dtype=np.float32)
        obs[:p] = core.agent_lidar[0]
        obs[p] = core.speed[0]
        if self.observation_kind == "linear_and_previous":
            obs[p + 1:] = core.previous_lidar[0]
        return obs

    def _info(self) -> dict:
        core = self.core
        return {"collided": bool(core.collided[0]), "on_road": bool(core.on_road[0]),
                "speed": float(core.speed[0])}
