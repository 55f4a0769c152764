"""Export a trained agent's network, a saved model, a TF.js layers model or MobileNetV2 as one ONNX file.

    python scripts/export_onnx.py runs/cartpole_ppo-s0-... policy.onnx
    python scripts/export_onnx.py runs/metacar_level2_ddpg-s0-... actor.onnx --tag latest
    python scripts/export_onnx.py model.safetensors model.onnx            # saved with Model.save
    python scripts/export_onnx.py mobilenet_v2 mobilenet_v2.onnx           # ImageNet weights (cached)
    python scripts/export_onnx.py original:ddpg-traffic actor.onnx        # TF.js -> ONNX: the MetaCar demo's actor
    python scripts/export_onnx.py path/to/model.json model.onnx            # any TF.js layers model the core reads

The file (opset 17, see :mod:`rl.onnx`) takes the same NHWC arrays as the model, with a symbolic
batch axis, and carries the run's agent, network and env in its metadata. It is checked by ONNX's
checker, then run in ONNX Runtime on random inputs against the model itself (1e-5 of the outputs'
scale; MobileNetV2 1e-4); ``--no-verify`` skips the run. Which network a run directory exports is
the same as for TensorFlow.js (``scripts/export_tfjs.py --help``). Needs ``pip install 'playgrad[onnx]'``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from playgrad.sources import ExportError, add_source_arguments, load_source
from rl.onnx import OnnxExportError, export_onnx, verify_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--no-verify", action="store_true", help="do not run the file in ONNX Runtime afterwards")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        print(f"export_onnx: {out} is a folder; give the file to write, e.g. {out / 'model.onnx'}", file=sys.stderr)
        return 2
    try:
        model, meta = load_source(args.source, args.tag, args.random_init)
        path = export_onnx(model, out, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
        worst = None if args.no_verify else verify_onnx(model, path, atol=1e-4 if args.source == "mobilenet_v2"
                                                         else 1e-5)
    except (ExportError, OnnxExportError, OSError) as exc:  # OSError: OUT's folder missing or not writable
        print(f"export_onnx: {exc}", file=sys.stderr)
        return 2
    checked = "" if worst is None else f"; ONNX Runtime agrees with the model (largest difference {worst:.2g})"
    print(f"wrote {path} ({path.stat().st_size:,} bytes){checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
