"""Layer specifications: plain, frozen descriptions of a network, independent of any backend.

A network is written as a list of these (``MLP([Dense(256, "leaky_relu", alpha=0.2), ...])``);
the runtime layers in :mod:`fastgan.nn.layers` are built from them.

Every layer exchanges 2-D arrays (batch, features). Spatial layers (Conv2D, ConvTranspose2D,
UpSampling2D) read a row as a channels-last image (H, W, C) flattened in row-major order, so
``Reshape`` and ``Flatten`` only change how the next layers read a row: no data moves. Each
spec's ``output_shape(in_shape)`` says what it makes of an input of shape ``(features,)`` or
``(H, W, C)``, and rejects an input it cannot take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid")
INITS = ("he_normal", "glorot_uniform", "torch_default")

Shape = tuple[int, ...]
"""A row's shape: ``(features,)`` for flat data, ``(H, W, C)`` for a channels-last image."""


def _check_activation(activation: str, alpha: float) -> None:
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    if not 0.0 <= alpha < 1.0:
        raise ConfigError(f"LeakyReLU alpha must be in [0, 1), got {alpha}")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _flat(layer: str, in_shape: Shape) -> int:
    """The feature count of a flat input; a clear error for an image."""
    if len(in_shape) != 1:
        raise ConfigError(f"{layer} reads flat features, but its input is an image of shape "
                          f"{in_shape} (H, W, C): put Flatten() before it")
    return in_shape[0]


def _image(layer: str, in_shape: Shape) -> tuple[int, int, int]:
    """(H, W, C) of an image input; a clear error for flat features."""
    if len(in_shape) != 3:
        raise ConfigError(f"{layer} reads images, but its input is {in_shape[0]} flat features: "
                          "put Reshape((H, W, C)) before it")
    height, width, channels = in_shape
    return height, width, channels


@dataclass(frozen=True)
class Dense:
    """Fully connected layer ``y = act(x @ W + b)`` with the activation fused in.

    ``alpha`` is LeakyReLU's negative slope; ``init`` picks the weight initialisation:
    ``he_normal`` (N(0, 2/fan_in), bias 0), ``glorot_uniform`` (Keras' default, bias 0) or
    ``torch_default`` (PyTorch's kaiming-uniform(a=sqrt 5): U(+-1/sqrt(fan_in)) for W and b).
    """

    units: int
    activation: str = "identity"
    alpha: float = 0.01
    init: str = "he_normal"

    def __post_init__(self) -> None:
        if not _is_positive_int(self.units):
            raise ConfigError(f"Dense units must be a positive integer, got {self.units!r}")
        _check_activation(self.activation, self.alpha)
        _check_init(self.init)

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(units,)``; the input must be flat."""
        _flat("Dense", in_shape)
        return (self.units,)


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: in training, zero each unit with probability ``rate``, scale the rest."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {self.rate}")

    def output_shape(self, in_shape: Shape) -> Shape:
        """The input's shape (elementwise)."""
        return in_shape


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over the batch axis, Keras conventions.

    After a flat layer each feature is normalised (BatchNorm1d); after a spatial layer each
    channel is, over the batch and every pixel (BatchNorm2d).

    Running statistics follow ``running = momentum * running + (1 - momentum) * batch``
    (Keras' momentum; PyTorch's momentum m corresponds to 1 - m); the batch variance is the
    biased one, and ``eps`` is added to the variance (Keras' default 1e-3).
    """

    momentum: float = 0.8
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"batch-norm momentum must be in [0, 1), got {self.momentum}")
        if self.eps <= 0:
            raise ConfigError(f"batch-norm eps must be positive, got {self.eps}")

    def output_shape(self, in_shape: Shape) -> Shape:
        """The input's shape."""
        return in_shape


@dataclass(frozen=True)
class Activation:
    """An activation on its own, ``y = act(x)`` (Keras' ``LeakyReLU(0.2)`` after a BatchNorm).

    ``alpha`` is LeakyReLU's negative slope.
    """

    name: str
    alpha: float = 0.2

    def __post_init__(self) -> None:
        _check_activation(self.name, self.alpha)

    def output_shape(self, in_shape: Shape) -> Shape:
        """The input's shape (elementwise)."""
        return in_shape


@dataclass(frozen=True)
class Reshape:
    """Read each row as a channels-last image of ``shape`` = (H, W, C) from here on.

    Rows are (H, W, C) images flattened in row-major order, so nothing moves: this only tells
    the following spatial layers the geometry (Keras' ``Reshape((H, W, C))``).
    """

    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        shape = tuple(self.shape) if isinstance(self.shape, Sequence) else (self.shape,)
        if len(shape) != 3 or not all(_is_positive_int(side) for side in shape):
            raise ConfigError(f"Reshape takes (height, width, channels) as three positive "
                              f"integers, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)   # a list given is kept as a tuple

    def output_shape(self, in_shape: Shape) -> Shape:
        """``shape``; the input must have H * W * C values."""
        if math.prod(in_shape) != math.prod(self.shape):
            raise ConfigError(f"Reshape{self.shape} needs {math.prod(self.shape)} values per "
                              f"sample, but its input {in_shape} has {math.prod(in_shape)}")
        return self.shape


@dataclass(frozen=True)
class Flatten:
    """Read each row as flat features again (Keras' ``Flatten``): nothing moves."""

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(H * W * C,)``."""
        return (math.prod(in_shape),)


@dataclass(frozen=True)
class ConvolutionSpec:
    """The fields Conv2D and ConvTranspose2D share, checked alike: ``filters`` output channels,
    a ``kernel`` x ``kernel`` window, ``stride`` 1 or 2, then bias and activation (``alpha``:
    LeakyReLU's slope), weights initialised by ``init`` as for Dense."""

    filters: int
    kernel: int = 3
    stride: int = 1
    activation: str = "identity"
    alpha: float = 0.2
    init: str = "glorot_uniform"

    def __post_init__(self) -> None:
        layer = type(self).__name__
        for name in ("filters", "kernel"):
            if not _is_positive_int(getattr(self, name)):
                raise ConfigError(f"{layer} {name} must be a positive integer, "
                                  f"got {getattr(self, name)!r}")
        if self.stride not in (1, 2) or isinstance(self.stride, bool):
            raise ConfigError(f"{layer} stride must be 1 or 2, got {self.stride!r}")
        _check_activation(self.activation, self.alpha)
        _check_init(self.init)


@dataclass(frozen=True)
class Conv2D(ConvolutionSpec):
    """2-D convolution with ``filters`` output channels, a ``kernel`` x ``kernel`` window,
    ``stride`` 1 or 2 and Keras/TensorFlow "same" padding, then bias and activation.

    The output is ``ceil(H / stride) x ceil(W / stride) x filters``; the zero padding is
    split evenly, an odd pixel going to the bottom/right. Weights are Keras' kernel layout
    (kh, kw, C, filters) stored as a (kh * kw * C, filters) matrix; ``init`` as for Dense,
    with fans ``kernel^2 * C`` and ``kernel^2 * filters``.
    """

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(ceil(H / stride), ceil(W / stride), filters)``; the input must be an image."""
        height, width, _ = _image("Conv2D", in_shape)
        return (-(-height // self.stride), -(-width // self.stride), self.filters)


@dataclass(frozen=True)
class ConvTranspose2D(ConvolutionSpec):
    """Transposed 2-D convolution (Keras' ``Conv2DTranspose(padding="same")``): ``filters``
    output channels, a ``kernel`` x ``kernel`` window (default 4), ``stride`` 1 or 2 (default
    2), then bias and activation; an (H, W, C) input makes a ``(stride H, stride W,
    filters)`` output.

    It is, exactly, the adjoint (transpose) of the linear map of ``Conv2D(C, kernel, stride)``
    with "same" padding from ``(stride H, stride W, filters)`` images to (H, W, C) ones, with
    the same weights: each input pixel spreads its C values, times the kernel, over the output
    window that convolution would read it from. Weights are Keras' Conv2DTranspose kernel
    layout (kh, kw, filters, C) stored as a (kh * kw * filters, C) matrix, the patch matrix of
    that convolution; ``init`` as for Dense, with Keras' (and PyTorch's) fans for this kernel:
    fan in ``kernel^2 * filters``, fan out ``kernel^2 * C``.
    """

    kernel: int = 4
    stride: int = 2

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(stride H, stride W, filters)``; the input must be an image."""
        height, width, _ = _image("ConvTranspose2D", in_shape)
        return (self.stride * height, self.stride * width, self.filters)


@dataclass(frozen=True)
class UpSampling2D:
    """Nearest-neighbour upsampling by 2 (Keras' ``UpSampling2D()``): each pixel becomes a
    2 x 2 block."""

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(2 H, 2 W, C)``; the input must be an image."""
        height, width, channels = _image("UpSampling2D", in_shape)
        return (2 * height, 2 * width, channels)


LayerSpec = (Dense | Dropout | BatchNorm | Activation | Reshape | Flatten | Conv2D
             | ConvTranspose2D | UpSampling2D)
SPEC_TYPES: tuple[type, ...] = (Dense, Dropout, BatchNorm, Activation, Reshape, Flatten, Conv2D,
                                ConvTranspose2D, UpSampling2D)
WEIGHTED: tuple[type, ...] = (Dense, ConvolutionSpec)
"""The specs of layers with a weight matrix and a bias (what spectral normalisation divides)."""


def output_shapes(layers: Sequence[LayerSpec], in_features: int) -> list[Shape]:
    """The row shape after each layer of a network reading ``in_features`` flat features.

    Raises ConfigError naming the first layer that cannot take its input.
    """
    shape: Shape = (in_features,)
    shapes = []
    for index, spec in enumerate(layers):
        if not isinstance(spec, SPEC_TYPES):
            names = ", ".join(t.__name__ for t in SPEC_TYPES)
            raise ConfigError(f"layer {index}: {spec!r} is not a layer spec ({names})")
        try:
            shape = spec.output_shape(shape)
        except ConfigError as exc:
            raise ConfigError(f"layer {index} ({type(spec).__name__}): {exc}") from None
        shapes.append(shape)
    return shapes
