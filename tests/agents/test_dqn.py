"""DQN: the pieces (epsilon schedule, targets, losses) against hand-computed values, collection with
next-step autoreset, exact state round trips, and learning CartPole within a fixed budget."""

import contextlib
import math

import numpy as np
import pytest

from agents import dqn
from agents.base import ExperimentConfig
from agents.runner import evaluate, load_checkpoint, save_checkpoint
from rl import backend
from rl.tensor import Tensor


class FakeHooks:
    """Records what the agent logs; never saves, stops only when told to."""

    def __init__(self, stop_after_episodes: int | None = None):
        self.records = []
        self.stop_after_episodes = stop_after_episodes

    def log(self, record):
        assert "env_steps" in record
        self.records.append(dict(record))

    def checkpoint_due(self, env_steps):
        return False

    def save(self, agent, tag="latest"):
        raise AssertionError("checkpoint_due is always False")

    @property
    def stop_requested(self):
        episodes = sum("episode_return" in r for r in self.records)
        return self.stop_after_episodes is not None and episodes >= self.stop_after_episodes

    def episodes(self):
        return [r for r in self.records if "episode_return" in r]


def cartpole_config(**overrides):
    """A CartPole DQN that learns in a few thousand updates (seed 0)."""
    base = dict(network="mlp", hidden_sizes=[128, 128], dropout=0.0, lr=2.3e-3, loss="huber", max_grad_norm=10.0,
                buffer_size=20_000, learning_starts=1_000, train_freq=64, gradient_steps=32, target_update_interval=10,
                sample_without_replacement=False, epsilon_start=1.0, epsilon_final=0.04, exploration_fraction=0.2)
    base.update(overrides)
    return dqn.Config(**base)


def cartpole_agent(seed=0, **overrides):
    return dqn.Agent(cartpole_config(**overrides), ExperimentConfig(agent="dqn", env_id="envs/CartPole-v1", seed=seed))


# ------------------------------------------------------------------------------------ pieces
def test_epsilon_schedule_is_linear_then_flat():
    assert dqn.epsilon_at(0, 0.5, 0.01, 100_000) == 0.5
    assert dqn.epsilon_at(50_000, 0.5, 0.01, 100_000) == pytest.approx(0.255)
    assert dqn.epsilon_at(10_000, 0.5, 0.01, 100_000) == pytest.approx(0.451)  # the book's value when training starts
    assert dqn.epsilon_at(100_000, 0.5, 0.01, 100_000) == pytest.approx(0.01)
    assert dqn.epsilon_at(1_000_000, 0.5, 0.01, 100_000) == pytest.approx(0.01)


def test_agent_epsilon_follows_frames_and_exploration_fraction():
    agent = cartpole_agent(exploration_fraction=0.5, learning_starts=10_000)
    agent.learn(200, FakeHooks())  # exploration_fraction * total_steps = 100 frames of decay
    assert agent.env_steps == 200
    assert agent.epsilon == pytest.approx(0.04)
    agent.tracker.transitions = 25  # epsilon follows frames: transitions, the autoreset steps left out
    assert agent.epsilon == pytest.approx(1.0 - 0.96 * 0.25)


def test_dqn_targets_plain_and_double_by_hand():
    reward = np.array([1.0, -1.0, 0.5], dtype=np.float32)
    terminated = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    q_target = np.array([[1.0, 5.0, 2.0], [7.0, 7.0, 7.0], [4.0, 0.0, 3.0]], dtype=np.float32)
    q_online = np.array([[9.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 8.0]], dtype=np.float32)
    gamma = 0.9
    plain = dqn.dqn_targets(reward, terminated, q_target, gamma)
    np.testing.assert_allclose(plain, [1.0 + 0.9 * 5.0, -1.0, 0.5 + 0.9 * 4.0], rtol=1e-6)
    # Double DQN: the online net picks a' = (0, 2, 2); the target net values them: 1.0, (terminal), 3.0
    double = dqn.dqn_targets(reward, terminated, q_target, gamma, next_q_online=q_online)
    np.testing.assert_allclose(double, [1.0 + 0.9 * 1.0, -1.0, 0.5 + 0.9 * 3.0], rtol=1e-6)


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_td_loss_values_and_gradients(kind):
    q = Tensor(np.array([0.2, 3.0, -2.5, 0.9]), requires_grad=True, dtype=np.float64)
    target = np.array([0.0, 0.0, 0.0, 1.4])
    loss = dqn.td_loss(q, target, kind)
    loss.backward()
    d = np.array([0.2, 3.0, -2.5, -0.5])
    if kind == "mse":
        expected, grad = np.mean(d**2), 2 * d / 4
    else:  # quadratic inside |d| <= 1, linear (slope 1) outside
        expected = np.mean([0.02, 2.5, 2.0, 0.125])
        grad = np.clip(d, -1, 1) / 4
    assert loss.item() == pytest.approx(expected)
    np.testing.assert_allclose(backend.to_numpy(q.grad), grad, rtol=1e-12)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="loss"):
        dqn.Config(loss="l1")
    with pytest.raises(ValueError, match="network"):
        dqn.Config(network="resnet")
    with pytest.raises(ValueError, match="exploration_fraction"):
        dqn.Config(exploration_fraction=0.0)
    with pytest.raises(ValueError, match="cnn"):  # CartPole's flat observations cannot feed a conv net
        dqn.Agent(dqn.Config(), ExperimentConfig(agent="dqn", env_id="envs/CartPole-v1"))


def test_huber_option_bounds_the_gradient():
    """Same batch, same weights: with TD errors of ~50 the MSE gradient is ~100x Huber's, whose slope is 1."""
    out = {}
    for kind in ("mse", "huber"):
        agent = cartpole_agent(loss=kind, learning_starts=10_000)
        agent.learn(300, FakeHooks())
        agent.replay.reward[:] = 50.0  # TD errors far beyond Huber's quadratic zone
        loss = agent.update().item()
        out_bias = agent.q_net.parameters()[-1]  # dL/d(bias_a) = sum over the batch rows that took action a
        out[kind] = (loss, float(np.abs(backend.to_numpy(out_bias.grad)).sum()))
    assert out["huber"][0] == pytest.approx(50, rel=0.05)  # |d| - 0.5 with d ~ -50
    assert out["mse"][0] == pytest.approx(2500, rel=0.1)
    assert out["huber"][1] == pytest.approx(1.0, rel=1e-4)  # every row at slope -1, averaged over the batch
    assert out["mse"][1] > 50 * out["huber"][1]


# ------------------------------------------------------------------------------------ collection
def test_collection_skips_autoreset_steps_and_counts_frames():
    agent = cartpole_agent(num_envs=3, learning_starts=10_000)
    hooks = FakeHooks()
    agent.learn(1_500, hooks)
    episodes = hooks.episodes()
    assert len(episodes) > 20  # random play ends CartPole episodes quickly
    # every transition is stored and belongs to exactly one (finished or running) episode
    transitions = sum(r["episode_length"] for r in episodes) + int(agent.tracker.lengths.sum())
    assert len(agent.replay) == transitions
    # env_steps counts every step call of every world: the transitions and one autoreset step after each
    # finished episode (but those that ended on the last call, whose autoreset is still to come)
    assert agent.env_steps == 1_500 == transitions + len(episodes) - int(agent.tracker.resetting.sum())
    # gym CartPole pays 1 per step, so a return equals its length: no autoreset step's 0 reward was counted
    assert all(r["episode_return"] == r["episode_length"] for r in episodes)
    # a stored terminal transition leaves the pole or cart out of bounds
    term = backend.to_numpy(agent.replay.terminated[: len(agent.replay)]).astype(bool)
    final = backend.to_numpy(agent.replay.next_obs[: len(agent.replay)])[term]
    assert term.sum() == len(episodes)
    assert np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * math.pi / 360))


def test_progress_records_come_every_log_every_steps():
    agent = cartpole_agent(learning_starts=10_000, log_every_steps=100)
    hooks = FakeHooks()
    agent.learn(400, hooks)
    progress = [r for r in hooks.records if "updates" in r]
    assert [r["env_steps"] for r in progress] == [100, 200, 300, 400]


def test_target_sync_copies_online_weights_in_place():
    agent = cartpole_agent(learning_starts=100, train_freq=50, gradient_steps=5, target_update_interval=10_000)
    target_arrays = list(agent.target_net.state_dict().values())
    agent.learn(400, FakeHooks())
    online = [p.data for p in agent.q_net.parameters()]
    assert not all(np.array_equal(t, o) for t, o in zip(target_arrays, online))  # trained, not yet synced
    agent.sync_target()
    assert all(np.array_equal(t, o) for t, o in zip(target_arrays, online))
    assert all(a is b for a, b in zip(target_arrays, agent.target_net.state_dict().values()))


def test_explain_gives_q_values_of_one_observation():
    agent = cartpole_agent()
    obs = np.array([0.01, -0.02, 0.03, 0.0], dtype=np.float32)
    q = agent.explain(obs)["q_values"]
    assert q.shape == (2,)
    assert int(np.argmax(q)) == int(agent.act(obs[None])[0])


# ------------------------------------------------------------------------------------ saving
def test_state_dict_round_trip_reproduces_actions_and_updates(tmp_path):
    a = cartpole_agent(num_envs=2, learning_starts=200, train_freq=32, gradient_steps=4, target_update_interval=50)
    a.learn(600, FakeHooks())
    path = tmp_path / "dqn.safetensors"
    save_checkpoint(path, {"agent": a.state_dict()})  # the runner's format: nested keys, no '/' in names
    b = cartpole_agent(seed=7, num_envs=2, learning_starts=200, train_freq=32, gradient_steps=4,
                       target_update_interval=50)
    b.load_state_dict(load_checkpoint(path)["agent"])
    assert b.env_steps == a.env_steps and b.updates == a.updates and len(b.replay) == len(a.replay)
    obs = np.random.default_rng(0).normal(0, 0.05, (64, 4)).astype(np.float32)
    np.testing.assert_array_equal(a._epsilon_greedy(obs, 0.3), b._epsilon_greedy(obs, 0.3))
    for _ in range(3):
        assert a.update().item() == b.update().item()
    for pa, pb in zip(a.q_net.parameters(), b.q_net.parameters()):  # device arrays when RL_DEVICE=gpu
        np.testing.assert_array_equal(backend.to_numpy(pa.data), backend.to_numpy(pb.data))
    for (ka, va), (kb, vb) in zip(a.optimizer.state_dict().items(), b.optimizer.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(backend.to_numpy(va), backend.to_numpy(vb))


def test_load_state_dict_names_what_is_missing():
    agent = cartpole_agent()
    state = agent.state_dict()
    del state["replay"]
    with pytest.raises(KeyError, match="replay"):
        agent.load_state_dict(state)


# ------------------------------------------------------------------------------------ learning
def _one_blas_thread():
    """The trajectory depends on float summation order, which a multi-threaded BLAS changes; CI runs one thread."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - comes with scikit-learn (dev extra)
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@pytest.mark.slow
def test_learns_cartpole_seed0_within_14k_frames():
    agent = cartpole_agent(seed=0)
    with _one_blas_thread():
        agent.learn(14_000, FakeHooks())
    result = evaluate(agent, episodes=5, seed=1_000)
    assert result["mean_return"] >= 475, result["returns"]


def test_snake_cnn_smoke():
    """The conv net on the book's board: Q-values per relative action, one update, greedy actions."""
    exp = ExperimentConfig(agent="dqn", env_id="envs/Snake-v0", seed=0, env={"max_steps": 50})
    cfg = dqn.Config(conv_filters=[8, 8], hidden_sizes=[16], batch_norm=True, dropout=0.25, buffer_size=500,
                     learning_starts=100, batch_size=16, num_envs=4)
    agent = dqn.Agent(cfg, exp)
    agent.learn(200, FakeHooks())
    # train_freq 1, gradient_steps 1: one update per frame (transition) after the first learning_starts - 1
    assert agent.env_steps == 200 and agent.updates == agent.tracker.transitions - (cfg.learning_starts - 1)
    obs = agent.obs
    assert obs.shape == (4, 9, 9, 2)
    assert agent.explain(obs[0])["q_values"].shape == (3,)
    assert set(agent.act(obs).tolist()) <= {0, 1, 2}


def test_book_snake_network_has_the_books_weight_count():
    """conv_q_network's defaults are snake-dqn's dqn.js: 1,120,019 weights, 1,119,251 trainable (spec 2.3)."""
    from agents.networks import conv_q_network

    model = conv_q_network((9, 9, 2), 3)
    assert model.count_params() == 1_120_019
    assert sum(p.size for p in model.parameters()) == 1_119_251
