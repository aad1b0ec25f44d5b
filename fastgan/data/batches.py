"""The order training reads a dataset in: batches of row indices, by epoch or drawn at random."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fastgan.errors import ConfigError


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


def _draws(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        yield rng.integers(0, n, size=batch_size)


def _check_batching(n: int, batch_size: int) -> None:
    if n < 1:
        raise ConfigError(f"cannot draw batches from an empty dataset (n={n})")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
