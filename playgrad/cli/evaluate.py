"""Evaluate a trained run: deterministic episodes with its best (or latest) checkpoint.

    python scripts/evaluate.py runs/cartpole_ppo-s0-20250101-120000 --episodes 50
    python scripts/evaluate.py RUN_DIR --render      # watch it in a pygame window

Prints the mean, standard deviation, min and max of the returns; ``--render`` plays the episodes one
by one in play.py's window (the picture, the agent's panel, the key strip: R restarts the episode, P
pauses, Esc quits) instead of in a batch and prints each one's return. An
episode is cut after ``--max-steps`` steps (default 100,000), so one that never ends cannot hang.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny networks: threads only add overhead

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from agents.base import Agent  # noqa: E402
from agents.originals import OriginalAgent  # noqa: E402
from agents.runner import evaluate  # noqa: E402
from envs.games import GAMES, game_of_env  # noqa: E402
from playgrad.cli import add_checkpoint_option  # noqa: E402
from playgrad.runs import load_agent_or_report  # noqa: E402
from playgrad.window import PlayWindow, agent_policy, key_help  # noqa: E402
from rl.experiment import positive_int, seed_int  # noqa: E402

MAX_STEPS = 100_000  # steps after which an episode is cut (runner.evaluate's default)


def render_episodes(agent: Agent, episodes: int, seed: int, max_steps: int = MAX_STEPS) -> list[float]:
    """Play ``episodes`` episodes one at a time in play.py's window; returns their returns.

    The window is play.py's own (:class:`~playgrad.window.PlayWindow`): the picture, the agent's panel and
    the key strip under them. R restarts the episode (same seed), P pauses, Esc or closing the window stops
    (the episodes finished so far are returned). Episode ``k`` starts from env seed ``seed + k``. An episode
    still running after ``max_steps`` steps is cut there (an env made with ``max_steps = None`` never
    truncates, and a good agent never fails).
    """
    import gymnasium as gym  # noqa: PLC0415
    import pygame  # noqa: PLC0415

    env = gym.make(agent.experiment.env_id, render_mode="rgb_array", **agent.experiment.env)
    game = game_of_env(agent.experiment.env_id)
    names = GAMES[game].action_names if game is not None else ()
    fps = float(env.unwrapped.metadata.get("render_fps", 30) or 30.0)
    window = PlayWindow(game or agent.experiment.env_id, key_help(game, env, agent=True) if game else
                        "agent playing   R restart   P pause   Esc quit", panel=True, action_space=env.action_space)
    policy, overlay = agent_policy(agent)
    returns: list[float] = []
    try:
        while len(returns) < episodes:
            k = len(returns)
            obs, _ = env.reset(seed=seed + k)
            planned, explanation = policy(obs), overlay(obs)  # the action on screen, marked in the panel
            total, done, steps, paused, restart = 0.0, False, 0, False, False
            while not done and steps < max_steps and not restart:
                closed, keys = window.events()
                if closed or pygame.K_ESCAPE in keys:
                    return returns
                restart = pygame.K_r in keys
                paused ^= keys.count(pygame.K_p) % 2 == 1
                if not paused and not restart:
                    obs, reward, terminated, truncated, _ = env.step(planned)
                    total += float(reward)
                    steps += 1
                    done = terminated or truncated
                    planned, explanation = policy(obs), overlay(obs)
                window.show(env.render(), fps, f"episode {k + 1} of {episodes}   return {total:.1f}",
                            "paused: P resumes" if paused else "", explanation, planned, names)
            if restart:
                continue
            returns.append(total)
            print(f"episode {k + 1}: return {total:.1f}" + ("" if done else f" (cut at {max_steps} steps)"))
    finally:
        window.close()
        env.close()
    return returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory written by scripts/train.py, or an original MetaCar demo "
                                        "agent (original:qtable|policy|ddpg-road|ddpg-traffic, or its .json file)")
    parser.add_argument("--episodes", type=positive_int, default=20, help="episodes to play (default 20)")
    add_checkpoint_option(parser)
    parser.add_argument("--seed", type=seed_int, help="env seed (default: the run's seed + 1,000,000)")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window")
    parser.add_argument("--max-steps", type=positive_int, default=MAX_STEPS,
                        help=f"cut an episode after this many steps (default {MAX_STEPS:,})")
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"],
                        help="array backend (default: the run's own; --device cpu evaluates a GPU run anywhere)")
    args = parser.parse_args(argv)
    agent = load_agent_or_report(args.run_dir, args.checkpoint, args.device)
    if agent is None:
        return 1
    seed = agent.experiment.seed + 1_000_000 if args.seed is None else args.seed
    if args.render:
        returns = render_episodes(agent, args.episodes, seed, args.max_steps)
        print(f"mean return {np.mean(returns):.1f} over {len(returns)} episodes")
        return 0
    result = evaluate(agent, episodes=args.episodes, seed=seed, max_steps=args.max_steps)
    cut = f", {result['unfinished']} cut at {args.max_steps} steps" if result["unfinished"] else ""
    which = ("the original demo's agent" if isinstance(agent, OriginalAgent)
             else f"{args.checkpoint}, {result['env_steps']} training steps")
    print(f"{args.run_dir} ({which}): mean return "
          f"{result['mean_return']:.1f} +- {result['std_return']:.1f} (min {result['min_return']:.1f}, "
          f"max {result['max_return']:.1f}) over {result['episodes']} episodes{cut}")
    note = step_limit_note(agent, result["lengths"], result["returns"], args.run_dir)
    if note:
        print(note)
    return 0


def step_limit_note(agent: Agent, lengths: list[int], returns: list[float], run_dir: str) -> str:
    """A line on the episodes that ran to the env's step limit (truncated, the game never ended), or "".

    A greedy Snake policy that circles the board without eating plays until the limit: its mean return alone
    reads like a bad score, not like a loop. On CartPole the limit is the goal, and the line says that instead.
    """
    limit = env_step_limit(agent)
    at_limit = [r for n, r in zip(lengths, returns) if limit and n >= limit]
    if not at_limit:
        return ""
    share = f"{len(at_limit)} of {len(lengths)} episodes"
    if agent.experiment.env_id == "envs/Snake-v0":
        return (f"{share} ran to the {limit}-step limit without the game ending: the greedy snake loops (circles "
                f"without reaching the fruit); their mean return is {np.mean(at_limit):.1f}. Train longer, or watch "
                f"it: python scripts/play.py snake --agent {run_dir}")
    return f"{share} lasted the env's whole {limit}-step limit (truncated, not ended)"


def env_step_limit(agent: Agent) -> int | None:
    """The env's truncation limit (its ``max_steps``) for the run's [env] table, or None when it has none."""
    import gymnasium as gym  # noqa: PLC0415

    import envs  # noqa: F401, PLC0415

    env = gym.make(agent.experiment.env_id, **agent.experiment.env)
    try:
        limit = getattr(env.unwrapped, "max_steps", None)
        return int(limit) if limit else None
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
