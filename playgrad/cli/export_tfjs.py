"""Export a trained agent's network, a saved model or MobileNetV2 as a TensorFlow.js layers model.

    python scripts/export_tfjs.py runs/snake_dqn-s0-20250101-120000 web_models/snake
    python scripts/export_tfjs.py runs/metacar_level2_ddpg-s0-... out/actor --tag latest
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

from playgrad.sources import NETWORKS, ExportError, add_source_arguments, load_source, network_of_agent
from rl import tfjs

__all__ = ["NETWORKS", "ExportError", "export", "load_source", "main", "network_of_agent"]


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
    add_source_arguments(parser)
    parser.add_argument("out_dir", help="directory for model.json and the weight shards")
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
