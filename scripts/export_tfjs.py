"""Export a trained agent's network, a saved model or MobileNetV2 as a TensorFlow.js layers model.

    python scripts/export_tfjs.py runs/snake_dqn-s0-20250101-120000 web_models/snake
    python scripts/export_tfjs.py runs/metacar_ddpg-s0-... out/actor --tag latest
    python scripts/export_tfjs.py model.safetensors out/model          # saved with Model.save
    python scripts/export_tfjs.py mobilenet_v2 out/mobilenet            # ImageNet weights (cached)
    python scripts/export_tfjs.py mobilenet_v2 out/mobilenet --random-init

OUT_DIR receives ``model.json`` and ``group1-shard{i}of{n}.bin`` (float32, at most 4 MiB each), which
``tf.loadLayersModel('OUT_DIR/model.json')`` loads in a browser (see :mod:`rl.tfjs`).

Which network a run directory exports (its input is one batch of observations, ``(B, *obs_shape)``):

=========  =============  ===============================================================================
agent      network        output
=========  =============  ===============================================================================
dqn        ``q_net``      online Q-network: Q-values ``(B, num_actions)``; the greedy action is the argmax
ppo        ``policy``     policy MLP: logits ``(B, n)`` (Discrete) or action means ``(B, d)`` (Box; the
                          learned ``log_std`` is written to ``userDefinedMetadata``, not a layer)
reinforce  ``policy``     policy MLP: logits; with ``policy_head = "sigmoid"`` one logit ``l`` per state,
                          read as the logits ``[l, 0]`` of two actions
ddpg       ``actor``      deterministic actor ``(B, act_dim)`` in [-1, 1] (tanh), the MetaCar driver
qtable     (none)         a table, not a network: refused
=========  =============  ===============================================================================

``userDefinedMetadata`` records the agent, the network, the env id and its keyword arguments, so a
page (``web/``) can rebuild the same board.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rl import backend, tfjs  # noqa: E402

# agent name -> (attribute holding the exported network, what its output means)
NETWORKS = {
    "dqn": ("q_net", "Q-values (B, num_actions); greedy action = argmax"),
    "ppo": ("policy", "policy logits (Discrete) or action means (Box)"),
    "reinforce": ("policy", "policy logits (sigmoid head: one logit l = logits [l, 0])"),
    "ddpg": ("actor", "deterministic actions in [-1, 1]"),
}


class ExportError(RuntimeError):
    """The source cannot be exported; the message says why and what to do."""


def network_of_agent(agent: Any, agent_name: str) -> tuple[Any, dict[str, Any]]:
    """The network to export from a loaded agent and its metadata; errors name the agent type."""
    if agent_name not in NETWORKS:
        raise ExportError(f"agent {agent_name!r} has no network to export (exportable: {', '.join(sorted(NETWORKS))})")
    attr, meaning = NETWORKS[agent_name]
    model = getattr(agent, attr, None)
    if model is None:
        raise ExportError(f"the {agent_name} agent has no attribute {attr!r} holding its network; is agents/"
                          f"{agent_name}.py finished?")
    meta: dict[str, Any] = {"agent": agent_name, "network": attr, "output": meaning}
    log_std = getattr(agent, "log_std", None)
    if agent_name == "ppo" and log_std is not None:
        meta["log_std"] = [float(v) for v in backend.to_numpy(log_std.data)]
    return model, meta


def load_run_network(run_dir: str | Path, tag: str = "best") -> tuple[Any, dict[str, Any]]:
    """Load a run directory's agent and return ``(network, userDefinedMetadata)``."""
    from agents.base import AGENTS  # noqa: PLC0415
    from agents.runner import CheckpointError, load_agent  # noqa: PLC0415
    from rl.experiment import RunDir  # noqa: PLC0415

    run = RunDir.open(run_dir)
    config = run.read_config()
    experiment = config.get("experiment", {})
    agent_name = experiment.get("agent", "ppo")
    if agent_name not in NETWORKS:
        raise ExportError(f"{run_dir}: agent {agent_name!r} has no network to export (exportable: "
                          f"{', '.join(sorted(NETWORKS))})")
    module_file = Path(__file__).resolve().parent.parent / (AGENTS[agent_name].replace(".", "/") + ".py")
    if not module_file.exists():
        raise ExportError(f"{run_dir}: agent {agent_name!r} is not available yet ({module_file.name} is missing)")
    try:
        agent = load_agent(run_dir, tag=tag)
    except (CheckpointError, backend.BackendError) as exc:  # a GPU run on a machine without one, say
        raise ExportError(str(exc)) from None
    model, meta = network_of_agent(agent, agent_name)
    meta.update({"source": str(run_dir), "tag": tag, "env_id": experiment.get("env_id"),
                 "env": dict(config.get("env", {}))})
    return model, meta


def load_source(source: str, tag: str = "best", random_init: bool = False) -> tuple[Any, dict[str, Any]]:
    """``(model, metadata)`` for a run directory, a ``Model.save`` file or ``"mobilenet_v2"``."""
    path = Path(source)
    if source == "mobilenet_v2":
        from transfer import mobilenet_v2 as mn  # noqa: PLC0415

        if random_init:
            return mn.mobilenet_v2(weights=None), {"model": "mobilenet_v2", "weights": "random"}
        try:
            model = mn.mobilenet_v2(weights="imagenet", download=False)
        except Exception as exc:
            raise ExportError(f"MobileNetV2 ImageNet weights are not available ({exc}); fetch them with "
                              "`python scripts/fetch_weights.py` or pass --random-init") from None
        return model, {"model": "mobilenet_v2", "weights": "imagenet (torchvision IMAGENET1K_V1)",
                       "input": "(B, 224, 224, 3) RGB, ImageNet-normalised", "output": "logits (B, 1000)"}
    if path.is_dir():
        if (path / "config.toml").exists():
            return load_run_network(path, tag)
        raise ExportError(f"{source} is a directory but not a run directory (no config.toml)")
    if path.is_file():
        from rl.checkpoint import CheckpointError, load_model  # noqa: PLC0415

        try:
            return load_model(path, compile=False), {"source": str(path)}
        except CheckpointError as exc:
            raise ExportError(str(exc)) from None
    raise ExportError(f"{source}: no such run directory or model file (or say 'mobilenet_v2')")


def export(source: str, out_dir: str | Path, tag: str = "best", random_init: bool = False,
           shard_size_bytes: int = tfjs.SHARD_SIZE_BYTES) -> Path:
    """Export ``source`` (see :func:`load_source`) to ``out_dir``; returns the ``model.json`` path."""
    model, meta = load_source(source, tag, random_init)
    try:
        return tfjs.save_tfjs(model, out_dir, shard_size_bytes=shard_size_bytes, metadata=meta)
    except tfjs.TfjsFormatError as exc:
        raise ExportError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="run directory, Model.save file (.safetensors), or 'mobilenet_v2'")
    parser.add_argument("out_dir", help="directory for model.json and the weight shards")
    parser.add_argument("--tag", default="best", choices=["best", "latest"],
                        help="checkpoint of a run directory: best (default) or latest")
    parser.add_argument("--random-init", action="store_true", help="mobilenet_v2 without pretrained weights")
    parser.add_argument("--shard-size", type=int, default=tfjs.SHARD_SIZE_BYTES,
                        help=f"max bytes per shard (default {tfjs.SHARD_SIZE_BYTES:,}, as the TF.js converter)")
    args = parser.parse_args(argv)
    try:
        path = export(args.source, args.out_dir, args.tag, args.random_init, args.shard_size)
    except (ExportError, OSError, ValueError) as exc:  # OSError: OUT_DIR is a file, or not writable
        print(f"export_tfjs: {exc}", file=sys.stderr)
        return 2
    shards = sorted(p.name for p in path.parent.glob("group*-shard*.bin"))
    print(f"wrote {path} and {len(shards)} shard(s): {', '.join(shards)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
