"""Play an environment with the keyboard (or watch a policy play it).

    python scripts/play.py cartpole [--variant book]
    python scripts/play.py snake [--height 9 --width 9 --num-fruits 1 --init-len 2]
    python scripts/play.py metacar --level level1 [--motion control]
    python scripts/play.py snake --headless --frames 300     # no window, no waiting: for tests

Keys: the arrow keys steer (each env's ``controls.human_action`` maps them), R restarts the
episode, Esc or closing the window quits. The env draws its own score line; the window title
repeats the return and the episode count.

For agents: :func:`run_play` takes ``policy`` (a callable obs -> action); without one, the human
plays. An ``--agent RUN_DIR`` option only needs to build that callable and pass it in.
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

# name: (env id, controls module); MetaCar is imported only when asked for.
GAMES = {
    "cartpole": ("envs/CartPole-v1", "envs.cartpole.controls"),
    "snake": ("envs/Snake-v0", "envs.snake.controls"),
    "metacar": ("envs/MetaCar-v0", "envs.metacar.controls"),
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

    try:
        human_action = importlib.import_module(controls).human_action
    except ModuleNotFoundError as exc:
        raise SystemExit(f"{game} is not available yet ({exc}); try cartpole or snake") from exc
    return gym.make(env_id, render_mode=render_mode, **env_kwargs), human_action


def run_play(
    env: Any,
    policy: Callable[[Any], Any] | None = None,
    human_action: Callable[[Any, Any], Any] | None = None,
    frames: int | None = None,
    seed: int | None = None,
    end_pause_s: float = END_PAUSE_S,
) -> list[float]:
    """Run ``env`` (made with ``render_mode="human"``) until Esc, window close, or ``frames`` frames.

    Each frame steps the env once with ``policy(obs)`` if given, else ``human_action(keys, env)``
    (no keys pressed in a headless run). R restarts the episode; a finished one stays on screen
    for ``end_pause_s`` before the next starts. Returns the finished episodes' returns (an
    episode cut short by R or quitting is not counted).
    """
    import pygame  # noqa: PLC0415

    if policy is None and human_action is None:
        raise ValueError("run_play needs a policy (obs -> action) or a human_action(keys, env) function")
    fps = float(env.unwrapped.metadata.get("render_fps", 30)) or 30.0
    pause_frames = round(end_pause_s * fps)
    obs, _ = env.reset(seed=seed)
    returns: list[float] = []
    episode_return, ended_frames, tapped = 0.0, None, set()
    frame = 0
    while frames is None or frame < frames:
        frame += 1
        restart = False
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return returns
            if event.type == pygame.KEYDOWN:
                if event.key == pygame.K_ESCAPE:
                    return returns
                if event.key == pygame.K_r:
                    restart = True
                else:
                    tapped.add(event.key)
        if restart or (ended_frames is not None and ended_frames >= pause_frames):
            obs, _ = env.reset()
            episode_return, ended_frames = 0.0, None
            tapped.clear()
            continue
        if ended_frames is not None:  # keep the final frame ("Game Over") on screen for a moment
            ended_frames += 1
            env.render()
            continue
        if policy is not None:
            action = policy(obs)
        else:
            action = human_action(_KeyState(pygame.key.get_pressed(), tapped), env)
        tapped.clear()
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        if pygame.display.get_init() and pygame.display.get_surface() is not None:
            pygame.display.set_caption(f"return {episode_return:g}   episodes {len(returns)}")
        if terminated or truncated:
            returns.append(episode_return)
            ended_frames = 0
    return returns


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("game", choices=sorted(GAMES))
    p.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--headless", action="store_true",
                   help=f"no window (SDL dummy driver), no frame-rate limit; {HEADLESS_FRAMES} frames unless --frames")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the env's render_fps)")
    p.add_argument("--seed", type=int, default=None)
    cp = p.add_argument_group("cartpole")
    cp.add_argument("--variant", default=None, help="gym (default) or book")
    sn = p.add_argument_group("snake")
    sn.add_argument("--height", type=int, default=None)
    sn.add_argument("--width", type=int, default=None)
    sn.add_argument("--num-fruits", type=int, default=None)
    sn.add_argument("--init-len", type=int, default=None)
    mc = p.add_argument_group("metacar")
    mc.add_argument("--level", default=None, help="level name, e.g. level1")
    mc.add_argument("--motion", default=None, help="basic or control")
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
    try:
        env, human_action = make_env(args.game, "human", **args.env_kwargs)
    except (TypeError, ValueError) as exc:  # bad env options: say which, no traceback
        print(f"play.py: cannot make {args.game}: {exc}", file=sys.stderr)
        return 2
    fps = HEADLESS_FPS if args.headless else args.fps
    if fps is not None:  # an instance-level copy, so the class's metadata stays as it is
        env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": fps}
    import pygame  # noqa: PLC0415

    try:
        returns = run_play(env, human_action=human_action, frames=frames, seed=args.seed,
                           end_pause_s=0.0 if args.headless else END_PAUSE_S)
    except (KeyboardInterrupt, pygame.error) as exc:  # Ctrl-C, or the display went away under us
        print(f"play.py: stopped ({type(exc).__name__}: {exc})".rstrip(": )") + ")", file=sys.stderr)
        returns = []
    finally:
        env.close()
    mean = f", mean return {sum(returns) / len(returns):g}" if returns else ""
    print(f"{args.game}: {len(returns)} episodes finished{mean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
