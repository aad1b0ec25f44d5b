"""Datasets for GAN training: built-in sets, user files, a strict IDX parser, verified downloads.

A leaf: may import only the leaves ``errors`` and ``fileio``. See :mod:`.downloads`.
"""

from .downloads import (
    DOWNLOAD_TIMEOUT_S,
    IDX_SOURCES,
    Dataset,
    IdxSource,
    default_cache_dir,
    epoch_batches,
    load,
    names,
    parse_idx,
    random_batches,
    read_idx,
    ring,
    ring_modes,
)

__all__ = ["DOWNLOAD_TIMEOUT_S", "IDX_SOURCES", "Dataset", "IdxSource", "default_cache_dir",
           "epoch_batches", "load", "names", "parse_idx", "random_batches", "read_idx", "ring",
           "ring_modes"]
