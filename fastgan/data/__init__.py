"""Datasets for GAN training: built-in sets, user files, a strict IDX parser, verified downloads.

Every loader returns a :class:`~fastgan.data.dataset.Dataset`: float32 rows, one flattened
sample per row, scaled to [-1, 1] (the range of a tanh generator), with int64 labels where the
data has them. :func:`~fastgan.data.loading.load` takes a dataset's name or path (the names it
accepts are listed in :mod:`fastgan.data.loading`); the training loop reads a dataset in the
order of :mod:`fastgan.data.batches`.

Everything that goes wrong with the data raises :class:`fastgan.errors.DataError` naming the
file and the fault; bad arguments raise :class:`fastgan.errors.ConfigError`.

A leaf: may import only the leaves ``errors`` and ``fileio``; its modules import each other.
"""

from __future__ import annotations

from .batches import epoch_batches, random_batches
from .builtin import ring, ring_modes
from .dataset import Dataset
from .downloads import DOWNLOAD_TIMEOUT_S, IDX_SOURCES, IdxSource, default_cache_dir
from .idx import parse_idx, read_idx
from .loading import load, names

__all__ = ["DOWNLOAD_TIMEOUT_S", "IDX_SOURCES", "Dataset", "IdxSource", "default_cache_dir",
           "epoch_batches", "load", "names", "parse_idx", "random_batches", "read_idx", "ring",
           "ring_modes"]
