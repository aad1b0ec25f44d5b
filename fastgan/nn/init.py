"""Weight initialisations, drawn on the host with NumPy so every backend starts identical."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def weight_init(name: str, rng: np.random.Generator, rows: int, cols: int, fan_in: int,
                fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(W, b)`` of shapes ``(rows, cols)`` and ``(cols,)`` for init ``name``.

    he_normal: W ~ N(0, 2/fan_in), b = 0 (seed 000). glorot_uniform: W ~ U(+-sqrt(6/(in+out))),
    b = 0 (Keras). torch_default: W, b ~ U(+-1/sqrt(fan_in)) (PyTorch's kaiming-uniform(a=sqrt 5)).
    """
    if name == "he_normal":
        return rng.standard_normal((rows, cols)) * np.sqrt(2.0 / fan_in), np.zeros(cols)
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (rows, cols)), np.zeros(cols)
    if name == "torch_default":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, (rows, cols)), rng.uniform(-limit, limit, cols)
    raise ConfigError(f"unknown init {name!r}")


def dense_init(name: str, rng: np.random.Generator, fan_in: int, fan_out: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` of a Dense layer: W of shape ``(fan_in, fan_out)``."""
    return weight_init(name, rng, fan_in, fan_out, fan_in, fan_out)


def conv_init(name: str, rng: np.random.Generator, kernel: int, channels: int, filters: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` of a Conv2D layer: W of shape ``(kernel^2 channels, filters)`` (Keras' kernel
    (kh, kw, C, filters) as a matrix), fans ``kernel^2 channels`` and ``kernel^2 filters``
    (Keras' and PyTorch's receptive-field rule)."""
    area = kernel * kernel
    return weight_init(name, rng, area * channels, filters, area * channels, area * filters)
