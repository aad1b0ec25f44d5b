"""fastgan: MLP GANs with hand-derived gradients on NumPy, Numba and CuPy backends.

    >>> import fastgan
    >>> gan = fastgan.GAN.from_preset("tiny", data_dim=2, backend="numpy")
    >>> stats = gan.train_step(real_batch)      # doctest: +SKIP
    >>> images = gan.sample(16)                 # doctest: +SKIP
"""

from . import presets
from .backends import available_backends, get_backend, use_backend
from .errors import (
    BackendUnavailable,
    CheckpointError,
    ConfigError,
    DataError,
    FastganError,
    TrainingDiverged,
)
from .gan import GAN
from .metrics import evaluate
from .nn.mlp import MLP
from .nn.specs import BatchNorm, Dense, Dropout
from .optim import SGD, Adam, Constant, InverseTimeDecay, StepDecay

__version__ = "0.1.0"

__all__ = [
    "GAN", "MLP", "SGD", "Adam", "BackendUnavailable", "BatchNorm", "CheckpointError",
    "ConfigError", "Constant", "DataError", "Dense", "Dropout", "FastganError",
    "InverseTimeDecay", "StepDecay", "TrainingDiverged", "available_backends", "evaluate",
    "get_backend", "presets", "use_backend",
]
