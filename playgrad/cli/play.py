"""Play an environment with the keyboard (or watch a trained agent play it).

    python scripts/play.py cartpole [--variant book]
    python scripts/play.py snake [--height 9 --width 9 --num-fruits 1 --init-len 2] [--fps 6]
    python scripts/play.py metacar --level level1 [--motion control]
    python scripts/play.py snake --headless --frames 300     # no window, no waiting: for tests
    python scripts/play.py cartpole --agent runs/cartpole_ppo-s0-...   # watch a trained agent
    python scripts/play.py metacar --agent original:ddpg-traffic       # the original demo's own agent drives

Keys (the strip under the picture repeats them):
  cartpole   Left/Right push the cart
  snake      the arrows turn the snake (it cannot reverse)
  metacar    Up drives, Down backs up, Left/Right turn (--motion control: Up/Down throttle, Left/Right steer)
  every game R restarts the episode, P pauses, Esc or closing the window quits
A keyboard game waits for its first key (and again after each episode). Snake runs at 6 steps/s when
you play it (10 when an agent does); --fps sets the speed. The window title shows the return and the
number of finished episodes.

With ``--agent RUN_DIR`` the run's trained agent plays (its best checkpoint, ``--tag latest`` for the
last one) in the env its config names, and a panel beside the picture shows what it sees in the state
on screen: its Q-values or action probabilities, the action it takes next marked with an arrow, or, for
continuous actions (DDPG), the action as signed bars and the critic's Q-value for it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from envs.games import CONTROL_ACTION_NAMES, GAMES
from playgrad.cli import add_checkpoint_option
from playgrad.window import PlayWindow, agent_policy, key_help
from rl.console import format_number
from rl.experiment import seed_int

# Steps per second when a person plays: the env's own 10 for Snake (the book's demo speed, fine for
# watching an agent) left newcomers 27 steps per game.
HUMAN_FPS = {"snake": 6.0}
END_PAUSE_S = 1.5  # how long a finished episode stays on screen before the next one starts
HEADLESS_FRAMES = 200
HEADLESS_FPS = 1e6  # "as fast as possible" (Gymnasium's checker rejects a render_fps of 0)



class _KeyState:
    """pygame key state that also reports keys tapped since the last frame, indexable by ``pygame.K_*``.

    A tap shorter than one frame (snake runs at a few frames/s) would otherwise be missed.
    """

    def __init__(self, held: Sequence[bool], tapped: set[int]):
        self._held, self._tapped = held, tapped

    def __getitem__(self, key: int) -> bool:
        if key in self._tapped:
            return True
        try:
            return bool(self._held[key])
        except (IndexError, KeyError):  # a key code the state table does not cover
            return False


def make_env(game: str, render_mode: str = "rgb_array", **env_kwargs: Any) -> tuple[Any, Callable[[Any, Any], Any]]:
    """Build ``game``'s env and return it with its ``human_action(pressed_keys, env)`` function.

    The play window draws the env's ``"rgb_array"`` frames itself (with the panel and the key help), so
    that is the default mode here.
    """
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; expected one of {sorted(GAMES)}")
    env_id, controls = GAMES[game].env_id, GAMES[game].controls
    import gymnasium as gym  # noqa: PLC0415 - (importing envs.games has registered the ids)

    human_action = importlib.import_module(controls).human_action
    return gym.make(env_id, render_mode=render_mode, **env_kwargs), human_action


class Played(list):
    """The finished episodes' returns (a list of floats), plus what ran: ``frames`` drawn, env ``steps`` taken,
    and the ``unfinished_return`` and ``unfinished_steps`` of the episode still running at the end (None and 0
    when none was). A short headless run on MetaCar finishes no episode; "0 episodes finished" alone read as
    if nothing had run."""

    frames: int = 0
    steps: int = 0
    unfinished_return: float | None = None
    unfinished_steps: int = 0

    def summary(self, game: str) -> str:
        """One line: what ran, the finished episodes' mean return, the episode left running."""
        ran = f"{game}: {self.frames} frames, {self.steps} steps"
        if self:
            finished = f"{len(self)} episode{'s' if len(self) != 1 else ''} finished, mean return " \
                       f"{format_number(sum(self) / len(self))}"
        else:
            finished = "no episode finished yet"
        running = "" if self.unfinished_return is None else \
            f"; the one running had return {format_number(self.unfinished_return)} after {self.unfinished_steps} steps"
        return f"{ran}; {finished}{running}"


def run_play(
    env: Any,
    policy: Callable[[Any], Any] | None = None,
    human_action: Callable[[Any, Any], Any] | None = None,
    frames: int | None = None,
    seed: int | None = None,
    end_pause_s: float = END_PAUSE_S,
    overlay: Callable[[Any], dict[str, Any]] | None = None,
    action_names: Sequence[str] = (),
    fps: float | None = None,
    help_text: str = "R restart   P pause   Esc quit",
    wait_for_key: bool = False,
    title: str = "",
) -> Played:
    """Run ``env`` (made with ``render_mode="rgb_array"``) in a :class:`PlayWindow` until Esc, window close, or
    ``frames`` frames.

    Each frame steps the env once with ``policy(obs)`` if given, else ``human_action(keys, env)`` (no keys
    pressed in a headless run), then shows the new state: one composed frame, one flip, at most ``fps``
    (default: the env's ``render_fps``) frames per second. With a policy, the panel shows ``overlay(obs)``
    (an agent's ``explain``) for the state on screen, the action the policy takes there marked. R restarts
    the episode, P pauses; ``wait_for_key`` holds each new episode until a key is pressed. A finished
    episode stays on screen for ``end_pause_s``. Returns the finished episodes' returns (an episode cut short
    by R or quitting is not counted) as a :class:`Played`, which also counts the frames and steps and keeps
    the return of the episode left running.
    """
    import pygame  # noqa: PLC0415

    if policy is None and human_action is None:
        raise ValueError("run_play needs a policy (obs -> action) or a human_action(keys, env) function")
    if env.render_mode != "rgb_array":
        raise ValueError(f"run_play draws the env's frames itself: make the env with render_mode='rgb_array', "
                         f"not {env.render_mode!r}")
    fps = float(fps or env.unwrapped.metadata.get("render_fps", 30) or 30.0)
    pause_frames = round(end_pause_s * fps)
    window = PlayWindow(title or env.unwrapped.__class__.__name__.removesuffix("Env"), help_text,
                        panel=policy is not None, action_space=env.action_space)
    returns = Played()
    episode_return = 0.0
    episode_steps = 0
    ended_frames: int | None = None
    tapped: set[int] = set()
    paused = False
    waiting = wait_for_key
    planned = explanation = None  # the policy's action in the state on screen, and its explanation

    def new_episode(**reset_kwargs: Any) -> Any:
        nonlocal episode_return, episode_steps, ended_frames, waiting
        obs, _ = env.reset(**reset_kwargs)
        episode_return, episode_steps, ended_frames, waiting = 0.0, 0, None, wait_for_key
        tapped.clear()
        return obs

    def look_at(obs: Any) -> None:
        nonlocal planned, explanation
        if policy is not None:
            planned = policy(obs)
            explanation = overlay(obs) if overlay is not None else {}

    def done() -> Played:
        if ended_frames is None and episode_steps:  # an episode was running (not one on its end screen)
            returns.unfinished_return, returns.unfinished_steps = episode_return, episode_steps
        return returns

    obs = new_episode(seed=seed)
    look_at(obs)
    try:
        while frames is None or returns.frames < frames:
            returns.frames += 1
            restart = False
            closed, keys = window.events()
            if closed:
                return done()
            for key in keys:
                if key == pygame.K_ESCAPE:
                    return done()
                if key == pygame.K_r:
                    restart = True
                elif key == pygame.K_p:
                    paused = not paused
                else:
                    tapped.add(key)
                    waiting = paused = False
            banner = ""
            if restart or (ended_frames is not None and ended_frames >= pause_frames):
                obs = new_episode()
                look_at(obs)
            elif ended_frames is not None:  # keep the final frame ("Game Over") on screen for a moment
                ended_frames += 1
            elif waiting:
                banner = "press a key to start"
            elif paused:
                banner = "paused: P resumes"
            else:
                if policy is not None:
                    action = planned
                else:
                    action = human_action(_KeyState(pygame.key.get_pressed(), tapped), env)
                tapped.clear()
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                episode_steps += 1
                returns.steps += 1
                if terminated or truncated:
                    returns.append(episode_return)
                    ended_frames = 0
                look_at(obs)
            caption = f"return {format_number(episode_return)}   episodes {len(returns)}"
            window.show(env.render(), fps, caption, banner, explanation, planned, action_names)
    finally:
        window.close()
    return done()


def load_agent_policy(run_dir: str, tag: str) -> tuple[Any, dict[str, Any], str]:
    """Load a run's agent; return (agent, the run's env kwargs, its env id).

    ``run_dir`` may name one of the original MetaCar demo's agents instead (``original:ddpg-traffic``, its
    ``.json`` file or a folder holding one; :mod:`agents.originals`): it plays in the setting it was trained in.
    """
    from agents.originals import is_original_source, load_original  # noqa: PLC0415
    from agents.runner import load_agent  # noqa: PLC0415
    from rl.experiment import RunDir  # noqa: PLC0415

    if is_original_source(run_dir):
        agent = load_original(run_dir)
        return agent, dict(agent.experiment.env), agent.experiment.env_id
    config = RunDir.open(run_dir).read_config()  # a mistyped path raises RunNotFoundError and creates nothing
    agent = load_agent(run_dir, tag=tag)
    return agent, dict(config.get("env", {})), config.get("experiment", {}).get("env_id", "")


def _positive_fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of frames per second, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``env_kwargs`` holds the options of the chosen game (another game's option is an error)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("game", choices=sorted(GAMES), help="which environment to play")
    p.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--headless", action="store_true",
                   help=f"no window (SDL dummy driver), no frame-rate limit, no waiting for a key;\n"
                        f"{HEADLESS_FRAMES} frames unless --frames")
    p.add_argument("--fps", type=_positive_fps, default=None,
                   help="frames (steps) per second (default: the env's render_fps; 6 for snake played by hand)")
    p.add_argument("--seed", type=seed_int, default=None,
                   help="seed of the env's random stream: the same seed, the same starts (default: unseeded)")
    p.add_argument("--agent", metavar="RUN_DIR", default=None,
                   help="let this run's trained agent play (metacar: also an original demo agent, "
                        "original:qtable|policy|ddpg-road|ddpg-traffic or its .json file)")
    add_checkpoint_option(p, dest="tag", of="--agent")
    cp = p.add_argument_group("cartpole")
    cp.add_argument("--variant", default=None, help="gym (default) or book")
    sn = p.add_argument_group("snake")
    sn.add_argument("--height", type=int, default=None, help="board rows (default 9)")
    sn.add_argument("--width", type=int, default=None, help="board columns (default 9)")
    sn.add_argument("--num-fruits", type=int, default=None, help="fruits on the board at once (default 1)")
    sn.add_argument("--init-len", type=int, default=None, help="starting length of the snake (default 2)")
    mc = p.add_argument_group("metacar")
    mc.add_argument("--level", default=None,
                    help="bundled level (level0, level1, level2, level3, full_city) or a .json file from\n"
                         "edit_level.py (default level1)")
    mc.add_argument("--motion", default=None,
                    help="basic (default: 5 discrete moves) or control (throttle and steering)")
    args = p.parse_args(argv)
    if args.frames is not None and args.frames < 0:
        p.error("--frames must be >= 0")
    per_game = {"cartpole": ("variant",), "snake": ("height", "width", "num_fruits", "init_len"),
                "metacar": ("level", "motion")}
    for game, names in per_game.items():
        for name in names:
            if getattr(args, name) is not None and args.game != game:
                p.error(f"--{name.replace('_', '-')} applies to {game}, not {args.game}")
    args.env_kwargs = {n: getattr(args, n) for n in per_game[args.game] if getattr(args, n) is not None}
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    frames = args.frames
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
        frames = HEADLESS_FRAMES if frames is None else frames
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    policy = overlay = None
    env_kwargs = args.env_kwargs
    if args.agent is not None:
        from rl.experiment import RunNotFoundError  # noqa: PLC0415

        try:
            agent, run_env_kwargs, env_id = load_agent_policy(args.agent, args.tag)
        except RunNotFoundError as exc:  # its message starts with the path already
            print(f"play.py: cannot load agent: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # a missing or corrupt checkpoint, a run the env refuses: say which
            print(f"play.py: cannot load agent from {args.agent}: {exc}", file=sys.stderr)
            return 2
        if env_id != GAMES[args.game].env_id:
            print(f"play.py: {args.agent} trained on {env_id!r}, not {args.game}", file=sys.stderr)
            return 2
        # The run's [env] table was written for its vector env: `device` (where a batch of worlds runs) has
        # no single-env counterpart, and the window plays one world on the host.
        run_env_kwargs.pop("device", None)
        env_kwargs = {**run_env_kwargs, **env_kwargs}
        policy, overlay = agent_policy(agent)
    elif args.game == "snake":
        # A person needs a step to react: no start facing the wall one cell ahead (the learning env keeps the
        # book's random starts).
        env_kwargs = {"safe_start": True, **env_kwargs}

    try:
        env, human_action = make_env(args.game, "rgb_array", **env_kwargs)
        if policy is not None and args.env_kwargs:
            # The agent may drive another level, but not see or act through other spaces than it learned.
            try:
                own, _ = make_env(args.game, "rgb_array", **run_env_kwargs)
            except (TypeError, ValueError):
                env.close()  # the window's env is made: close it before saying why the run's own is not
                raise
            own.close()
            if (own.observation_space, own.action_space) != (env.observation_space, env.action_space):
                given = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.env_kwargs.items())
                env.close()
                print(f"play.py: {given} gives the agent observations {env.observation_space.shape} and actions "
                      f"{env.action_space}; {args.agent} learned with {own.observation_space.shape} and "
                      f"{own.action_space}: leave those options out", file=sys.stderr)
                return 2
    except (TypeError, ValueError) as exc:  # bad env options: say which, no traceback
        print(f"play.py: cannot make {args.game}: {exc}", file=sys.stderr)
        return 2
    if args.headless:
        fps = HEADLESS_FPS
    elif args.fps is not None:
        fps = args.fps
    else:
        fps = HUMAN_FPS.get(args.game) if policy is None else None  # None: the env's render_fps
    import pygame  # noqa: PLC0415

    if env_kwargs.get("motion", "basic") == "control":
        names = CONTROL_ACTION_NAMES
    else:
        names = GAMES[args.game].action_names
    try:
        played = run_play(env, policy=policy, human_action=human_action, frames=frames, seed=args.seed,
                          end_pause_s=0.0 if args.headless else END_PAUSE_S, overlay=overlay,
                          action_names=names, fps=fps, help_text=key_help(args.game, env, policy is not None),
                          wait_for_key=policy is None and not args.headless, title=args.game)
    except (KeyboardInterrupt, pygame.error) as exc:  # Ctrl-C, or the display went away under us
        print(f"play.py: stopped ({type(exc).__name__}: {exc})".rstrip(": )") + ")", file=sys.stderr)
        return 0
    finally:
        env.close()
    print(played.summary(args.game))
    return 0


if __name__ == "__main__":
    sys.exit(main())
