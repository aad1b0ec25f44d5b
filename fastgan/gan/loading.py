"""Loading a GAN from a checkpoint: build the stored architecture, then restore its state.

The checkpoint format itself (what a file holds, how it is written and checked) is
:mod:`fastgan.training.checkpoint`; this module adds the one thing that format cannot do
without knowing the :class:`~fastgan.gan.model.GAN` class: make a new GAN from a file.
"""

from __future__ import annotations

import os
from typing import Any

from ..backends import get_backend
from ..backends.base import Backend, resolve_dtype
from ..errors import CheckpointError
from ..training import checkpoint
from .config import GANConfig
from .model import GAN


def load(path: str | os.PathLike[str] | checkpoint.Stored, *,
         backend: str | Backend | None = None, dtype: Any = None) -> GAN:
    """The GAN saved at ``path`` (a checkpoint file, a run directory holding
    ``checkpoint.npz``, or a checkpoint already read), ready to sample from or to train further.

    ``backend`` and ``dtype`` default to the ones it was saved with. On another backend the
    weights and counters are restored but random streams may restart (with a warning).
    """
    stored = path if isinstance(path, checkpoint.Stored) else checkpoint.read(path)
    gan = _build(stored, backend, dtype)
    checkpoint.restore(gan, stored)
    return gan


def _build(stored: checkpoint.Stored, backend: str | Backend | None, dtype: Any) -> GAN:
    """A GAN with the stored configuration (weights not yet restored), on ``backend`` and
    ``dtype`` (None: the stored ones). A configuration that makes no GAN is a CheckpointError."""
    meta = stored.metadata
    backend = get_backend(meta["backend"] if backend is None else backend)
    dtype = resolve_dtype(meta["dtype"] if dtype is None else dtype)
    try:
        return GAN(GANConfig.from_json(checkpoint.config_record(meta)), backend=backend,
                   dtype=dtype)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{stored.path}: the checkpoint's model description is damaged "
                              f"({exc})") from None
