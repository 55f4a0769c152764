"""The GPU code paths the rest of the suite leaves to NumPy: every agent config trains, checkpoints,
reloads and evaluates with ``device = "gpu"`` (the agents' own tests pin the CPU for their fixed
scores), plus regressions for CuPy incompatibilities found on the simulated GPU.

Skipped unless CuPy is usable: on the simulated one (``make test-simgpu``) or a real GPU
(``scripts/gpu_checks.sh``). Short runs with updates forced early; they check that the path runs
and stays finite, not how well it learns."""

import json
import math

import numpy as np
import pytest

from agents.runner import evaluate, load_agent, single_blas_thread
from playgrad.training import train
from rl import backend
from rl.tensor import Tensor

GPU, WHY = backend.gpu_status()
pytestmark = pytest.mark.skipif(not GPU, reason=f"no usable CuPy: {WHY}")

# config -> overrides that make a few hundred frames reach the updates, checkpoints and evaluation
RUNS = {
    "cartpole_dqn_fast": ["experiment.total_steps=640", "agent.learning_starts=256", "agent.train_freq=64",
                          "agent.gradient_steps=2", "agent.batch_size=32", "agent.log_every_steps=100"],
    "snake_dqn": ["experiment.total_steps=200", "agent.learning_starts=64", "agent.train_freq=16",
                  "agent.batch_size=8", "agent.conv_filters=[8, 8, 8]", "agent.target_update_interval=50",
                  "agent.buffer_size=500", "agent.log_every_steps=50"],
    "snake_dqn_small": ["experiment.total_steps=640", "agent.learning_starts=128", "agent.train_freq=16",
                        "agent.batch_size=16", "agent.target_update_interval=100", "env.max_steps=50",
                        "agent.log_every_steps=160"],
    "cartpole_ppo_fast": ["experiment.total_steps=512"],
    "metacar_level1_ppo": ["experiment.total_steps=512", "agent.num_steps=16", "agent.batch_size=64",
                           "env.max_steps=40"],
    "cartpole_reinforce": ["agent.iterations=2", "agent.games_per_iteration=2", "env.max_steps=60"],
    "metacar_level2_ddpg": ["experiment.total_steps=480", "agent.learning_starts=160", "agent.train_every_steps=80",
                            "agent.gradient_steps=2", "agent.batch_size=32", "env.max_steps=40",
                            "agent.log_every_steps=160"],
    "metacar_level0_qtable": ["experiment.total_steps=400"],
}
COMMON = ["experiment.eval_episodes=1", "experiment.checkpoint_every_steps=200"]


@pytest.fixture(autouse=True)
def _gpu_then_back():
    previous = backend.current().device
    with single_blas_thread():
        yield
    backend.use_device(previous)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_agent_trains_checkpoints_reloads_and_evaluates_on_the_gpu(name, tmp_path):
    run = train(f"configs/{name}.toml", RUNS[name] + COMMON, device="gpu", runs_dir=str(tmp_path), progress=False)
    info = json.loads((run / "info.json").read_text())
    assert info["device"] == "gpu"
    assert math.isfinite(json.loads((run / "eval.json").read_text())["mean_return"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        for key, value in record.items():
            assert "loss" not in key or math.isfinite(value), (key, record)
    if name not in ("metacar_level0_qtable", "cartpole_reinforce", "cartpole_ppo_fast", "metacar_level1_ppo"):
        assert any("loss" in key for record in records for key in record), "no loss record was logged"
    agent = load_agent(run, tag="latest")  # the checkpoint written from device arrays loads back
    # the short run reached the learning steps, and the checkpoint kept how far it got
    if name == "metacar_level0_qtable":
        assert np.count_nonzero(agent.q_table) > 0  # the table starts at zero; no episode ends in 400 steps
    else:
        on_policy = name in ("cartpole_reinforce", "cartpole_ppo_fast", "metacar_level1_ppo")
        progress = "iteration" if on_policy else "updates"
        assert getattr(agent, progress) > 0, progress
    assert agent.env_steps >= max((r["env_steps"] for r in records), default=1)  # the latest is the last
    assert math.isfinite(evaluate(agent, episodes=1, seed=0)["mean_return"])


def test_backward_takes_a_host_gradient_for_device_data():
    backend.use_device("gpu")
    x = Tensor(np.ones(2), requires_grad=True)
    (x * 3.0).backward(np.array([1.0, 2.0]))
    assert backend.to_numpy(x.grad).tolist() == [3.0, 6.0]


def test_folded_mobilenet_on_the_gpu_takes_host_images_and_answers_on_the_host():
    from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2

    backend.use_device("gpu")
    net = FoldedMobileNetV2(mobilenet_v2(weights=None, cut_at="features.2", input_shape=(32, 32, 3)))
    host = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    from_host, from_device = net(host), net(backend.to_device(host))
    assert isinstance(from_host, np.ndarray) and backend.is_device_array(from_device)  # the input's device
    np.testing.assert_array_equal(from_host, backend.to_numpy(from_device))


@pytest.mark.parametrize(("env_id", "kwargs", "n_actions"), [
    ("envs/CartPole-v1", {}, 2),
    ("envs/Snake-v0", {"height": 6, "width": 6}, 3),
    ("envs/MetaCar-v0", {"level": "level1"}, 5),
])
def test_vector_env_cores_on_the_gpu_step_like_the_cpu_ones(env_id, kwargs, n_actions):
    import gymnasium as gym

    import envs  # noqa: F401 - registers the ids

    backend.use_device("gpu")
    results = {}
    for device in ("cpu", "backend"):
        env = gym.make_vec(env_id, num_envs=6, vectorization_mode="vector_entry_point", device=device, **kwargs)
        assert (env.unwrapped.core.xp is not np) == (device == "backend")  # the default keeps a core on the host
        actions = np.random.default_rng(1).integers(0, n_actions, size=(60, 6))
        obs, _ = env.reset(seed=3)
        trace = [backend.to_numpy(obs)]
        for a in actions:
            obs, reward, terminated, truncated, _ = env.step(a)
            trace += [backend.to_numpy(x) for x in (obs, reward, terminated, truncated)]
        results[device] = trace
        env.close()
    for host, dev in zip(results["cpu"], results["backend"], strict=True):
        np.testing.assert_allclose(dev, host, rtol=1e-5, atol=1e-5)


def _transfers():
    """The simulated CuPy's host<->device copy counters, or skip on a real GPU (CuPy has none)."""
    import sys

    counters = getattr(sys.modules.get("cupy"), "transfers", None)
    if counters is None:
        pytest.skip("copy counting needs the simulated CuPy")
    return counters


def test_ppo_rollout_moves_one_array_each_way_per_step():
    # The issue: "no per-step host round trips on the GPU path beyond what the env needs". The env needs
    # the actions on the host (one copy back) and gives observations the policy needs on the device (one
    # copy over); rewards and episode ends wait on the host until the rollout is complete.
    from agents.runner import make_agent
    from rl.experiment import load_toml

    counters = _transfers()
    config = load_toml("configs/cartpole_ppo_fast.toml")
    config["experiment"]["device"] = "gpu"
    agent = make_agent(config, where="cartpole_ppo_fast")
    agent.obs, _ = agent.envs.reset(seed=0)

    class Hooks:
        def log(self, record):
            pass

    before = dict(counters)
    agent._collect(Hooks())
    steps = agent.buffer.num_steps
    assert counters["to_host"] - before["to_host"] == steps  # the actions, once per step
    assert counters["to_device"] - before["to_device"] == steps + 1  # each observation, and the last one's value
