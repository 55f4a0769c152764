"""Classify photos with the pretrained MobileNetV2 (ImageNet, 1000 classes) and print the top 5.

    python scripts/classify.py photo.jpg [more.png ...] [--weights PATH] [--top 5]
    python scripts/classify.py photo.jpg --runtime onnxruntime     # the same network, run by ONNX Runtime

The book's ``mobilenet`` example, done right: the network outputs 1000 logits (torchvision has no
background class), which are softmaxed into probabilities. Images go through torchvision's
preprocessing (resize the shorter side to 256, center-crop 224, ImageNet normalization). The
weights are torchvision's ``mobilenet_v2-b0353104.pth``, fetched once into the cache unless
``--weights`` names a file.

``--runtime onnxruntime`` runs the network exported by :mod:`rl.onnx` (``scripts/export_onnx.py``) in ONNX
Runtime instead of playgrad's folded NumPy path: the export is written once next to the weights' cache
(``mobilenet_v2.onnx``, keyed by the weights file) and checked against the core before first use. Needs
``pip install 'playgrad[onnx]'``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from rl.onnx import OnnxExportError, export_onnx, verify_onnx
from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2
from transfer.preprocessing import ImageInputError, imagenet_classes, preprocess
from transfer.weights import WeightsError, resolve


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k(probs: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """For each row of ``probs (N, 1000)``: the ``k`` best ``(class index, name, probability)``."""
    names = imagenet_classes()
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(int(c), names[c], float(p[c])) for c in row] for p, row in zip(probs, order)]


def onnx_runner(model, weights: str):
    """A callable ``(N, 224, 224, 3) -> (N, 1000)`` logits running ``model``'s ONNX export in ONNX Runtime.

    The export is cached beside the weights (re-made when the weights file is newer) and verified against the
    core once, when it is written.
    """
    try:
        import onnxruntime  # noqa: PLC0415 - optional extra
    except ImportError:
        raise OnnxExportError("--runtime onnxruntime needs ONNX Runtime: pip install 'playgrad[onnx]'") from None
    source = resolve("mobilenet_v2" if weights == "imagenet" else weights, download=False)  # fetched by now
    path = source.with_name(source.stem + ".onnx")
    if not path.exists() or path.stat().st_mtime < source.stat().st_mtime:
        export_onnx(model, path, {"model": "mobilenet_v2", "weights": source.name})
        verify_onnx(model, path, batch=1, atol=1e-4)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (anything Pillow reads)")
    parser.add_argument("--weights", default="imagenet",
                        help="a torchvision-format .pth file (default: torchvision's ImageNet weights, fetched once "
                             "into the cache; see scripts/fetch_weights.py)")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print per image")
    parser.add_argument("--runtime", choices=["playgrad", "onnxruntime"], default="playgrad",
                        help="who runs the network: playgrad's folded NumPy path (default) or ONNX Runtime on the "
                             "rl.onnx export (the onnx extra)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be at least 1, got {args.top}")
    try:
        t0 = time.perf_counter()
        batch = preprocess(args.images)  # first: a mistyped file name should not wait for (or fetch) the weights
        model = mobilenet_v2(weights=args.weights)
    except (WeightsError, ImageInputError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        net = FoldedMobileNetV2(model) if args.runtime == "playgrad" else onnx_runner(model, args.weights)
    except (OnnxExportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    probs = softmax(net(batch))
    t2 = time.perf_counter()
    for path, rows in zip(args.images, top_k(probs, args.top)):
        print(path)
        for rank, (idx, name, p) in enumerate(rows, start=1):
            print(f"  {rank}. {name:<32s} {p:7.2%}  (class {idx})")
    print(f"inference {1000 * (t2 - t1):.0f} ms for {len(batch)} image(s); load and preprocess "
          f"{1000 * (t1 - t0):.0f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
