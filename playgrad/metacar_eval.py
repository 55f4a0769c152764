"""MetaCar's own scores of an agent: reward per step, crash-free fraction and speed on fresh worlds.

Used by the MetaCar benchmark (benchmarks/bench_metacar.py) and by the tests that check the original demo's
agents drive our port as they drove the original.
"""

from __future__ import annotations

import numpy as np

from agents.base import make_vec_env


def evaluate_metacar(agent, episodes: int, seed: int, **env_overrides) -> dict[str, float]:
    """Deterministic episodes of ``agent`` on fresh worlds of its own env (one world per episode).

    Returns the mean reward per step over the episode budget, the crash-free fraction (episodes that
    reached ``max_steps``), the mean speed in px/step, and the fraction that were both crash-free and at
    least 1 px/step on average (level2's target). ``env_overrides`` replace ``[env]`` entries
    (``shuffle_on_reset=False``: start where the level file puts the agent). The env always scores with the
    original's reward: a config's training-only ``crash_reward`` is set back to -1, so that reward/step stays
    comparable between agents trained with different penalties and with the original demo's agents.
    """
    env = make_vec_env(agent.experiment, episodes, **{**env_overrides, "crash_reward": -1.0})
    budget = int(env.max_steps)
    obs, _ = env.reset(seed=seed)
    returns, lengths, speed_sum = np.zeros(episodes), np.zeros(episodes, np.int64), np.zeros(episodes)
    crashed, running = np.zeros(episodes, bool), np.ones(episodes, bool)
    while running.any():
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=True))
        returns += np.where(running, reward, 0.0)
        lengths += running
        speed_sum += np.where(running, np.asarray(info["speed"], dtype=np.float64), 0.0)
        crashed |= running & terminated
        running &= ~(terminated | truncated)
    env.close()
    mean_speed = speed_sum / np.maximum(lengths, 1)
    survived = ~crashed & (lengths >= budget)
    return {"reward_per_step": float((returns / budget).mean()), "crash_free": float(survived.mean()),
            "mean_speed": float(mean_speed.mean()), "fast_and_safe": float((survived & (mean_speed >= 1.0)).mean()),
            "episodes": episodes}
