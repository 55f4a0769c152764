"""Where an exportable network comes from: a run directory, a ``Model.save`` file or a pretrained name.

``scripts/export_tfjs.py``, ``scripts/export_onnx.py`` and ``scripts/serve_web.py`` all take "a model"
on the command line; :func:`load_source` is the one place that argument is understood.

Which network a run directory gives (its input is one batch of observations, ``(B, *obs_shape)``):

=========  =============  ===============================================================================
agent      network        output
=========  =============  ===============================================================================
dqn        ``q_net``      online Q-network: Q-values ``(B, num_actions)``; the greedy action is the argmax
ppo        ``policy``     policy MLP: logits ``(B, n)`` (Discrete) or action means ``(B, d)`` (Box; the
                          learned ``log_std`` goes into the metadata, not a layer)
reinforce  ``policy``     policy MLP: logits; with ``policy_head = "sigmoid"`` one logit ``l`` per state,
                          read as the logits ``[l, 0]`` of two actions
ddpg       ``actor``      deterministic actor ``(B, act_dim)`` in [-1, 1] (tanh), the MetaCar driver
qtable     (none)         a table, not a network: refused
=========  =============  ===============================================================================
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agents.base import AGENTS
from agents.runner import load_agent
from playgrad.cli import add_checkpoint_option
from rl import backend, tfjs
from rl.checkpoint import load_model
from rl.errors import CheckpointError
from rl.experiment import RunDir
from transfer import mobilenet_v2 as mn

__all__ = ["NETWORKS", "ExportError", "add_source_arguments", "load_run_network", "load_source", "network_of_agent"]

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
        values = backend.to_numpy(log_std.data).astype(float)
        meta["log_std"] = values.tolist()  # (A,), or with gSDE (last hidden features, A): nested lists
        if values.ndim == 2:
            meta["log_std_of"] = ("gSDE: exploration noise = the last hidden layer's features @ W, "
                                  "W ~ N(0, exp(log_std)^2) of shape (features, actions)")
    return model, meta


def load_run_network(run_dir: str | Path, tag: str = "best") -> tuple[Any, dict[str, Any]]:
    """Load a run directory's agent and return ``(network, userDefinedMetadata)``."""
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


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments :func:`load_source` takes, as the export commands read them: ``source``, then the options
    ``--checkpoint`` (or ``--tag``) and ``--random-init`` (``args.source``, ``args.tag``, ``args.random_init``)."""
    parser.add_argument("source", help="run directory, Model.save file (.safetensors), TF.js model.json (or "
                                       "original:NAME, the MetaCar demo's), or 'mobilenet_v2'")
    add_checkpoint_option(parser, dest="tag", of="a run directory")
    parser.add_argument("--random-init", action="store_true", help="mobilenet_v2 without pretrained weights")


def load_source(source: str, tag: str = "best", random_init: bool = False) -> tuple[Any, dict[str, Any]]:
    """``(model, metadata)`` for a run directory, a ``Model.save`` file, a TF.js layers model (its ``model.json``:
    a playgrad export or the original MetaCar demo's, also as ``original:NAME``) or ``"mobilenet_v2"``."""
    path = Path(source)
    if source.startswith("original:") or (path.is_file() and path.suffix == ".json"):
        return _load_tfjs_source(source)
    if source == "mobilenet_v2":
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
        try:
            return load_model(path, compile=False), {"source": str(path)}
        except CheckpointError as exc:
            raise ExportError(str(exc)) from None
    raise ExportError(f"{source}: no such run directory or model file (or say 'mobilenet_v2')")


def _load_tfjs_source(source: str) -> tuple[Any, dict[str, Any]]:
    """A TF.js layers model as the core reads it (converting TF.js to ONNX, say); ``original:NAME`` names one of
    the original demo's bundled agents."""
    from agents.originals import OriginalAgentError, bundled_path  # noqa: PLC0415 - only this path needs them

    try:
        path = bundled_path(source)
    except OriginalAgentError as exc:
        raise ExportError(str(exc)) from None
    if path.name == "qtable.json":
        raise ExportError(f"{source}: the original level0 agent is a Q-table, not a network: nothing to export")
    try:
        model = tfjs.load_tfjs(path)
    except (OSError, ValueError) as exc:  # TfjsFormatError is a ValueError: a Q-table, a broken or hostile file
        raise ExportError(f"{source}: not a TF.js layers model the core reads: {exc}") from None
    return model, {"source": source, "converted_from": "TF.js layers model"}
