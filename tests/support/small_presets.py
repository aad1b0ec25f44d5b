"""Small versions of every preset, for tests that go through all of them in seconds.

Each keeps its own layer kinds (dropout, batch norm, convolutions), activations, inits,
optimizers and noise; only the widths shrink.
"""

from __future__ import annotations

from typing import Any

from fastgan import GANConfig
from fastgan.gan import presets

SMALL = {"data_dim": 12, "latent_dim": 4, "g_hidden": (16, 16), "d_hidden": (16, 16),
         "batch_size": 8}
SMALL_DCGAN = {"data_dim": 64, "latent_dim": 4, "g_filters": (8, 6, 4), "d_filters": (4, 6, 8),
               "batch_size": 8}


def small_config(name: str, **overrides: Any) -> GANConfig:
    """Preset ``name`` at the small sizes above (``overrides`` win)."""
    return presets.get(name, **{**(SMALL_DCGAN if name == "keras-dcgan" else SMALL), **overrides})
