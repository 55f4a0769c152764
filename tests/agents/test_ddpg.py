"""DDPG: soft-update math, the adaptive parameter-noise rule, per-world perturbed actors, checkpoint round
trip, config errors, and learning to drive on MetaCar level2."""

import numpy as np
import pytest
from test_reinforce import FakeHooks  # same directory (pytest prepends it to sys.path)
from threadpoolctl import threadpool_limits  # via scikit-learn, a dev dependency

from agents.ddpg import adapt_param_noise, soft_update
from agents.runner import evaluate, load_checkpoint, make_agent, save_checkpoint
from rl import backend

LEVEL2 = {"level": "level2", "motion": "control", "lidar": {"pts": 5, "width": 3, "height": 7, "pos": -0.5},
          "max_steps": 800, "shuffle_on_reset": "agent"}


def ddpg_agent(seed=0, env=None, **agent):
    backend.use_device("cpu")
    config = {"experiment": {"agent": "ddpg", "env_id": "envs/MetaCar-v0", "seed": seed, "total_steps": 10**6,
                             "device": "cpu"},
              "env": dict(LEVEL2 if env is None else env),
              "agent": {"num_envs": 4, "learning_starts": 500, "train_every_steps": 200, "gradient_steps": 20,
                        "batch_size": 64, "log_every_steps": 500, **agent}}
    return make_agent(config, where="test")


def test_soft_update_is_polyak_averaging_in_place():
    target = [np.ones((2, 3), np.float32), np.full(4, -2.0, np.float32)]
    source = [np.full((2, 3), 3.0, np.float32), np.zeros(4, np.float32)]
    kept = [t for t in target]
    soft_update(target, source, 0.25)
    np.testing.assert_allclose(target[0], 0.75 * 1 + 0.25 * 3)
    np.testing.assert_allclose(target[1], 0.75 * -2.0)
    assert all(a is b for a, b in zip(kept, target))  # in place: optimizers and models keep these arrays
    for _ in range(9):  # ten updates in all: the gap to the source shrinks by (1 - tau) each time
        soft_update(target, source, 0.25)
    np.testing.assert_allclose(target[0], 3.0 - 2.0 * 0.75**10, rtol=1e-5)
    soft_update(target, source, 1.0)  # tau = 1 is a hard copy
    np.testing.assert_array_equal(target[1], source[1])


def test_param_noise_rule_hand_case():
    # The demo's rule with alpha = 1.01: too far -> shrink, close enough -> grow (a tie grows).
    assert adapt_param_noise(0.2, distance=0.15, desired=0.1, coefficient=1.01) == pytest.approx(0.2 / 1.01)
    assert adapt_param_noise(0.2, distance=0.05, desired=0.1, coefficient=1.01) == pytest.approx(0.202)
    assert adapt_param_noise(0.2, distance=0.1, desired=0.1, coefficient=1.01) == pytest.approx(0.202)
    sigma = 0.1
    for _ in range(3):
        sigma = adapt_param_noise(sigma, 1.0, 0.1, 1.01)
    assert sigma == pytest.approx(0.1 / 1.01**3)


def _reference_actor(x, weights):
    """NumPy forward of the actor: relu hidden layers, tanh output; weights = [k0, b0, k1, b1, ...]."""
    h = x
    for i in range(0, len(weights), 2):
        h = h @ weights[i] + weights[i + 1]
        h = np.tanh(h) if i == len(weights) - 2 else np.maximum(h, 0)
    return h


def test_each_world_drives_its_own_perturbed_actor_and_an_episode_end_adapts_sigma():
    agent = ddpg_agent()
    clean = [w for w in agent.actor.state_dict().values()]
    n = agent.config.num_envs
    # Every world's actor is the clean one plus sigma-scaled noise, and no two worlds share a draw.
    offsets = [agent.perturbed[i] - clean[i][None] for i in range(len(clean))]
    assert all(o.shape == (n, *c.shape) for o, c in zip(offsets, clean))
    assert 0.05 < np.std(offsets[0]) < 0.15  # initial sigma 0.1
    assert not np.allclose(offsets[0][0], offsets[0][1])
    obs = np.random.default_rng(0).uniform(-1, 1, (n, agent.obs_dim)).astype(np.float32)
    acts = agent._perturbed_actions(obs)
    for i in range(n):
        expected = _reference_actor(obs[i:i + 1], [w[i] for w in agent.perturbed])[0]
        np.testing.assert_allclose(acts[i], expected, rtol=1e-4, atol=1e-6)

    # Episode end in world 2 with a full enough memory: d is measured on world 2's *old* actor, that
    # actor is redrawn, then sigma moves by the rule.
    states = obs[np.arange(200) % n]
    agent.replay.add(states, np.zeros((200, 2)), np.zeros(200), states, np.zeros(200, bool))
    old = [w[2].copy() for w in agent.perturbed]
    sigma = agent.noise_stddev = 0.3
    rng_state = agent.replay.rng.numpy.bit_generator.state
    sample = agent.replay.sample(agent.config.param_noise_distance_states).obs
    agent.replay.rng.numpy.bit_generator.state = rng_state  # the agent draws the same states again
    d = np.sqrt(np.mean((_reference_actor(sample, old) - _reference_actor(sample, clean)) ** 2))
    agent._end_episode(2, crashed=True, hooks=FakeHooks())
    assert agent.noise_distance == pytest.approx(d, rel=1e-4)
    assert agent.noise_stddev == pytest.approx(adapt_param_noise(sigma, d, 0.1, 1.01))
    assert not np.allclose(agent.perturbed[0][2], old[0])  # redrawn...
    assert np.std(agent.perturbed[0][2] - clean[0]) > 0.2  # ...with the sigma of the episode end (0.3)


def test_state_dict_round_trip_gives_the_same_action_and_update(tmp_path):
    a = ddpg_agent(seed=3)
    a.learn(1_200, FakeHooks())
    assert a.updates == 4 * 20  # rounds of 20 steps at 500, 700, 900 and 1100 transitions
    save_checkpoint(tmp_path / "c.safetensors", {"agent": a.state_dict()})
    b = ddpg_agent(seed=99)  # different initial weights, all overwritten by the load
    b.load_state_dict(load_checkpoint(tmp_path / "c.safetensors")["agent"])
    obs = np.random.default_rng(1).uniform(-1, 1, (5, a.obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    np.testing.assert_array_equal(a._perturbed_actions(obs[:4]), b._perturbed_actions(obs[:4]))
    assert (a.noise_stddev, a.env_steps, a.updates) == (b.noise_stddev, b.env_steps, b.updates)
    # The next round of updates samples the same batches and takes the same Adam steps.
    la, lb = a._update_round(), b._update_round()
    assert la == lb
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for (k, wa), wb in zip(getattr(a, name).state_dict().items(), getattr(b, name).state_dict().values()):
            np.testing.assert_array_equal(wa, wb, err_msg=f"{name} {k}")


def test_gaussian_exploration_and_explain():
    agent = ddpg_agent(exploration="gaussian", action_noise_std=0.3)
    assert agent.perturbed == []
    hooks = FakeHooks()
    agent.learn(800, hooks)
    assert any("critic_loss" in r for r in hooks.records)
    out = agent.explain(np.zeros(agent.obs_dim, np.float32))
    assert out["action"].shape == (2,) and out["q_value"].shape == (1,)
    assert np.all(np.abs(out["action"]) <= 1)
    noisy = agent.act(np.zeros((64, agent.obs_dim), np.float32), deterministic=False)
    assert noisy.std(axis=0).min() > 0.1  # N(0, 0.3) around one clean action


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="exploration must be"):
        ddpg_agent(exploration="ou")
    with pytest.raises(ValueError, match="critic_obs_units"):
        ddpg_agent(critic_obs_units=32)
    with pytest.raises(ValueError, match='motion = "control"'):
        ddpg_agent(env={"level": "level2", "motion": "basic"})


@pytest.mark.slow
def test_ddpg_learns_to_drive_on_level2_seed_0():
    # At first the actor's throttle is ~0: the car stands still and earns 0 per step. After 24k transitions
    # with parameter noise it drives: a fixed-seed budget, judged by deterministic episodes.
    agent = ddpg_agent(seed=0, num_envs=8, learning_starts=2_000, train_every_steps=800, gradient_steps=110,
                       batch_size=128)
    with threadpool_limits(1):  # one BLAS thread, as scripts/train.py sets: tiny matrices
        before = evaluate(agent, episodes=4)
        agent.learn(24_000, FakeHooks())
        after = evaluate(agent, episodes=4)
    assert before["mean_return"] < 5.0, before
    assert after["mean_return"] > 30.0, after
