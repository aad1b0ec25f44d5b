""":func:`load`: a dataset by name or path, with the options every dataset shares.

Names :func:`load` accepts:

- ``"digits"``: scikit-learn's bundled 8x8 digits (values 0..16 -> x/8 - 1), the offline
  default. Split ``"train"`` is the first 1500 of its 1797 images, ``"test"`` the last 297.
- ``"mnist"``, ``"fashion-mnist"``: 28x28 uint8 IDX files (0..255 -> x/127.5 - 1), splits
  ``"train"`` (60000) and ``"test"`` (10000). Each file is found in the cache folder
  (:func:`~fastgan.data.downloads.default_cache_dir` / name) or a system folder, or downloaded,
  and checked against its published SHA-256 (see :mod:`fastgan.data.downloads`).
- ``"ring"``: the 2-D toy data of :func:`~fastgan.data.builtin.ring`; ``n`` is the number of
  points generated (default 4096) and ``seed`` seeds them; labels are the mode indices.
- a path to an ``.npz`` file with an array ``x`` and optionally integer labels ``y``. Values of
  ``x``: integers 0..255 are scaled by x/127.5 - 1; floats all within [0, 1] by 2x - 1; floats
  within [-1, 1] with some value below 0 are kept. Shapes: (N, H, W) images; (N, H, W, 1) or
  (N, H, W, 3) images made greyscale (ITU-R 601-2 luma, as Pillow's "L" mode); (N, F) flat rows,
  which have no image shape.
- a path to a folder of images (Pillow, read as 8-bit greyscale, no labels): files directly in
  the folder with a common image suffix, in name order. They must share one size unless
  ``image_size`` is given.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastgan.errors import ConfigError, DataError

from .builtin import (
    DIGITS_SPLITS,
    IDX_SPLIT_FILES,
    RING_DEFAULT_SIZE,
    digits,
    idx_split,
    ring,
)
from .dataset import Dataset, SourceArrays, make_dataset
from .downloads import IDX_SOURCES, default_cache_dir
from .files import image_folder, npz
from .images import resize_images


def names() -> list[str]:
    """The built-in dataset names :func:`load` accepts (besides .npz files and image folders)."""
    return ["digits", *IDX_SOURCES, "ring"]


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
    """Load a dataset by name or path (:mod:`fastgan.data.loading` says what each name means).

    ``classes`` keeps only samples with those labels; ``n`` then keeps at most the first n
    samples; ``image_size`` (height, width) or one int for squares resizes the images (Pillow,
    bilinear); ``pad`` then adds that many black (-1) pixels on every side (MNIST with
    ``pad=2`` is 32 x 32, the size seed 003's DCGAN takes). ``cache_dir`` replaces
    :func:`~fastgan.data.downloads.default_cache_dir` and ``mirrors`` (base URLs, tried in
    order) replaces the default download mirrors.
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
        x, image_shape = resize_images(x, size), size
    if pad:
        if image_shape is None:
            raise ConfigError(f"pad applies to images, but {name} is not image data")
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
        image_shape = (image_shape[0] + 2 * pad, image_shape[1] + 2 * pad)
    return make_dataset(name, x, y, image_shape)


def _read_source(
    name: str,
    split: str,
    size: tuple[int, int] | None,
    cache_dir: str | os.PathLike[str] | None,
    mirrors: Sequence[str] | None,
    n: int | None,
    seed: int,
) -> SourceArrays:
    if name == "digits":
        _check_split(name, split, DIGITS_SPLITS)
        return digits(split)
    if name in IDX_SOURCES:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        _check_split(name, split, tuple(IDX_SPLIT_FILES))
        return idx_split(name, split, folder / name, mirrors)
    if name == "ring":
        _check_split(name, split, ("train",))
        points = ring(n or RING_DEFAULT_SIZE, seed=seed)
        return points.x, points.y, None
    path = Path(name).expanduser()
    if path.is_dir():
        _check_split(name, split, ("train",))
        return image_folder(path, size)
    if path.suffix == ".npz":
        _check_split(name, split, ("train",))
        return npz(path)
    raise ConfigError(
        f"unknown dataset {name!r}: use one of {', '.join(names())}, "
        "or the path of an existing .npz file or folder of images"
    )


def _check_split(name: str, split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ConfigError(f"{name} has no split {split!r}; choose from {', '.join(splits)}")


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
