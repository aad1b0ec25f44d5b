"""Small versions of every preset, for tests that go through all of them in seconds.

Each keeps its own layer kinds (dropout, batch norm, convolutions), activations, inits,
optimizers and noise; only the widths shrink. Beside them, networks of transposed
convolutions (no preset has them yet) for keras-dcgan's small GAN.
"""

from __future__ import annotations

from typing import Any

from fastgan import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GANConfig,
    Reshape,
)
from fastgan.gan import presets
from fastgan.nn.specs import LayerSpec

SMALL = {"data_dim": 12, "latent_dim": 4, "g_hidden": (16, 16), "d_hidden": (16, 16),
         "batch_size": 8}
SMALL_DCGAN = {"data_dim": 64, "latent_dim": 4, "g_filters": (8, 6, 4), "d_filters": (4, 6, 8),
               "batch_size": 8}
SMALL_FAST_DCGAN = {"data_dim": 64, "latent_dim": 4, "g_filters": (6, 4), "d_filters": (4, 6),
                    "batch_size": 8}
SMALL_CONVOLUTIONAL = {"keras-dcgan": SMALL_DCGAN, "fast-dcgan": SMALL_FAST_DCGAN}
"""The small sizes of the convolutional presets (8 x 8 x 1 images); the others take SMALL."""


def small_config(name: str, **overrides: Any) -> GANConfig:
    """Preset ``name`` at the small sizes above (``overrides`` win)."""
    return presets.get(name, **{**SMALL_CONVOLUTIONAL.get(name, SMALL), **overrides})



def transposed_generator(side: int, widths: tuple[int, int]) -> tuple[LayerSpec, ...]:
    """A generator of side x side x 1 images by stride-2 transposed convolutions (side/4 ->
    side/2 -> side): kernel 4 (its convolution pads 1 on each side) to ``widths[1]``
    channels, batch norm and LeakyReLU, then kernel 3 (padding 0 above, 1 below: the uneven
    split) to the image."""
    quarter = side // 4
    return (Dense(quarter * quarter * widths[0], "leaky_relu", alpha=0.2),
            Reshape((quarter, quarter, widths[0])), ConvTranspose2D(widths[1], kernel=4),
            BatchNorm(momentum=0.8), Activation("leaky_relu", alpha=0.2),
            ConvTranspose2D(1, kernel=3, activation="tanh"))


def transposed_discriminator(side: int, widths: tuple[int, int, int]) -> tuple[LayerSpec, ...]:
    """A discriminator of side x side x 1 images whose first layer is a stride-1 transposed
    convolution (kernel 3), then two stride-2 convolutions, LeakyReLU throughout, a logit."""
    def leaky(spec: type, filters: int, **options: Any) -> LayerSpec:
        return spec(filters, activation="leaky_relu", alpha=0.2, **options)

    return (Reshape((side, side, 1)), leaky(ConvTranspose2D, widths[0], kernel=3, stride=1),
            leaky(Conv2D, widths[1], stride=2), leaky(Conv2D, widths[2], stride=2), Flatten(),
            Dense(1))


TRANSPOSED_GENERATOR = transposed_generator(8, (6, 4))
"""A generator of 8 x 8 x 1 images (keras-dcgan's small D reads them), 2 -> 4 -> 8."""


def transposed_config(**overrides: Any) -> GANConfig:
    """keras-dcgan at its small sizes with the :data:`TRANSPOSED_GENERATOR`."""
    return small_config("keras-dcgan", generator=TRANSPOSED_GENERATOR, **overrides)
