"""PyTorch reference for transfer.mobilenet_v2: logits on fixed inputs, and CPU timings for the benchmark.

Runs only under a torch-enabled Python (never the project .venv), e.g.::

    python3 -m venv /tmp/benchvenv_tr && /tmp/benchvenv_tr/bin/pip install torch==2.13.0 numpy
    /tmp/benchvenv_tr/bin/python tests/data/mobilenet_torch_reference.py generate WEIGHTS.pth
    /tmp/benchvenv_tr/bin/python tests/data/mobilenet_torch_reference.py bench WEIGHTS.pth --repeats 5

torchvision does not import beside the CPU torch wheel, so the network is rebuilt here from the
architecture in ``docs/specs/formats.md`` §6.1 with torchvision's module nesting, which makes the
checkpoint load with ``strict=True`` (all 314 tensors used, none missing).

``generate`` writes, next to this file:

* ``mobilenet_reference_logits.npy`` — float32 ``(2, 1000)`` torch logits for
  :func:`reference_inputs` (two ``(224, 224, 3)`` NHWC images computed from a formula, so the test
  rebuilds them without a stored file and without torch).

``bench`` prints one JSON line ``{"batch": {"1": images_per_s, "16": images_per_s}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LOGITS_FILE = HERE / "mobilenet_reference_logits.npy"
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def reference_inputs() -> np.ndarray:
    """Two deterministic NHWC float32 "images" ``(2, 224, 224, 3)`` in the range of normalised pixels."""
    h = np.arange(224, dtype=np.float64)[:, None, None]
    w = np.arange(224, dtype=np.float64)[None, :, None]
    c = np.arange(3, dtype=np.float64)[None, None, :]
    first = 2.0 * np.sin(0.07 * h * (c + 1) + 0.05 * w) * np.cos(0.03 * w - 0.5 * c)
    second = 1.5 * np.cos(0.11 * (h - w) + c) + 0.5 * np.sin(0.013 * h * w / (c + 1))
    return np.stack([first, second]).astype(np.float32)


def load(weights: str):
    """torchvision's MobileNetV2 (width 1.0) rebuilt with its module names, weights loaded strictly, eval mode."""
    import torch
    from torch import nn

    def conv_bn_relu6(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
        # torchvision's Conv2dNormActivation: conv (no bias, padding (k-1)//2), BN, ReLU6
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU6())

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, t: int):
            super().__init__()
            hidden = round(cin * t)
            self.use_res = stride == 1 and cin == cout
            layers: list[nn.Module] = [conv_bn_relu6(cin, hidden, 1, 1)] if t != 1 else []
            layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                       nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            feats: list[nn.Module] = [conv_bn_relu6(3, 32, 3, 2)]
            cin = 32
            for t, c, n, s in SETTINGS:
                for i in range(n):
                    feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            feats.append(conv_bn_relu6(cin, 1280, 1, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1)).flatten(1)
            return self.classifier(x)

    model = MobileNetV2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def generate(weights: str) -> None:
    import torch

    model = load(weights)
    x = reference_inputs()
    with torch.no_grad():
        logits = model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
    np.save(LOGITS_FILE, logits.astype(np.float32))
    print(f"wrote {LOGITS_FILE.name} {logits.shape}; top-1 {logits.argmax(1)}")


def bench(weights: str, batches: list[int], repeats: int, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = load(weights)
    out: dict[str, float] = {}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            for _ in range(5):  # warm-up: oneDNN picks its kernels on the first calls
                model(x)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
            out[str(b)] = b / statistics.median(times)
    print(json.dumps({"images_per_s": out, "torch": torch.__version__, "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["generate", "bench"])
    parser.add_argument("weights", help="torchvision mobilenet_v2-b0353104.pth")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.mode == "generate":
        generate(args.weights)
    else:
        bench(args.weights, args.batches, args.repeats, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
