"""Play an environment with the keyboard (or watch a policy play it).

    python scripts/play.py cartpole [--variant book]
    python scripts/play.py snake [--height 9 --width 9 --num-fruits 1 --init-len 2]
    python scripts/play.py metacar --level level1 [--motion control]
    python scripts/play.py snake --headless --frames 300     # no window, no waiting: for tests
    python scripts/play.py cartpole --agent runs/cartpole_ppo-s0-...   # watch a trained agent

Keys: the arrow keys steer (each env's ``controls.human_action`` maps them), R restarts the
episode, Esc or closing the window quits. The env draws its own score line; the window title
repeats the return and the episode count.

With ``--agent RUN_DIR`` the run's trained agent plays (its best checkpoint, ``--tag latest`` for
the last one) in the env its config names, and a panel shows what it sees in each state: its
Q-values or action probabilities (as the book's snake page does), the chosen action highlighted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# ``python scripts/play.py`` puts scripts/ on the path, not the repository root with ``envs``.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# name: (env id, controls module); a game's controls are imported only when it is played.
GAMES = {
    "cartpole": ("envs/CartPole-v1", "envs.cartpole.controls"),
    "snake": ("envs/Snake-v0", "envs.snake.controls"),
    "metacar": ("envs/MetaCar-v0", "envs.metacar.controls"),
}
# Action labels for the overlay panel, by game (and MetaCar motion).
ACTION_NAMES = {
    "cartpole": ("left", "right"),
    "snake": ("straight", "left", "right"),
    "metacar": ("up", "left", "right", "down", "wait"),
}
END_PAUSE_S = 1.5  # how long a finished episode stays on screen before the next one starts
HEADLESS_FRAMES = 200
HEADLESS_FPS = 1e6  # "as fast as possible" (Gymnasium's checker rejects a render_fps of 0)


class _KeyState:
    """pygame key state that also reports keys tapped since the last frame, indexable by ``pygame.K_*``.

    A tap shorter than one frame (snake runs at 10 frames/s) would otherwise be missed.
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


def make_env(game: str, render_mode: str = "human", **env_kwargs: Any) -> tuple[Any, Callable[[Any, Any], Any]]:
    """Build ``game``'s env and return it with its ``human_action(pressed_keys, env)`` function."""
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; expected one of {sorted(GAMES)}")
    env_id, controls = GAMES[game]
    import gymnasium as gym  # noqa: PLC0415 - after SDL settings are in place

    import envs  # noqa: F401, PLC0415 - registers the ids

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
                       f"{sum(self) / len(self):g}"
        else:
            finished = "no episode finished yet"
        running = "" if self.unfinished_return is None else \
            f"; the one running had return {self.unfinished_return:g} after {self.unfinished_steps} steps"
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
) -> list[float]:
    """Run ``env`` (made with ``render_mode="human"``) until Esc, window close, or ``frames`` frames.

    Each frame steps the env once with ``policy(obs)`` if given, else ``human_action(keys, env)``
    (no keys pressed in a headless run). R restarts the episode; a finished one stays on screen
    for ``end_pause_s`` before the next starts. ``overlay(obs)`` (an agent's ``explain``) returns
    values drawn in a panel over the env's picture. Returns the finished episodes' returns (an
    episode cut short by R or quitting is not counted) as a :class:`Played`, which also counts the frames
    and steps and keeps the return of the episode left running.
    """
    import pygame  # noqa: PLC0415

    if policy is None and human_action is None:
        raise ValueError("run_play needs a policy (obs -> action) or a human_action(keys, env) function")
    fps = float(env.unwrapped.metadata.get("render_fps", 30)) or 30.0
    pause_frames = round(end_pause_s * fps)
    obs, _ = env.reset(seed=seed)
    returns = Played()
    episode_return, episode_steps, ended_frames, tapped = 0.0, 0, None, set()

    def done() -> Played:
        if ended_frames is None and episode_steps:  # an episode was running (not one on its end screen)
            returns.unfinished_return, returns.unfinished_steps = episode_return, episode_steps
        return returns

    while frames is None or returns.frames < frames:
        returns.frames += 1
        restart = False
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return done()
            if event.type == pygame.KEYDOWN:
                if event.key == pygame.K_ESCAPE:
                    return done()
                if event.key == pygame.K_r:
                    restart = True
                else:
                    tapped.add(event.key)
        if restart or (ended_frames is not None and ended_frames >= pause_frames):
            obs, _ = env.reset()
            episode_return, episode_steps, ended_frames = 0.0, 0, None
            tapped.clear()
            continue
        if ended_frames is not None:  # keep the final frame ("Game Over") on screen for a moment
            ended_frames += 1
            env.render()
            continue
        explanation = overlay(obs) if overlay is not None else None
        if policy is not None:
            action = policy(obs)
        else:
            action = human_action(_KeyState(pygame.key.get_pressed(), tapped), env)
        tapped.clear()
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        episode_steps += 1
        returns.steps += 1
        if pygame.display.get_init() and pygame.display.get_surface() is not None:
            pygame.display.set_caption(f"return {episode_return:g}   episodes {len(returns)}")
            if explanation:
                draw_overlay(pygame.display.get_surface(), explanation, action, action_names)
                pygame.display.flip()
        if terminated or truncated:
            returns.append(episode_return)
            ended_frames = 0
    return done()


def draw_overlay(surface: Any, explanation: dict[str, Any], action: Any, names: Sequence[str] = ()) -> None:
    """Draw an agent's per-action values (``{"q_values": (A,)}`` or ``{"probs": (A,)}``) as bars in
    the top-right corner of ``surface``; the taken ``action`` is highlighted. Other keys are ignored."""
    import numpy as np  # noqa: PLC0415
    import pygame  # noqa: PLC0415

    titles = {"q_values": "Q-values", "probs": "action probabilities"}
    key = next((k for k in titles if k in explanation), None)
    if key is None:
        return
    title, values = titles[key], np.asarray(explanation[key], dtype=float).reshape(-1)
    font = pygame.font.Font(None, 18)
    row_h, bar_w, pad = 16, 70, 6
    width = 150
    height = pad * 2 + row_h * (len(values) + 1)
    panel = pygame.Surface((width, height), pygame.SRCALPHA)
    panel.fill((20, 20, 28, 190))
    panel.blit(font.render(title, True, (235, 235, 235)), (pad, pad))
    span = max(float(np.abs(values).max()), 1e-9)
    chosen = int(np.asarray(action).reshape(-1)[0]) if np.asarray(action).size == 1 else -1
    for i, v in enumerate(values):
        y = pad + row_h * (i + 1)
        label = names[i] if i < len(names) else str(i)
        colour = (255, 210, 80) if i == chosen else (200, 200, 200)
        panel.blit(font.render(f"{label[:8]:<8} {v:+.2f}", True, colour), (pad, y))
        length = int(bar_w * abs(v) / span * 0.5)
        bar_x = width - pad - bar_w // 2
        bar_colour = (90, 200, 120) if v >= 0 else (220, 90, 90)
        rect = (bar_x, y + 3, length, row_h - 6) if v >= 0 else (bar_x - length, y + 3, length, row_h - 6)
        pygame.draw.rect(panel, bar_colour, rect)
    surface.blit(panel, (surface.get_width() - width - 4, 4))


def load_agent_policy(run_dir: str, tag: str) -> tuple[Any, dict[str, Any], str]:
    """Load a run's agent; return (agent, the run's env kwargs, its env id)."""
    from agents.runner import load_agent  # noqa: PLC0415
    from rl.experiment import RunDir  # noqa: PLC0415

    config = RunDir.open(run_dir).read_config()  # a mistyped path raises RunNotFoundError and creates nothing
    agent = load_agent(run_dir, tag=tag)
    return agent, dict(config.get("env", {})), config.get("experiment", {}).get("env_id", "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``env_kwargs`` holds the options of the chosen game (another game's option is an error)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("game", choices=sorted(GAMES), help="which environment to play")
    p.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--headless", action="store_true",
                   help=f"no window (SDL dummy driver), no frame-rate limit; {HEADLESS_FRAMES} frames unless --frames")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the env's render_fps)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the env's random stream: the same seed, the same starts (default: unseeded)")
    p.add_argument("--agent", metavar="RUN_DIR", default=None, help="let this run's trained agent play")
    p.add_argument("--tag", default="best", choices=["best", "latest"],
                   help="which checkpoint of --agent: best (default) or latest")
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
        if env_id != GAMES[args.game][0]:
            print(f"play.py: {args.agent} trained on {env_id!r}, not {args.game}", file=sys.stderr)
            return 2
        # The run's [env] table was written for its vector env: `device` (where a batch of worlds runs) has
        # no single-env counterpart, and the window plays one world on the host.
        run_env_kwargs.pop("device", None)
        env_kwargs = {**run_env_kwargs, **env_kwargs}

        def policy(obs: Any) -> Any:
            import numpy as np  # noqa: PLC0415

            return agent.act(np.asarray(obs)[None], deterministic=True)[0]

        def overlay(obs: Any) -> dict[str, Any]:
            import numpy as np  # noqa: PLC0415

            return {k: np.asarray(v).reshape(-1) for k, v in agent.explain(np.asarray(obs)).items()}

    try:
        env, human_action = make_env(args.game, "human", **env_kwargs)
    except (TypeError, ValueError) as exc:  # bad env options: say which, no traceback
        print(f"play.py: cannot make {args.game}: {exc}", file=sys.stderr)
        return 2
    fps = HEADLESS_FPS if args.headless else args.fps
    if fps is not None:  # an instance-level copy, so the class's metadata stays as it is
        env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": fps}
    import pygame  # noqa: PLC0415

    try:
        names = ACTION_NAMES.get(args.game, ()) if env_kwargs.get("motion", "basic") == "basic" else ()
        played = run_play(env, policy=policy, human_action=human_action, frames=frames, seed=args.seed,
                          end_pause_s=0.0 if args.headless else END_PAUSE_S, overlay=overlay,
                          action_names=names)
    except (KeyboardInterrupt, pygame.error) as exc:  # Ctrl-C, or the display went away under us
        print(f"play.py: stopped ({type(exc).__name__}: {exc})".rstrip(": )") + ")", file=sys.stderr)
        return 0
    finally:
        env.close()
    print(played.summary(args.game))
    return 0


if __name__ == "__main__":
    sys.exit(main())
