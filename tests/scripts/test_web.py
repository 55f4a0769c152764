"""The browser Snake page (web/): its JS port of the rules equals envs/snake, and in headless Chromium the
exported Q-network picks the moves the Python network picks on the same boards and seeded games.

* ``node`` tests run web/snake.js under Node (no browser) against ``gym.make("envs/Snake-v0")``.
* ``browser`` tests serve the page with scripts/serve_web.py and open it in headless Chromium with
  ``--dump-dom``; the page's test mode (``index.html?test=...``) writes its results into the DOM.
  Without a trained run, a randomly initialised Q-network of the book's architecture stands in: the
  point is that both sides compute the same greedy move.
Skipped, with the reason, where Node, Chromium or the npm TF.js package is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.snake.core import SnakeCore
from playgrad.cli import serve_web

ROOT = Path(__file__).resolve().parents[2]
SNAKE_JS = ROOT / "web" / "snake.js"
_DY, _DX = (-1, 0, 1, 0), (0, 1, 0, -1)  # up, right, down, left (envs/snake/core.py)


def _snake_cells(core: SnakeCore, world: int = 0) -> list[list[int]]:
    """The snake of board ``world`` as [row, col] cells from head to tail."""
    occupied = np.flatnonzero(core.occupied()[world])
    age = core.clock[world] - core.enter_time[world, occupied]
    return [[int(c // core.width), int(c % core.width)] for c in occupied[np.argsort(age)]]


def _heuristic_action(core: SnakeCore) -> int:
    """Move toward the fruit without dying when possible: long games with many fruits to check."""
    snake = {tuple(c) for c in _snake_cells(core)}
    fruit = np.flatnonzero(core.fruit[0])
    fy, fx = (int(fruit[0] // core.width), int(fruit[0] % core.width)) if fruit.size else (0, 0)
    best, best_dist = 0, None
    for a in range(3):
        d = int(core._turn[int(core.direction[0]) * 3 + a])
        ny, nx = int(core.head_y[0]) + _DY[d], int(core.head_x[0]) + _DX[d]
        if not (0 <= ny < core.height and 0 <= nx < core.width) or (ny, nx) in snake:
            continue
        dist = abs(ny - fy) + abs(nx - fx)
        if best_dist is None or dist < best_dist:
            best, best_dist = a, dist
    return best


def _heuristic_games(seeds, max_steps=400):
    """Per seed: the actions, observations, rewards of a heuristic game, and the boards it passed through."""
    def fruits(core):
        return [[int(c // core.width), int(c % core.width)] for c in np.flatnonzero(core.fruit[0])]

    games, boards = [], []
    for seed in seeds:
        env = gym.make("envs/Snake-v0")
        obs, _ = env.reset(seed=seed)
        core = env.unwrapped.core
        actions, observations, rewards = [], [obs], []
        for _ in range(max_steps):
            boards.append({"snake": _snake_cells(core), "direction": int(core.direction[0]), "fruits": fruits(core)})
            a = _heuristic_action(core)
            obs, reward, terminated, _, _ = env.step(a)
            actions.append(a)
            observations.append(obs)
            rewards.append(reward)
            if terminated:
                break
        games.append({"seed": seed, "actions": actions, "observations": observations, "rewards": rewards})
    return games, boards


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the JS Snake port is checked with `node`")
    return node


@pytest.mark.node
def test_js_snake_port_plays_the_same_games_as_envs_snake(tmp_path):
    node = _node_or_skip()
    games, _ = _heuristic_games(range(12))
    assert sum(r > 0 for g in games for r in g["rewards"]) >= 30  # fruit placement is exercised, not just moves
    (tmp_path / "games.json").write_text(json.dumps([{"seed": g["seed"], "actions": g["actions"]} for g in games]))
    script = """
    const {SnakeGame} = require(process.argv[1]);
    const games = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
    console.log(JSON.stringify(games.map(({seed, actions}) => {
      const g = new SnakeGame({seed});
      const obs = [Array.from(g.getState())], rewards = [];
      for (const a of actions) { rewards.push(g.step(a).reward); obs.push(Array.from(g.getState())); }
      return {obs, rewards};
    })));
    """
    proc = subprocess.run([node, "-e", script, str(SNAKE_JS), str(tmp_path / "games.json")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for game, js in zip(games, json.loads(proc.stdout)):
        np.testing.assert_allclose(js["rewards"], game["rewards"], atol=1e-12, err_msg=f"seed {game['seed']}")
        js_obs = np.asarray(js["obs"], np.float32).reshape(len(js["obs"]), 9, 9, 2)
        np.testing.assert_array_equal(js_obs, np.stack(game["observations"]), err_msg=f"seed {game['seed']}")


@pytest.mark.node
def test_typed_seed_above_2_53_gives_pythons_game():
    # The page read the seed box with Number(), which rounds 2**53 + 1 to 2**53: another game than Python's.
    node = _node_or_skip()
    seed = 2**53 + 1
    script = """
    const {SnakeGame, parseSeed} = require(process.argv[1]);
    const g = new SnakeGame({seed: parseSeed(process.argv[2])});
    const errors = ['abc', '1.5', '-1', String(2n ** 64n)].map((t) => {
      try { parseSeed(t); return null; } catch (err) { return err.message; }
    });
    console.log(JSON.stringify({snake: g.snake, fruits: g.fruits, random: parseSeed('  '), errors}));
    """
    proc = subprocess.run([node, "-e", script, str(SNAKE_JS), f" {seed} "], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    env = gym.make("envs/Snake-v0")
    env.reset(seed=seed)
    core = env.unwrapped.core
    assert js["snake"] == _snake_cells(core)
    assert js["fruits"] == [[int(c // core.width), int(c % core.width)] for c in np.flatnonzero(core.fruit[0])]
    assert js["random"] is None
    assert all(e and e.startswith("seed must be a whole number in [0, 2^64)") for e in js["errors"])


# ------------------------------------------------------------------------------ the page in Chromium
def _chromium_or_skip() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def _dump_dom(chromium: str, url: str, profile: Path) -> str:
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=60000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _python_greedy_game(model, seed: int, steps: int) -> dict:
    env = gym.make("envs/Snake-v0")
    obs, _ = env.reset(seed=seed)
    core = env.unwrapped.core
    start = {"snake": _snake_cells(core),
             "fruits": [[int(c // core.width), int(c % core.width)] for c in np.flatnonzero(core.fruit[0])]}
    actions, rewards = [], []
    for _ in range(steps):
        a = int(np.argmax(np.asarray(model.predict(obs[None]))[0]))
        obs, reward, terminated, _, _ = env.step(a)
        actions.append(a)
        rewards.append(reward)
        if terminated:
            break
    return {"start": start, "actions": actions, "rewards": rewards}


@pytest.mark.browser
def test_page_plays_the_python_policys_moves(tmp_path):
    chromium = _chromium_or_skip()
    try:
        serve_web.find_tfjs_bundle()
    except serve_web.ServeError as exc:
        pytest.skip(str(exc))
    from agents.networks import conv_q_network
    from rl import random as rl_random
    from rl import tfjs

    rl_random.seed(3)  # a fixed network
    model = conv_q_network((9, 9, 2), 3, filters=(16, 32), dense_units=(32,))
    # Wider output weights spread the Q-values, so the greedy move depends on the board, not a constant bias.
    model.state_dict()["dense_1/kernel"][...] *= 20
    tfjs.save_tfjs(model, tmp_path / "model", metadata={"agent": "dqn", "network": "q_net", "env": {}})
    _, boards = _heuristic_games(range(3), max_steps=60)
    seeds = list(range(8))
    cases = {"boards": boards, "games": [{"seed": s, "steps": 40} for s in seeds]}
    (tmp_path / "model" / "cases.json").write_text(json.dumps(cases))

    _, url, stop = serve_web.serve_in_thread(tmp_path / "model")
    try:
        dom = _dump_dom(chromium, url + "index.html?test=model/cases.json", tmp_path / "profile")
    finally:
        stop()
    match = re.search(r'<pre id="test-results">(.*?)</pre>', dom, re.S)
    assert match and match.group(1).strip(), "the page wrote no test results:\n" + dom[-2000:]
    results = json.loads(match.group(1))
    assert results["ok"], results.get("error")
    assert "Reward=" in dom  # the game UI ran and drew its status line

    # The same boards through Python's own encoding (SnakeCore.observe) and network.
    core = SnakeCore(len(boards))
    for i, b in enumerate(boards):
        core.set_board(i, [tuple(c) for c in b["snake"]], b["direction"], [tuple(c) for c in b["fruits"]])
    q_python = np.asarray(model.predict(core.observe()))
    q_js = np.array([r["qValues"] for r in results["boards"]])
    np.testing.assert_allclose(q_js, q_python, atol=1e-5)
    assert [r["action"] for r in results["boards"]] == q_python.argmax(1).tolist()
    assert len(set(q_python.argmax(1).tolist())) > 1  # the boards exercise more than one move

    for seed, js in zip(seeds, results["games"]):
        py = _python_greedy_game(model, seed, 40)
        assert js["start"] == py["start"], f"seed {seed}: different start"
        assert js["actions"] == py["actions"], f"seed {seed}: different moves"
        np.testing.assert_allclose(js["rewards"], py["rewards"], atol=1e-6)


def test_serve_web_refuses_what_it_cannot_serve(tmp_path):
    with pytest.raises(serve_web.ServeError, match="neither a run directory"):
        serve_web.prepare_model(tmp_path)
    (tmp_path / "config.toml").write_text('[experiment]\nagent = "ppo"\nenv_id = "envs/CartPole-v1"\n')
    with pytest.raises(serve_web.ServeError, match="DQN"):
        serve_web.prepare_model(tmp_path)
    from rl import layers as L
    from rl import tfjs
    from rl.models import Sequential

    policy = Sequential([L.Dense(2, input_shape=(4,))])
    tfjs.save_tfjs(policy, tmp_path / "cartpole", metadata={"env_id": "envs/CartPole-v1"})
    with pytest.raises(serve_web.ServeError, match="CartPole"):
        serve_web.prepare_model(tmp_path / "cartpole")
