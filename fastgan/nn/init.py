"""Weight initialisations, drawn on the host with NumPy so every backend starts identical."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def weight_init(name: str, rng: np.random.Generator, rows: int, cols: int, fan_in: int,
                fan_out: int, biases: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(W, b)`` of shapes ``(rows, cols)`` and ``(biases,)`` (``biases`` defaults
    to ``cols``) for init ``name``.

    he_normal: W ~ N(0, 2/fan_in), b = 0 (seed 000). glorot_uniform: W ~ U(+-sqrt(6/(in+out))),
    b = 0 (Keras). torch_default: W, b ~ U(+-1/sqrt(fan_in)) (PyTorch's kaiming-uniform(a=sqrt 5)).
    """
    biases = cols if biases is None else biases
    if name == "he_normal":
        return rng.standard_normal((rows, cols)) * np.sqrt(2.0 / fan_in), np.zeros(biases)
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (rows, cols)), np.zeros(biases)
    if name == "torch_default":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, (rows, cols)), rng.uniform(-limit, limit, biases)
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


def conv_transpose_init(name: str, rng: np.random.Generator, kernel: int, channels: int,
                        filters: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` of a ConvTranspose2D layer reading ``channels`` and making ``filters``: W of
    shape ``(kernel^2 filters, channels)`` (Keras' Conv2DTranspose kernel (kh, kw, filters,
    channels) as a matrix), b of shape ``(filters,)``. Fans as Keras and PyTorch count them for
    this kernel: in ``kernel^2 filters``, out ``kernel^2 channels`` (Keras reads the kernel's
    last two axes as (in, out) whatever the layer; PyTorch's (C, filters, kh, kw) weight gives
    the same), so he_normal and torch_default scale by the output's channels."""
    area = kernel * kernel
    return weight_init(name, rng, area * filters, channels, area * filters, area * channels,
                       biases=filters)
