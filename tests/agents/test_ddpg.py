"""DDPG: soft-update math, the adaptive parameter-noise rule, per-world perturbed actors, checkpoint round
trip (plain and with TD3's options), config errors, TD3's clipped double-Q target, clipped target smoothing
and delayed policy updates, and learning to drive on MetaCar level2 (plain DDPG and with TD3's options)."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_reinforce import FakeHooks  # same directory (pytest prepends it to sys.path)
from threadpoolctl import threadpool_limits  # via scikit-learn, a dev dependency

import agents.runner as runner_module
from agents.ddpg import adapt_param_noise, smooth_target_actions, soft_update
from agents.episodes import FinishedEpisodes
from agents.replay import ReplayBatch
from agents.runner import evaluate, load_checkpoint, make_agent, save_checkpoint, strip_wall_clock
from playgrad.training import train
from rl import backend
from rl.experiment import RunDir
from rl.tensor import Tensor

TD3 = {"twin_critics": True, "policy_delay": 2, "target_noise": 0.2, "target_noise_clip": 0.5}  # the paper's
LEVEL2 = {"level": "level2", "motion": "control", "lidar": {"pts": 5, "width": 3, "height": 7, "pos": -0.5},
          "max_steps": 800, "shuffle_on_reset": "agent"}


def _finished(world, crashed):
    """World ``world``'s episode (return 1, 10 steps) as the episode tracker reports it."""
    return FinishedEpisodes(worlds=np.array([world]), returns=np.array([1.0]), lengths=np.array([10]),
                            terminated=np.array([crashed]), sums={"speed": np.array([5.0])})


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

    # Episode end in world 2 with a full enough memory: world 2's actor is redrawn with the sigma of the
    # episode end, d is measured on that *new* actor, then sigma moves by the rule.
    states = obs[np.arange(200) % n]
    agent.replay.add(states, np.zeros((200, 2)), np.zeros(200), states, np.zeros(200, bool))
    old = [w[2].copy() for w in agent.perturbed]
    sigma = agent.noise_stddev = 0.3
    rng_state = agent.replay.rng.numpy.bit_generator.state
    sample = agent.replay.sample(agent.config.param_noise_distance_states).obs
    agent.replay.rng.numpy.bit_generator.state = rng_state  # the agent draws the same states again
    agent._end_episode(_finished(world=2, crashed=True), hooks=FakeHooks())
    new = [w[2] for w in agent.perturbed]
    assert not np.allclose(new[0], old[0])  # redrawn...
    assert np.std(new[0] - clean[0]) > 0.2  # ...with the sigma of the episode end (0.3)
    d = np.sqrt(np.mean((_reference_actor(sample, new) - _reference_actor(sample, clean)) ** 2))
    assert agent.noise_distance == pytest.approx(d, rel=1e-4)
    assert agent.noise_stddev == pytest.approx(adapt_param_noise(sigma, d, 0.1, 1.01))


def test_the_noise_distance_measures_sigma_not_the_actors_drift_since_the_episode_started():
    # With vector envs the actor is updated in the middle of the worlds' episodes. A world's copy drawn at its
    # episode's start then differs from the actor at the episode's end by far more than the noise; d must
    # still measure only the noise, or sigma shrinks at every episode end and exploration stops.
    agent = ddpg_agent()
    n = agent.config.num_envs
    states = np.random.default_rng(0).uniform(-1, 1, (200, agent.obs_dim)).astype(np.float32)
    agent.replay.add(states, np.zeros((200, 2)), np.zeros(200), states, np.zeros(200, bool))
    agent.noise_stddev = 1e-6
    agent._perturb(np.arange(n))  # the episode starts: copies within ~1e-6 of the actor
    for p in agent.actor.parameters():  # mid-episode updates move every weight
        p.data += 0.05
    drift = agent._perturbed_actions(states, 1) - agent._actor_actions(states)
    assert np.sqrt(np.mean(drift**2)) > 0.01  # the drawn copy is now far from the actor (what d measured)
    agent._end_episode(_finished(world=1, crashed=False), hooks=FakeHooks())
    assert agent.noise_distance < 1e-4  # a tiny sigma moves the actions a tiny bit
    assert agent.noise_stddev == pytest.approx(1e-6 * 1.01)  # below delta (0.1): sigma grows
    moved = [p.data for p in agent.actor.parameters()]
    for store, w in zip(agent.perturbed, moved):  # the next episode's copy: the moved actor plus the noise
        np.testing.assert_allclose(store[1], w, atol=1e-4)


@pytest.mark.parametrize("td3", [{}, TD3], ids=["ddpg", "td3"])
def test_state_dict_round_trip_gives_the_same_action_and_update(tmp_path, td3):
    a = ddpg_agent(seed=3, **td3)
    a.learn(1_200, FakeHooks())
    assert a.updates == 4 * 20  # rounds of 20 steps at 500, 700, 900 and 1100 transitions
    save_checkpoint(tmp_path / "c.safetensors", {"agent": a.state_dict()})
    b = ddpg_agent(seed=99, **td3)  # different initial weights, all overwritten by the load
    b.load_state_dict(load_checkpoint(tmp_path / "c.safetensors")["agent"])
    obs = np.random.default_rng(1).uniform(-1, 1, (5, a.obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    np.testing.assert_array_equal(a._perturbed_actions(obs[:4]), b._perturbed_actions(obs[:4]))
    assert (a.noise_stddev, a.env_steps, a.updates) == (b.noise_stddev, b.env_steps, b.updates)
    # The next round of updates samples the same batches (and smoothing noise) and takes the same Adam steps.
    la, lb = a._update_round(), b._update_round()
    assert la == lb
    assert ("critic2_loss" in la) == bool(td3)
    names = ["actor", "critic", "actor_target", "critic_target"] + (["critic2", "critic2_target"] if td3 else [])
    for name in names:
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


def test_interrupted_and_resumed_td3_run_ends_with_the_same_metrics(tmp_path, monkeypatch):
    # The level2 config with TD3's options, cut mid-run (Ctrl-C) and continued with --resume: the twin
    # critic, its optimizer and the smoothing noise's stream must all come back for the metrics to match.
    overrides = ["experiment.total_steps=960", "experiment.eval_episodes=2", "experiment.device=\"cpu\"",
                 "agent.num_envs=4", "agent.learning_starts=160", "agent.train_every_steps=80",
                 "agent.gradient_steps=3", "agent.batch_size=32", "agent.log_every_steps=160", "env.max_steps=40",
                 *(f"agent.{k}={str(v).lower()}" for k, v in TD3.items())]
    config = str(Path(__file__).resolve().parents[2] / "configs" / "metacar_level2_ddpg.toml")
    full = RunDir(train(config, overrides, runs_dir=str(tmp_path / "full"), progress=False))
    original = runner_module.Runner.log

    def log(self, record):  # behave as if Ctrl-C came after the first update record past 480 transitions
        original(self, record)
        if "critic2_loss" in record and record["env_steps"] >= 480:
            self.request_stop()

    with monkeypatch.context() as m:
        m.setattr(runner_module.Runner, "log", log)
        cut = train(config, overrides, runs_dir=str(tmp_path / "cut"), progress=False)
    assert not (cut / "eval.json").exists()
    assert RunDir(cut).read_metrics()[-1]["env_steps"] < 960  # it was cut
    train(None, [], resume=str(cut), progress=False)
    # json.dumps: the noise distance is NaN until the memory holds a batch, and NaN != NaN
    expected = json.dumps(strip_wall_clock(full.read_metrics()))
    assert json.dumps(strip_wall_clock(RunDir(cut).read_metrics())) == expected
    assert "critic2_loss" in expected
    assert json.loads((cut / "eval.json").read_text())["returns"] == json.loads(
        (full.path / "eval.json").read_text())["returns"]


@pytest.mark.skipif(not backend.gpu_status()[0], reason="no usable CuPy (make test-simgpu simulates one)")
def test_td3_options_train_checkpoint_and_reload_on_the_gpu(tmp_path):
    overrides = ["experiment.total_steps=480", "experiment.eval_episodes=1", "experiment.checkpoint_every_steps=200",
                 "agent.learning_starts=160", "agent.train_every_steps=80", "agent.gradient_steps=3",
                 "agent.batch_size=32", "agent.log_every_steps=160", "env.max_steps=40",
                 *(f"agent.{k}={str(v).lower()}" for k, v in TD3.items())]
    config = str(Path(__file__).resolve().parents[2] / "configs" / "metacar_level2_ddpg.toml")
    previous = backend.current().device
    try:
        run = train(config, overrides, device="gpu", runs_dir=str(tmp_path), progress=False)
        records = RunDir(run).read_metrics()
        assert [r for r in records if "critic2_loss" in r] and all(
            np.isfinite(r["critic2_loss"]) for r in records if "critic2_loss" in r)
        agent = runner_module.load_agent(run, tag="latest")
        assert agent.updates > 0 and backend.get_array_module(agent.critic2.parameters()[0].data) is not np
    finally:
        backend.use_device(previous)


def test_a_plain_checkpoint_lacks_the_twin_critic(tmp_path):
    plain = ddpg_agent(seed=3)
    twin = ddpg_agent(seed=3, twin_critics=True)
    with pytest.raises(KeyError, match="critic2"):  # the runner names the checkpoint file around it
        twin.load_state_dict(plain.state_dict())


def test_smooth_target_actions_clips_the_noise_then_the_action_bounds():
    actions = np.array([[0.0, 0.9], [-0.95, 0.2]], np.float32)
    noise = np.array([[0.8, 0.3], [-0.1, -0.2]], np.float32)
    out = smooth_target_actions(actions, noise, noise_clip=0.5)
    # 0 + clip(0.8) = 0.5; 0.9 + 0.3 = 1.2 -> bound 1; -0.95 - 0.1 = -1.05 -> bound -1; 0.2 - 0.2 = 0
    np.testing.assert_allclose(out, [[0.5, 1.0], [-1.0, 0.0]], atol=1e-7)


def _batch(agent, n, reward, terminated):
    rng = np.random.default_rng(5)
    obs = rng.uniform(-1, 1, (n, agent.obs_dim)).astype(np.float32)
    return ReplayBatch(obs, np.zeros((n, 2), np.float32), np.asarray(reward, np.float32), obs[::-1].copy(),
                       np.asarray(terminated, np.float32))


def test_twin_target_is_the_smaller_target_critic_per_transition(monkeypatch):
    agent = ddpg_agent(twin_critics=True, gamma=0.5)
    batch = _batch(agent, 3, reward=[1.0, 0.0, 2.0], terminated=[0, 0, 1])
    q1 = np.array([[4.0], [-1.0], [7.0]], np.float32)
    q2 = np.array([[2.0], [3.0], [-5.0]], np.float32)
    seen_actions = []

    def fixed(q):
        def critic(inputs):
            seen_actions.append(np.array(inputs[1].data))
            return Tensor(q)
        return critic

    monkeypatch.setattr(agent, "critic_target", fixed(q1))
    monkeypatch.setattr(agent, "critic2_target", fixed(q2))
    y = agent._target_values(batch)
    # r + gamma * (1 - terminated) * min(q1, q2): min 2, -1 and (cut by the terminal) -5
    np.testing.assert_allclose(y, [1.0 + 0.5 * 2.0, 0.0 + 0.5 * -1.0, 2.0], rtol=1e-6)
    # both twins value the same a' = mu'(s') (no smoothing asked for)
    expected = agent.actor_target(Tensor(batch.next_obs)).data
    np.testing.assert_array_equal(seen_actions[0], expected)
    np.testing.assert_array_equal(seen_actions[1], expected)
    # without twin_critics the target is critic 1's alone
    plain = ddpg_agent(gamma=0.5)
    monkeypatch.setattr(plain, "critic_target", fixed(q1))
    np.testing.assert_allclose(plain._target_values(batch), [3.0, -0.5, 2.0], rtol=1e-6)


def test_target_smoothing_noise_is_clipped_and_drawn_afresh(monkeypatch):
    agent = ddpg_agent(target_noise=10.0, target_noise_clip=0.3)  # sigma far above the clip: nearly all clipped
    batch = _batch(agent, 256, reward=np.zeros(256), terminated=np.zeros(256))
    seen = []
    original = agent.critic_target

    def recording(inputs):
        seen.append(np.array(inputs[1].data))
        return original(inputs)

    monkeypatch.setattr(agent, "critic_target", recording)
    agent._target_values(batch)
    agent._target_values(batch)
    clean = agent.actor_target(Tensor(batch.next_obs)).data
    change = seen[0] - clean
    assert np.abs(change).max() <= 0.3 + 1e-6  # never more than the clip...
    assert np.mean(np.isclose(np.abs(change), 0.3, atol=1e-6)) > 0.9  # ...which a sigma of 10 nearly always hits
    assert (np.sign(change) > 0).mean() == pytest.approx(0.5, abs=0.1)  # both directions
    assert np.abs(seen[0]).max() <= 1.0  # and inside the actor's bounds
    assert not np.array_equal(seen[0], seen[1])  # fresh noise on every target computation


def test_the_actor_and_every_target_step_only_on_every_dth_critic_step():
    agent = ddpg_agent(seed=1, twin_critics=True, policy_delay=3, gradient_steps=1)
    obs = np.random.default_rng(2).uniform(-1, 1, (300, agent.obs_dim)).astype(np.float32)
    actions = np.random.default_rng(3).uniform(-1, 1, (300, 2)).astype(np.float32)
    agent.replay.add(obs, actions, np.ones(300, np.float32), obs[::-1], np.zeros(300, bool))
    names = ("actor", "critic", "critic2", "actor_target", "critic_target", "critic2_target")

    def weights():
        return {name: [w.copy() for w in getattr(agent, name).state_dict().values()] for name in names}

    moved = []
    before = weights()
    for _ in range(6):
        losses = agent._update_round()
        after = weights()
        moved.append({name for name in names
                      if any(not np.array_equal(x, y) for x, y in zip(before[name], after[name]))})
        before = after
        assert losses["critic2_loss"] > 0
    critics_only, everything = {"critic", "critic2"}, set(names)
    assert moved == [critics_only, critics_only, everything, critics_only, critics_only, everything]
    assert agent.updates == 6


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="exploration must be"):
        ddpg_agent(exploration="ou")
    with pytest.raises(ValueError, match="critic_obs_units"):
        ddpg_agent(critic_obs_units=32)
    with pytest.raises(ValueError, match='motion = "control"'):
        ddpg_agent(env={"level": "level2", "motion": "basic"})
    with pytest.raises(ValueError, match="policy_delay must be >= 1"):
        ddpg_agent(policy_delay=0)
    with pytest.raises(ValueError, match="target_noise and target_noise_clip must be >= 0"):
        ddpg_agent(target_noise=-0.1)


@pytest.mark.slow
def test_ddpg_learns_to_drive_on_level2_seed_0():
    # At first the actor's throttle is ~0: the car stands still and earns 0 per step. After 48k transitions
    # with parameter noise it drives: a fixed-seed budget, judged by deterministic episodes. Since the noise
    # distance is measured on a fresh copy of the current actor (sigma no longer shrinks at every episode end)
    # this seed averages ~25 at 24k and 32k transitions and ~304 at 40k and 48k (it was ~184 at 24k before).
    agent = ddpg_agent(seed=0, num_envs=8, learning_starts=2_000, train_every_steps=800, gradient_steps=110,
                       batch_size=128)
    with threadpool_limits(1):  # one BLAS thread, as scripts/train.py sets: tiny matrices
        before = evaluate(agent, episodes=4)
        agent.learn(48_000, FakeHooks())
        after = evaluate(agent, episodes=4)
    assert before["mean_return"] < 5.0, before
    assert after["mean_return"] > 30.0, after


@pytest.mark.slow
def test_ddpg_with_td3_options_learns_to_drive_on_level2_seed_0():
    # Plain DDPG's settings above with all three of TD3's remedies on (the paper's values). With half as
    # many actor steps (policy_delay 2) and a pessimistic target it drives later: after 24k transitions this
    # seed still averages ~12, so the budget is doubled (~68 at 48k).
    agent = ddpg_agent(seed=0, num_envs=8, learning_starts=2_000, train_every_steps=800, gradient_steps=110,
                       batch_size=128, **TD3)
    with threadpool_limits(1):
        before = evaluate(agent, episodes=4)
        agent.learn(48_000, FakeHooks())
        after = evaluate(agent, episodes=4)
    # Critic steps: a round every 800 transitions from 2,000 on. The 48,000 env steps include the worlds'
    # autoreset steps (agents.episodes), so they hold fewer transitions, and 57 rounds (58 before env_steps
    # counted every step call).
    assert agent.updates == 57 * 110
    assert before["mean_return"] < 5.0, before
    assert after["mean_return"] > 30.0, after
