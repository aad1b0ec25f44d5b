"""Runtime layers: forward/backward pairs over backend kernels.

Each layer keeps, per batch size, a workspace of preallocated arrays (its output, its input
gradient, masks or normalised values): the forward pass records what backward needs there,
and no array is allocated once a batch size has been seen. ``backward(dy)`` may overwrite
``dy``; it writes parameter gradients into the network's flat gradient buffer when
``param_grads`` is set and returns the input gradient when ``input_grad`` is set.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import ACTIVATION_CODES, Backend, Rng
from ..errors import ConfigError
from .init import dense_init
from .params import FlatParams
from .specs import BatchNorm, Dense, Dropout, LayerSpec


class Layer:
    """Common machinery: the backend, feature counts and per-batch-size workspaces."""

    def __init__(self, backend: Backend, dtype: np.dtype, in_features: int, out_features: int):
        self.backend = backend
        self.dtype = dtype
        self.in_features = in_features
        self.out_features = out_features
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

    def __init__(self, spec: Dense, backend: Backend, dtype: np.dtype, in_features: int,
                 params: FlatParams, prefix: str, rng: np.random.Generator) -> None:
        super().__init__(backend, dtype, in_features, spec.units)
        self.act = ACTIVATION_CODES[spec.activation]
        self.alpha = spec.alpha
        self.names = (f"{prefix}.weight", f"{prefix}.bias")
        weight, bias = dense_init(spec.init, rng, in_features, spec.units)
        params.reserve(self.names[0], weight)
        params.reserve(self.names[1], bias)

    def bind(self, params: FlatParams) -> None:
        """Views of W, b and their gradients."""
        self.W, self.b = (params.view(n) for n in self.names)
        self.dW, self.db = (params.grad_view(n) for n in self.names)

    def forward(self, x: Any, training: bool) -> Any:
        """``act(x W + b)``, keeping x and y for backward."""
        ws = self.workspace(x.shape[0])
        ws.x = x
        self.backend.gemm(x, self.W, ws.y)
        self.backend.bias_act(ws.y, self.b, self.act, self.alpha)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """dz = dy act'(y) (in place), then dW = x^T dz, db = sum dz, dx = dz W^T."""
        be, batch = self.backend, dy.shape[0]
        ws = self._workspaces[batch]
        be.act_backward(dy, ws.y, self.act, self.alpha, self.db if param_grads else None)
        if param_grads:
            be.gemm(ws.x, dy, self.dW, trans_a=True)
        if not input_grad:
            return None
        dx = self.input_grad_buffer(ws, batch)
        be.gemm(dy, self.W, dx, trans_b=True)
        return dx


class DropoutLayer(Layer):
    """Inverted dropout ``y = x * mask`` with mask in {0, 1/(1-rate)}; backward ``dx = dy * mask``.
    Identity in evaluation mode."""

    def __init__(self, spec: Dropout, backend: Backend, dtype: np.dtype, in_features: int,
                 rng: Rng) -> None:
        super().__init__(backend, dtype, in_features, in_features)
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
    """Batch norm over the batch axis (see :class:`~fastgan.nn.specs.BatchNorm`).

    Backward (training mode): ``dbeta = sum dy``, ``dgamma = sum dy xhat``,
    ``dx = gamma invstd (dy - mean dy - xhat mean(dy xhat))``.
    """

    def __init__(self, spec: BatchNorm, backend: Backend, dtype: np.dtype, in_features: int,
                 params: FlatParams, prefix: str) -> None:
        super().__init__(backend, dtype, in_features, in_features)
        self.momentum = spec.momentum
        self.eps = spec.eps
        self.names = (f"{prefix}.gamma", f"{prefix}.beta")
        params.reserve(self.names[0], np.ones(in_features))
        params.reserve(self.names[1], np.zeros(in_features))
        self.running_mean = backend.zeros((in_features,), dtype)
        self.running_var = backend.asarray(np.ones(in_features), dtype)

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
            be, n = self.backend, self.in_features
            ws.xhat = be.empty((batch, n), self.dtype)
            ws.invstd = be.empty((n,), self.dtype)
            ws.scratch = (be.empty((n,), self.dtype), be.empty((n,), self.dtype))
        return ws

    def forward(self, x: Any, training: bool) -> Any:
        """Normalise with the batch's statistics (training) or the running ones (evaluation)."""
        ws = self.workspace(x.shape[0])
        if training:
            self.backend.batchnorm_train(x, self.gamma, self.beta, ws.y, ws.xhat, ws.invstd,
                                         self.running_mean, self.running_var,
                                         self.momentum, self.eps)
        else:
            self.backend.batchnorm_eval(x, self.gamma, self.beta, ws.y, self.running_mean,
                                        self.running_var, self.eps)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """Training-mode backward; parameter gradients go to scratch when not wanted."""
        batch = dy.shape[0]
        ws = self._workspaces[batch]
        dgamma, dbeta = (self.dgamma, self.dbeta) if param_grads else ws.scratch
        dx = self.input_grad_buffer(ws, batch) if input_grad else None
        self.backend.batchnorm_backward(dy, ws.xhat, self.gamma, ws.invstd, dgamma, dbeta, dx)
        return dx


def build_layer(spec: LayerSpec, index: int, backend: Backend, dtype: np.dtype, in_features: int,
                params: FlatParams, init_rng: np.random.Generator, dropout_rng: Rng) -> Layer:
    """The runtime layer for ``spec`` at position ``index`` of a network."""
    if isinstance(spec, Dense):
        return DenseLayer(spec, backend, dtype, in_features, params, f"{index}.dense", init_rng)
    if isinstance(spec, Dropout):
        return DropoutLayer(spec, backend, dtype, in_features, dropout_rng)
    if isinstance(spec, BatchNorm):
        return BatchNormLayer(spec, backend, dtype, in_features, params, f"{index}.batchnorm")
    raise ConfigError(f"layer {index}: {spec!r} is not a layer spec (Dense, Dropout, BatchNorm)")
