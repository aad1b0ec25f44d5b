"""The :class:`Dataset` every loader returns, and how finished arrays become one."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

SourceArrays = tuple[np.ndarray, np.ndarray | None, tuple[int, int] | None]
"""A source as read, before :func:`make_dataset`: (x, y, image_shape), where x holds (N, H, W)
images or (N, F) rows in [-1, 1], y the labels or None, image_shape (H, W) or None."""


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


def make_dataset(
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


def renumbered(dataset: Dataset, labels: Sequence[int]) -> Dataset:
    """``dataset`` with its label ``labels[i]`` renamed ``i`` (``labels`` ascending; every
    label of the data must be one of them): the classes of a conditional GAN trained on a
    subset of the labels."""
    wanted = np.asarray(labels, dtype=np.int64)
    if dataset.y is None or not np.isin(dataset.y, wanted).all():
        raise ConfigError(f"{dataset.name} has labels outside {list(labels)}")
    return make_dataset(dataset.name, dataset.x, np.searchsorted(wanted, dataset.y),
                        dataset.image_shape)


def scale_uint8(values: np.ndarray) -> np.ndarray:
    """Map 0..255 to float32 -1..1 (x / 127.5 - 1)."""
    scaled = values.astype(np.float32)
    scaled /= 127.5
    scaled -= 1
    return scaled
