"""The layer walk every exporter reads: one network of a GAN as host arrays and shapes.

A :class:`Network` is the network's layer specs (from the GAN's config), the row shape each
layer reads and makes, and each layer's arrays in float32: ``weight`` and ``bias`` of Dense
(``(in, out)``), Conv2D (Keras' ``(kh, kw, C, filters)``) and ConvTranspose2D (Keras'
``(kh, kw, filters, C)``), ``gamma``, ``beta``,
``running_mean`` and ``running_var`` of BatchNorm. Exporters write inference: dropout is the
identity and batch norm uses the running statistics, as :meth:`fastgan.GAN.sample` does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.base import ConvGeometry
from ..errors import ConfigError
from ..gan.model import GAN
from ..nn.layers import SpectralNormalised
from ..nn.params import FlatParams
from ..nn.specs import Conv2D, ConvTranspose2D, LayerSpec, Shape

NETWORKS = ("generator", "discriminator")
"""The networks of a GAN an exporter can write."""

INPUT_NAMES = {"generator": "z", "discriminator": "image"}
"""Each network's input as exported files name it (a conditional GAN would add ``label``)."""
OUTPUT_NAMES = {"generator": "image", "discriminator": "logit"}
"""Each network's output as exported files name it."""


@dataclass(frozen=True)
class Layer:
    """One layer: its spec, the row shapes it reads and makes, and its arrays by name."""

    spec: LayerSpec
    in_shape: Shape
    out_shape: Shape
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True)
class Network:
    """One network as exporters see it: named input and output, and its layers in order."""

    name: str
    input_name: str
    output_name: str
    in_features: int
    layers: tuple[Layer, ...]
    noise: str | None = None
    """The generator's noise ("normal": N(0, 1), "uniform": U[-1, 1)); None for the
    discriminator."""

    @property
    def out_shape(self) -> Shape:
        """The row shape of the output (``(features,)`` or ``(H, W, C)``)."""
        return self.layers[-1].out_shape

    def describe(self) -> dict[str, Any]:
        """The network as JSON values: names, shapes and each layer's spec and arrays' shapes."""
        return {"network": self.name, "input": self.input_name, "output": self.output_name,
                "in_features": self.in_features, "noise": self.noise,
                "out_shape": list(self.out_shape),
                "layers": [{"type": type(layer.spec).__name__,
                            "spec": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in vars(layer.spec).items()},
                            "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                            "arrays": {k: list(a.shape) for k, a in layer.arrays.items()}}
                           for layer in self.layers]}


def conv_padding(layer: Layer) -> tuple[int, int, int, int]:
    """The zero padding of a Conv2D layer as (top, left, bottom, right): TensorFlow's "same",
    as :class:`~fastgan.backends.base.ConvGeometry` pads (an odd pixel to the bottom/right);
    of a ConvTranspose2D layer, that of the convolution it is the adjoint of (whose input is
    the layer's output image)."""
    spec = layer.spec
    image = layer.out_shape if isinstance(spec, ConvTranspose2D) else layer.in_shape
    geometry = ConvGeometry(*image, spec.kernel, spec.stride)
    bottom = (geometry.out_height - 1) * spec.stride + spec.kernel - geometry.height
    right = (geometry.out_width - 1) * spec.stride + spec.kernel - geometry.width
    return (geometry.pad_top, geometry.pad_left, max(bottom, 0) - geometry.pad_top,
            max(right, 0) - geometry.pad_left)


def walk(gan: GAN, network: str = "generator", *, ema: bool = True) -> Network:
    """``network`` of ``gan`` with its current weights (the generator's average of weights
    when ``ema`` and the GAN keeps one, bias-corrected as :meth:`fastgan.GAN.sample` reads it).
    """
    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
    mlp = gan.generator if network == "generator" else gan.discriminator
    averaged = network == "generator" and ema and gan.ema is not None
    with gan.ema.swapped_in(gan.steps) if averaged else contextlib.nullcontext():
        layers = tuple(Layer(spec, runtime.in_shape, runtime.out_shape,
                             _arrays(spec, runtime, mlp.params))
                       for spec, runtime in zip(mlp.specs, mlp.layers, strict=True))
    return Network(network, INPUT_NAMES[network], OUTPUT_NAMES[network], mlp.in_features, layers,
                   gan.config.noise if network == "generator" else None)


def _arrays(spec: LayerSpec, runtime: Any, params: FlatParams) -> dict[str, np.ndarray]:
    """A runtime layer's parameters and buffers as float32 host copies, by short name (a
    convolution's weight in Keras' (kh, kw, C, filters) layout, a transposed one's in
    (kh, kw, filters, C))."""
    to_host = runtime.backend.to_numpy
    named = {name.rpartition(".")[2]: to_host(params.view(name))
             for name in getattr(runtime, "names", ())}
    named |= {name: to_host(array) for name, array in runtime.buffers().items()}
    if isinstance(runtime, SpectralNormalised):     # the weight it multiplies by, W / sigma(W);
        named = {"weight": to_host(runtime.effective_weight()), "bias": named["bias"]}  # no u, v
    arrays = {name: np.array(array, dtype=np.float32) for name, array in named.items()}
    if isinstance(spec, Conv2D):
        channels = runtime.in_shape[-1]
        arrays["weight"] = arrays["weight"].reshape(spec.kernel, spec.kernel, channels,
                                                    spec.filters)
    if isinstance(spec, ConvTranspose2D):
        channels = runtime.in_shape[-1]
        arrays["weight"] = arrays["weight"].reshape(spec.kernel, spec.kernel, spec.filters,
                                                    channels)
    return arrays
