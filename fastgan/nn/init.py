"""Weight initialisations, drawn on the host with NumPy so every backend starts identical."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def dense_init(name: str, rng: np.random.Generator, fan_in: int, fan_out: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(W, b)`` of shapes ``(fan_in, fan_out)`` and ``(fan_out,)`` for init ``name``.

    he_normal: W ~ N(0, 2/fan_in), b = 0 (seed 000). glorot_uniform: W ~ U(+-sqrt(6/(in+out))),
    b = 0 (Keras). torch_default: W, b ~ U(+-1/sqrt(fan_in)) (PyTorch's kaiming-uniform(a=sqrt 5)).
    """
    if name == "he_normal":
        return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in), np.zeros(fan_out)
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)), np.zeros(fan_out)
    if name == "torch_default":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, (fan_in, fan_out)), rng.uniform(-limit, limit, fan_out)
    raise ConfigError(f"unknown init {name!r}")
