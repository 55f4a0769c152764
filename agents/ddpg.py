"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016) with parameter-space noise (Plappert et al.
2018), as MetaCar's DDPG demos drive their car with ``[throttle, steering]`` (spec §6.3, §6.4).

The algorithm, top to bottom as :meth:`DDPG.learn` runs it:

1. **collect**: each world of a vector env acts with its *behaviour* policy and every transition
   ``(s, a, r, s', terminated)`` goes into a circular replay memory. The behaviour policy is
   ``exploration = "param"``: the actor with Gaussian noise added to every weight (one perturbed copy
   per world, drawn when its episode starts, so an episode explores *consistently*); or
   ``"gaussian"``: the clean actor plus N(0, ``action_noise_std``) on each action.
2. **adapt the noise** (``"param"``), after each finished episode: the world's perturbed actor is
   re-drawn from the *current* actor with the current sigma; ``d`` = RMS distance between that copy's
   and the clean actor's actions on a batch of replayed states; then ``sigma <- sigma / alpha`` if
   ``d > delta`` else ``sigma * alpha`` (:func:`adapt_param_noise`), so the weight noise is whatever
   moves the *actions* by about ``delta``. The next episode drives the copy drawn before the adaptation.
3. **update**: once ``learning_starts`` transitions were stored, every ``train_every_steps``
   transitions: ``delta <- max(delta_final, decay * delta)``, then ``gradient_steps`` times, on a
   uniform batch:

   * critic: ``y = r + gamma * (1 - terminated) * Q'(s', mu'(s'))``, minimise ``mean((y - Q(s, a))^2)``;
   * actor: minimise ``-mean Q(s, mu(s))``;
   * soft-update every target network, ``Q' <- tau * Q + (1 - tau) * Q'`` and ``mu'`` alike
     (:func:`soft_update`).

TD3's remedies (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods"),
each a Config option, off by default (plain DDPG, the demo's). DDPG's critic overestimates (the actor seeks
out the critic's errors and the target bootstraps on them), which can make a policy that was driving well
collapse late in training; each option attacks one cause:

* ``twin_critics`` (clipped double-Q): two critics, each with its target, trained on the same target
  ``y = r + gamma * (1 - terminated) * min(Q1'(s', a'), Q2'(s', a'))``, so an error one critic makes is
  only bootstrapped on if the other makes it too. The actor follows critic 1.
* ``target_noise``, ``target_noise_clip`` (target policy smoothing): ``a' = clip(mu'(s') + clip(eps, -c, c),
  -1, 1)`` with ``eps ~ N(0, target_noise)`` in the actor's [-1, 1] units (:func:`smooth_target_actions`),
  so the target values a small neighbourhood of actions and the actor cannot exploit a narrow Q peak.
* ``policy_delay`` d: the actor step and the soft updates of *all* targets come every d-th critic step,
  so the actor climbs a critic whose errors had time to shrink.

Transitions are counted as the demo counts steps: real ones, summed over worlds (``tracker.transitions``);
the update schedule (``learning_starts``, ``train_every_steps``) is in transitions. Our vector envs
autoreset on the step *after* an episode ends (Gymnasium's ``NEXT_STEP``); that step is not a transition
and is not stored, though it counts in ``env_steps`` (every ``step`` call of every world,
:mod:`agents.episodes`: the run's budget, the logs' x-axis). A time-limit truncation is stored as not
terminal, so its target still bootstraps.

Deviations from the demo (``ddpg/*.js``), each deliberate:

* The demo's "prioritized" memory (half of each batch from fresh transitions, half from a list sorted by
  TD error) is replaced by uniform replay (:class:`agents.replay.ReplayBuffer` with float actions).
* The demo redraws its weight noise with ``tf.randomNormal(..., seed=0)``, i.e. the same pattern every
  time (spec §6.3); here each draw is fresh from the run's seeded stream.
* The demo measures ``d`` on the copy that drove the finished episode, *then* re-draws it (spec §6.3);
  here the re-draw comes first and ``d`` is measured on the new copy. With vector envs the order matters:
  the actor is updated every ``train_every_steps`` transitions, i.e. in the middle of the worlds' episodes,
  so a copy drawn at an episode's start differs from the actor at its end by the noise *plus* the actor's
  drift since then. Measured that way, ``d`` stays above ``delta`` once the actor learns, sigma shrinks at
  every episode end and exploration silently stops (level3: sigma ~1e-14 after 1.8 M transitions). In
  the demo's setting (one world, updates only between 10-episode epochs) the two orders agree: the same
  copy (current actor, current sigma) drives each next episode, and ``d`` is measured on a perturbation
  of the same actor, its sigma one adaptation step (a factor alpha = 1.01) apart, and with the demo's
  fixed-seed noise the same pattern. Only after an epoch's update round does the demo's ``d`` include the
  drift of its 110 gradient steps, as ours no longer does. Measuring the current sigma on the current
  actor is Plappert et al.'s rule itself.
* Its schedule is in episodes (110 gradient steps after every 10 episodes, from the 6th epoch on); ours is
  in transitions so that a vector of worlds fits it (``train_every_steps``, ``gradient_steps``).
* Its actor and critic output kernels are the *constant* 0.003 (``out_init = "constant"`` reproduces
  it); the default draws them from U(-0.003, 0.003) as the DDPG paper does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import Agent as BaseAgent
from agents.base import ExperimentConfig, Hooks, StateSpec, check_hyperparameters
from agents.episodes import FinishedEpisodes
from agents.networks import ddpg_actor, ddpg_critic
from agents.replay import ReplayBuffer
from rl import backend
from rl import functional as F
from rl import random as rl_random
from rl.errors import NonFiniteLossError
from rl.experiment import check_memory
from rl.optimizers import Adam
from rl.tensor import Tensor, no_grad

__all__ = ["Agent", "Config", "DDPG", "adapt_param_noise", "smooth_target_actions", "soft_update"]


@dataclass
class Config:
    """DDPG hyperparameters: the ``[agent]`` table (defaults: MetaCar's DDPG demo, spec §6.3)."""

    # --- collection
    num_envs: int = 1  # worlds stepped together (the demo drives one); each has its own perturbed actor
    # --- networks (the demo's shapes)
    actor_hidden: list[int] = field(default_factory=lambda: [64, 32])  # Dense(relu) layers before the tanh head
    critic_obs_units: int = 64  # linear Dense on the state, added to...
    critic_action_units: int = 64  # ...a linear Dense on the action (must be equal: they are summed)
    critic_hidden: list[int] = field(default_factory=lambda: [32])  # Dense(relu) layers after the merge
    critic_merge_activation: str | None = None  # after the Add: None as the demo (its promised ReLU is missing)
    out_init: str = "uniform"  # output kernels: "uniform" U(-s, s) (DDPG paper) or "constant" s (the demo's)
    out_init_scale: float = 3e-3  # s: tiny outputs at first, so tanh starts unsaturated
    # --- optimisation
    actor_lr: float = 1e-4  # Adam, demo 1e-4: the actor follows a critic that must stay ahead of it
    critic_lr: float = 1e-3  # Adam, demo 1e-3
    batch_size: int = 128  # transitions per gradient step (demo 128)
    gamma: float = 0.99  # discount (demo 0.99)
    tau: float = 0.008  # soft target update rate, after every critic and every actor step (demo 0.008)
    max_grad_norm: float | None = None  # clip each network's global gradient norm; None = no clipping (demo)
    # --- replay and update schedule (counts are transitions summed over worlds)
    buffer_size: int = 30_000  # replay capacity (demo memorySize 30000)
    learning_starts: int = 5_000  # transitions stored before the first update (demo: 5 epochs of 10 episodes)
    train_every_steps: int = 800  # transitions between update rounds (demo: one round per 10 episodes)
    gradient_steps: int = 110  # critic+actor steps per round (demo nbTrainSteps 110)
    # --- exploration
    exploration: str = "param"  # "param" (weight noise, the demo's) or "gaussian" (action noise)
    param_noise_initial_stddev: float = 0.1  # sigma of the first weight noise (demo initialStddev 0.1)
    param_noise_desired_action_stddev: float = 0.1  # delta: the action change sigma is tuned to (demo 0.1)
    param_noise_desired_final: float = 0.1  # delta never decays below this (demo: max(0.1, ...))
    param_noise_decay: float = 0.99  # delta <- decay * delta before each update round (demo noiseDecay)
    param_noise_adoption_coefficient: float = 1.01  # alpha: sigma's multiplicative step (demo 1.01)
    param_noise_distance_states: int = 64  # replayed states the distance d is measured on (demo 64)
    action_noise_std: float = 0.1  # "gaussian" exploration (and act(deterministic=False)): N(0, this) per action
    # --- TD3's remedies against overestimation (Fujimoto et al. 2018); the defaults are plain DDPG
    twin_critics: bool = False  # clipped double-Q: two critics, the target takes the smaller target critic
    target_noise: float = 0.0  # target policy smoothing: sigma of the noise on mu'(s'), actor units (paper 0.2)
    target_noise_clip: float = 0.5  # that noise is clipped to [-this, this] (paper 0.5)
    policy_delay: int = 1  # actor step and all target soft-updates every d-th critic step (paper 2)
    # --- logging
    log_every_steps: int = 5_000  # env steps between loss / noise records (the runner adds sps, time_s)

    def __post_init__(self) -> None:
        check_hyperparameters(self, rates=("actor_lr", "critic_lr"), clip_norms=("max_grad_norm",),
                              worlds=("num_envs",))
        if self.exploration not in ("param", "gaussian"):
            raise ValueError(f"exploration must be 'param' or 'gaussian', got {self.exploration!r}")
        for name in ("num_envs", "batch_size", "buffer_size", "train_every_steps", "log_every_steps",
                     "param_noise_distance_states", "critic_obs_units", "critic_action_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1 (1: the actor steps with every critic step), got "
                             f"{self.policy_delay}")
        if self.target_noise < 0 or self.target_noise_clip < 0:
            raise ValueError(f"target_noise and target_noise_clip must be >= 0, got {self.target_noise} and "
                             f"{self.target_noise_clip}")
        if self.gradient_steps < 0 or self.learning_starts < 0:
            raise ValueError("gradient_steps and learning_starts must be >= 0")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must lie in (0, 1], got {self.tau}")
        if self.param_noise_adoption_coefficient <= 1.0:
            raise ValueError("param_noise_adoption_coefficient must be > 1, got "
                             f"{self.param_noise_adoption_coefficient}")
        if self.critic_obs_units != self.critic_action_units:
            raise ValueError(f"critic_obs_units ({self.critic_obs_units}) must equal critic_action_units "
                             f"({self.critic_action_units}): the critic adds the two branches")


# ------------------------------------------------------------------------------------ pieces
def soft_update(target: Sequence[Any], source: Sequence[Any], tau: float) -> None:
    """Polyak averaging in place: ``target <- tau * source + (1 - tau) * target`` for each pair of arrays."""
    for t, s in zip(target, source, strict=True):
        t *= 1.0 - tau
        t += tau * s


def smooth_target_actions(actions: Any, noise: Any, noise_clip: float) -> Any:
    """TD3's target policy smoothing: ``clip(actions + clip(noise, -noise_clip, noise_clip), -1, 1)``.

    Args:
        actions: the target actor's actions ``(B, act_dim)`` in [-1, 1].
        noise: Gaussian noise of the same shape, already scaled by its sigma.
        noise_clip: the largest change the noise may make to one action value.
    Returns:
        ``(B, act_dim)`` actions, still inside the actor's [-1, 1] bounds.
    """
    xp = backend.get_array_module(actions)
    return xp.clip(actions + xp.clip(noise, -noise_clip, noise_clip), -1.0, 1.0)


def _polyak_pairs(target: Any, source: Any) -> tuple[list[Any], list[Any]]:
    """The target network's live weight arrays and the source tensors they track, matched by weight
    name (buffers included), so a network with frozen layers or batch norm pairs up correctly."""
    sources = dict(source.named_weights())
    state = target.state_dict()
    return list(state.values()), [sources[name] for name in state]


def adapt_param_noise(stddev: float, distance: float, desired: float, coefficient: float) -> float:
    """The adaptive weight-noise rule (Plappert et al. 2018; the demo's ``adapt``).

    Shrink sigma by ``coefficient`` when the perturbed actor's actions moved more than ``desired`` (RMS
    ``distance`` from the clean actor's), grow it otherwise.
    """
    return stddev / coefficient if distance > desired else stddev * coefficient


def _dense_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if hasattr(layer, "kernel")]


# ------------------------------------------------------------------------------------ the agent
class DDPG(BaseAgent):
    """DDPG on a ``Box`` action space (``learn``, ``act``, ``explain``, ``state_dict``).

    The actor outputs ``tanh`` values in [-1, 1] per action dimension, mapped linearly onto the space's
    bounds (MetaCar's ControlMotion space *is* [-1, 1]^2, so there the map is the identity).

    Args:
        config: the ``[agent]`` table as a :class:`Config`.
        experiment: env id and kwargs, seed, step budget.
    """

    Config = Config
    STATE = StateSpec(networks=("actor", "critic", "critic2"),
                      targets=("actor_target", "critic_target", "critic2_target"),
                      optimizers=("actor_opt", "critic_opt", "critic2_opt"), generators=("rng", "target_noise_rng"),
                      counters=("updates", "noise_stddev", "desired_stddev", "noise_distance", "_next_train",
                                "_next_log"),
                      arrays=("perturbed",), parts=("replay",))

    def __init__(self, config: Config, experiment: ExperimentConfig):
        super().__init__(config, experiment)
        c = config
        self.make_envs(c.num_envs, sums=("speed",))  # summed speed: the episode's mean speed (MetaCar's info)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        if not isinstance(act_space, spaces.Box) or len(act_space.shape) != 1:
            raise ValueError(f"DDPG needs a one-dimensional Box action space, got {act_space} for "
                             f"{experiment.env_id} (MetaCar: set motion = \"control\" in the [env] table)")
        if len(obs_space.shape) != 1:
            raise ValueError(f"DDPG's MLPs need flat observations, got shape {obs_space.shape} (MetaCar: "
                             "observation = \"linear\")")
        self.obs_dim = int(obs_space.shape[0])
        self.act_dim = int(act_space.shape[0])
        self.action_low = act_space.low.astype(np.float32)
        self.action_high = act_space.high.astype(np.float32)

        # Weights come from the default generator: seeding it makes the networks a function of the seed.
        rl_random.seed(experiment.seed)
        actor_kw = dict(hidden=c.actor_hidden, out_init=c.out_init, out_init_scale=c.out_init_scale)
        critic_kw = dict(obs_units=c.critic_obs_units, action_units=c.critic_action_units, hidden=c.critic_hidden,
                         merge_activation=c.critic_merge_activation, out_init=c.out_init,
                         out_init_scale=c.out_init_scale)
        self.actor = ddpg_actor(self.obs_dim, self.act_dim, name="actor", **actor_kw)
        self.critic = ddpg_critic(self.obs_dim, self.act_dim, name="critic", **critic_kw)
        self.actor_target = ddpg_actor(self.obs_dim, self.act_dim, name="actor_target", **actor_kw)
        self.critic_target = ddpg_critic(self.obs_dim, self.act_dim, name="critic_target", **critic_kw)
        self.actor_target.load_state_dict(self.actor.state_dict())  # targets start as exact copies
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_opt = Adam(self.actor.parameters(), lr=c.actor_lr, clipnorm=c.max_grad_norm)
        self.critic_opt = Adam(self.critic.parameters(), lr=c.critic_lr, clipnorm=c.max_grad_norm)
        # Live weight arrays (optimizers keep views into them; the soft update writes the targets in place).
        self._pairs = [_polyak_pairs(self.actor_target, self.actor), _polyak_pairs(self.critic_target, self.critic)]
        # Clipped double-Q's second critic, drawn after the others so plain DDPG's weights stay what they were.
        self.critic2 = self.critic2_target = self.critic2_opt = None
        if c.twin_critics:
            self.critic2 = ddpg_critic(self.obs_dim, self.act_dim, name="critic2", **critic_kw)
            self.critic2_target = ddpg_critic(self.obs_dim, self.act_dim, name="critic2_target", **critic_kw)
            self.critic2_target.load_state_dict(self.critic2.state_dict())
            self.critic2_opt = Adam(self.critic2.parameters(), lr=c.critic_lr, clipnorm=c.max_grad_norm)
            self._pairs.append(_polyak_pairs(self.critic2_target, self.critic2))

        # The third stream exists for every run (a spawned child depends only on its index), drawn from only
        # with target policy smoothing, so the smoothing noise never shifts the exploration noise.
        streams = rl_random.Generator(experiment.seed).spawn(3)
        self.rng = streams[0]  # exploration noise (weights or actions)
        self.replay = ReplayBuffer(c.buffer_size, (self.obs_dim,), np.float32, rng=streams[1],
                                   action_shape=(self.act_dim,), action_dtype=np.float32)
        self.target_noise_rng = streams[2]  # target policy smoothing

        # Parameter noise: sigma of the weight noise, delta (the action distance sigma is tuned to), and
        # per world the perturbed actor's weights as (N, *shape) arrays, one (kernel, bias) pair per layer.
        self.noise_stddev = c.param_noise_initial_stddev
        self.desired_stddev = c.param_noise_desired_action_stddev
        self.noise_distance = float("nan")
        self._activations = [F.get_activation(layer.activation) if layer.activation else None
                             for layer in _dense_layers(self.actor)]
        self.perturbed: list[Any] = []
        if c.exploration == "param":
            self._perturb(np.arange(c.num_envs))

        # Collection state carried between learn() calls (and across a resume).
        self.updates = 0  # critic gradient steps taken (the actor takes one every policy_delay of them)
        self._next_train = c.learning_starts
        self._next_log = c.log_every_steps
        self._last_losses: dict[str, float] = {}

    # ------------------------------------------------------------------------------ policies
    def _actor_actions(self, obs: Any) -> Any:
        """The clean actor's actions ``(B, act_dim)`` in [-1, 1] for device observations ``(B, obs_dim)``."""
        with no_grad():
            return self.actor(Tensor(obs)).data

    def _perturb(self, worlds: Any) -> None:
        """Draw fresh perturbed actors for ``worlds``: the clean weights plus N(0, sigma) on every weight."""
        xp = backend.current().xp
        weights = [w.data for layer in _dense_layers(self.actor) for w in (layer.kernel, layer.bias)]
        if not self.perturbed:
            n = self.config.num_envs
            # one actor per world, and a float64 draw and its float32 sum per weight while refreshing them
            check_memory("agent.num_envs x agent.actor_hidden", n * sum(w.size for w in weights) * (4 + 8 + 4),
                         f"{n:,} perturbed copies of the actor")
            self.perturbed = [xp.zeros((n, *w.shape), dtype=w.dtype) for w in weights]
        idx = backend.to_device(np.asarray(worlds, dtype=np.int64))
        for store, w in zip(self.perturbed, weights, strict=True):
            noise = self.rng.normal((len(worlds), *w.shape), dtype=np.float32)
            store[idx] = w[None] + self.noise_stddev * noise

    def _perturbed_actions(self, obs: Any, world: int | None = None) -> Any:
        """Actions of the perturbed actors: world i's actor on row i of ``obs (N, obs_dim)``, or (``world``
        given) that world's actor on every row of ``obs (B, obs_dim)``."""
        h = obs
        with no_grad():
            for i, act in enumerate(self._activations):
                kernel, bias = self.perturbed[2 * i], self.perturbed[2 * i + 1]
                if world is None:  # one small matrix product per world, as one batched matmul
                    h = (h[:, None, :] @ kernel)[:, 0, :] + bias
                else:
                    h = h @ kernel[world] + bias[world]
                if act is not None:
                    h = act(Tensor(h)).data
        return h

    def _behaviour_actions(self, obs: Any) -> Any:
        """Exploration actions ``(N, act_dim)`` in [-1, 1] for the N worlds' observations."""
        if self.config.exploration == "param":
            return self._perturbed_actions(obs)
        xp = backend.get_array_module(obs)
        noise = self.rng.normal((obs.shape[0], self.act_dim), dtype=np.float32)
        return xp.clip(self._actor_actions(obs) + self.config.action_noise_std * noise, -1.0, 1.0)

    def _to_env(self, actions: Any) -> np.ndarray:
        """Actor outputs in [-1, 1] -> the env's bounds, as host float32 ``(B, act_dim)``."""
        a = np.asarray(backend.to_numpy(actions), dtype=np.float32)
        a = self.action_low + (a + 1.0) * 0.5 * (self.action_high - self.action_low)
        return np.clip(a, self.action_low, self.action_high)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for ``obs (B, obs_dim)``: the clean actor's, plus N(0, action_noise_std) if not deterministic."""
        x = backend.to_device(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))
        actions = self._actor_actions(x)
        if not deterministic:
            xp = backend.get_array_module(actions)
            noise = self.rng.normal(actions.shape, dtype=np.float32)
            actions = xp.clip(actions + self.config.action_noise_std * noise, -1.0, 1.0)
        return self._to_env(actions)

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """For the play overlay: ``{"action": (act_dim,), "q_value": (1,)}``, the actor's action and Q(s, mu(s))."""
        x = backend.to_device(np.asarray(obs, dtype=np.float32).reshape(1, -1))
        with no_grad():
            a = self.actor(Tensor(x))
            q = self.critic([Tensor(x), a]).data
        return {"action": self._to_env(a.data)[0], "q_value": backend.to_numpy(q)[0].astype(np.float32)}

    # ------------------------------------------------------------------------------ learning
    def learn(self, total_steps: int, hooks: Hooks) -> None:
        """Collect, adapt the noise and update until ``env_steps >= total_steps`` or ``hooks.stop_requested``."""
        c = self.config
        self.start_envs()
        while self.env_steps < total_steps and not hooks.stop_requested:
            # 1. collect: one step of every world with its behaviour policy.
            obs = self.obs
            actions = self._behaviour_actions(backend.to_device(obs))
            env_actions = self._to_env(actions)
            if not np.isfinite(env_actions).all():
                self._diverged("the actions")
            next_obs, reward, terminated, truncated, info = self.envs.step(env_actions)
            speed = info["speed"] if "speed" in info else np.zeros(c.num_envs)
            step = self.tracker.step(reward, terminated, truncated, speed=speed)
            real = step.transitions  # the step after an episode end is the env's reset, not a transition
            if real.any():
                reward, terminated = (np.asarray(backend.to_numpy(v)) for v in (reward, terminated))
                self.replay.add(obs[real], actions[backend.to_device(real)], reward[real].astype(np.float32),
                                next_obs[real], terminated[real])
            for episode in step.finished:
                self._end_episode(episode, hooks)
            self.obs = next_obs

            # 3. update: a round of gradient steps every train_every_steps transitions, after learning_starts.
            if self.tracker.transitions >= self._next_train and len(self.replay) >= c.batch_size:
                self._next_train = self.tracker.transitions + c.train_every_steps
                self.desired_stddev = max(c.param_noise_desired_final, c.param_noise_decay * self.desired_stddev)
                self._last_losses = self._update_round()
                bad = [name for name, value in self._last_losses.items() if not np.isfinite(value)]
                if bad:  # checked here, not at the next log: diverged networks must not drive the env
                    self._diverged(f"{bad[0]} ({self._last_losses[bad[0]]})")
            if self.env_steps >= self._next_log:
                self._next_log = self.env_steps + c.log_every_steps
                hooks.log({"env_steps": self.env_steps, "updates": self.updates, **self._last_losses,
                           "param_noise_stddev": self.noise_stddev, "desired_action_stddev": self.desired_stddev,
                           "noise_distance": self.noise_distance, "replay_size": len(self.replay)})
            if hooks.checkpoint_due(self.env_steps):
                hooks.save(self)

    def _diverged(self, what: str) -> None:
        """Stop training with :class:`NonFiniteLossError`: ``what`` became NaN or inf."""
        raise NonFiniteLossError(
            f"{what} became NaN or inf at env step {self.env_steps}: the networks diverged. Training stopped "
            f"before the env was stepped with them; the last checkpoint (if any) was kept, not overwritten. "
            f"Try smaller learning rates or max_grad_norm.")

    def _end_episode(self, episode: FinishedEpisodes, hooks: Hooks) -> None:
        """Log one world's finished episode; with parameter noise, 2. redraw its actor and adapt sigma."""
        world, length = int(episode.worlds[0]), int(episode.lengths[0])
        hooks.log({**episode.records(self.env_steps)[0], "episode_crashed": bool(episode.terminated[0]),
                   "episode_mean_speed": float(episode.sums["speed"][0] / max(length, 1))})
        c = self.config
        if c.exploration != "param":
            return
        # Redraw first, then measure: the copy that drove this episode was drawn from an actor that has been
        # updated since (mid-episode, with vector envs), so its distance would measure that drift, not sigma
        # (module docstring). The new copy drives the next episode; the adapted sigma serves the next redraw.
        # No adaptation until the memory holds a batch.
        self._perturb([world])
        if len(self.replay) >= c.batch_size:
            states = self.replay.sample(c.param_noise_distance_states).obs
            diff = self._perturbed_actions(states, world) - self._actor_actions(states)
            self.noise_distance = float(backend.get_array_module(diff).sqrt((diff * diff).mean()))
            self.noise_stddev = adapt_param_noise(self.noise_stddev, self.noise_distance, self.desired_stddev,
                                                  c.param_noise_adoption_coefficient)

    def _critics(self) -> list[tuple[Any, Any]]:
        """``(critic, its optimizer)`` for critic 1 and, with ``twin_critics``, critic 2."""
        pairs = [(self.critic, self.critic_opt)]
        if self.critic2 is not None:
            pairs.append((self.critic2, self.critic2_opt))
        return pairs

    def _target_values(self, batch: Any) -> Any:
        """The critics' regression target ``y (B,)`` for a replayed batch, from the target networks:
        ``r + gamma * (1 - terminated) * Q'(s', a')``, ``a' = mu'(s')`` (smoothed with ``target_noise``),
        ``Q'`` the smaller of the two target critics with ``twin_critics``."""
        c = self.config
        with no_grad():
            next_s = Tensor(batch.next_obs)
            next_a = self.actor_target(next_s).data
            if c.target_noise > 0:
                noise = self.target_noise_rng.normal(next_a.shape, dtype=np.float32) * np.float32(c.target_noise)
                next_a = smooth_target_actions(next_a, noise, c.target_noise_clip)
            next_q = self.critic_target([next_s, Tensor(next_a)]).data[:, 0]
            if self.critic2_target is not None:
                xp = backend.get_array_module(next_q)
                next_q = xp.minimum(next_q, self.critic2_target([next_s, Tensor(next_a)]).data[:, 0])
            return batch.reward + c.gamma * (1.0 - batch.terminated) * next_q

    def _update_round(self) -> dict[str, float]:
        """``gradient_steps`` critic steps, an actor step and the soft target updates after every
        ``policy_delay``-th of them; the mean losses."""
        c = self.config
        critics = self._critics()
        critic_sums = [0.0] * len(critics)
        actor_sum, actor_steps = 0.0, 0
        for _ in range(c.gradient_steps):
            batch = self.replay.sample(c.batch_size)
            s, a = Tensor(batch.obs), Tensor(batch.action)
            # Critics: regress Q(s, a) onto the one-step target of the slowly moving target networks.
            y = Tensor(self._target_values(batch))
            for i, (critic, opt) in enumerate(critics):
                critic_loss = ((critic([s, a]).reshape(-1) - y) ** 2).mean()
                opt.zero_grad()
                critic_loss.backward()
                opt.step()
                critic_sums[i] += critic_loss.data
            self.updates += 1
            if self.updates % c.policy_delay:
                continue  # TD3's delayed policy update: the critics get ahead first
            # Actor: climb critic 1's value of the actor's own actions (the deterministic policy gradient).
            actor_loss = -self.critic([s, self.actor(s)]).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()  # the critic's gradients from this pass are cleared before its next step
            for target, source in self._pairs:
                soft_update(target, [p.data for p in source], c.tau)
            actor_sum += actor_loss.data
            actor_steps += 1
        n = max(c.gradient_steps, 1)
        losses = {"critic_loss": float(critic_sums[0]) / n, "actor_loss": float(actor_sum) / max(actor_steps, 1)}
        if len(critics) > 1:
            losses["critic2_loss"] = float(critic_sums[1]) / n
        return losses


Agent = DDPG
