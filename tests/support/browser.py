"""Headless Chromium for tests: serve a folder on 127.0.0.1, load a page, read its DOM or take
a screenshot. Debian's ``chromium`` package (``.ci/run`` installs it where apt-get can)."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
"""The browser, or None where it is not installed."""

# As root (CI) Chromium needs --no-sandbox; the virtual time budget lets the page's scripts
# (WebAssembly compile, inference, drawing) finish before the DOM is read.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=30000")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """A 127.0.0.1 HTTP server of ``folder`` while the block runs; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _chromium(*args: str) -> str:
    """Chromium's stdout for ``args``, with a fresh profile."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True).stdout


def dump_dom(url: str) -> str:
    """The page's DOM once its scripts have run."""
    return _chromium("--dump-dom", url)


def screenshot(url: str, path: Path, size: tuple[int, int]) -> None:
    """A PNG of the page, ``size`` = (width, height) pixels, once its scripts have run."""
    _chromium(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)


def data_url_pixels(data_url: str) -> np.ndarray:
    """The RGBA pixels (height, width, 4) of a ``data:image/png;base64,...`` URL."""
    header, _, payload = data_url.partition(",")
    assert header == "data:image/png;base64", header
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGBA"))
