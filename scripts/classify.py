"""Classify photos with the pretrained MobileNetV2 (ImageNet, 1000 classes) and print the top 5.

    python scripts/classify.py photo.jpg [more.png ...] [--weights PATH] [--top 5]

The book's ``mobilenet`` example, done right: the network outputs 1000 logits (torchvision has no
background class), which are softmaxed into probabilities. Images go through torchvision's
preprocessing (resize the shorter side to 256, center-crop 224, ImageNet normalization). The
weights are torchvision's ``mobilenet_v2-b0353104.pth``, fetched once into the cache unless
``--weights`` names a file.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from transfer.mobilenet_v2 import FoldedMobileNetV2, mobilenet_v2
from transfer.preprocessing import ImageInputError, imagenet_classes, preprocess
from transfer.weights import WeightsError


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (anything Pillow reads)")
    parser.add_argument("--weights", default="imagenet",
                        help="a torchvision-format .pth file (default: torchvision's ImageNet weights, fetched once "
                             "into the cache; see scripts/fetch_weights.py)")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print per image")
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
    net = FoldedMobileNetV2(model)
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
