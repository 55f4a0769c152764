"""PPO: GAE against a plain-Python reference, the NEXT_STEP autoreset handling, learning CartPole."""

import numpy as np
import pytest
from test_reinforce import FakeHooks  # same directory (pytest prepends it to sys.path)

from agents.ppo_seeds import unstackable_reason
from agents.rollout import RolloutBuffer, gae
from agents.runner import evaluate, make_agent, single_blas_thread
from rl import backend
from rl.tensor import Tensor


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with single_blas_thread():
        yield


def reference_gae(rewards, values, next_value, terminated, dones, valid, gamma, lam):
    t_len, n = rewards.shape
    adv = np.zeros((t_len, n))
    for i in range(n):
        running = 0.0
        for t in reversed(range(t_len)):
            nv = values[t + 1, i] if t + 1 < t_len else next_value[i]
            if not valid[t, i]:
                running = 0.0
                adv[t, i] = 0.0
                continue
            delta = rewards[t, i] + gamma * nv * (1 - terminated[t, i]) - values[t, i]
            running = delta + gamma * lam * (1 - dones[t, i]) * running
            adv[t, i] = running
    return adv


def test_gae_matches_reference_with_termination_truncation_and_reset_steps():
    backend.use_device("cpu")
    rng = np.random.default_rng(0)
    t_len, n = 7, 3
    buf = RolloutBuffer(t_len, n, (2,), (), np.int64)
    buf.rewards[:] = rng.normal(size=(t_len, n))
    buf.values[:] = rng.normal(size=(t_len, n))
    buf.next_values[:] = rng.normal(size=n)
    term = np.zeros((t_len, n)); trunc = np.zeros((t_len, n))  # noqa: E702
    term[2, 0] = 1; trunc[4, 1] = 1  # noqa: E702 - world 0 fails at t=2, world 1 hits the time limit at t=4
    valid = np.ones((t_len, n), bool)
    valid[3, 0] = valid[5, 1] = False  # the autoreset steps that follow
    buf.terminated[:] = term
    buf.dones[:] = np.maximum(term, trunc)
    buf.valid[:] = valid
    adv, ret = gae(buf, 0.9, 0.8)
    expected = reference_gae(buf.rewards, buf.values, buf.next_values, term, buf.dones, valid, 0.9, 0.8)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, expected + buf.values, rtol=1e-5, atol=1e-6)
    # the truncated step bootstraps from the value of its real last observation (the next row)
    assert adv[4, 1] == pytest.approx(buf.rewards[4, 1] + 0.9 * buf.values[5, 1] - buf.values[4, 1], rel=1e-5)


def ppo_agent(total_steps, seed=0, **agent):
    config = {"experiment": {"agent": "ppo", "seed": seed, "total_steps": total_steps, "device": "cpu"},
              "agent": {"num_envs": 8, "num_steps": 32, "batch_size": 256, "num_epochs": 20, "gamma": 0.98,
                        "gae_lambda": 0.8, "lr": 1e-3, "anneal_lr": True, "anneal_clip": True, **agent}}
    return make_agent(config, where="test")


def test_autoreset_steps_are_not_trained_on_and_episodes_are_logged():
    agent = ppo_agent(512, num_epochs=1)
    hooks = FakeHooks()
    agent.learn(512, hooks)
    episodes = [r for r in hooks.records if "episode_return" in r]
    assert episodes, "random CartPole episodes end within 256 steps per world"
    # every logged episode's return equals its length in the gym variant (+1 per step)
    assert all(r["episode_return"] == r["episode_length"] for r in episodes)
    invalid = int((~agent.buffer.valid).sum())
    assert invalid >= 1  # the step after each ended episode is the env's reset, masked out
    updates = [r for r in hooks.records if "iteration" in r]
    assert [u["iteration"] for u in updates] == [1, 2]
    assert updates[0]["lr"] == pytest.approx(1e-3) and updates[1]["lr"] == pytest.approx(5e-4)  # annealed


def _two_iterations(**agent):
    """A 512-step PPO run (2 iterations of one 256-row minibatch, up to 20 epochs): (agent, its update records)."""
    agent = ppo_agent(512, **agent)
    hooks = FakeHooks()
    agent.learn(512, hooks)
    return agent, [r for r in hooks.records if "iteration" in r]


def test_target_kl_stops_the_epochs_early():
    plain, _ = _two_iterations()
    assert plain.optimizer.iterations == 2 * 20  # 2 iterations x 20 epochs x 1 minibatch
    agent, updates = _two_iterations(target_kl=0.001, ent_coef=0.01)
    # Epoch 1's KL is measured before any step moved the policy (0), so each iteration takes >= 2 epochs;
    # the early stop then cuts at least one iteration short.
    assert 2 * 2 <= agent.optimizer.iterations < 2 * 20
    assert all(0 < u["approx_kl"] <= 0.001 for u in updates)  # seed 0; without target_kl the first is ~0.005
    assert all(0.6 < u["entropy"] <= np.log(2) for u in updates)  # two actions, near uniform at first


def test_value_clipping_changes_the_value_loss():
    _, plain = _two_iterations()
    _, clipped = _two_iterations(clip_value_loss=True)
    assert [u["iteration"] for u in clipped] == [1, 2]
    # Same seed and batches; the clipped loss max(unclipped, clipped) differs once v moves beyond clip_coef.
    assert all(np.isfinite(u["value_loss"]) for u in clipped)
    assert clipped[0]["value_loss"] != pytest.approx(plain[0]["value_loss"], rel=1e-3)


@pytest.mark.slow
def test_ppo_solves_cartpole_within_40k_steps_seed_0():
    agent = ppo_agent(40_000)
    agent.learn(40_000, FakeHooks())
    result = evaluate(agent, episodes=20)
    assert result["mean_return"] >= 475, result


def test_ppo_trains_on_image_observations():
    # Snake's (H, W, 2) boards feed the MLPs flattened; the rollout used to store them unflattened and the
    # first value forward failed (matmul: size 50 is different from 2).
    config = {"experiment": {"agent": "ppo", "env_id": "envs/Snake-v0", "seed": 0, "total_steps": 64,
                             "device": "cpu"},
              "env": {"height": 5, "width": 5},
              "agent": {"num_envs": 2, "num_steps": 16, "batch_size": 8, "num_epochs": 1, "hidden": [8]}}
    agent = make_agent(config, where="test")
    hooks = FakeHooks()
    agent.learn(64, hooks)
    assert agent.env_steps == 64 and agent.buffer.obs.shape == (16, 2, 50)
    assert np.isfinite([r["value_loss"] for r in hooks.records if "iteration" in r]).all()
    assert agent.act(np.zeros((3, 5, 5, 2), np.float32)).shape == (3,)


# ---------------------------------------------------------------------------- gSDE (use_sde)
METACAR_LEVEL2_CONTROL = {"level": "level2", "motion": "control", "terminate_on_crash": True, "max_steps": 800,
                          "lidar": {"pts": 5, "width": 3, "height": 7, "pos": -0.5}, "shuffle_on_reset": "agent"}


def sde_agent(total_steps=10**6, seed=0, **agent):
    """PPO with state-dependent exploration on MetaCar level2's continuous [throttle, steering] control."""
    config = {"experiment": {"agent": "ppo", "env_id": "envs/MetaCar-v0", "seed": seed, "total_steps": total_steps,
                             "device": "cpu"},
              "env": dict(METACAR_LEVEL2_CONTROL),
              "agent": {"use_sde": True, "log_std_init": -2.0, "hidden": [16, 16], **agent}}
    return make_agent(config, where="test")


def test_sde_holds_each_worlds_noise_matrix_for_sde_sample_freq_steps():
    agent = sde_agent(num_envs=3, num_steps=20, sde_sample_freq=8)
    assert agent.log_std.data.shape == (16, 2)  # one sigma per (last hidden feature, action)
    drawn, resample = [], agent._resample_noise

    def recording_resample(num_rows):
        resample(num_rows)
        drawn.append(agent.noise_matrices.copy())

    agent._resample_noise = recording_resample
    agent.start_envs()
    agent._collect(FakeHooks())
    assert len(drawn) == 3  # at the rollout's start, then at steps 8 and 16
    buf = agent.buffer
    for t in range(buf.num_steps):
        dist = agent._dist(Tensor(buf.obs[t]))
        matrices = drawn[t // 8]
        noise = np.einsum("bh,bhd->bd", dist.features, matrices)
        np.testing.assert_allclose(buf.actions[t], dist.mean.data + noise, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(buf.logprobs[t], dist.log_prob(buf.actions[t]).data, rtol=1e-5, atol=1e-5)
    assert not np.allclose(drawn[0], drawn[1])


def test_sde_is_refused_where_it_cannot_work():
    with pytest.raises(ValueError, match="Box action space"):
        ppo_agent(64, use_sde=True)  # CartPole's actions are discrete
    with pytest.raises(ValueError, match="sde_sample_freq"):
        sde_agent(sde_sample_freq=0)
    assert "use_sde" in unstackable_reason(sde_agent(num_envs=2, num_steps=8))


def test_sde_off_leaves_the_gaussian_policy_as_it_was():
    agent = sde_agent(use_sde=False, num_envs=2, num_steps=8)
    assert agent.log_std.data.shape == (2,) and agent.noise_matrices is None


@pytest.mark.slow
def test_ppo_with_sde_learns_to_drive_on_metacar_level2_seed_0():
    # At first the policy's throttle is ~0 and the car earns ~1 in an episode; after 150k steps of gSDE its
    # deterministic episodes average ~131 (the plain Gaussian policy, log_std_init -0.5, ~82 on the same budget).
    agent = sde_agent(150_000, num_envs=8, num_steps=128, batch_size=256, num_epochs=4, anneal_lr=True, lr=1e-3)
    before = evaluate(agent, episodes=4)
    agent.learn(150_000, FakeHooks())
    after = evaluate(agent, episodes=4)
    assert before["mean_return"] < 5.0, before
    assert after["mean_return"] > 50.0, after
