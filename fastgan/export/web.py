"""Web: a static page that draws a generator's samples in the browser, with no network.

The folder holds ``index.html`` and ``page.js`` (from :file:`fastgan/export/page`), the
generator as ``generator.onnx``, ``model.json`` (latent size, noise, image shape, how many
samples and how large) and onnxruntime-web's WebAssembly build (:data:`RUNTIME_FILES`),
taken from the npm registry's tarball of onnxruntime-web :data:`ORT_WEB_VERSION` at export
time: it is downloaded once, checked against its SHA-256 and kept in fastgan's cache
(:func:`fastgan.data.default_cache_dir`). Browsers do not let a page fetch files from
``file://``, so serve the folder from the local machine: ``python -m http.server -d site``.
"""

from __future__ import annotations

import json
import math
import shutil
import tarfile
from pathlib import Path

from ..data.downloads import default_cache_dir, fetch_verified
from ..errors import ConfigError, DataError
from . import onnx
from .walk import Network

ORT_WEB_VERSION = "1.31.1"
"""The onnxruntime-web release the pages use."""
ORT_WEB_URL = (f"https://registry.npmjs.org/onnxruntime-web/-/"
               f"onnxruntime-web-{ORT_WEB_VERSION}.tgz")
ORT_WEB_SHA256 = frozenset({"bdccdb9fbb9ab537247c0c734e9b1d2b1b338b4f2a09faa58f0dc1cfa27c312c"})
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
"""What the page needs of onnxruntime-web: the script, its WebAssembly loader and binary."""
PAGE = Path(__file__).with_name("page")
SAMPLES = 16
"""Samples in the page's grid."""


def image_shape(network: Network) -> tuple[int, int, int]:
    """(H, W, C) of the generator's samples: its output image of one or three channels, else
    a square of one channel. ConfigError for a network the page cannot draw."""
    if network.name != "generator":
        raise ConfigError("the web page draws samples of the generator; export the "
                          f"{network.name} to onnx, torch or npz instead")
    shape = network.out_shape
    side = math.isqrt(shape[0])
    if len(shape) == 3 and shape[2] in (1, 3):
        return shape
    if len(shape) == 3 or side * side != shape[0]:
        raise ConfigError(f"the web page draws images, but this generator makes samples of "
                          f"shape {shape}; export it to onnx, torch or npz instead")
    return side, side, 1


def runtime_tarball() -> Path:
    """onnxruntime-web's npm tarball in the cache, downloaded (and checked) the first time."""
    path = default_cache_dir() / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
    if not path.is_file():
        try:
            fetch_verified(ORT_WEB_URL, path, ORT_WEB_SHA256)
        except (OSError, DataError) as exc:
            raise DataError(f"could not download onnxruntime-web from the npm registry "
                            f"({ORT_WEB_URL}: {exc}); download it by hand and put it at "
                            f"{path}") from None
    return path


def write(network: Network, folder: Path) -> None:
    """Write the page for generator ``network`` into the (new, empty) ``folder``."""
    height, width, channels = image_shape(network)
    settings = {"latent_dim": network.in_features, "noise": network.noise,
                "image_shape": [height, width, channels], "samples": SAMPLES,
                "scale": max(1, round(64 / max(height, width)))}
    with open(folder / "generator.onnx", "wb") as file:
        onnx.write(network, file)
    (folder / "model.json").write_text(json.dumps(settings, indent=2) + "\n")
    for name in ("index.html", "page.js"):
        shutil.copyfile(PAGE / name, folder / name)
    with tarfile.open(runtime_tarball()) as tarball:
        for name in RUNTIME_FILES:
            source = tarball.extractfile(f"package/dist/{name}")
            with source, open(folder / name, "wb") as target:
                shutil.copyfileobj(source, target)
