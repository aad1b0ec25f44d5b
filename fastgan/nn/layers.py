"""Runtime layers: forward/backward pairs over backend kernels.

Each layer keeps, per batch size, a workspace of preallocated arrays (its output, its input
gradient, masks or normalised values): the forward pass records what backward needs there,
and no array is allocated once a batch size has been seen. ``backward(dy)`` may overwrite
``dy``; it writes parameter gradients into the network's flat gradient buffer when
``param_grads`` is set and returns the input gradient when ``input_grad`` is set.

Arrays are always (batch, features); a spatial layer reads each row as a channels-last
(H, W, C) image (``in_shape``/``out_shape``), and works on views such as (batch H W, C).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import ACTIVATION_CODES, Backend, ConvGeometry, Rng
from ..errors import ConfigError
from .init import conv_init, dense_init
from .params import FlatParams
from .specs import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerSpec,
    Reshape,
    Shape,
    UpSampling2D,
)


class Layer:
    """Common machinery: the backend, row shapes and per-batch-size workspaces."""

    has_params = False
    """True for layers with trainable parameters (their gradients need a backward pass)."""

    def __init__(self, backend: Backend, dtype: np.dtype, in_shape: Shape, out_shape: Shape):
        self.backend = backend
        self.dtype = dtype
        self.in_shape, self.out_shape = in_shape, out_shape
        self.in_features = math.prod(in_shape)
        self.out_features = math.prod(out_shape)
        self._workspaces: dict[int, SimpleNamespace] = {}

    def bind(self, params: FlatParams) -> None:
        """Take views of this layer's slots once the flat buffers exist."""

    def buffers(self) -> dict[str, Any]:
        """Non-trainable state arrays (saved in checkpoints)."""
        return {}

    def workspace(self, batch: int) -> SimpleNamespace:
        """This batch size's arrays, created on first use."""
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = self._workspaces[batch] = SimpleNamespace(
                y=self.backend.empty((batch, self.out_features), self.dtype), dx=None)
        return ws

    def input_grad_buffer(self, ws: SimpleNamespace, batch: int) -> Any:
        """The workspace's input-gradient array, created the first time it is needed."""
        if ws.dx is None:
            ws.dx = self.backend.empty((batch, self.in_features), self.dtype)
        return ws.dx

    def forward(self, x: Any, training: bool) -> Any:
        """Output of the layer for input ``x`` (rows = samples)."""
        raise NotImplementedError

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """Gradient w.r.t. the input (or None), from the gradient ``dy`` w.r.t. the output."""
        raise NotImplementedError


class DenseLayer(Layer):
    """``y = act(x W + b)``. Backward: ``dz = dy * act'(y)``, ``dW = x^T dz``,
    ``db = sum_rows dz``, ``dx = dz W^T``."""

    has_params = True

    def __init__(self, spec: Dense, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 out_shape: Shape, params: FlatParams, prefix: str,
                 rng: np.random.Generator) -> None:
        super().__init__(backend, dtype, in_shape, out_shape)
        self.act = ACTIVATION_CODES[spec.activation]
        self.alpha = spec.alpha
        self.names = (f"{prefix}.weight", f"{prefix}.bias")
        weight, bias = dense_init(spec.init, rng, self.in_features, spec.units)
        params.reserve(self.names[0], weight)
        params.reserve(self.names[1], bias)

    def bind(self, params: FlatParams) -> None:
        """Views of W, b and their gradients; ``weight``, the matrix x is multiplied by, is W."""
        self.W, self.b = (params.view(n) for n in self.names)
        self.dW, self.db = (params.grad_view(n) for n in self.names)
        self.weight = self.W

    def forward(self, x: Any, training: bool) -> Any:
        """``act(x W + b)``, keeping x and y for backward."""
        ws = self.workspace(x.shape[0])
        ws.x = x
        self.backend.gemms((x, self.weight, ws.y, False, False))
        self.backend.bias_act(ws.y, self.b, self.act, self.alpha)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """dz = dy act'(y) (in place) and db = sum dz, then dW = x^T dz and dx = dz W^T, which
        are independent (the backend may run them side by side: :meth:`Backend.gemms`)."""
        be, batch = self.backend, dy.shape[0]
        ws = self._workspaces[batch]
        be.act_backward(dy, ws.y, self.act, self.alpha, self.db if param_grads else None)
        dx = self.input_grad_buffer(ws, batch) if input_grad else None
        products = [(ws.x, dy, self.dW, True, False)] if param_grads else []
        if input_grad:
            products.append((dy, self.weight, dx, False, True))
        be.gemms(*products)
        return dx


class SpectralDenseLayer(DenseLayer):
    """A dense layer whose weight is ``W_bar = W / sigma``, ``sigma = v^T W u`` the estimate of
    W's largest singular value (Miyato et al., 2018) from the vectors ``u`` (out) and ``v``
    (in) that :meth:`power_iteration` refines once per training step and that checkpoints keep.

    Backward, with u and v held fixed as the method defines it: given G = dL/dW_bar (the
    dense backward's dW), ``dL/dW = (G - (sum G * W_bar) v u^T) / sigma``, because
    ``d sigma/dW = v u^T``.
    """

    def __init__(self, spec: Dense, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 out_shape: Shape, params: FlatParams, prefix: str,
                 rng: np.random.Generator) -> None:
        super().__init__(spec, backend, dtype, in_shape, out_shape, params, prefix, rng)
        start = rng.standard_normal(spec.units)
        self.u = backend.asarray(start / np.linalg.norm(start), dtype)
        self.v = backend.empty((self.in_features,), dtype)
        self.sigma = backend.empty((1,), dtype)

    def bind(self, params: FlatParams) -> None:
        """Views of W, b and their gradients, W_bar's array, and a first power iteration."""
        super().bind(params)
        self.weight = self.backend.empty(self.W.shape, self.dtype)
        self.power_iteration()

    def buffers(self) -> dict[str, Any]:
        """The singular-vector estimates u and v."""
        return {"u": self.u, "v": self.v}

    def power_iteration(self) -> None:
        """One power iteration: ``v = W u / |W u|``, ``u = W^T v / |W^T v|``."""
        self.backend.power_iteration(self.W, self.u, self.v)

    def effective_weight(self) -> Any:
        """``W_bar = W / (v^T W u)``, the weight the forward multiplies by (u, v as they
        stand), written into its array and returned."""
        self.backend.spectral_weight(self.W, self.u, self.v, self.sigma, self.weight)
        return self.weight

    def forward(self, x: Any, training: bool) -> Any:
        """``act(x W_bar + b)`` with ``W_bar`` the :meth:`effective_weight`."""
        self.effective_weight()
        return super().forward(x, training)

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """The dense backward through W_bar, then dW_bar turned into dW (see the class)."""
        dx = super().backward(dy, input_grad, param_grads)
        if param_grads:
            self.backend.spectral_backward(self.dW, self.weight, self.u, self.v, self.sigma)
        return dx


class DropoutLayer(Layer):
    """Inverted dropout ``y = x * mask`` with mask in {0, 1/(1-rate)}; backward ``dx = dy * mask``.
    Identity in evaluation mode."""

    def __init__(self, spec: Dropout, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 rng: Rng) -> None:
        super().__init__(backend, dtype, in_shape, in_shape)
        self.rate = spec.rate
        self.rng = rng

    def workspace(self, batch: int) -> SimpleNamespace:
        """Output, mask and (lazily) input gradient for this batch size."""
        ws = super().workspace(batch)
        if not hasattr(ws, "mask"):
            ws.mask = self.backend.empty((batch, self.in_features), self.dtype)
        return ws

    def forward(self, x: Any, training: bool) -> Any:
        """A fresh mask times x in training; x itself in evaluation."""
        if not training or self.rate == 0.0:
            return x
        ws = self.workspace(x.shape[0])
        self.rng.dropout_mask(ws.mask, self.rate)
        self.backend.multiply(x, ws.mask, ws.y)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``dx = dy * mask`` (the mask of the matching forward)."""
        if not input_grad:
            return None
        if self.rate == 0.0:
            return dy
        batch = dy.shape[0]
        ws = self._workspaces[batch]
        dx = self.input_grad_buffer(ws, batch)
        self.backend.multiply(dy, ws.mask, dx)
        return dx


class BatchNormLayer(Layer):
    """Batch norm (see :class:`~fastgan.nn.specs.BatchNorm`) of each feature of a flat input,
    or of each channel of an image input, whose rows are then viewed as (batch H W, C).

    Backward (training mode): ``dbeta = sum dy``, ``dgamma = sum dy xhat``,
    ``dx = gamma invstd (dy - mean dy - xhat mean(dy xhat))``, sums over the view's rows.
    """

    has_params = True

    def __init__(self, spec: BatchNorm, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 params: FlatParams, prefix: str) -> None:
        super().__init__(backend, dtype, in_shape, in_shape)
        self.momentum = spec.momentum
        self.eps = spec.eps
        self.channels = channels = in_shape[-1]
        self.names = (f"{prefix}.gamma", f"{prefix}.beta")
        params.reserve(self.names[0], np.ones(channels))
        params.reserve(self.names[1], np.zeros(channels))
        self.running_mean = backend.zeros((channels,), dtype)
        self.running_var = backend.asarray(np.ones(channels), dtype)

    def bind(self, params: FlatParams) -> None:
        """Views of gamma, beta and their gradients."""
        self.gamma, self.beta = (params.view(n) for n in self.names)
        self.dgamma, self.dbeta = (params.grad_view(n) for n in self.names)

    def buffers(self) -> dict[str, Any]:
        """The running mean and variance."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def workspace(self, batch: int) -> SimpleNamespace:
        """Output, normalised input, inverse std and scratch parameter gradients."""
        ws = super().workspace(batch)
        if not hasattr(ws, "xhat"):
            be, c = self.backend, self.channels
            ws.xhat = be.empty((batch * self.in_features // c, c), self.dtype)
            ws.invstd = be.empty((c,), self.dtype)
            ws.scratch = (be.empty((c,), self.dtype), be.empty((c,), self.dtype))
        return ws

    def _per_channel(self, a: Any) -> Any:
        """(batch, features) -> the (rows, channels) view the statistics run over."""
        return a.reshape(-1, self.channels)

    def forward(self, x: Any, training: bool) -> Any:
        """Normalise with the batch's statistics (training) or the running ones (evaluation)."""
        ws = self.workspace(x.shape[0])
        x, y = self._per_channel(x), self._per_channel(ws.y)
        if training:
            self.backend.batchnorm_train(x, self.gamma, self.beta, y, ws.xhat, ws.invstd,
                                         self.running_mean, self.running_var,
                                         self.momentum, self.eps)
        else:
            self.backend.batchnorm_eval(x, self.gamma, self.beta, y, self.running_mean,
                                        self.running_var, self.eps)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """Training-mode backward; parameter gradients go to scratch when not wanted."""
        batch = dy.shape[0]
        ws = self._workspaces[batch]
        dgamma, dbeta = (self.dgamma, self.dbeta) if param_grads else ws.scratch
        dx = self.input_grad_buffer(ws, batch) if input_grad else None
        self.backend.batchnorm_backward(self._per_channel(dy), ws.xhat, self.gamma, ws.invstd,
                                        dgamma, dbeta,
                                        None if dx is None else self._per_channel(dx))
        return dx


class ActivationLayer(Layer):
    """``y = act(x)`` on its own. Backward: ``dx = dy act'(y)``, in place in ``dy``.

    Both directions are the dense epilogues with a zero bias, on the (rows, last axis) view.
    """

    def __init__(self, spec: Activation, backend: Backend, dtype: np.dtype,
                 in_shape: Shape) -> None:
        super().__init__(backend, dtype, in_shape, in_shape)
        self.act = ACTIVATION_CODES[spec.name]
        self.alpha = spec.alpha
        self.width = in_shape[-1]
        self.zero_bias = backend.zeros((self.width,), dtype)

    def forward(self, x: Any, training: bool) -> Any:
        """``act(x)`` into this layer's own output (x stays as the layer before left it)."""
        ws = self.workspace(x.shape[0])
        self.backend.copy(x, ws.y)
        self.backend.bias_act(ws.y.reshape(-1, self.width), self.zero_bias, self.act, self.alpha)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``dy *= act'(y)``; that is the input gradient."""
        if not input_grad:
            return None
        ws = self._workspaces[dy.shape[0]]
        self.backend.act_backward(dy.reshape(-1, self.width), ws.y.reshape(-1, self.width),
                                  self.act, self.alpha)
        return dy


class ViewLayer(Layer):
    """Reshape and Flatten: the next layers read each row with another shape; nothing moves."""

    def forward(self, x: Any, training: bool) -> Any:
        """``x`` itself."""
        return x

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``dy`` itself."""
        return dy if input_grad else None


class Conv2DLayer(Layer):
    """``y = act(im2col(x) W + b)`` on (batch Ho Wo, filters) views (see
    :class:`~fastgan.nn.specs.Conv2D`).

    Backward: ``dz = dy act'(y)`` and ``db = sum dz`` (the dense backward epilogue), then
    ``dW = cols^T dz``, ``dcols = dz W^T`` and ``dx = col2im(dcols)``.

    The im2col matrix is 9 times the input: the batch goes through in slices of
    ``chunk`` samples whose matrix fits the backend's ``im2col_bytes`` (CPU caches), gathered
    again from the kept input in backward rather than stored; ``dW`` sums the slices'
    products. A backend with ``im2col_bytes = None`` takes the whole batch at once.
    """

    has_params = True

    def __init__(self, spec: Conv2D, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 out_shape: Shape, params: FlatParams, prefix: str,
                 rng: np.random.Generator) -> None:
        super().__init__(backend, dtype, in_shape, out_shape)
        height, width, channels = in_shape
        self.geometry = ConvGeometry(height, width, channels, spec.kernel, spec.stride)
        self.positions = out_shape[0] * out_shape[1]
        self.filters = spec.filters
        self.act = ACTIVATION_CODES[spec.activation]
        self.alpha = spec.alpha
        self.names = (f"{prefix}.weight", f"{prefix}.bias")
        weight, bias = conv_init(spec.init, rng, spec.kernel, channels, spec.filters)
        params.reserve(self.names[0], weight)
        params.reserve(self.names[1], bias)

    def bind(self, params: FlatParams) -> None:
        """Views of W (k^2 C, filters), b and their gradients."""
        self.W, self.b = (params.view(n) for n in self.names)
        self.dW, self.db = (params.grad_view(n) for n in self.names)

    def workspace(self, batch: int) -> SimpleNamespace:
        """Output, the slice size and one slice's im2col matrix."""
        ws = super().workspace(batch)
        if not hasattr(ws, "cols"):
            patch = self.geometry.patch_size
            limit = self.backend.im2col_bytes
            sample_bytes = self.positions * patch * self.dtype.itemsize
            ws.chunk = batch if limit is None else max(1, min(batch, limit // sample_bytes))
            ws.cols = self.backend.empty((ws.chunk * self.positions, patch), self.dtype)
        return ws

    def _slices(self, batch: int, chunk: int):
        """(samples, their rows of the (batch Ho Wo, ...) views) for each slice."""
        for first in range(0, batch, chunk):
            last = min(first + chunk, batch)
            yield slice(first, last), slice(first * self.positions, last * self.positions)

    def _positions(self, a: Any) -> Any:
        """(batch, Ho Wo filters) -> the (batch Ho Wo, filters) view."""
        return a.reshape(-1, self.filters)

    def forward(self, x: Any, training: bool) -> Any:
        """Per slice: gather patches, one GEMM, the fused bias + activation."""
        be = self.backend
        ws = self.workspace(x.shape[0])
        ws.x = x
        y = self._positions(ws.y)
        for samples, rows in self._slices(x.shape[0], ws.chunk):
            cols = ws.cols[:rows.stop - rows.start]
            be.im2col(x[samples], self.geometry, cols)
            be.gemm(cols, self.W, y[rows])
            be.bias_act(y[rows], self.b, self.act, self.alpha)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """dz = dy act'(y) (in place) and db; per slice dW += cols^T dz, dx = col2im(dz W^T)."""
        be, batch = self.backend, dy.shape[0]
        ws = self._workspaces[batch]
        dz = self._positions(dy)
        be.act_backward(dz, self._positions(ws.y), self.act, self.alpha,
                        self.db if param_grads else None)
        if not (param_grads or input_grad):
            return None
        dx = self.input_grad_buffer(ws, batch) if input_grad else None
        for samples, rows in self._slices(batch, ws.chunk):
            cols = ws.cols[:rows.stop - rows.start]
            be.im2col(ws.x[samples], self.geometry, cols)
            if param_grads:
                be.gemm(cols, dz[rows], self.dW, trans_a=True, accumulate=samples.start > 0)
            if input_grad:
                be.gemm(dz[rows], self.W, cols, trans_b=True)
                be.col2im(cols, self.geometry, dx[samples])
        return dx


class UpSampling2DLayer(Layer):
    """Nearest upsampling by 2; backward sums each 2 x 2 block of ``dy``."""

    def forward(self, x: Any, training: bool) -> Any:
        """Every pixel copied into a 2 x 2 block."""
        ws = self.workspace(x.shape[0])
        self.backend.upsample2x(x, self.in_shape, ws.y)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``dx`` = block sums of ``dy``."""
        if not input_grad:
            return None
        batch = dy.shape[0]
        dx = self.input_grad_buffer(self._workspaces[batch], batch)
        self.backend.upsample2x_backward(dy, self.in_shape, dx)
        return dx


def build_layer(spec: LayerSpec, index: int, backend: Backend, dtype: np.dtype, in_shape: Shape,
                out_shape: Shape, params: FlatParams, init_rng: np.random.Generator,
                dropout_rng: Rng, spectral_norm: bool = False) -> Layer:
    """The runtime layer for ``spec`` at position ``index`` of a network, reading rows of
    shape ``in_shape`` and making rows of ``out_shape`` (as ``spec.output_shape`` says);
    ``spectral_norm`` normalises a Dense layer's weight by its largest singular value."""
    if isinstance(spec, Dense):
        dense = SpectralDenseLayer if spectral_norm else DenseLayer
        return dense(spec, backend, dtype, in_shape, out_shape, params, f"{index}.dense",
                     init_rng)
    if isinstance(spec, Conv2D):
        return Conv2DLayer(spec, backend, dtype, in_shape, out_shape, params,
                           f"{index}.conv2d", init_rng)
    if isinstance(spec, BatchNorm):
        return BatchNormLayer(spec, backend, dtype, in_shape, params, f"{index}.batchnorm")
    if isinstance(spec, Dropout):
        return DropoutLayer(spec, backend, dtype, in_shape, dropout_rng)
    if isinstance(spec, Activation):
        return ActivationLayer(spec, backend, dtype, in_shape)
    if isinstance(spec, UpSampling2D):
        return UpSampling2DLayer(backend, dtype, in_shape, out_shape)
    if isinstance(spec, Reshape | Flatten):
        return ViewLayer(backend, dtype, in_shape, out_shape)
    raise ConfigError(f"layer {index}: {spec!r} is not a layer spec")
