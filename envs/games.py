"""The games a person can play: a short name per registered environment, with its keyboard controls.

``python scripts/play.py snake`` looks the name up here; ``train.py`` looks a run's env id up here to print the
``play.py`` command that watches it. Beside :data:`envs.ENV_IDS` (the Gymnasium registry) so that a new
environment is registered and made playable in one package::

    from envs.games import GAMES, game_of_env

    GAMES["snake"].env_id              # "envs/Snake-v0"
    game_of_env("envs/CartPole-v1")   # "cartpole"
"""

from __future__ import annotations

from typing import NamedTuple


class Game(NamedTuple):
    """One playable environment."""

    env_id: str
    """Its Gymnasium id (registered by importing :mod:`envs`)."""
    controls: str
    """The module with its keyboard controls: ``human_action(keys, env)`` and ``key_help(env)``; imported only when
    the game is played, since it needs pygame."""
    action_names: tuple[str, ...]
    """A label per discrete action (index = action), for the agent panel beside the picture."""


GAMES: dict[str, Game] = {
    "cartpole": Game("envs/CartPole-v1", "envs.cartpole.controls", ("left", "right")),
    "snake": Game("envs/Snake-v0", "envs.snake.controls", ("straight", "left", "right")),
    # motion="basic"; motion="control" has two continuous actions, CONTROL_ACTION_NAMES.
    "metacar": Game("envs/MetaCar-v0", "envs.metacar.controls", ("up", "left", "right", "down", "wait")),
}

CONTROL_ACTION_NAMES = ("throttle", "steering")  # MetaCar's motion="control": the two entries of its Box action


def game_of_env(env_id: str) -> str | None:
    """The game name of a Gymnasium ``env_id`` (``"envs/Snake-v0"`` -> ``"snake"``), or None when none is playable."""
    return next((name for name, game in GAMES.items() if game.env_id == env_id), None)
