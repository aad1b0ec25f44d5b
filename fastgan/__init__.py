"""fastgan: MLP GANs with hand-derived gradients on NumPy, Numba and CuPy backends.

Examples:
    >>> import fastgan
    >>> gan = fastgan.GAN.from_preset("tiny", data_dim=2, backend="numpy")
    >>> stats = gan.train_step(real_batch)      # doctest: +SKIP
    >>> images = gan.sample(16)                 # doctest: +SKIP
    >>> gan.fit(fastgan.data.ring(), epochs=5)  # doctest: +SKIP
    >>> gan.save("ring.npz"); fastgan.load("ring.npz").sample(16)  # doctest: +SKIP
"""

from . import data, distributed
from ._version import __version__
from .backends import available_backends, get_backend, use_backend
from .errors import (
    BackendUnavailable,
    CheckpointError,
    ConfigError,
    DataError,
    FastganError,
    TrainingDiverged,
)
from .evaluation.metrics import evaluate
from .export import export
from .gan import presets
from .gan.config import GANConfig
from .gan.loading import load
from .gan.model import GAN
from .nn.mlp import MLP
from .nn.optim import SGD, Adam, Constant, InverseTimeDecay, StepDecay
from .nn.specs import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Reshape,
    UpSampling2D,
)
from .training.loop import Callback, History

__all__ = [
    "GAN",
    "MLP",
    "SGD",
    "Activation",
    "Adam",
    "BackendUnavailable",
    "BatchNorm",
    "Callback",
    "CheckpointError",
    "ConfigError",
    "Constant",
    "Conv2D",
    "ConvTranspose2D",
    "DataError",
    "Dense",
    "Dropout",
    "FastganError",
    "Flatten",
    "GANConfig",
    "History",
    "InverseTimeDecay",
    "Reshape",
    "StepDecay",
    "TrainingDiverged",
    "UpSampling2D",
    "__version__",
    "available_backends",
    "data",
    "distributed",
    "evaluate",
    "export",
    "get_backend",
    "load",
    "presets",
    "use_backend",
]
