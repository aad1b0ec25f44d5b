"""GANConfig: the one list of a GAN's settings, and their validation.

Everything that fixes a GAN's shape and training rule is a field here: the networks' layer
specs, the optimizers, the batch, the losses, the noise, the average of G's weights, and the
name and source it was made from. Presets produce one (:func:`fastgan.gan.presets.get`),
:class:`~fastgan.gan.model.GAN` is built from one, and checkpoints, run folders, sweeps and
data parallelism store or compare its JSON form (:meth:`GANConfig.to_json`), so a new setting
is one new field plus its check in :meth:`GANConfig.__post_init__`.

What a config does not hold is how it runs (backend, dtype, seed) and the training state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..nn.losses import D_LOSSES, G_LOSSES
from ..nn.optim import OptimizerConfig
from ..nn.penalty import r1_refusal
from ..nn.specs import ConvolutionSpec, Dense, LayerSpec, Reshape, output_shapes
from ..training import serialization

NOISES = ("normal", "uniform")
LOSSES = {"non_saturating": ("bce", "non_saturating"), "minimax": ("bce", "minimax"),
          "hinge": ("hinge", "hinge"), "least_squares": ("least_squares", "least_squares")}
"""The loss pairs by name (``fastgan train --loss``): (``d_loss``, ``g_loss``)."""


@dataclass(frozen=True)
class GANConfig:
    """Everything needed to build and train one GAN.

    ``generator`` maps ``latent_dim`` noise features to a sample; ``discriminator`` maps a
    sample to one logit. ``k`` discriminator steps of ``batch_size`` rows precede each
    generator step; ``d_loss`` and ``g_loss`` name the losses (:mod:`fastgan.nn.losses`);
    real labels are ``1 - label_smoothing`` (bce and least squares); ``noise`` is "normal"
    (N(0, 1)) or "uniform" (U[-1, 1)); ``ema_decay`` (e.g. 0.999) samples from an average of
    G's weights (None: no average). ``spectral_norm`` divides each Dense and (transposed)
    convolution weight of D by its largest singular value (one power iteration per step).
    ``r1_gamma`` > 0 adds the R1 penalty ``r1_gamma/2 mean |grad_x D(x)|^2`` on the real rows
    to D's loss, on every ``r1_every``-th D step scaled by ``r1_every``
    (:mod:`fastgan.nn.penalty`). ``conditional`` makes a class-conditional GAN over
    ``num_classes`` classes: the one-hot label is concatenated to G's noise and to D's input
    (to each pixel as ``num_classes`` constant channels for a convolutional D, whose first
    Reshape then has them), or, with ``projection``, D reads it through a learned class
    embedding projected onto its last features (:mod:`fastgan.nn.projection`). ``name`` and
    ``source`` say where the config came from.
    """

    latent_dim: int
    generator: tuple[LayerSpec, ...]
    discriminator: tuple[LayerSpec, ...]
    g_optimizer: OptimizerConfig
    d_optimizer: OptimizerConfig
    batch_size: int = 64
    noise: str = "normal"
    k: int = 1
    d_loss: str = "bce"
    g_loss: str = "non_saturating"
    label_smoothing: float = 0.0
    ema_decay: float | None = None
    spectral_norm: bool = False
    r1_gamma: float = 0.0
    r1_every: int = 1
    conditional: bool = False
    num_classes: int = 0
    projection: bool = False
    name: str = "custom"
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator", tuple(self.generator))
        object.__setattr__(self, "discriminator", tuple(self.discriminator))
        if not (_is_count(self.latent_dim)):
            raise ConfigError(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if self.noise not in NOISES:
            raise ConfigError(f"noise must be one of {NOISES}, got {self.noise!r}")
        if self.d_loss not in D_LOSSES:
            raise ConfigError(f"d_loss must be one of {D_LOSSES}, got {self.d_loss!r}")
        if self.g_loss not in G_LOSSES:
            raise ConfigError(f"g_loss must be one of {G_LOSSES}, got {self.g_loss!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and self.d_loss == "hinge":
            raise ConfigError("label_smoothing has no target to move in the hinge loss; "
                              "leave it at 0 or choose another d_loss")
        if not _is_count(self.k):
            raise ConfigError(f"k (D steps per G step) must be an integer >= 1, got {self.k}")
        if not _is_count(self.batch_size):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size}")
        if not isinstance(self.spectral_norm, bool):
            raise ConfigError(f"spectral_norm must be true or false, got {self.spectral_norm!r}")
        self._check_r1()
        self._check_conditional()
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), e.g. 0.999; got {self.ema_decay}")
        try:
            d_out = output_shapes(self.discriminator, self.discriminator_inputs)[-1]
        except ConfigError as exc:
            raise ConfigError(f"the discriminator cannot read the generator's "
                              f"{self.data_dim} features: {exc}") from None
        if d_out != (1,):
            raise ConfigError(f"the discriminator must end in one unit (a logit), not {d_out}")

    def _check_r1(self) -> None:
        gamma = self.r1_gamma
        if (not isinstance(gamma, int | float) or isinstance(gamma, bool)
                or not math.isfinite(gamma) or gamma < 0):
            raise ConfigError(f"r1_gamma must be a number >= 0 (e.g. 10; 0: no R1 penalty), "
                              f"got {gamma!r}")
        if not _is_count(self.r1_every):
            raise ConfigError(f"r1_every (apply R1 every n D steps) must be an integer >= 1, "
                              f"got {self.r1_every!r}")
        refusal = r1_refusal(self.discriminator) if gamma else None
        if refusal is not None:
            raise ConfigError(refusal)
        if gamma and self.conditional:
            raise ConfigError("the R1 penalty is derived for unconditional GANs (the gradient "
                              "w.r.t. the sample alone, labels held fixed, is not written "
                              "yet): set r1_gamma to 0 or conditional to false")

    def _check_conditional(self) -> None:
        for name in ("conditional", "projection"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not self.conditional:
            if self.num_classes or self.projection:
                raise ConfigError("num_classes and projection are settings of a conditional "
                                  "GAN; set conditional=True")
            return
        if not (_is_count(self.num_classes) and self.num_classes >= 2):
            raise ConfigError(f"a conditional GAN needs num_classes >= 2 (10 for the digits), "
                              f"got {self.num_classes!r}")
        if self.label_maps and self.label_map_shape is None:
            raise ConfigError("a convolutional discriminator reads the label as num_classes "
                              "more channels of its image (label maps): its first layer must "
                              "be Reshape((H, W, C + num_classes)) for images of H x W x C = "
                              f"{self.data_dim} values (presets widen it themselves)")
        last = self.discriminator[-1] if self.discriminator else None
        if self.projection and not (isinstance(last, Dense) and last.activation == "identity"):
            raise ConfigError("the projection discriminator adds its class term to the logit "
                              "of D's last layer: D must end in a Dense layer with no "
                              "activation")

    @property
    def labels(self) -> int:
        """One-hot label features beside each real row (``num_classes``; 0 unconditional)."""
        return self.num_classes if self.conditional else 0

    @property
    def generator_inputs(self) -> int:
        """Features of G's input: the noise, then the one-hot label when conditional."""
        return self.latent_dim + self.labels

    @property
    def label_maps(self) -> bool:
        """Whether D reads the label as constant image channels: a conditional GAN whose
        convolutional D has no projection."""
        return (self.conditional and not self.projection
                and any(isinstance(s, ConvolutionSpec) for s in self.discriminator))

    @property
    def label_map_shape(self) -> tuple[int, int] | None:
        """(pixels, image channels) of the images whose pixels D reads with the label's
        ``num_classes`` channels after them, as its first layer, a Reshape, says (None where
        it says no such thing)."""
        first = self.discriminator[0] if self.discriminator else None
        if not isinstance(first, Reshape):
            return None
        height, width, channels = first.shape
        image_channels = channels - self.num_classes
        if image_channels < 1 or height * width * image_channels != self.data_dim:
            return None
        return height * width, image_channels

    @property
    def discriminator_inputs(self) -> int:
        """Features of D's input: a sample, then its one-hot label when concatenated, or its
        pixels each with the label's channels (label maps); the sample alone for the
        projection discriminator, which reads the label at its last layer."""
        if self.label_maps and self.label_map_shape is not None:
            return self.data_dim + self.label_map_shape[0] * self.num_classes
        return self.data_dim + (0 if self.projection else self.labels)

    @property
    def data_dim(self) -> int:
        """Number of features the generator emits and the discriminator reads."""
        if not self.generator:
            raise ConfigError("the generator has no layers")
        return math.prod(output_shapes(self.generator, self.generator_inputs)[-1])

    def replace(self, **changes: Any) -> GANConfig:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON values (records tagged with their type, tuples as lists)."""
        return serialization.encode_fields(self)

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> GANConfig:
        """The inverse of :meth:`to_json`; ConfigError names an unknown or missing field."""
        return serialization.decode_fields(cls, values, "GAN settings")


def loss_fields(name: str) -> dict[str, str]:
    """``d_loss`` and ``g_loss`` of the loss pair ``name`` (a key of :data:`LOSSES`)."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    d_loss, g_loss = LOSSES[name]
    return {"d_loss": d_loss, "g_loss": g_loss}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
