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
from ..errors import CheckpointError, ConfigError
from ..nn.mlp import MLP
from ..training import checkpoint, serialization
from .model import GAN
from .presets import Preset


def load(path: str | os.PathLike[str], *, backend: str | Backend | None = None,
         dtype: Any = None) -> GAN:
    """The GAN saved at ``path`` (a checkpoint file, or a run directory holding
    ``checkpoint.npz``), ready to sample from or to train further.

    ``backend`` and ``dtype`` default to the ones it was saved with. On another backend the
    weights and counters are restored but random streams may restart (with a warning).
    """
    stored = checkpoint.read(path)
    gan = _build(stored, backend, dtype)
    checkpoint.restore(gan, stored)
    return gan


def _build(stored: checkpoint.Stored, backend: str | Backend | None, dtype: Any) -> GAN:
    """A GAN with the stored architecture (weights not yet restored)."""
    meta = stored.metadata
    backend = get_backend(meta.get("backend") if backend is None else backend)
    dtype = resolve_dtype(meta.get("dtype") if dtype is None else dtype)
    try:
        model = meta["model"]
        generator_specs = serialization.decode(model["generator"])
        discriminator_specs = serialization.decode(model["discriminator"])
        g_optimizer = serialization.decode(model["g_optimizer"])
        d_optimizer = serialization.decode(model["d_optimizer"])
        generator = MLP(generator_specs, in_features=model["latent_dim"], backend=backend,
                        dtype=dtype)
        discriminator = MLP(discriminator_specs, in_features=model["data_dim"],
                            backend=backend, dtype=dtype)
        gan = GAN(generator, discriminator, g_optimizer, d_optimizer,
                  **{key: model[key] for key in ("noise", "k", "g_loss", "label_smoothing",
                                                 "batch_size", "ema_decay")})
        preset = meta.get("preset")
        if preset is not None:
            gan.preset = Preset(
                name=preset["name"], source=preset["source"], latent_dim=gan.latent_dim,
                noise=gan.noise, generator=generator_specs, discriminator=discriminator_specs,
                g_optimizer=g_optimizer, d_optimizer=d_optimizer, batch_size=gan.batch_size,
                k=gan.k, g_loss=gan.g_loss, label_smoothing=gan.label_smoothing,
                ema_decay=model["ema_decay"])
            gan.preset_overrides = dict(serialization.decode(preset["overrides"]))
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{stored.path}: the checkpoint's model description is damaged "
                              f"({exc!r})") from None
    return gan
