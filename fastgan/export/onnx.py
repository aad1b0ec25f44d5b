"""ONNX: a network as an ONNX graph (opset 17), written with the ``onnx`` package's helpers.

The graph reads the network's named input (``z`` for the generator, ``image`` for the
discriminator) of shape (batch, features), batch size dynamic, and writes its named output
of shape (batch, features), as fastgan's rows: a generator's ``image`` is in [-1, 1] (tanh),
flattened channels-last; the model's metadata holds the row shapes. Inside, images are ONNX's
NCHW: a Reshape transposes rows to NCHW, a Flatten (or the end) transposes back.
"""

from __future__ import annotations

import json
from typing import IO

import numpy as np

from ..errors import ConfigError
from ..nn.specs import (
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
from .walk import Layer, Network, conv_padding

OPSET = 17
"""The ONNX operator set the models declare."""
IR_VERSION = 8
"""The ONNX file format version of opset 17 (the ``onnx`` package would write its newest,
which runtimes older than the package, onnxruntime-web among them, refuse)."""

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError as exc:
    raise ConfigError(f"ONNX export needs the onnx package, which cannot be imported here "
                      f"({exc}); install it with: pip install \"fastgan[export]\"") from None


class _Graph:
    """The nodes and initializers of a graph being written, with fresh tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, array: np.ndarray) -> str:
        """An initializer holding ``array``; returns its name."""
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        """Append an ``op`` node; returns its output's name."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _activation(graph: _Graph, x: str, name: str, alpha: float, prefix: str) -> str:
    """``x`` through activation ``name`` (identity: ``x`` itself)."""
    if name == "identity":
        return x
    if name == "leaky_relu":
        return graph.node("LeakyRelu", [x], f"{prefix}.leaky_relu", alpha=alpha)
    op = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[name]
    return graph.node(op, [x], f"{prefix}.{name}")


def _rows(graph: _Graph, x: str, image: bool, prefix: str) -> str:
    """``x`` as fastgan's flat rows: an NCHW image transposed to NHWC and flattened."""
    if not image:
        return x
    nhwc = graph.node("Transpose", [x], f"{prefix}.nhwc", perm=[0, 2, 3, 1])
    shape = graph.constant(f"{prefix}.flat_shape", np.array([0, -1], dtype=np.int64))
    return graph.node("Reshape", [nhwc, shape], f"{prefix}.flat")


def _layer(graph: _Graph, x: str, layer: Layer, prefix: str) -> str:
    """The nodes of one layer on ``x`` (flat rows, or NCHW after a Reshape)."""
    spec, arrays = layer.spec, layer.arrays
    if isinstance(spec, Dense):
        weight = graph.constant(f"{prefix}.weight", arrays["weight"])
        bias = graph.constant(f"{prefix}.bias", arrays["bias"])
        y = graph.node("Gemm", [x, weight, bias], f"{prefix}.gemm")
        return _activation(graph, y, spec.activation, spec.alpha, prefix)
    if isinstance(spec, Conv2D):
        weight = graph.constant(f"{prefix}.weight", np.ascontiguousarray(
            arrays["weight"].transpose(3, 2, 0, 1)))
        bias = graph.constant(f"{prefix}.bias", arrays["bias"])
        y = graph.node("Conv", [x, weight, bias], f"{prefix}.conv",
                       kernel_shape=[spec.kernel, spec.kernel], strides=[spec.stride] * 2,
                       pads=list(conv_padding(layer)))
        return _activation(graph, y, spec.activation, spec.alpha, prefix)
    if isinstance(spec, ConvTranspose2D):
        return _conv_transpose(graph, x, layer, prefix)
    if isinstance(spec, BatchNorm):
        names = [graph.constant(f"{prefix}.{key}", arrays[key])
                 for key in ("gamma", "beta", "running_mean", "running_var")]
        return graph.node("BatchNormalization", [x, *names], f"{prefix}.batchnorm",
                          epsilon=spec.eps)
    if isinstance(spec, Activation):
        return _activation(graph, x, spec.name, spec.alpha, prefix)
    if isinstance(spec, Dropout):
        return x
    if isinstance(spec, UpSampling2D):
        scales = graph.constant(f"{prefix}.scales", np.array([1, 1, 2, 2], dtype=np.float32))
        return graph.node("Resize", [x, "", scales], f"{prefix}.upsample", mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    if isinstance(spec, Reshape):
        height, width, channels = spec.shape
        shape = graph.constant(f"{prefix}.shape",
                               np.array([-1, height, width, channels], dtype=np.int64))
        nhwc = graph.node("Reshape", [x, shape], f"{prefix}.nhwc")
        return graph.node("Transpose", [nhwc], f"{prefix}.nchw", perm=[0, 3, 1, 2])
    if isinstance(spec, Flatten):
        return _rows(graph, x, len(layer.in_shape) == 3, prefix)
    raise ConfigError(f"ONNX export has no rule for layer {spec!r}")


def _conv_transpose(graph: _Graph, x: str, layer: Layer, prefix: str) -> str:
    """A ConvTranspose2D as ONNX ``ConvTranspose``: weight (C, filters, kh, kw), the pads of
    the "same" convolution it is the adjoint of (ONNX drops ``pads`` rows from each end of
    the full output, so row ``h s + j - top`` gets input row h through kernel row j, as
    fastgan's), and ``output_padding`` for the rows that convolution never reads (kernel 1,
    stride 2), so the output is (s H, s W)."""
    spec, arrays = layer.spec, layer.arrays
    weight = graph.constant(f"{prefix}.weight", np.ascontiguousarray(
        arrays["weight"].transpose(3, 2, 0, 1)))
    bias = graph.constant(f"{prefix}.bias", arrays["bias"])
    top, left, bottom, right = conv_padding(layer)
    full = [spec.stride * (side - 1) + spec.kernel for side in layer.in_shape[:2]]
    extra = [out - size + pads for out, size, pads in
             zip(layer.out_shape[:2], full, (top + bottom, left + right), strict=True)]
    y = graph.node("ConvTranspose", [x, weight, bias], f"{prefix}.conv_transpose",
                   kernel_shape=[spec.kernel, spec.kernel], strides=[spec.stride] * 2,
                   pads=[top, left, bottom, right], output_padding=extra)
    return _activation(graph, y, spec.activation, spec.alpha, prefix)


def model(network: Network) -> onnx.ModelProto:
    """``network`` as a checked ONNX model (``onnx.checker`` passes)."""
    graph = _Graph()
    x = network.input_name
    for index, layer in enumerate(network.layers):
        x = _layer(graph, x, layer, f"{index}")
    out_features = int(np.prod(network.out_shape))
    x = _rows(graph, x, len(network.out_shape) == 3, "output")
    graph.node("Identity", [x], network.output_name)
    proto = helper.make_graph(
        graph.nodes, f"fastgan-{network.name}",
        [helper.make_tensor_value_info(network.input_name, onnx.TensorProto.FLOAT,
                                       ["batch", network.in_features])],
        [helper.make_tensor_value_info(network.output_name, onnx.TensorProto.FLOAT,
                                       ["batch", out_features])],
        graph.initializers)
    result = helper.make_model(proto, opset_imports=[helper.make_opsetid("", OPSET)],
                               producer_name="fastgan", ir_version=IR_VERSION)
    helper.set_model_props(result, {"fastgan.network": json.dumps(network.describe()),
                                    "out_shape": json.dumps(list(network.out_shape))})
    onnx.checker.check_model(result, full_check=True)
    return result


def write(network: Network, file: IO[bytes]) -> None:
    """Write ``network`` as an ONNX model into the open binary ``file``."""
    file.write(model(network).SerializeToString())
