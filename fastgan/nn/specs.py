"""Layer specifications: plain, frozen descriptions of an MLP, independent of any backend.

An MLP is written as a list of these (``MLP([Dense(256, "leaky_relu", alpha=0.2), ...])``);
the runtime layers in :mod:`fastgan.nn.layers` are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid")
INITS = ("he_normal", "glorot_uniform", "torch_default")


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
        if not isinstance(self.units, int) or self.units < 1:
            raise ConfigError(f"Dense units must be a positive integer, got {self.units!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError(f"LeakyReLU alpha must be in [0, 1), got {self.alpha}")


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: in training, zero each unit with probability ``rate``, scale the rest."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {self.rate}")


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over the batch axis, Keras conventions.

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


LayerSpec = Dense | Dropout | BatchNorm
