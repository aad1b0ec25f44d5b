"""The built-in datasets: scikit-learn's 8x8 digits, the IDX sets (MNIST, Fashion-MNIST) and the
2-D ring of Gaussians.

``digits`` and ``idx_split`` read a split that :func:`~fastgan.data.load` has checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastgan.errors import ConfigError, DataError

from .dataset import Dataset, SourceArrays, make_dataset, scale_uint8
from .downloads import idx_file

DIGITS_SPLITS = ("train", "test")
_DIGITS_TRAIN_SIZE = 1500
RING_DEFAULT_SIZE = 4096

IDX_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""Each split of an IDX dataset -> its (images, labels) files."""


def digits(split: str) -> SourceArrays:
    """scikit-learn's digits (values 0..16 -> x/8 - 1): "train" is the first 1500 of its 1797
    images, "test" the last 297."""
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


def idx_split(name: str, split: str, folder: Path, mirrors: Sequence[str] | None) -> SourceArrays:
    """One split of the IDX dataset ``name``: its uint8 images (0..255 -> x/127.5 - 1) and
    labels, found in ``folder`` or downloaded from ``mirrors``."""
    images_file, labels_file = IDX_SPLIT_FILES[split]
    images, images_path = idx_file(name, images_file, folder, mirrors)
    labels, labels_path = idx_file(name, labels_file, folder, mirrors)
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
    return scale_uint8(images), labels, (images.shape[1], images.shape[2])


def ring(
    n: int = RING_DEFAULT_SIZE,
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
    return make_dataset("ring", np.clip(points, -1, 1), labels, None)


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
