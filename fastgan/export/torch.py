"""PyTorch: a network as a ``state_dict`` for the PyTorch peer's architecture.

The peer (:func:`fastgan.benchmarking.torch_peer.build_mlp`) builds the same layers as an
``nn.Sequential``, with images in PyTorch's NCHW; this module fills its ``nn.Linear``,
``nn.Conv2d``, ``nn.ConvTranspose2d`` and batch-norm modules with a fastgan network's
weights, so that in ``eval()`` mode it computes what :meth:`fastgan.GAN.sample` does::

    net = build_mlp(config.generator, config.latent_dim).eval()
    net.load_state_dict(torch.load("generator.pt"))

Where fastgan's flat rows meet an image (Reshape, Flatten) the peer reads the features in
(C, H, W) order, fastgan in (H, W, C): the Dense weights (and any flat batch norm) on either
side are permuted to match. What the peer cannot hold is refused: a network whose input or
output rows are images of several channels (the peer's rows would be ordered otherwise).
Every convolution is held: the peer computes its map exactly, uneven "same" padding
included (:func:`fastgan.benchmarking.torch_peer.conv2d` and ``conv_transpose``).
"""

from __future__ import annotations

from typing import IO

import numpy as np

from ..benchmarking.torch_peer import build_mlp, torch
from ..errors import ConfigError
from ..nn.specs import BatchNorm, ConvolutionSpec, Dense, Flatten, Reshape, Shape
from .walk import Layer, Network


def _channels_first(shape: Shape) -> np.ndarray | None:
    """Which fastgan feature each of the peer's flat features of an (H, W, C) image holds;
    None where the orders agree (one channel)."""
    height, width, channels = shape
    if channels == 1:
        return None
    return np.arange(height * width * channels).reshape(shape).transpose(2, 0, 1).ravel()


def feature_orders(network: Network) -> list[np.ndarray | None]:
    """For each layer with flat output, which fastgan feature each of the peer's output
    features holds (None: the same order). A Flatten's order lasts until the next Dense; a
    Reshape's order reaches back to the Dense before it. ConfigError where the network's own
    input or output would be reordered."""
    layers = network.layers
    orders: list[np.ndarray | None] = []
    order = None
    for layer in layers:
        if isinstance(layer.spec, Flatten):
            order = _channels_first(layer.in_shape)
        elif isinstance(layer.spec, Dense | Reshape):
            order = None
        orders.append(order)
    if order is not None or (len(network.out_shape) == 3
                             and _channels_first(network.out_shape) is not None):
        raise ConfigError(f"the PyTorch peer would order the {network.name}'s output features "
                          "channels-first; export it to onnx or npz instead")
    order = None
    for index in range(len(layers) - 1, -1, -1):
        spec = layers[index].spec
        if len(layers[index].out_shape) == 3:
            order = _channels_first(spec.shape) if isinstance(spec, Reshape) else None
            continue
        if order is not None:
            orders[index] = order
        if isinstance(spec, Dense):
            order = None
    if order is not None:
        raise ConfigError(f"the PyTorch peer would read the {network.name}'s input features "
                          "channels-first; export it to onnx or npz instead")
    return orders


def _tensors(layer: Layer, in_order: np.ndarray | None,
             out_order: np.ndarray | None) -> dict[str, np.ndarray]:
    """One layer's arrays in the peer module's names and layouts."""
    arrays = layer.arrays
    if isinstance(layer.spec, ConvolutionSpec):   # (kh, kw, in, out) -> (out, in, kh, kw);
        # a transposed one's (kh, kw, filters, C) -> torch's (C, filters, kh, kw)
        return {"weight": arrays["weight"].transpose(3, 2, 0, 1), "bias": arrays["bias"]}
    if isinstance(layer.spec, Dense):
        weight = arrays["weight"]
        weight = weight if in_order is None else weight[in_order]
        weight, bias = ((weight, arrays["bias"]) if out_order is None
                        else (weight[:, out_order], arrays["bias"][out_order]))
        return {"weight": weight.T, "bias": bias}
    named = {"weight": arrays["gamma"], "bias": arrays["beta"],
             "running_mean": arrays["running_mean"], "running_var": arrays["running_var"]}
    return named if out_order is None else {k: v[out_order] for k, v in named.items()}


def state_dict(network: Network) -> dict[str, torch.Tensor]:
    """The peer network's ``state_dict`` holding ``network``'s weights (float32)."""
    orders = feature_orders(network)
    peer = build_mlp([layer.spec for layer in network.layers], network.in_features)
    modules = [name for name, module in peer.named_children()
               if isinstance(module, torch.nn.Linear | torch.nn.Conv2d
                             | torch.nn.ConvTranspose2d | torch.nn.BatchNorm1d
                             | torch.nn.BatchNorm2d)]
    state = peer.state_dict()
    trained = [(index, layer) for index, layer in enumerate(network.layers)
               if isinstance(layer.spec, Dense | BatchNorm | ConvolutionSpec)]
    for name, (index, layer) in zip(modules, trained, strict=True):
        in_order = orders[index - 1] if index else None
        for key, array in _tensors(layer, in_order, orders[index]).items():
            state[f"{name}.{key}"] = torch.from_numpy(np.ascontiguousarray(array))
    return state


def write(network: Network, file: IO[bytes]) -> None:
    """Write ``network``'s peer ``state_dict`` into the open binary ``file`` (``torch.save``)."""
    torch.save(state_dict(network), file)
