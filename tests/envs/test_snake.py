"""Snake: Gymnasium's contract, the book's rules (growth, walls, the tail cell, relative turns,
rewards, observation), seeding, configuration, and the vector env against single envs."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.snake.core import DOWN, LEFT, RIGHT, UP, SnakeCore
from envs.snake.env import default_max_steps

ID = "envs/Snake-v0"
STRAIGHT, TURN_LEFT, TURN_RIGHT = 0, 1, 2


def board(snake, direction, fruits, **kwargs):
    """A single env whose board is set to the given position."""
    env = gym.make(ID, **kwargs)
    env.reset(seed=0)
    env.unwrapped.core.set_board(0, snake, direction, fruits)
    return env


def head(env):
    core = env.unwrapped.core
    return int(core.head_y[0]), int(core.head_x[0])


@pytest.mark.parametrize("render_mode", [None, "rgb_array", "human"])
def test_check_env(render_mode):
    env = gym.make(ID, render_mode=render_mode)
    check_env(env.unwrapped)
    env.close()


def test_start_state_is_the_books():
    env = gym.make(ID)
    for seed in range(50):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (9, 9, 2) and obs.dtype == np.float32
        (hy, hx), = np.argwhere(obs[..., 0] == 2)
        body = np.argwhere(obs[..., 0] == 1)
        assert body.tolist() == [[hy, hx - 1]]  # init_len 2, horizontal, body to the left
        assert hx >= 1
        assert obs[..., 1].sum() == 1 and obs[..., 0][obs[..., 1] == 1].sum() == 0
        assert env.unwrapped.core.direction[0] == RIGHT
        assert info == {"fruits_eaten": 0, "length": 2}


def test_eating_grows_and_places_a_new_fruit():
    env = board([(4, 4), (4, 3)], RIGHT, [(4, 5)])
    obs, reward, terminated, truncated, info = env.step(STRAIGHT)
    assert reward == 10.0 and not terminated and not truncated
    assert info == {"fruits_eaten": 1, "length": 3}
    assert obs[4, 5, 0] == 2 and obs[4, 4, 0] == 1 and obs[4, 3, 0] == 1  # the tail stayed
    assert obs[..., 1].sum() == 1 and obs[4, 5, 1] == 0 and (obs[..., 0] * obs[..., 1]).sum() == 0
    obs, reward, *_ = env.step(STRAIGHT)
    assert obs[4, 3, 0] == 0 and (obs[..., 0] > 0).sum() == 3  # grown snake moves on at length 3
    assert reward in (-0.2, 10.0)


def test_plain_step_costs_0_2_and_moves_the_tail():
    env = board([(4, 4), (4, 3)], RIGHT, [(0, 0)])
    obs, reward, terminated, _, _ = env.step(STRAIGHT)
    assert reward == -0.2 and not terminated
    assert obs[4, 5, 0] == 2 and obs[4, 4, 0] == 1 and obs[4, 3, 0] == 0


@pytest.mark.parametrize("snake, direction", [
    ([(4, 8), (4, 7)], RIGHT), ([(0, 4), (1, 4)], UP), ([(8, 4), (7, 4)], DOWN), ([(4, 0), (4, 1)], LEFT),
])
def test_hitting_a_wall_kills(snake, direction):
    env = board(snake, direction, [(2, 2)])
    obs, reward, terminated, truncated, _ = env.step(STRAIGHT)
    assert terminated and not truncated and reward == -10.0
    assert not obs.any()  # the book encodes the terminal state as zeros


def test_moving_into_the_tail_cell_kills():
    # A 2x2 loop: head (0,0) heading left, tail at (1,0). Turning left (to "down") enters the tail's
    # cell; the book checks collisions before the tail moves, so this is death.
    env = board([(0, 0), (0, 1), (1, 1), (1, 0)], LEFT, [(5, 5)])
    _, reward, terminated, _, _ = env.step(TURN_LEFT)
    assert terminated and reward == -10.0


def test_moving_into_the_body_kills():
    env = board([(2, 2), (2, 3), (3, 3), (3, 2), (3, 1)], LEFT, [(5, 5)])
    _, reward, terminated, _, _ = env.step(TURN_LEFT)  # down, onto (3, 2)
    assert terminated and reward == -10.0


def test_a_length_three_snake_can_follow_its_tail():
    # Length 3 in an L: entering the cell the tail leaves is impossible, so no death in a tight turn.
    env = board([(2, 2), (2, 3), (3, 3)], LEFT, [(5, 5)])
    _, _, terminated, _, _ = env.step(TURN_LEFT)  # down to (3, 2), which is empty
    assert not terminated and head(env) == (3, 2)


@pytest.mark.parametrize("direction, action, expected", [
    (RIGHT, STRAIGHT, (4, 5)), (RIGHT, TURN_LEFT, (3, 4)), (RIGHT, TURN_RIGHT, (5, 4)),
    (UP, TURN_LEFT, (4, 3)), (UP, TURN_RIGHT, (4, 5)), (LEFT, TURN_LEFT, (5, 4)),
    (DOWN, TURN_LEFT, (4, 5)), (DOWN, TURN_RIGHT, (4, 3)),
])
def test_relative_turns(direction, action, expected):
    neck = {RIGHT: (4, 3), UP: (5, 4), LEFT: (4, 5), DOWN: (3, 4)}[direction]
    env = board([(4, 4), neck], direction, [(0, 0)])
    env.step(action)
    assert head(env) == expected


def test_truncation_and_its_default():
    env = board([(4, 4), (4, 3)], RIGHT, [(0, 0)], max_steps=6)
    for t in range(6):  # turning right every step circles in a 2x2 square forever
        _, _, terminated, truncated, _ = env.step(TURN_RIGHT)
        assert not terminated and truncated == (t == 5)
    assert gym.make(ID).unwrapped.max_steps == default_max_steps(9, 9) == 81 * 81


def test_configurable_board():
    env = gym.make(ID, height=5, width=7, num_fruits=3, init_len=3)
    obs, info = env.reset(seed=1)
    assert obs.shape == (5, 7, 2) and env.observation_space.shape == (5, 7, 2)
    assert obs[..., 1].sum() == 3 and (obs[..., 0] > 0).sum() == 3 and info["length"] == 3


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="init_len"):
        gym.make(ID, width=3, init_len=4)
    with pytest.raises(ValueError, match="num_fruits"):
        gym.make(ID, height=2, width=2, num_fruits=3)
    with pytest.raises(ValueError, match="max_steps"):
        gym.make(ID, max_steps=0)


def test_invalid_actions_raise_value_error():
    env = gym.make(ID)
    env.reset(seed=0)
    for bad in (3, -1, 1.0, "up"):
        with pytest.raises(ValueError, match=r"Discrete\(3\)"):
            env.step(bad)
    vec = gym.make_vec(ID, num_envs=2, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        vec.step(np.array([0, 3]))


def _play(seed, steps=200):
    env = gym.make(ID)
    rng = np.random.default_rng(0)
    out = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        o, r, te, tr, _ = env.step(int(rng.integers(3)))
        out.append(o)
        if te or tr:
            out.append(env.reset()[0])
    return np.array(out)


def test_seeded_determinism():
    assert np.array_equal(_play(3), _play(3))
    assert not np.array_equal(_play(3), _play(4))


def test_vector_env_equals_single_envs():
    n, seed = 12, 7
    kwargs = dict(height=6, width=6, num_fruits=2, init_len=3)
    vec = gym.make_vec(ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make(ID, **kwargs) for _ in range(n)]
    obs_v, _ = vec.reset(seed=seed)
    assert np.array_equal(obs_v, np.array([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(1)
    done = np.zeros(n, bool)
    episodes = fruits = 0
    for _ in range(400):
        a = rng.choice(3, size=n, p=[0.6, 0.2, 0.2])
        obs_v, rew_v, te_v, tr_v, _ = vec.step(a)
        for i, e in enumerate(singles):
            if done[i]:
                o, r, te, tr = e.reset()[0], 0.0, False, False
                episodes += 1
            else:
                o, r, te, tr, _ = e.step(int(a[i]))
            assert np.array_equal(obs_v[i], o)
            assert rew_v[i] == np.float32(r) and te_v[i] == te and tr_v[i] == tr
            done[i] = te or tr
        fruits += int((rew_v == 10).sum())
    assert episodes > n and fruits > 10  # autoreset and fruit placement were exercised


def test_fruits_never_land_on_the_snake():
    core = SnakeCore(256, 5, 5, num_fruits=2, init_len=2)
    core.rng.seed(0, None)
    core.reset_worlds(np.arange(256))
    rng = np.random.default_rng(0)
    for _ in range(300):
        _, died = core.step(rng.integers(0, 3, 256))
        ended = np.flatnonzero(died)
        core.reset_worlds(ended)
        occupied = core.occupied()
        assert not (occupied & core.fruit).any()
        full = occupied.sum(1) + 2 > 25
        assert np.all((core.fruit.sum(1) == 2) | full)


def test_rgb_render_draws_head_body_and_fruit():
    env = board([(4, 4), (4, 3)], RIGHT, [(1, 1)], render_mode="rgb_array")
    img = env.render()
    assert img.dtype == np.uint8 and img.shape[2] == 3
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert {(245, 140, 30), (40, 110, 210), (40, 170, 60)} <= colours  # head, body, fruit
