"""The dashboard's image model panel: MobileNetV2 (ImageNet) on a sample or uploaded photo, its top 5 classes
with probabilities and the feature maps of a chosen block.

The network is :func:`transfer.mobilenet_v2.mobilenet_v2` with torchvision's weights from the local cache
(``python scripts/fetch_weights.py`` puts them there; the server never downloads), run through its folded
inference path. It is built on first use and kept; requests are served one at a time.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import numpy as np

__all__ = ["FEATURE_MAPS", "ImageModel", "SAMPLES"]

# Sample photos bundled with scikit-image (the dev/examples extra): name shown -> skimage.data function.
SAMPLES = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket"}
FEATURE_MAPS = 16  # channels shown: the most active ones
MAP_PX = 96  # each map is scaled up (nearest) to at least this many pixels a side


def _png(image: Any) -> str:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def feature_map_images(maps: np.ndarray, count: int = FEATURE_MAPS) -> list[dict[str, Any]]:
    """The ``count`` channels of ``maps (h, w, C)`` with the largest mean activation, each as a viridis PNG
    (data URL) scaled to its own min-max: ``[{"channel", "mean", "max", "png"}]``, most active first."""
    from matplotlib import colormaps  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    order = np.argsort(-maps.mean(axis=(0, 1)))[:count]
    cmap = colormaps["viridis"]
    out = []
    for c in order:
        m = maps[..., c].astype(np.float64)
        span = m.max() - m.min()
        rgb = (cmap((m - m.min()) / span if span > 0 else np.zeros_like(m))[..., :3] * 255).astype(np.uint8)
        img = Image.fromarray(rgb)
        scale = max(1, -(-MAP_PX // max(img.size)))
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
        out.append({"channel": int(c), "mean": float(m.mean()), "max": float(m.max()), "png": _png(img)})
    return out


class ImageModel:
    """MobileNetV2 with ImageNet weights, built on first use; :meth:`run` answers the panel's requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model = None
        self._folded: dict[str, Any] = {}
        self.error: str | None = None

    def describe(self) -> dict[str, Any]:
        """What the panel offers: ``{"available", "reason", "samples", "layers"}`` (nothing is loaded)."""
        from transfer.mobilenet_v2 import BLOCK_NAMES  # noqa: PLC0415
        from transfer.weights import REGISTRY, cache_dir  # noqa: PLC0415

        cached = (cache_dir() / REGISTRY["mobilenet_v2"].filename).is_file()
        samples = []
        try:
            import skimage.data  # noqa: F401, PLC0415

            samples = list(SAMPLES)
        except ImportError:
            pass
        reason = None if cached else ("MobileNetV2's ImageNet weights are not in the cache: "
                                      "run python scripts/fetch_weights.py once")
        return {"available": cached and self.error is None, "reason": reason or self.error, "samples": samples,
                "layers": list(BLOCK_NAMES)}

    def _load(self) -> Any:
        if self._model is None:
            from transfer.mobilenet_v2 import mobilenet_v2  # noqa: PLC0415

            self._model = mobilenet_v2(weights="imagenet", download=False)
        return self._model

    def _runner(self, until: str) -> Any:
        if until not in self._folded:
            from transfer.mobilenet_v2 import FoldedMobileNetV2  # noqa: PLC0415

            self._folded[until] = FoldedMobileNetV2(self._load(), until=until, threads=1)
        return self._folded[until]

    def run(self, image: Any, layer: str, top: int = 5) -> dict[str, Any]:
        """Top ``top`` ImageNet classes of ``image`` (a PIL image) and the feature maps of block ``layer``.

        Returns ``{"top": [{"index", "name", "prob"}], "layer", "shape": [h, w, C], "maps": [...], "input": png}``.
        Raises ValueError for an unknown layer.
        """
        from rl import backend  # noqa: PLC0415
        from transfer.mobilenet_v2 import BLOCK_NAMES  # noqa: PLC0415
        from transfer.preprocessing import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes, preprocess  # noqa: PLC0415

        if layer not in BLOCK_NAMES:
            raise ValueError(f"unknown layer {layer!r}; one of {', '.join(BLOCK_NAMES)}")
        x = preprocess(image)
        with self._lock:
            logits = np.asarray(backend.to_numpy(self._runner("logits")(x)))[0]
            maps = np.asarray(backend.to_numpy(self._runner(layer)(x)))[0]
        z = np.exp(logits - logits.max())
        probs = z / z.sum()
        names = imagenet_classes()
        best = np.argsort(-probs)[:top]
        shown = np.clip(x[0] * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN), 0, 1)
        return {
            "top": [{"index": int(i), "name": names[i], "prob": float(probs[i])} for i in best],
            "layer": layer, "shape": list(maps.shape), "maps": feature_map_images(maps),
            "input": _png((shown * 255).round().astype(np.uint8)),
        }

    @staticmethod
    def sample(name: str) -> Any:
        """The sample photo ``name`` (one of :data:`SAMPLES`) as a PIL image."""
        import skimage.data  # noqa: PLC0415
        from PIL import Image  # noqa: PLC0415

        if name not in SAMPLES:
            raise ValueError(f"unknown sample {name!r}; one of {', '.join(SAMPLES)}")
        return Image.fromarray(getattr(skimage.data, SAMPLES[name])()).convert("RGB")
