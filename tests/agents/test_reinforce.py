"""REINFORCE: the book's returns, its sigmoid head, the baseline variant, and learning CartPole."""

import numpy as np
import pytest

from agents.rollout import discounted_returns
from agents.runner import make_agent, single_blas_thread
from rl import backend
from rl import functional as F
from rl.tensor import Tensor, no_grad


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with single_blas_thread():
        yield


class FakeHooks:
    """Records what the agent logs; never saves; stops after ``stop_after`` iterations if given."""

    def __init__(self, stop_after=None):
        self.records, self.stop_after = [], stop_after

    def log(self, record):
        self.records.append(record)

    def checkpoint_due(self, env_steps):
        return False

    def save(self, agent, tag="latest"):
        raise AssertionError("not expected")

    @property
    def stop_requested(self):
        return self.stop_after is not None and sum("iteration" in r for r in self.records) >= self.stop_after


def book_agent(**agent):
    config = {"experiment": {"agent": "reinforce", "seed": 0, "total_steps": 1_000_000, "device": "cpu"},
              "env": {"variant": "book", "max_steps": 500},
              "agent": {"iterations": 20, "games_per_iteration": 20, **agent}}
    return make_agent(config, where="test")


def test_discounted_returns_match_the_books_backward_sum():
    rewards = np.array([[1, 1], [1, 0], [0, 5]], dtype=np.float32)
    alive = np.array([[True, True], [True, True], [True, False]])
    g = discounted_returns(rewards, alive, 0.5)
    # world 0: [1 + .5*(1 + .5*0), 1 + .5*0, 0]; world 1: game of 2 steps, the third reward is ignored
    np.testing.assert_allclose(g, [[1.5, 1.0], [1.0, 0.0], [0.0, 0.0]])


def test_sigmoid_head_is_the_books_p_left():
    agent = book_agent()
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with no_grad():
        logit = agent.policy(Tensor(obs)).data[:, 0]
        probs = F.softmax(agent._logits(Tensor(obs)), axis=-1).data
    np.testing.assert_allclose(probs[:, 0], 1 / (1 + np.exp(-logit)), rtol=1e-5)
    assert agent.policy.count_params() == 769  # 4 -> 128 (elu) -> 1, as the spec computes


def test_normalized_returns_use_population_std():
    agent = book_agent(iterations=1, games_per_iteration=3)
    hooks = FakeHooks()
    agent.learn(1_000_000, hooks)
    lengths = [r["episode_length"] for r in hooks.records if "episode_length" in r]
    assert len(lengths) == 3 and agent.iteration == 1
    assert hooks.records[-1]["mean_steps_per_game"] == pytest.approx(np.mean(lengths))
    # Gymnasium's env_steps: every step call of every world, the worlds that finished early included.
    assert agent.env_steps == 3 * max(lengths)


def test_baseline_variant_fits_a_value_network():
    config = {"experiment": {"agent": "reinforce", "seed": 1, "total_steps": 10_000, "device": "cpu"},
              "agent": {"iterations": 4, "games_per_iteration": 2, "policy_head": "softmax", "baseline": True,
                        "normalize_returns": False, "batch_size": 200, "loss_reduction": "sum", "lr": 0.005,
                        "init": "random_normal", "hidden": [9], "activation": "tanh"}}
    agent = make_agent(config, where="test")
    hooks = FakeHooks()
    agent.learn(10_000, hooks)
    updates = [r for r in hooks.records if "iteration" in r]
    assert len(updates) == 4
    assert all(np.isfinite(r["value_loss"]) and np.isfinite(r["policy_loss"]) for r in updates)
    # V(s) moves towards the returns: epochs on one iteration's games lower its loss on them. (Comparing the
    # loss across iterations measured the games as much as the fit: their returns grow as the policy learns.)
    obs, _, rewards, alive, _ = agent._collect(FakeHooks())
    returns = discounted_returns(rewards, alive, agent.config.gamma)
    steps = np.flatnonzero(alive.reshape(-1))
    obs, returns = obs.reshape(-1, obs.shape[-1])[steps], returns.reshape(-1)[steps]
    losses = [agent._fit_value(obs, returns) for _ in range(30)]
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.slow
def test_book_settings_reach_450_steps_per_game_by_iteration_20():
    backend.use_device("cpu")
    agent = book_agent()
    hooks = FakeHooks()
    agent.learn(1_000_000, hooks)
    curve = [r["mean_steps_per_game"] for r in hooks.records if "iteration" in r]
    assert len(curve) == 20
    assert max(curve) >= 450, curve


def test_reinforce_trains_on_image_observations():
    # Snake's (H, W, 2) boards feed the policy MLP flattened; collection used to pass them unflattened
    # (matmul size mismatch on the first forward pass).
    config = {"experiment": {"agent": "reinforce", "env_id": "envs/Snake-v0", "seed": 0, "total_steps": 10_000,
                             "device": "cpu"},
              "env": {"height": 5, "width": 5, "max_steps": 20},
              "agent": {"iterations": 2, "games_per_iteration": 3, "policy_head": "softmax", "hidden": [8]}}
    agent = make_agent(config, where="test")
    hooks = FakeHooks()
    agent.learn(10_000, hooks)
    updates = [r for r in hooks.records if "iteration" in r]
    assert len(updates) == 2 and all(np.isfinite(r["policy_loss"]) for r in updates)
    assert agent.act(np.zeros((4, 5, 5, 2), np.float32)).shape == (4,)
