"""Runtime layers: forward/backward pairs over backend kernels.

Each layer keeps, per batch size, a workspace of preallocated arrays (its output, its input
gradient, masks or normalised values): the forward pass records what backward needs there,
and no array is allocated once a batch size has been seen. ``backward(dy)`` may overwrite
``dy``; it writes parameter gradients into the network's flat gradient buffer when
``param_grads`` is set and returns the input gradient when ``input_grad`` is set.

``tangent(r, output)`` is the R1 penalty's second-order pass (see
:meth:`fastgan.nn.mlp.MLP.penalty_backward`): after a backward, with ``r`` = dP/d(input
gradient), it adds dP/d(parameters) to the gradient buffer and returns dP/d(output gradient)
(when ``output``), for P a function of the network's input gradient and piecewise-linear
activations (their second derivative vanishes almost everywhere).

Arrays are always (batch, features); a spatial layer reads each row as a channels-last
(H, W, C) image (``in_shape``/``out_shape``), and works on views such as (batch H W, C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import ACTIVATION_CODES, Backend, ConvGeometry, Rng
from ..errors import ConfigError
from .init import conv_init, conv_transpose_init, dense_init
from .params import FlatParams
from .specs import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvolutionSpec,
    ConvTranspose2D,
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
                y=self.backend.empty((batch, self.out_features), self.dtype), dx=None,
                tangent=None)
        return ws

    def input_grad_buffer(self, ws: SimpleNamespace, batch: int) -> Any:
        """The workspace's input-gradient array, created the first time it is needed."""
        if ws.dx is None:
            ws.dx = self.backend.empty((batch, self.in_features), self.dtype)
        return ws.dx

    def tangent_buffer(self, ws: SimpleNamespace, batch: int) -> Any:
        """The workspace's output-tangent array, created the first time it is needed."""
        if ws.tangent is None:
            ws.tangent = self.backend.empty((batch, self.out_features), self.dtype)
        return ws.tangent

    def forward(self, x: Any, training: bool) -> Any:
        """Output of the layer for input ``x`` (rows = samples)."""
        raise NotImplementedError

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """Gradient w.r.t. the input (or None), from the gradient ``dy`` w.r.t. the output."""
        raise NotImplementedError

    def tangent(self, r: Any, output: bool) -> Any:
        """The R1 pass through this layer (see the module): a layer without one refuses."""
        raise ConfigError(f"the R1 penalty cannot pass through a {type(self).__name__}")


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
        self.weight_shape = weight.shape
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
        ws.dz = dy
        dx = self.input_grad_buffer(ws, batch) if input_grad else None
        products = [(ws.x, dy, self.dW, True, False)] if param_grads else []
        if input_grad:
            products.append((dy, self.weight, dx, False, True))
        be.gemms(*products)
        return dx

    def tangent(self, r: Any, output: bool) -> Any:
        """dP/dW += r^T dz (dz of the last backward); r_out = (r W) act'(y) when ``output``."""
        # dx = dz W^T, so dP/dW_ij = sum_rows r_i dz_j and dP/ddz = r W; act' is constant.
        be, batch = self.backend, r.shape[0]
        ws = self._workspaces[batch]
        be.gemm(r, ws.dz, self.dW, trans_a=True, accumulate=True)
        if not output:
            return None
        out = self.tangent_buffer(ws, batch)
        be.gemm(r, self.weight, out)
        be.act_backward(out, ws.y, self.act, self.alpha)
        return out


class SpectralNormalised:
    """Spectral normalisation (Miyato et al., 2018), mixed in before a layer whose forward,
    backward and R1 tangent multiply by ``self.weight`` and whose parameter W is an (in, out)
    matrix (:class:`SpectralDenseLayer`, :class:`SpectralConv2DLayer`,
    :class:`SpectralConvTranspose2DLayer`): ``weight`` becomes
    ``W_bar = W / sigma``, ``sigma = v^T W u`` the estimate of W's largest singular value from
    the vectors ``u`` (out) and ``v`` (in) that :meth:`power_iteration` refines once per
    training step and that checkpoints keep.

    Backward, with u and v held fixed as the method defines it: given G = dL/dW_bar (the
    layer's backward's dW, and the R1 pass's), :meth:`finish_param_grads` turns it into
    ``dL/dW = (G - (sum G * W_bar) v u^T) / sigma``, because ``d sigma/dW = v u^T``.
    """

    backend: Backend
    dtype: np.dtype
    weight_shape: tuple[int, int]
    W: Any
    dW: Any
    weight: Any

    def __init__(self, spec: Dense | Conv2D | ConvTranspose2D, backend: Backend,
                 dtype: np.dtype, in_shape: Shape, out_shape: Shape, params: FlatParams,
                 prefix: str, rng: np.random.Generator) -> None:
        super().__init__(spec, backend, dtype, in_shape, out_shape, params, prefix, rng)
        fan_in, units = self.weight_shape
        start = rng.standard_normal(units)
        self.u = backend.asarray(start / np.linalg.norm(start), dtype)
        self.v = backend.empty((fan_in,), dtype)
        self.sigma = backend.empty((1,), dtype)

    def bind(self, params: FlatParams) -> None:
        """The layer's views, W_bar's array, and a first power iteration."""
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
        """The layer's forward with ``W_bar``, the :meth:`effective_weight`."""
        self.effective_weight()
        return super().forward(x, training)

    def finish_param_grads(self) -> None:
        """dL/dW_bar, which every backward pass added into dW, turned into dL/dW in place."""
        self.backend.spectral_backward(self.dW, self.weight, self.u, self.v, self.sigma)


class SpectralDenseLayer(SpectralNormalised, DenseLayer):
    """A dense layer ``y = act(x W_bar + b)`` with ``W_bar = W / sigma(W)`` (see
    :class:`SpectralNormalised`)."""


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
        return self._masked(dy, self.input_grad_buffer) if input_grad else None

    def tangent(self, r: Any, output: bool) -> Any:
        """``r_out = r * mask``: dx = dy * mask is its own transpose."""
        return self._masked(r, self.tangent_buffer)

    def _masked(self, a: Any, buffer: Callable[[SimpleNamespace, int], Any]) -> Any:
        """``a * mask`` into the array ``buffer(workspace, batch)`` (``a`` itself at rate 0)."""
        if self.rate == 0.0:
            return a
        batch = a.shape[0]
        ws = self._workspaces[batch]
        out = buffer(ws, batch)
        self.backend.multiply(a, ws.mask, out)
        return out


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

    def tangent(self, r: Any, output: bool) -> Any:
        """``r_out = r act'(y)`` into this layer's own array (act' is piecewise constant)."""
        batch = r.shape[0]
        ws = self._workspaces[batch]
        out = self.tangent_buffer(ws, batch)
        self.backend.copy(r, out)
        self.backend.act_backward(out.reshape(-1, self.width), ws.y.reshape(-1, self.width),
                                  self.act, self.alpha)
        return out


class ViewLayer(Layer):
    """Reshape and Flatten: the next layers read each row with another shape; nothing moves."""

    def forward(self, x: Any, training: bool) -> Any:
        """``x`` itself."""
        return x

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``dy`` itself."""
        return dy if input_grad else None

    def tangent(self, r: Any, output: bool) -> Any:
        """``r`` itself."""
        return r


class PatchMatrixLayer(Layer):
    """What :class:`Conv2DLayer` and :class:`ConvTranspose2DLayer` share: a weight matrix W
    of shape (k^2 channels, n) and a bias over ``filters`` in the flat buffers, the
    :class:`~fastgan.backends.base.ConvGeometry` whose im2col matrix (one row per output
    position of that geometry, ``positions`` per sample) W multiplies, and the batch taken in
    slices of ``chunk`` samples.

    The im2col matrix is k^2 times an image: the batch goes through in slices whose matrix
    fits the backend's ``im2col_bytes`` (CPU caches), gathered again in backward rather than
    stored; ``dW`` sums the slices' products. A backend with ``im2col_bytes = None`` takes the
    whole batch at once. The slices are shared out among the backend's lanes
    (:attr:`~fastgan.backends.base.Backend.lanes`: a scheduled step's threads, else one),
    which run side by side (:meth:`~fastgan.backends.base.Backend.side_by_side`): each lane
    runs whole slices, gather, GEMMs and scatter, with its own im2col matrix, and every lane
    but the first sums into its own ``dW``, added to the layer's at the end (a sum in another
    order than one lane's: equal within rounding).
    """

    has_params = True

    def __init__(self, spec: ConvolutionSpec, backend: Backend, dtype: np.dtype,
                 in_shape: Shape, out_shape: Shape, geometry: ConvGeometry, params: FlatParams,
                 prefix: str, initial: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__(backend, dtype, in_shape, out_shape)
        self.geometry = geometry
        self.positions = geometry.out_height * geometry.out_width
        self.filters = spec.filters
        self.act = ACTIVATION_CODES[spec.activation]
        self.alpha = spec.alpha
        self.names = (f"{prefix}.weight", f"{prefix}.bias")
        weight, bias = initial
        self.weight_shape = weight.shape
        params.reserve(self.names[0], weight)
        params.reserve(self.names[1], bias)

    def bind(self, params: FlatParams) -> None:
        """Views of W, b and their gradients; ``weight``, the matrix the layer multiplies by,
        is W."""
        self.W, self.b = (params.view(n) for n in self.names)
        self.dW, self.db = (params.grad_view(n) for n in self.names)
        self.weight = self.W

    def workspace(self, batch: int) -> SimpleNamespace:
        """Output, the slice size and the lanes' buffers (made as lanes are first used)."""
        ws = super().workspace(batch)
        if not hasattr(ws, "lanes"):
            limit = self.backend.im2col_bytes
            sample_bytes = self.positions * self.geometry.patch_size * self.dtype.itemsize
            ws.chunk = batch if limit is None else max(1, min(batch, limit // sample_bytes))
            ws.lanes = []
        return ws

    def _make_lanes(self, ws: SimpleNamespace, count: int) -> None:
        """At least ``count`` lanes in ``ws``, each with its im2col matrix (``cols``) and,
        after the first, its own weight gradient (``dW``); the missing ones made now."""
        while len(ws.lanes) < count:
            own_grad = self.backend.empty(self.weight_shape, self.dtype) if ws.lanes else None
            ws.lanes.append(SimpleNamespace(
                cols=self.backend.empty((ws.chunk * self.positions, self.geometry.patch_size),
                                        self.dtype),
                dW=own_grad))

    def _each_slice(self, ws: SimpleNamespace, batch: int, work: Callable[..., None],
                    weight_grad: str | None = None) -> None:
        """``work(ws, samples, rows, cols, dW, accumulate)`` for every slice of the batch:
        its samples, their rows of the (batch positions, ...) views, an im2col matrix for
        them, where the slice's weight gradient goes and whether it adds to what is there.
        The slices are of even sizes, at most ``ws.chunk`` samples, as many for every lane;
        lane i takes slices i, i + lanes, ...; the lanes run side by side. ``weight_grad``:
        ``"write"`` the slices' sum into dW, ``"add"`` it to dW, None when ``work`` makes
        none."""
        lanes = min(self.backend.lanes, batch)
        slices = -(-batch // ws.chunk)
        slices = -(-slices // lanes) * lanes            # as many for every lane
        chunk = -(-batch // slices)                     # of even sizes
        lanes = min(lanes, -(-batch // chunk))
        self._make_lanes(ws, lanes)
        self.backend.side_by_side([(self._lane_slices,
                                    (ws, lane, lanes, chunk, batch, work, weight_grad == "add"))
                                   for lane in range(lanes)])
        if weight_grad is not None:
            for lane in ws.lanes[1:lanes]:
                self.dW += lane.dW

    def _lane_slices(self, ws: SimpleNamespace, lane: int, lanes: int, chunk: int, batch: int,
                     work: Callable[..., None], add: bool) -> None:
        """Lane ``lane``'s slices of :meth:`_each_slice`, one after another: the first lane
        sums its weight gradients into dW (adding to it when ``add``), the others into their
        own."""
        own = ws.lanes[lane]
        dW = self.dW if lane == 0 else own.dW
        for n, first in enumerate(range(lane * chunk, batch, lanes * chunk)):
            last = min(first + chunk, batch)
            work(ws, slice(first, last), slice(first * self.positions, last * self.positions),
                 own.cols[:(last - first) * self.positions], dW, n > 0 or (add and lane == 0))

    def _positions(self, a: Any) -> Any:
        """(batch, pixels filters) output rows -> the (batch pixels, filters) view."""
        return a.reshape(-1, self.filters)

    def forward(self, x: Any, training: bool) -> Any:
        """The output, slice by slice (the subclass's ``_forward_slice``)."""
        ws = self.workspace(x.shape[0])
        ws.x = x
        self._each_slice(ws, x.shape[0], self._forward_slice)
        return ws.y

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """dz = dy act'(y) (in place) and db = sum dz (the dense backward epilogue); then dW
        and dx slice by slice (the subclass's ``_backward_slice``)."""
        be, batch = self.backend, dy.shape[0]
        ws = self._workspaces[batch]
        ws.dz = dy
        be.act_backward(self._positions(dy), self._positions(ws.y), self.act, self.alpha,
                        self.db if param_grads else None)
        if not (param_grads or input_grad):
            return None
        ws.grads = (self.input_grad_buffer(ws, batch) if input_grad else None, param_grads)
        self._each_slice(ws, batch, self._backward_slice, "write" if param_grads else None)
        return ws.dx if input_grad else None

    def tangent(self, r: Any, output: bool) -> Any:
        """The R1 pass: slice by slice dP/dW and the linear part of r_out (the subclass's
        ``_tangent_slice``), then r_out *= act'(y), act' being piecewise constant."""
        batch = r.shape[0]
        ws = self._workspaces[batch]
        ws.r = r
        ws.r_out = self.tangent_buffer(ws, batch) if output else None
        self._each_slice(ws, batch, self._tangent_slice, "add")
        if not output:
            return None
        self.backend.act_backward(self._positions(ws.r_out), self._positions(ws.y), self.act,
                                  self.alpha)
        return ws.r_out


class Conv2DLayer(PatchMatrixLayer):
    """``y = act(im2col(x) W + b)`` on (batch Ho Wo, filters) views (see
    :class:`~fastgan.nn.specs.Conv2D`), W of shape (k^2 C, filters).

    Backward: ``dz = dy act'(y)`` and ``db = sum dz`` (the dense backward epilogue), then
    ``dW = cols^T dz``, ``dcols = dz W^T`` and ``dx = col2im(dcols)``; the batch in slices
    (:class:`PatchMatrixLayer`).
    """

    def __init__(self, spec: Conv2D, backend: Backend, dtype: np.dtype, in_shape: Shape,
                 out_shape: Shape, params: FlatParams, prefix: str,
                 rng: np.random.Generator) -> None:
        height, width, channels = in_shape
        super().__init__(spec, backend, dtype, in_shape, out_shape,
                         ConvGeometry(height, width, channels, spec.kernel, spec.stride),
                         params, prefix,
                         conv_init(spec.init, rng, spec.kernel, channels, spec.filters))

    def _forward_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                       dW: Any, accumulate: bool) -> None:
        """Gather the patches, one GEMM, the fused bias + activation."""
        be, y = self.backend, self._positions(ws.y)
        be.im2col(ws.x[samples], self.geometry, cols)
        be.gemm(cols, self.weight, y[rows])
        be.bias_act(y[rows], self.b, self.act, self.alpha)

    def _backward_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                        dW: Any, accumulate: bool) -> None:
        """dW += cols^T dz (patches gathered only for it), dx = col2im(dz W^T)."""
        be, (dx, param_grads) = self.backend, ws.grads
        dz = self._positions(ws.dz)[rows]
        if param_grads:
            be.im2col(ws.x[samples], self.geometry, cols)
            be.gemm(cols, dz, dW, trans_a=True, accumulate=accumulate)
        if dx is not None:
            be.gemm(dz, self.weight, cols, trans_b=True)
            be.col2im(cols, self.geometry, dx[samples])

    def _tangent_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                       dW: Any, accumulate: bool) -> None:
        """dP/dW += im2col(r)^T dz; r_out = im2col(r) W when asked."""
        # dx = col2im(dz W^T), the transpose of r -> im2col(r) W: as the dense tangent.
        be = self.backend
        be.im2col(ws.r[samples], self.geometry, cols)
        be.gemm(cols, self._positions(ws.dz)[rows], dW, trans_a=True, accumulate=accumulate)
        if ws.r_out is not None:
            be.gemm(cols, self.weight, self._positions(ws.r_out)[rows])


class SpectralConv2DLayer(SpectralNormalised, Conv2DLayer):
    """A convolution whose (k^2 C, filters) weight matrix is ``W_bar = W / sigma(W)`` (see
    :class:`SpectralNormalised`): the patch matrix ``W`` is the (in, out) matrix a dense
    layer has, so the same power iteration, W_bar and backward serve it."""


class ConvTranspose2DLayer(PatchMatrixLayer):
    """``y = act(col2im(x W^T) + b)`` (see :class:`~fastgan.nn.specs.ConvTranspose2D`): the
    adjoint of the "same" convolution of the (sH, sW, filters) output image, whose geometry
    and (k^2 filters, C) patch matrix W it shares; x is read as (batch H W, C), one row per
    pixel, which is one row of that convolution's im2col matrix.

    Backward: ``dz = dy act'(y)`` and ``db = sum dz`` (the dense backward epilogue), then
    ``dcols = im2col(dz)``, ``dW = dcols^T x`` and ``dx = dcols W``; the batch in slices
    (:class:`PatchMatrixLayer`).
    """

    def __init__(self, spec: ConvTranspose2D, backend: Backend, dtype: np.dtype,
                 in_shape: Shape, out_shape: Shape, params: FlatParams, prefix: str,
                 rng: np.random.Generator) -> None:
        channels = in_shape[-1]
        super().__init__(spec, backend, dtype, in_shape, out_shape,
                         ConvGeometry(out_shape[0], out_shape[1], spec.filters, spec.kernel,
                                      spec.stride), params, prefix,
                         conv_transpose_init(spec.init, rng, spec.kernel, channels,
                                             spec.filters))
        self.channels = channels

    def _pixels(self, a: Any) -> Any:
        """(batch, H W C) input rows -> the (batch H W, C) view."""
        return a.reshape(-1, self.channels)

    def _spread(self, x: Any, samples: slice, rows: slice, cols: Any, y: Any) -> None:
        """The linear part of the forward for one slice: ``y[samples] = col2im(x W^T)`` of
        the slice's pixel rows ``x[rows]`` (the forward's input, or the R1 tangent)."""
        self.backend.gemm(self._pixels(x)[rows], self.weight, cols, trans_b=True)
        self.backend.col2im(cols, self.geometry, y[samples])

    def _forward_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                       dW: Any, accumulate: bool) -> None:
        """One GEMM, the scatter-add of its patches, the fused bias + activation."""
        self._spread(ws.x, samples, rows, cols, ws.y)
        self.backend.bias_act(self._positions(ws.y[samples]), self.b, self.act, self.alpha)

    def _backward_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                        dW: Any, accumulate: bool) -> None:
        """dcols = im2col(dz), dW += dcols^T x, dx = dcols W."""
        # y = col2im(x W^T): the adjoint of col2im is im2col, so dcols = im2col(dz); then
        # as a dense layer cols = x W^T: dW = dcols^T x and dx = dcols W.
        be, (dx, param_grads) = self.backend, ws.grads
        be.im2col(ws.dz[samples], self.geometry, cols)
        if param_grads:
            be.gemm(cols, self._pixels(ws.x)[rows], dW, trans_a=True, accumulate=accumulate)
        if dx is not None:
            be.gemm(cols, self.weight, self._pixels(dx)[rows])

    def _tangent_slice(self, ws: SimpleNamespace, samples: slice, rows: slice, cols: Any,
                       dW: Any, accumulate: bool) -> None:
        """dP/dW += im2col(dz)^T r; r_out = col2im(r W^T) when asked."""
        # dx = im2col(dz) W: dP/dW = im2col(dz)^T r, and dP/ddz = col2im(r W^T), the forward's
        # linear map applied to r.
        be = self.backend
        be.im2col(ws.dz[samples], self.geometry, cols)
        be.gemm(cols, self._pixels(ws.r)[rows], dW, trans_a=True, accumulate=accumulate)
        if ws.r_out is not None:
            self._spread(ws.r, samples, rows, cols, ws.r_out)


class SpectralConvTranspose2DLayer(SpectralNormalised, ConvTranspose2DLayer):
    """A transposed convolution whose (k^2 filters, C) weight matrix is ``W_bar = W /
    sigma(W)`` (see :class:`SpectralNormalised`): the patch matrix of the convolution it is
    the adjoint of, so sigma is the one :class:`SpectralConv2DLayer` would divide that
    convolution by (PyTorch's ``spectral_norm`` reads a ConvTranspose2d's weight as a
    (filters, C k^2) matrix instead, whose sigma differs)."""


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
    ``spectral_norm`` normalises a Dense, Conv2D or ConvTranspose2D layer's weight by its
    largest singular value."""
    if isinstance(spec, Dense):
        dense = SpectralDenseLayer if spectral_norm else DenseLayer
        return dense(spec, backend, dtype, in_shape, out_shape, params, f"{index}.dense",
                     init_rng)
    if isinstance(spec, Conv2D):
        conv = SpectralConv2DLayer if spectral_norm else Conv2DLayer
        return conv(spec, backend, dtype, in_shape, out_shape, params, f"{index}.conv2d",
                    init_rng)
    if isinstance(spec, ConvTranspose2D):
        transposed = SpectralConvTranspose2DLayer if spectral_norm else ConvTranspose2DLayer
        return transposed(spec, backend, dtype, in_shape, out_shape, params,
                          f"{index}.conv_transpose2d", init_rng)
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
