"""Datasets for GAN training: built-in sets, user files, a strict IDX parser, verified downloads.

Every loader returns a :class:`Dataset`: float32 rows, one flattened sample per row, scaled to
[-1, 1] (the range of a tanh generator), with int64 labels where the data has them.

Names :func:`load` accepts:

- ``"digits"``: scikit-learn's bundled 8x8 digits (values 0..16 -> x/8 - 1), the offline
  default. Split ``"train"`` is the first 1500 of its 1797 images, ``"test"`` the last 297.
- ``"mnist"``, ``"fashion-mnist"``: 28x28 uint8 IDX files (0..255 -> x/127.5 - 1), splits
  ``"train"`` (60000) and ``"test"`` (10000). Each file is looked up in the cache folder
  (:func:`default_cache_dir` / name), then, for Fashion-MNIST, in Debian's
  ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``), then downloaded
  from the mirrors in order. A file is accepted when the SHA-256 of its bytes, or of its
  decompressed bytes, is a published checksum (Debian recompresses the .gz files, so only their
  decompressed bytes match). Files are re-hashed on every load: it costs a few hundredths of a
  second against the few tenths that decompression takes, and catches a file damaged since.
- ``"ring"``: the 2-D toy data of :func:`ring`; ``n`` is the number of points generated
  (default 4096) and ``seed`` seeds them; labels are the mode indices.
- a path to an ``.npz`` file with an array ``x`` and optionally integer labels ``y``. Values of
  ``x``: integers 0..255 are scaled by x/127.5 - 1; floats all within [0, 1] by 2x - 1; floats
  within [-1, 1] with some value below 0 are kept. Shapes: (N, H, W) images; (N, H, W, 1) or
  (N, H, W, 3) images made greyscale (ITU-R 601-2 luma, as Pillow's "L" mode); (N, F) flat rows,
  which have no image shape.
- a path to a folder of images (Pillow, read as 8-bit greyscale, no labels): files directly in
  the folder with a common image suffix, in name order. They must share one size unless
  ``image_size`` is given.

Everything that goes wrong with the data raises :class:`fastgan.errors.DataError` naming the
file and the fault; bad arguments raise :class:`fastgan.errors.ConfigError`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import operator
import os
import struct
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

import numpy as np

from fastgan.errors import ConfigError, DataError
from fastgan.fileio import write_atomically

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0
"""Seconds a download may wait for the server before that mirror counts as failed."""

_DIGITS_TRAIN_SIZE = 1500
_RING_DEFAULT_SIZE = 4096
_IMAGE_SUFFIXES = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
)
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset ready for training: flattened float32 samples in [-1, 1] (read-only arrays).

    ``image_shape`` is (height, width) for images and None for non-image data; ``sha256``
    identifies the exact contents (data after every option was applied), for caches keyed by data.
    """

    name: str
    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, int] | None
    sha256: str

    @property
    def n_features(self) -> int:
        """Number of values in one sample (H * W for images)."""
        return int(self.x.shape[1])

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset's files come from and the SHA-256 checksums that each may have.

    ``sha256`` maps each file name to the checksums accepted for it: of the file's bytes, or of
    its decompressed bytes. ``system_dir`` is a read-only folder searched after the cache, where
    the system package ``system_package`` installs the files.
    """

    mirrors: tuple[str, ...]
    sha256: Mapping[str, frozenset[str]]
    system_dir: Path | None = None
    system_package: str | None = None


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": frozenset(
                {"440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"}
            ),
            "train-labels-idx1-ubyte.gz": frozenset(
                {"3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"}
            ),
            "t10k-images-idx3-ubyte.gz": frozenset(
                {"8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"}
            ),
            "t10k-labels-idx1-ubyte.gz": frozenset(
                {"f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}
            ),
        },
    ),
    "fashion-mnist": IdxSource(
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        # The canonical .gz file, then the decompressed bytes (Debian's recompressed copies).
        sha256={
            "train-images-idx3-ubyte.gz": frozenset(
                {
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                }
            ),
            "train-labels-idx1-ubyte.gz": frozenset(
                {
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                }
            ),
            "t10k-images-idx3-ubyte.gz": frozenset(
                {
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                }
            ),
            "t10k-labels-idx1-ubyte.gz": frozenset(
                {
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                }
            ),
        },
        system_dir=Path("/usr/share/datasets/fashion-mnist"),
        system_package="dataset-fashion-mnist (Debian, Ubuntu)",
    ),
}
"""The IDX datasets :func:`load` knows; tests replace entries to serve their own files."""

_IDX_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def names() -> list[str]:
    """The built-in dataset names :func:`load` accepts (besides .npz files and image folders)."""
    return ["digits", *IDX_SOURCES, "ring"]


def default_cache_dir() -> Path:
    """The download cache: $FASTGAN_DATA, else $XDG_CACHE_HOME/fastgan, else ~/.cache/fastgan."""
    override = os.environ.get("FASTGAN_DATA")
    if override:
        return Path(override).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache and Path(xdg_cache).is_absolute():
        return Path(xdg_cache) / "fastgan"
    return Path.home() / ".cache" / "fastgan"


def load(
    name: str,
    *,
    split: str = "train",
    classes: Sequence[int] | None = None,
    image_size: tuple[int, int] | int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    pad: int = 0,
) -> Dataset:
    """Load a dataset by name or path (see the module docstring for what each name means).

    ``classes`` keeps only samples with those labels; ``n`` then keeps at most the first n
    samples; ``image_size`` (height, width) or one int for squares resizes the images (Pillow,
    bilinear); ``pad`` then adds that many black (-1) pixels on every side (MNIST with
    ``pad=2`` is 32 x 32, the size seed 003's DCGAN takes). ``cache_dir`` replaces
    :func:`default_cache_dir` and ``mirrors`` (base URLs, tried in order) replaces the default
    download mirrors.
    """
    size = _image_size(image_size)
    if n is not None and operator.index(n) < 1:
        raise ConfigError(f"n must be a positive number of samples, got {n}")
    if not isinstance(pad, int | np.integer) or pad < 0:
        raise ConfigError(f"pad must be a number of pixels >= 0, got {pad!r}")
    x, y, image_shape = _read_source(name, split, size, cache_dir, mirrors, n, seed)
    if classes is not None:
        x, y = _filter_classes(x, y, classes, name)
    if n is not None:
        x, y = x[:n], None if y is None else y[:n]
    if size is not None:
        if image_shape is None:
            raise ConfigError(f"image_size applies to images, but {name} is not image data")
        x, image_shape = _resize_images(x, size), size
    if pad:
        if image_shape is None:
            raise ConfigError(f"pad applies to images, but {name} is not image data")
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
        image_shape = (image_shape[0] + 2 * pad, image_shape[1] + 2 * pad)
    return _dataset(name, x, y, image_shape)


def ring(
    n: int = _RING_DEFAULT_SIZE,
    *,
    modes: int = 8,
    radius: float = 0.8,
    std: float = 0.05,
    seed: int = 0,
) -> Dataset:
    """2-D toy data: n points from a ring of equal Gaussians, clipped to [-1, 1], mode labels."""
    if n < 1:
        raise ConfigError(f"a ring needs at least one point, got n={n}")
    if std < 0:
        raise ConfigError(f"the ring's standard deviation must be >= 0, got {std}")
    centres = ring_modes(modes, radius)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, modes, size=n)
    points = centres[labels] + std * rng.standard_normal((n, 2))
    return _dataset("ring", np.clip(points, -1, 1), labels, None)


def ring_modes(modes: int = 8, radius: float = 0.8) -> np.ndarray:
    """The (modes, 2) centres of :func:`ring`'s Gaussians, evenly spaced from angle 0."""
    if modes < 1:
        raise ConfigError(f"a ring needs at least one mode, got modes={modes}")
    if not 0 < radius < 1:
        raise ConfigError(
            f"the ring radius must lie in (0, 1) to stay inside [-1, 1], got {radius}"
        )
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch: a fresh permutation of range(n) cut into full batches of indices.

    The last n % batch_size samples of the permutation are left out, so every batch is full.
    """
    _check_batching(n, batch_size)
    if batch_size > n:
        raise ConfigError(f"batch size {batch_size} is larger than the dataset ({n} samples)")
    order = rng.permutation(n)
    return (order[start : start + batch_size] for start in range(0, n - batch_size + 1, batch_size))


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches of indices into range(n), each drawn uniformly with replacement."""
    _check_batching(n, batch_size)
    return _draws(n, batch_size, rng)


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file into a native-endian array, checking every header field.

    The header is two zero bytes, a data-type code, the number of dimensions, then each
    dimension as a big-endian uint32; the payload must hold exactly the declared elements.
    """
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: not an IDX file: the magic number must start with two zero bytes, "
            f"found {bytes(data[:2]).hex()}"
        )
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DataError(f"{source}: unknown IDX data type code 0x{data[2]:02X} (known: {known})")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{source}: the IDX header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated: the header declares {ndim} dimensions "
            f"({header_size} header bytes) but the file has {len(data)} bytes"
        )
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    declared = math.prod(shape) * dtype.itemsize
    payload = len(data) - header_size
    if payload < declared:
        raise DataError(
            f"{source}: truncated: the header declares {dtype.name} data of shape {shape} "
            f"({declared} bytes) but only {payload} bytes follow it"
        )
    if payload > declared:
        raise DataError(
            f"{source}: {payload - declared} trailing bytes after the {declared} bytes of "
            f"{dtype.name} data of shape {shape} that the header declares"
        )
    try:
        array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    except ValueError as error:
        raise DataError(f"{source}: shape {shape} cannot be held as an array: {error}") from error
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (recognised by its magic bytes)."""
    data = _read_bytes(Path(path))
    return parse_idx(_gunzip_if_gzip(data, str(path)), source=str(path))


_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# A source is read as (x, y, image_shape): x holds (N, H, W) images or (N, F) rows, in [-1, 1].
_Source = tuple[np.ndarray, np.ndarray | None, tuple[int, int] | None]


def _read_source(
    name: str,
    split: str,
    size: tuple[int, int] | None,
    cache_dir: str | os.PathLike[str] | None,
    mirrors: Sequence[str] | None,
    n: int | None,
    seed: int,
) -> _Source:
    if name == "digits":
        return _digits(split)
    if name in IDX_SOURCES:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return _idx_dataset(name, split, folder / name, mirrors)
    if name == "ring":
        _check_split(name, split, ("train",))
        points = ring(n or _RING_DEFAULT_SIZE, seed=seed)
        return points.x, points.y, None
    path = Path(name).expanduser()
    if path.is_dir():
        _check_split(name, split, ("train",))
        return _image_folder(path, size)
    if path.suffix == ".npz":
        _check_split(name, split, ("train",))
        return _npz(path)
    raise ConfigError(
        f"unknown dataset {name!r}: use one of {', '.join(names())}, "
        "or the path of an existing .npz file or folder of images"
    )


def _check_split(name: str, split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ConfigError(f"{name} has no split {split!r}; choose from {', '.join(splits)}")


def _digits(split: str) -> _Source:
    _check_split("digits", split, ("train", "test"))
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError(
            "the digits dataset needs scikit-learn: pip install scikit-learn"
        ) from error
    bunch = load_digits()
    part = slice(None, _DIGITS_TRAIN_SIZE) if split == "train" else slice(_DIGITS_TRAIN_SIZE, None)
    x = bunch.images[part].astype(np.float32) / 8 - 1
    return x, bunch.target[part], (8, 8)


def _idx_dataset(name: str, split: str, folder: Path, mirrors: Sequence[str] | None) -> _Source:
    _check_split(name, split, tuple(_IDX_SPLIT_FILES))
    images_file, labels_file = _IDX_SPLIT_FILES[split]
    images, images_path = _idx_file(name, images_file, folder, mirrors)
    labels, labels_path = _idx_file(name, labels_file, folder, mirrors)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W), "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: expected uint8 labels of shape (N,), "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return _scale_uint8(images), labels, (images.shape[1], images.shape[2])


def _idx_file(
    name: str, file: str, folder: Path, mirrors: Sequence[str] | None
) -> tuple[np.ndarray, Path]:
    """Find (cache, then system folder) or download one verified IDX file and parse it."""
    source = IDX_SOURCES[name]
    accepted = source.sha256[file]
    places = [folder] if source.system_dir is None else [folder, source.system_dir]
    path = next((place / file for place in places if (place / file).is_file()), None)
    if path is None:
        path = _download(name, file, folder, source.mirrors if mirrors is None else mirrors)
    data = _verified_idx_bytes(_read_bytes(path), accepted, str(path))
    return parse_idx(data, source=str(path)), path


def _verified_idx_bytes(data: bytes, accepted: frozenset[str], source: str) -> bytes:
    """The decompressed IDX bytes, if *data* or its decompressed bytes has an accepted hash."""
    if _sha256(data) in accepted:
        return _gunzip_if_gzip(data, source)
    try:
        raw = _gunzip_if_gzip(data, source)
    except DataError:
        raw = None
    if raw is not None and _sha256(raw) in accepted:
        return raw
    raise DataError(
        f"{source}: checksum mismatch: SHA-256 {_sha256(data)} is not a published checksum "
        "of this file (nor of its decompressed bytes); delete it so it can be fetched again"
    )


def _download(name: str, file: str, folder: Path, mirrors: Sequence[str]) -> Path:
    """Fetch *file* into *folder* from the first mirror that serves it with a valid checksum."""
    source = IDX_SOURCES[name]
    target = folder / file
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the cache folder {folder}: {error}; "
            "set FASTGAN_DATA to a writable folder"
        ) from error
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file
        logger.info("downloading %s", url)
        try:
            _fetch_verified(url, target, source.sha256[file])
        except (DataError, OSError, ValueError, http.client.HTTPException) as error:
            failures.append(f"  {url}: {error}")
        else:
            return target
    tried = "\n".join(failures) if failures else "  (no mirrors were given)"
    others = ", ".join(sorted(set(source.sha256) - {file}))
    package = f", or install {source.system_package}" if source.system_package else ""
    system = f" (or in {source.system_dir}{package})" if source.system_dir else ""
    raise DataError(
        f"could not download {file} of {name}; each mirror failed:\n{tried}\n"
        f"Download it by hand and put it at {target}{system}; {name}'s other files "
        f"({others}) go in the same folder. Set FASTGAN_DATA to use another cache folder."
    )


def _fetch_verified(url: str, target: Path, accepted: frozenset[str]) -> None:
    """Download *url*, verify it, and only then put it at *target* (atomically)."""

    def download(out: IO[bytes]) -> None:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length")
            payload = bytearray()
            while chunk := response.read(1 << 20):
                payload += chunk
        if announced is not None and announced.isdigit() and len(payload) != int(announced):
            raise DataError(f"truncated download: received {len(payload)} of {announced} bytes")
        _verified_idx_bytes(bytes(payload), accepted, url)
        out.write(payload)

    write_atomically(target, download)


def _npz(path: Path) -> _Source:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise DataError(f"{path}: no array named 'x' (found: {', '.join(archive.files)})")
            x, y = archive["x"], archive["y"] if "y" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read this .npz file: {error}") from error
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"{path}: x must hold at least one sample per row, got shape {x.shape}")
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise DataError(
            f"{path}: y must hold one integer label per sample, shape ({len(x)},); "
            f"got {y.dtype} of shape {y.shape}"
        )
    x = _scale_to_unit(x, path)
    if x.ndim == 2:
        return x, y, None
    if x.ndim == 4 and x.shape[3] in (1, 3):
        x = x[..., 0] if x.shape[3] == 1 else np.clip(x @ _LUMA_WEIGHTS, -1, 1)
    if x.ndim != 3:
        raise DataError(
            f"{path}: x must be (N, F) rows or (N, H, W), (N, H, W, 1) or (N, H, W, 3) images; "
            f"got shape {x.shape}"
        )
    return x, y, (x.shape[1], x.shape[2])


def _scale_to_unit(x: np.ndarray, path: Path) -> np.ndarray:
    """Scale user data to float32 in [-1, 1]: integers 0..255, floats in [0, 1] or [-1, 1]."""
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: integer x must lie in 0..255, found {x.min()}..{x.max()}")
        return _scale_uint8(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x must hold integers or floats, found {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: x holds NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low >= 0 and high <= 1:
        return 2 * x - 1
    if low >= -1 and high <= 1:
        return x
    raise DataError(
        f"{path}: float x spans [{low}, {high}]; scale it to [0, 1] or [-1, 1], "
        "or store integers 0..255"
    )


def _image_folder(folder: Path, size: tuple[int, int] | None) -> _Source:
    image_module = _pillow()
    files = sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file()
    )
    if not files:
        raise DataError(
            f"{folder}: no image files directly in this folder "
            f"(suffixes read: {', '.join(sorted(_IMAGE_SUFFIXES))})"
        )
    images = []
    for path in files:
        try:
            with image_module.open(path) as image:
                grey = np.asarray(image.convert("L"))
        except (OSError, ValueError, image_module.DecompressionBombError) as error:
            raise DataError(f"{path}: cannot read this image: {error}") from error
        scaled = _scale_uint8(grey)
        images.append(scaled if size is None else _resize_image(scaled, size))
    for path, image in zip(files, images, strict=True):
        if image.shape != images[0].shape:
            raise DataError(
                f"{folder}: images differ in size: {files[0].name} is {images[0].shape} and "
                f"{path.name} is {image.shape} (height, width); pass image_size to resize them"
            )
    return np.stack(images), None, images[0].shape


def _resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if x.shape[1:] == size:
        return x
    return np.stack([_resize_image(image, size) for image in x])


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one float image in [-1, 1] to (height, width), bilinear; the result stays in range."""
    image_module = _pillow()
    height, width = size
    picture = image_module.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    resized = np.asarray(picture.resize((width, height), image_module.Resampling.BILINEAR))
    return np.clip(resized, -1, 1).astype(np.float32)


def _pillow() -> ModuleType:
    """The PIL.Image module, imported on first use."""
    try:
        from PIL import Image
    except ImportError as error:
        raise DataError("reading or resizing images needs Pillow: pip install pillow") from error
    return Image


def _filter_classes(
    x: np.ndarray, y: np.ndarray | None, classes: Sequence[int], name: str
) -> tuple[np.ndarray, np.ndarray]:
    if y is None:
        raise DataError(f"{name} has no labels, so it cannot be filtered by class")
    wanted = np.array(sorted({operator.index(label) for label in classes}), dtype=np.int64)
    if wanted.size == 0:
        raise ConfigError("classes is empty: give at least one label to keep")
    present = np.unique(y)
    missing = np.setdiff1d(wanted, present)
    if missing.size:
        raise DataError(
            f"class {', '.join(map(str, missing))} does not occur in {name}; "
            f"its labels are {', '.join(map(str, present))}"
        )
    keep = np.isin(y, wanted)
    return x[keep], y[keep]


def _image_size(size: tuple[int, int] | int | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        pair = (size, size) if isinstance(size, int | np.integer) else tuple(size)
        height, width = (operator.index(side) for side in pair)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"image_size must be one int or (height, width), got {size!r}") from error
    if height < 1 or width < 1:
        raise ConfigError(f"image_size must be positive, got {size!r}")
    return height, width


def _draws(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        yield rng.integers(0, n, size=batch_size)


def _check_batching(n: int, batch_size: int) -> None:
    if n < 1:
        raise ConfigError(f"cannot draw batches from an empty dataset (n={n})")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")


def _dataset(
    name: str, x: np.ndarray, y: np.ndarray | None, image_shape: tuple[int, int] | None
) -> Dataset:
    """Flatten, freeze and fingerprint the final arrays."""
    x = np.ascontiguousarray(x.reshape(x.shape[0], math.prod(x.shape[1:])), dtype=np.float32)
    y = None if y is None else np.ascontiguousarray(y, dtype=np.int64)
    digest = hashlib.sha256(repr((x.shape, image_shape, y is not None)).encode())
    digest.update(x.data)
    if y is not None:
        digest.update(y.data)
        y.flags.writeable = False
    x.flags.writeable = False
    return Dataset(name, x, y, image_shape, digest.hexdigest())


def _scale_uint8(values: np.ndarray) -> np.ndarray:
    """Map 0..255 to float32 -1..1 (x / 127.5 - 1)."""
    scaled = values.astype(np.float32)
    scaled /= 127.5
    scaled -= 1
    return scaled


def _gunzip_if_gzip(data: bytes, source: str) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{source}: corrupt or truncated gzip data: {error}") from error


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from error


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
