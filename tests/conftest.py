"""Suite-wide test setup: pygame draws off-screen and stays silent, so rendering tests run headless."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
