"""Deep Q-Network (Mnih et al. 2015), as the TensorFlow.js book trains its snake (``snake-dqn``).

The algorithm, top to bottom as :meth:`Agent.learn` runs it:

1. **collect**: every world of a vector env takes an epsilon-greedy action (epsilon falls linearly
   from ``epsilon_start`` to ``epsilon_final``); each transition ``(s, a, r, s', terminated)`` goes
   into a circular replay memory (:mod:`agents.replay`).
2. **update**: once ``learning_starts`` frames were played, every ``train_freq`` frames take
   ``gradient_steps`` gradient steps, each on a uniform batch from the memory:
   ``target = r + gamma * (1 - terminated) * max_a' Q_target(s', a')`` (Double DQN: the online
   network picks ``a'``, the target network values it) and the loss is the mean of
   ``mse`` or ``huber(Q(s, a) - target)``, minimised with Adam.
3. **sync**: every ``target_update_interval`` frames the target network becomes a copy of the online
   one (all weights, batch-norm moving statistics included), copied in place.

"Frames" are real transitions summed over the vector's worlds (``tracker.transitions``, the book's
frames). The vector envs autoreset on the *next* step (Gymnasium's ``NEXT_STEP``), so the step that
restarts a finished world is not a transition: it is neither stored nor a frame, though it counts in
``env_steps`` (every ``step`` call of every world, :mod:`agents.episodes`), the run's budget and the
x-axis of its logs. A time-limit truncation is stored as not terminal, so its target still bootstraps
from the last observation.

Defaults are the book's snake settings (``snake-dqn/train.js``, ``dqn.js``): its conv net, Adam with
lr 1e-3, batch 64, gamma 0.99, a 10,000-transition memory filled before training starts, epsilon
0.5 -> 0.01 over 100,000 frames, one gradient step per frame, a target sync every 1,000 frames, MSE
loss, batches drawn without replacement. ``configs/cartpole_dqn.toml`` switches to RL Zoo's
CartPole settings (an MLP, Huber loss, 128 gradient steps every 256 frames).

Speed (small networks are bound by per-step Python work, not by arithmetic): actions come from one
forward pass over the whole batch of worlds, batch indices are drawn once per update, the online and
the target network each run once per batch, and the target sync copies arrays in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import Agent as BaseAgent
from agents.base import ExperimentConfig, Hooks, StateSpec, check_hyperparameters
from agents.episodes import FinishedEpisodes
from agents.networks import conv_q_network, mlp
from agents.replay import ReplayBuffer
from rl import backend, losses
from rl import functional as F
from rl import random as rl_random
from rl.optimizers import Adam
from rl.schedules import LinearDecay
from rl.tensor import Tensor, no_grad, using_config

__all__ = ["Agent", "Config", "dqn_targets", "epsilon_at", "td_loss"]


@dataclass
class Config:
    """DQN hyperparameters: the ``[agent]`` table of an experiment file (defaults: the book's snake-dqn)."""

    # --- network
    network: str = "cnn"  # "cnn" (conv_filters + hidden_sizes; the book's) or "mlp" (hidden_sizes, relu)
    conv_filters: list[int] = field(default_factory=lambda: [128, 256, 256])  # 3x3 valid convs (book)
    batch_norm: bool = True  # BatchNormalization after every conv but the last (book)
    hidden_sizes: list[int] = field(default_factory=lambda: [100])  # Dense(relu) layers (book: 100; Zoo: 256, 256)
    dropout: float = 0.25  # dropout after the last hidden Dense layer (book: 0.25; 0 for none)
    # --- optimisation
    lr: float = 1e-3  # Adam learning rate (book 1e-3)
    batch_size: int = 64  # transitions per gradient step (book 64)
    gamma: float = 0.99  # discount (book 0.99)
    loss: str = "mse"  # "mse" (book) or "huber" (smooth L1, delta 1: Nature DQN, SB3)
    double_dqn: bool = False  # online net picks a', target net values it (van Hasselt et al. 2016)
    max_grad_norm: float | None = None  # clip the global gradient norm (SB3's DQN: 10); None = no clipping
    # --- replay and update schedule (all counts in frames: transitions summed over worlds)
    buffer_size: int = 10_000  # replay memory capacity (book 1e4)
    learning_starts: int = 10_000  # frames played before the first update (book: fill the memory first)
    train_freq: int = 1  # frames between update rounds (book 1)
    gradient_steps: int = 1  # gradient steps per update round (book 1)
    target_update_interval: int = 1_000  # frames between target-network syncs (book syncEveryFrames 1e3)
    sample_without_replacement: bool = True  # distinct transitions within a batch (book: shuffle, take first)
    # --- exploration
    epsilon_start: float = 0.5  # book epsilonInit 0.5
    epsilon_final: float = 0.01  # book epsilonFinal 0.01
    epsilon_decay_steps: int = 100_000  # frames of the linear decay (book epsilonDecayFrames 1e5)
    exploration_fraction: float | None = None  # if set, decay over this fraction of total_steps instead (SB3)
    eval_epsilon: float = 0.0  # epsilon of act(deterministic=False)
    # --- collection and logging
    num_envs: int = 1  # worlds stepped together by the vector env
    log_every_steps: int = 1_000  # env steps between loss/epsilon records (the runner adds sps, time_s)

    def __post_init__(self) -> None:
        check_hyperparameters(self, rates=("lr",), clip_norms=("max_grad_norm",), worlds=("num_envs",))
        if self.network not in ("cnn", "mlp"):
            raise ValueError(f"network must be 'cnn' or 'mlp', got {self.network!r}")
        if self.loss not in ("mse", "huber"):
            raise ValueError(f"loss must be 'mse' or 'huber', got {self.loss!r}")
        for name in ("batch_size", "buffer_size", "train_freq", "target_update_interval", "num_envs",
                     "epsilon_decay_steps", "log_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gradient_steps < 0 or self.learning_starts < 0:
            raise ValueError("gradient_steps and learning_starts must be >= 0")
        if self.sample_without_replacement and self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size {self.batch_size} exceeds buffer_size {self.buffer_size}")
        for name in ("epsilon_start", "epsilon_final", "eval_epsilon", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.exploration_fraction is not None and not 0.0 < self.exploration_fraction <= 1.0:
            raise ValueError(f"exploration_fraction must lie in (0, 1], got {self.exploration_fraction}")


# ------------------------------------------------------------------------------------ pieces
def epsilon_at(frames: int, start: float, final: float, decay_frames: int) -> float:
    """The linear schedule: ``start`` at frame 0, ``final`` from frame ``decay_frames`` on."""
    return LinearDecay(start, final, decay_frames)(frames)


def dqn_targets(reward: Any, terminated: Any, next_q_target: Any, gamma: float, next_q_online: Any = None) -> Any:
    """Bootstrapped Q-learning targets, shape (B,).

    Args:
        reward: (B,) rewards.
        terminated: (B,) 1.0 where the episode ended in a terminal state (no bootstrap), else 0.0.
        next_q_target: (B, A) target-network Q-values of the next observations.
        gamma: discount.
        next_q_online: (B, A) online-network Q-values of the next observations for Double DQN
            (``a' = argmax`` of these, valued by the target network); None for the plain max.
    """
    xp = backend.get_array_module(next_q_target)
    if next_q_online is None:
        next_value = next_q_target.max(axis=1)
    else:
        best = next_q_online.argmax(axis=1)
        next_value = xp.take_along_axis(next_q_target, best[:, None], axis=1)[:, 0]
    return reward + gamma * (1.0 - terminated) * next_value


def td_loss(q_taken: Tensor, target: Any, kind: str = "mse") -> Tensor:
    """Mean TD loss of ``q_taken`` (B,) against constant ``target`` (B,): ``"mse"`` or ``"huber"`` (delta 1).

    Huber is quadratic within ``|d| <= 1`` and linear outside, so its gradient is the TD error
    clipped to [-1, 1] (Nature DQN's error clipping): one huge error cannot blow up a step.
    """
    if kind == "huber":
        return losses.huber(q_taken, target)
    return losses.mse(q_taken, target)


# ------------------------------------------------------------------------------------ the agent
class Agent(BaseAgent):
    """DQN on a discrete-action environment (``learn``, ``act``, ``explain``, ``state_dict``).

    Args:
        config: the ``[agent]`` table as a :class:`Config`.
        experiment: env id and kwargs, seed, step budget.
    """

    Config = Config
    STATE = StateSpec(networks=("q_net",), targets=("target_net",), optimizers=("optimizer",),
                      generators=("rng",), counters=("updates", "_decay_frames", "_recent_returns"),
                      parts=("replay",))

    def __init__(self, config: Config, experiment: ExperimentConfig):
        super().__init__(config, experiment)
        cfg = config
        self.make_envs(cfg.num_envs)
        space = self.envs.single_observation_space
        self.obs_shape = tuple(int(n) for n in space.shape)
        self.num_actions = int(self.envs.single_action_space.n)

        # Weights come from the default generator, so seeding it makes the networks a function of the seed.
        rl_random.seed(experiment.seed)
        self.q_net = self._build_network()
        self.target_net = self._build_network()
        self.optimizer = Adam(self.q_net.parameters(), lr=cfg.lr, clipnorm=cfg.max_grad_norm)
        self.sync_target()
        self._dtype = self.q_net.parameters()[0].data.dtype  # observations are cast to it once, on the way in

        streams = rl_random.Generator(experiment.seed).spawn(2)
        self.rng = streams[0].numpy  # host stream: exploration draws
        self.replay = ReplayBuffer(cfg.buffer_size, self.obs_shape, space.dtype, rng=streams[1])

        # Collection state carried between learn() calls (and across a resume).
        self.updates = 0  # gradient steps taken
        self._recent_returns: list[float] = []  # the last 100 episodes' returns (the book's cumulativeReward100)
        self._decay_frames = cfg.epsilon_decay_steps

    def _build_network(self) -> Any:
        cfg = self.config
        if cfg.network == "mlp":
            if len(self.obs_shape) != 1:
                raise ValueError(f"network 'mlp' needs flat observations, got shape {self.obs_shape}; use 'cnn'")
            return mlp(self.obs_shape[0], cfg.hidden_sizes, self.num_actions, activation="relu",
                       key="agent.hidden_sizes")
        if len(self.obs_shape) != 3:
            raise ValueError(f"network 'cnn' needs image observations (H, W, C), got shape {self.obs_shape}; "
                             "use network = \"mlp\"")
        return conv_q_network(self.obs_shape, self.num_actions, cfg.conv_filters, batch_norm=cfg.batch_norm,
                              dense_units=cfg.hidden_sizes, dropout=cfg.dropout)

    # -------------------------------------------------------------------------------- acting
    @property
    def epsilon(self) -> float:
        """Exploration rate at the current frame count."""
        cfg = self.config
        return epsilon_at(self.tracker.transitions, cfg.epsilon_start, cfg.epsilon_final, self._decay_frames)

    def q_values(self, obs: Any) -> Any:
        """Online-network Q-values (inference mode) of a batch ``(B, *obs_shape)`` -> device array (B, A)."""
        with no_grad(), using_config("train", False):
            return self.q_net(Tensor(backend.to_device(obs, self._dtype))).data

    def _epsilon_greedy(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Actions (N,) int64: uniform with probability ``epsilon`` per world, else greedy."""
        n = obs.shape[0]
        # Both draws every step, so the stream advances the same however epsilon falls.
        explore = self.rng.random(n) < epsilon
        random_actions = self.rng.integers(0, self.num_actions, size=n)
        if explore.all():
            return random_actions
        greedy = backend.to_numpy(self.q_values(obs).argmax(axis=1))
        return np.where(explore, random_actions, greedy)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Greedy actions (B,) for observations (B, *obs_shape); ``deterministic=False`` uses ``eval_epsilon``."""
        obs = np.asarray(obs)
        if deterministic:
            return backend.to_numpy(self.q_values(obs).argmax(axis=1)).astype(np.int64)
        return self._epsilon_greedy(obs, self.config.eval_epsilon)

    def explain(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``{"q_values": (A,)}`` for one observation ``obs_shape`` (the play window's overlay)."""
        q = self.q_values(np.asarray(obs)[None])
        return {"q_values": np.asarray(backend.to_numpy(q[0]), dtype=np.float64)}

    # -------------------------------------------------------------------------------- learning
    def sync_target(self) -> None:
        """Copy every online weight and buffer into the target network, in place."""
        # state_dict() hands out the live arrays (the optimizer may have relinked them into its flat
        # buffer), so they are fetched at each sync rather than cached.
        for target, online in zip(self.target_net.state_dict().values(), self.q_net.state_dict().values()):
            target[...] = online

    def update(self) -> Tensor:
        """One gradient step on a replay batch; returns the loss (a scalar tensor, not synced to the host)."""
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, replace=not cfg.sample_without_replacement)
        with no_grad(), using_config("train", False):
            next_obs = Tensor(batch.next_obs)
            next_q_target = self.target_net(next_obs).data
            next_q_online = self.q_net(next_obs).data if cfg.double_dqn else None
            target = dqn_targets(batch.reward, batch.terminated, next_q_target, cfg.gamma, next_q_online)
        # The online net runs in training mode (dropout, batch-norm batch statistics), as the book's.
        q = self.q_net(Tensor(batch.obs))
        q_taken = F.take_along_axis(q, batch.action[:, None], axis=1).reshape(-1)
        loss = td_loss(q_taken, target.astype(q.data.dtype, copy=False), cfg.loss)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return loss

    def learn(self, total_steps: int, hooks: Hooks) -> None:
        """Collect, update and sync until ``env_steps >= total_steps`` or ``hooks.stop_requested``."""
        cfg = self.config
        if cfg.exploration_fraction is not None:
            self._decay_frames = max(1, int(cfg.exploration_fraction * total_steps))
        obs = self.start_envs()
        loss = None
        next_log = (self.env_steps // cfg.log_every_steps + 1) * cfg.log_every_steps

        while self.env_steps < total_steps and not hooks.stop_requested:
            # 1. collect one step of every world
            actions = self._epsilon_greedy(obs, self.epsilon)
            next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
            frames_before = self.tracker.transitions
            step = self.tracker.step(reward, terminated, truncated)
            frames = self.tracker.transitions
            live = step.transitions  # a world that ended last step was just reset: no transition
            if live.all():
                self.replay.add(obs, actions, reward, next_obs, terminated)
            else:
                self.replay.add(obs[live], actions[live], reward[live], next_obs[live], terminated[live])
            if len(step.finished):
                self._end_episodes(step.finished, hooks)
            obs = self.obs = next_obs

            # 2. update: gradient_steps per train_freq frames, once the memory holds learning_starts
            if frames >= cfg.learning_starts and len(self.replay) >= cfg.batch_size:
                # multiples of train_freq passed in (max(frames_before, learning_starts - 1), frames]
                first = max(frames_before, cfg.learning_starts - 1)
                rounds = frames // cfg.train_freq - first // cfg.train_freq
                for _ in range(max(0, rounds) * cfg.gradient_steps):
                    loss = self.update()

            # 3. sync the target network every target_update_interval frames
            if frames // cfg.target_update_interval > frames_before // cfg.target_update_interval:
                self.sync_target()

            if self.env_steps >= next_log:
                record = {"env_steps": self.env_steps, "epsilon": self.epsilon, "updates": self.updates}
                if loss is not None:
                    record["loss"] = float(loss.item())
                hooks.log(record)
                next_log = (self.env_steps // cfg.log_every_steps + 1) * cfg.log_every_steps
            if hooks.checkpoint_due(self.env_steps):
                hooks.save(self)

    def _end_episodes(self, finished: FinishedEpisodes, hooks: Hooks) -> None:
        for record in finished.records(self.env_steps):
            self._recent_returns = [*self._recent_returns[-99:], record["episode_return"]]
            hooks.log({**record, "mean_return_100": float(np.mean(self._recent_returns)), "epsilon": self.epsilon})

    @property
    def mean_return_100(self) -> float:
        """Mean return of the last 100 finished episodes (the book's ``cumulativeReward100``; NaN before any)."""
        return float(np.mean(self._recent_returns)) if self._recent_returns else float("nan")
