"""The worlds the agents learn in: CartPole, Snake and MetaCar as Gymnasium environments.

Importing this package registers every environment with Gymnasium::

    import gymnasium as gym
    import envs  # noqa: F401  (registers the ids below)

    env = gym.make("envs/MetaCar-v0", level="level1", render_mode="human")
    vec = gym.make_vec("envs/Snake-v0", num_envs=1024, vectorization_mode="vector_entry_point")

Each environment has a batched array core (``core.py``: N worlds as arrays, one step for all of
them), a thin single-world ``Env`` (``env.py``), a native vector env (``vector.py``) and a pygame
renderer (``render.py``) that only reads state.
"""

from gymnasium.envs.registration import register, registry

_ENVS = {
    # id: (single-env entry point, vector entry point)
    "envs/CartPole-v1": ("envs.cartpole.env:CartPoleEnv", "envs.cartpole.vector:CartPoleVectorEnv"),
    "envs/Snake-v0": ("envs.snake.env:SnakeEnv", "envs.snake.vector:SnakeVectorEnv"),
    "envs/MetaCar-v0": ("envs.metacar.env:MetaCarEnv", "envs.metacar.vector:MetaCarVectorEnv"),
}

for _env_id, (_entry, _vector_entry) in _ENVS.items():
    if _env_id not in registry:
        # Episode limits live inside the envs (they are configurable), so no TimeLimit wrapper here.
        register(id=_env_id, entry_point=_entry, vector_entry_point=_vector_entry)

ENV_IDS = tuple(_ENVS)
