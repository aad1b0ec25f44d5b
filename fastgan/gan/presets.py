"""The architectures and hyper-parameters of the reference tutorials, as named presets.

``get(name, data_dim=784, **overrides)`` returns a :class:`~fastgan.gan.config.GANConfig`:
the complete, frozen description of a GAN (layer specs, optimizers, batch size, losses) that
``GAN`` is built from. The image size follows the dataset through ``data_dim``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from ..errors import ConfigError
from ..nn.optim import SGD, Adam, InverseTimeDecay, StepDecay
from ..nn.specs import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    LayerSpec,
    Reshape,
    UpSampling2D,
)
from .config import GANConfig


def _mlp(hidden: tuple[int, ...], out: int, act: str, alpha: float, init: str,
         out_act: str, dropout: float = 0.0) -> tuple[LayerSpec, ...]:
    """Hidden Dense layers (each optionally followed by Dropout), then the output layer."""
    layers: list[LayerSpec] = []
    for units in hidden:
        layers.append(Dense(units, act, alpha, init))
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(out, out_act, alpha, init))
    return tuple(layers)


def _numpy_mlp(data_dim: int, latent_dim: int = 100, g_hidden: tuple[int, ...] = (128,),
               d_hidden: tuple[int, ...] = (128,), lr: float = 1e-3,
               decay: float = 1e-4) -> GANConfig:
    return GANConfig(
        name="numpy-mlp", source="000: NumPy MLP GAN, SGD with inverse-time decay, one digit",
        latent_dim=latent_dim, noise="normal",
        generator=_mlp(g_hidden, data_dim, "relu", 0.0, "he_normal", "tanh"),
        discriminator=_mlp(d_hidden, 1, "leaky_relu", 0.01, "he_normal", "identity"),
        g_optimizer=SGD(lr, schedule=InverseTimeDecay(decay)),
        d_optimizer=SGD(lr, schedule=InverseTimeDecay(decay)),
        batch_size=64,
    )


def _keras_mlp(data_dim: int, latent_dim: int = 128, g_hidden: tuple[int, ...] = (256, 512, 1024),
               d_hidden: tuple[int, ...] = (512, 256), lr: float = 2e-4) -> GANConfig:
    init = "glorot_uniform"
    generator = (*_mlp(g_hidden, data_dim, "leaky_relu", 0.2, init, "tanh")[:-1],
                 BatchNorm(momentum=0.8, eps=1e-3), Dense(data_dim, "tanh", 0.2, init))
    return GANConfig(
        name="keras-mlp", source="001: Keras MLP GAN with BatchNorm, Adam(2e-4, 0.5)",
        latent_dim=latent_dim, noise="normal", generator=generator,
        discriminator=_mlp(d_hidden, 1, "leaky_relu", 0.2, init, "identity"),
        g_optimizer=Adam(lr, beta1=0.5), d_optimizer=Adam(lr, beta1=0.5), batch_size=128,
    )


def _numpy_adam(data_dim: int, latent_dim: int = 100, g_hidden: tuple[int, ...] = (200, 560),
                d_hidden: tuple[int, ...] = (128,), lr: float = 1e-3) -> GANConfig:
    decay = StepDecay(0.01, milestones=(1,))
    return GANConfig(
        name="numpy-adam", source="002: NumPy GAN with Adam and an extreme step decay",
        latent_dim=latent_dim, noise="uniform",
        generator=_mlp(g_hidden, data_dim, "relu", 0.0, "he_normal", "tanh"),
        discriminator=_mlp(d_hidden, 1, "relu", 0.0, "he_normal", "identity"),
        g_optimizer=Adam(lr, schedule=decay), d_optimizer=Adam(lr, schedule=decay),
        batch_size=64,
    )


def _pytorch_vanilla(data_dim: int, latent_dim: int = 100,
                     g_hidden: tuple[int, ...] = (256, 512, 1024),
                     d_hidden: tuple[int, ...] = (1024, 512, 256), lr: float = 2e-4,
                     dropout: float = 0.3) -> GANConfig:
    init = "torch_default"
    return GANConfig(
        name="pytorch-vanilla", source="004: PyTorch vanilla GAN, dropout in D, Adam(2e-4)",
        latent_dim=latent_dim, noise="normal",
        generator=_mlp(g_hidden, data_dim, "leaky_relu", 0.2, init, "tanh"),
        discriminator=_mlp(d_hidden, 1, "leaky_relu", 0.2, init, "identity", dropout),
        g_optimizer=Adam(lr), d_optimizer=Adam(lr), batch_size=100,
    )


def _fast_mlp(data_dim: int, latent_dim: int = 100,
              g_hidden: tuple[int, ...] = (256, 512, 1024),
              d_hidden: tuple[int, ...] = (1024, 512, 256), g_lr: float = 3.9e-4,
              d_lr: float = 6.7e-4, beta1: float = 0.51, dropout: float = 0.3,
              lr: float | None = None) -> GANConfig:
    """Seed 004's architecture with the training settings a fastgan sweep found fastest to
    a low Fréchet distance on Fashion-MNIST (docs/sweeps.md, the best of 36 settings, rounded
    to two digits): D's learning rate above G's (``lr`` sets both), Adam's beta1 0.51, batch
    44, label smoothing 0.052 and samples from an average of G's weights (decay 0.996)."""
    if lr is not None:
        g_lr = d_lr = lr
    vanilla = _pytorch_vanilla(data_dim, latent_dim, g_hidden, d_hidden, dropout=dropout)
    return replace(vanilla, name="fast-mlp",
                   source="004's architecture, training settings tuned by a fastgan sweep",
                   g_optimizer=Adam(g_lr, beta1=beta1), d_optimizer=Adam(d_lr, beta1=beta1),
                   batch_size=44, label_smoothing=0.052, ema_decay=0.996)


def _fast_cgan(data_dim: int, **fast_mlp: Any) -> GANConfig:
    """``fast-mlp`` made class-conditional: the one-hot label (10 classes, as Fashion-MNIST
    and the digits have; a run sets ``num_classes`` from its data) beside G's noise, and D a
    projection discriminator (Miyato and Koyama, 2018: the label's embedding times D's last
    hidden features, added to its logit), which won the race against labels concatenated to
    D's input (docs/conditional.md)."""
    return replace(_fast_mlp(data_dim, **fast_mlp), name="fast-cgan",
                   source="fast-mlp with one-hot class labels beside G's noise and a "
                          "projection discriminator",
                   conditional=True, num_classes=10, projection=True)


def _keras_dcgan(data_dim: int, latent_dim: int = 64, channels: int = 1,
                 g_filters: tuple[int, int, int] = (256, 128, 64),
                 d_filters: tuple[int, int, int] = (64, 128, 256), lr: float = 1e-4) -> GANConfig:
    """Seed 003's DCGAN for square images of ``channels`` channels with a side divisible by 4
    (32 x 32 x 1: MNIST padded by 2).

    G: Dense to (side/4, side/4, g_filters[0]) + LeakyReLU(0.2), two blocks [UpSampling2D,
    Conv2D(g_filters[i]), BatchNorm(0.8), LeakyReLU(0.2)] (Keras' Conv2D -> BN -> LeakyReLU
    order: an identity Conv2D, then BatchNorm, then Activation), Conv2D(channels) + tanh.
    D: Conv2D with strides 1, 2, 2 and d_filters, each + LeakyReLU(0.2), Flatten, Dense(1)
    logit. Every 3 x 3 convolution pads "same"; weights glorot-uniform, Keras' default.
    """
    side = _square_side("keras-dcgan", data_dim, channels)
    for name, filters in (("g_filters", g_filters), ("d_filters", d_filters)):
        if len(filters) != 3 or not all(_positive(f) for f in filters):
            raise ConfigError(f"{name} must be three positive channel counts, got {filters!r}")
    init, leak = "glorot_uniform", 0.2
    start = (side // 4, side // 4, g_filters[0])

    def up_block(filters: int) -> tuple[LayerSpec, ...]:
        return (UpSampling2D(), Conv2D(filters, init=init), BatchNorm(momentum=0.8, eps=1e-3),
                Activation("leaky_relu", leak))

    def conv_block(filters: int, stride: int) -> Conv2D:
        return Conv2D(filters, stride=stride, activation="leaky_relu", alpha=leak, init=init)

    generator = (Dense(math.prod(start), "leaky_relu", leak, init), Reshape(start),
                 *up_block(g_filters[1]), *up_block(g_filters[2]),
                 Conv2D(channels, activation="tanh", init=init))
    discriminator = (Reshape((side, side, channels)), conv_block(d_filters[0], 1),
                     conv_block(d_filters[1], 2), conv_block(d_filters[2], 2), Flatten(),
                     Dense(1, init=init))
    return GANConfig(
        name="keras-dcgan", source="003: Keras DCGAN (conv D, upsampling G), Adam(1e-4, 0.5, 0.9)",
        latent_dim=latent_dim, noise="normal", generator=generator, discriminator=discriminator,
        g_optimizer=Adam(lr, beta1=0.5, beta2=0.9), d_optimizer=Adam(lr, beta1=0.5, beta2=0.9),
        batch_size=64,
    )


UPSAMPLINGS = ("transposed", "nearest")
"""How ``fast-dcgan``'s generator doubles its image: a stride-2 ConvTranspose2D, or
UpSampling2D then a stride-1 Conv2D."""
NORMS = ("batch", "none")
"""``fast-dcgan``'s normalisation of G's hidden layers: BatchNorm, or none."""


def _fast_dcgan(data_dim: int, latent_dim: int = 100, channels: int = 1,
                g_filters: tuple[int, ...] = (32, 16), d_filters: tuple[int, ...] = (16, 32),
                kernel: int = 4, upsample: str = "transposed", norm: str = "batch",
                alpha: float = 0.2, lr: float = 1e-3) -> GANConfig:
    """A small DCGAN for native-size square images (28 x 28 and any side divisible by 4),
    sized for a ten-minute CPU budget.

    G: Dense to (side/4, side/4, g_filters[0]), then one block per later width and a last one
    to ``channels``: the last two blocks double the image (``upsample``: a stride-2
    ConvTranspose2D, or UpSampling2D + a stride-1 Conv2D), earlier ones are stride-1 Conv2D;
    every hidden layer is followed by ``norm`` (BatchNorm(0.9, 1e-5), PyTorch's) and
    LeakyReLU(``alpha``); the image by tanh. D: Conv2D per ``d_filters``, the first two of
    stride 2 (to side/4), each + LeakyReLU(``alpha``), Flatten, Dense(1) logit. ``kernel`` is
    every convolution's window; Adam(``lr``, 0.5), batch 64, samples from an average of G's
    weights (decay 0.995). The defaults are the best of a three-stage sweep on Fashion-MNIST
    (docs/sweeps.md): the smallest networks tried, whose steps are the fastest.
    """
    side = _square_side("fast-dcgan", data_dim, channels)
    for name, filters, least in (("g_filters", g_filters, 1), ("d_filters", d_filters, 2)):
        if len(filters) < least or not all(_positive(f) for f in filters):
            raise ConfigError(f"{name} must be at least {least} positive channel count(s), "
                              f"got {filters!r}")
    if upsample not in UPSAMPLINGS:
        raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLINGS)}, got {upsample!r}")
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    init = "glorot_uniform"
    start = (side // 4, side // 4, g_filters[0])

    def hidden(*layer: LayerSpec) -> tuple[LayerSpec, ...]:
        normalise = (BatchNorm(momentum=0.9, eps=1e-5),) if norm == "batch" else ()
        return (*layer, *normalise, Activation("leaky_relu", alpha))

    def block(filters: int, doubles: bool, activation: str) -> tuple[LayerSpec, ...]:
        if not doubles:
            return (Conv2D(filters, kernel, activation=activation, init=init),)
        if upsample == "transposed":
            return (ConvTranspose2D(filters, kernel, 2, activation=activation, init=init),)
        return (UpSampling2D(), Conv2D(filters, kernel, activation=activation, init=init))

    widths = (*g_filters[1:], channels)
    generator: list[LayerSpec] = [*hidden(Dense(math.prod(start), init=init)), Reshape(start)]
    for index, filters in enumerate(widths):
        doubles = index >= len(widths) - 2
        if index == len(widths) - 1:
            generator.extend(block(filters, doubles, "tanh"))
        else:
            generator.extend(hidden(*block(filters, doubles, "identity")))
    discriminator = (Reshape((side, side, channels)),
                     *(Conv2D(filters, kernel, 2 if index < 2 else 1, "leaky_relu", alpha, init)
                       for index, filters in enumerate(d_filters)),
                     Flatten(), Dense(1, init=init))
    return GANConfig(
        name="fast-dcgan", source="a small DCGAN at native size, its architecture and "
                                  "settings chosen by a fastgan sweep",
        latent_dim=latent_dim, noise="normal", generator=tuple(generator),
        discriminator=discriminator, g_optimizer=Adam(lr, beta1=0.5),
        d_optimizer=Adam(lr, beta1=0.5), batch_size=64, ema_decay=0.995)


def _square_side(name: str, data_dim: int, channels: int) -> int:
    """The side of ``data_dim`` features read as square images of ``channels`` channels, a
    multiple of 4; a ConfigError otherwise."""
    side = math.isqrt(data_dim // channels) if _positive(channels) else 0
    if side * side * channels != data_dim or side % 4:
        raise ConfigError(f"{name} makes square images of {channels} channel(s) with a side "
                          f"divisible by 4, but the data has {data_dim} features; pad or resize "
                          "the images (MNIST: pad=2 gives 32 x 32)")
    return side


def _positive(value: object) -> bool:
    return isinstance(value, int) and value >= 1


def _tiny(data_dim: int, latent_dim: int = 8, g_hidden: tuple[int, ...] = (64, 64),
          d_hidden: tuple[int, ...] = (64, 64), lr: float = 1e-3) -> GANConfig:
    return GANConfig(
        name="tiny", source="small MLP GAN for tests and 2-D toy data",
        latent_dim=latent_dim, noise="normal",
        generator=_mlp(g_hidden, data_dim, "relu", 0.0, "he_normal", "tanh"),
        discriminator=_mlp(d_hidden, 1, "leaky_relu", 0.2, "he_normal", "identity"),
        g_optimizer=Adam(lr, beta1=0.5), d_optimizer=Adam(lr, beta1=0.5), batch_size=128,
    )


_fast_cgan.__signature__ = inspect.signature(_fast_mlp)     # its settings are fast-mlp's

_BUILDERS: dict[str, Callable[..., GANConfig]] = {
    "numpy-mlp": _numpy_mlp,
    "keras-mlp": _keras_mlp,
    "numpy-adam": _numpy_adam,
    "keras-dcgan": _keras_dcgan,
    "pytorch-vanilla": _pytorch_vanilla,
    "fast-mlp": _fast_mlp,
    "fast-cgan": _fast_cgan,
    "fast-dcgan": _fast_dcgan,
    "tiny": _tiny,
}

# Overrides that act on the built config rather than on a builder's arguments: every field of
# GANConfig but latent_dim, which shapes the generator's first layer.
_CONFIG_FIELDS = tuple(field.name for field in fields(GANConfig) if field.name != "latent_dim")


def names() -> list[str]:
    """The preset names, in the order of the seed tutorials."""
    return list(_BUILDERS)


def get(name: str, data_dim: int = 784, **overrides: Any) -> GANConfig:
    """Build preset ``name`` for ``data_dim`` features, applying ``overrides``.

    Architecture overrides: ``latent_dim``, ``g_hidden``, ``d_hidden`` (tuples of widths),
    ``lr`` (both networks) and per-preset extras (``decay`` for numpy-mlp, ``dropout`` for
    pytorch-vanilla; ``channels``, ``g_filters`` and ``d_filters`` for keras-dcgan, whose
    images are square: ``data_dim`` = side^2 channels, side divisible by 4). Training
    overrides: any other field of :class:`~fastgan.gan.config.GANConfig` (``batch_size``,
    ``k``, ``g_loss``, ``label_smoothing``, ``noise``, ``g_optimizer``, ``d_optimizer``,
    ``ema_decay``...).
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(names())}")
    if not isinstance(data_dim, int) or data_dim < 1:
        raise ConfigError(f"data_dim must be a positive integer, got {data_dim!r}")
    training = {key: overrides.pop(key) for key in _CONFIG_FIELDS if key in overrides}
    for key in ("g_hidden", "d_hidden", "g_filters", "d_filters"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    builder = _BUILDERS[name]
    own = [key for key in inspect.signature(builder).parameters if key != "data_dim"]
    foreign = sorted(set(overrides) - set(own))
    if foreign:
        raise ConfigError(f"preset {name!r} does not take {', '.join(foreign)} (its own "
                          f"settings: {', '.join(own)}; and GANConfig's fields)")
    try:
        preset = builder(data_dim, **overrides)
    except TypeError as exc:
        raise ConfigError(f"preset {name!r}: {exc}") from None
    return replace(preset, **{"discriminator": _with_label_maps(preset, training), **training})


def _with_label_maps(preset: GANConfig, training: dict[str, Any]) -> tuple[LayerSpec, ...]:
    """``preset``'s discriminator, its first Reshape widened by the label's channels where
    ``training`` makes it a conditional GAN with labels beside a convolutional D's input."""
    first, *rest = preset.discriminator
    conditional = training.get("conditional") and not training.get("projection")
    if not (conditional and isinstance(first, Reshape)):
        return preset.discriminator
    height, width, channels = first.shape
    return (Reshape((height, width, channels + training.get("num_classes", 0))), *rest)
