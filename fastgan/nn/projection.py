"""The class term of the projection discriminator (Miyato and Koyama, 2018).

D's last layer reads features ``h = phi(x)`` (N, H) and makes the unconditional logit
``psi(h) = h w + b``; the projection discriminator adds the inner product of ``h`` with a
learned embedding of the class, ``E^T y`` (E: a (C, H) matrix, y: the one-hot label)::

    logit_i = psi(h_i) + sum_j (Y E)_ij h_ij

Backward, with ``g = dL/dlogit`` (N, 1) and ``G = g * Y`` (each one-hot row scaled by its
sample's gradient): ``dL/dE = G^T h`` and ``dL/dh = dL/dh|_psi + G E``.

Every product is a GEMM or an elementwise product over workspace arrays: the row sums
``sum_j p_ij`` are ``p 1`` and the scaled rows ``g * Y`` are ``(g 1^T) * Y``, with ``1`` a
row of ones made once.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import IDENTITY
from ..errors import ConfigError
from .init import dense_init
from .layers import DenseLayer, Layer
from .params import FlatParams


class ProjectionLayer(Layer):
    """D's last Dense layer ``inner`` (identity activation, one unit) plus the class term
    ``<E^T y, h>`` (see the module). :attr:`labels` is the (N, C) one-hot batch the next
    forward reads; ``E`` is ``projection.embedding`` in the network's flat parameters."""

    has_params = True

    def __init__(self, inner: DenseLayer, classes: int, params: FlatParams,
                 rng: np.random.Generator) -> None:
        super().__init__(inner.backend, inner.dtype, inner.in_shape, inner.out_shape)
        if inner.act != IDENTITY or inner.out_features != 1:
            raise ConfigError("the projection discriminator's last layer must be Dense(1) "
                              "with no activation (the class term is added to its logit)")
        self.inner = inner
        self.classes = classes
        self.name = "projection.embedding"
        params.reserve(self.name, dense_init("glorot_uniform", rng, classes,
                                             inner.in_features)[0])
        self.ones = {width: inner.backend.asarray(np.ones((1, width)), inner.dtype)
                     for width in (classes, inner.in_features)}
        self.labels: Any = None

    def bind(self, params: FlatParams) -> None:
        """Views of the inner layer's parameters and of E and its gradient."""
        self.inner.bind(params)
        self.E, self.dE = params.view(self.name), params.grad_view(self.name)

    def buffers(self) -> dict[str, Any]:
        """The inner layer's state (u and v when spectrally normalised)."""
        return self.inner.buffers()

    def workspace(self, batch: int) -> SimpleNamespace:
        """The embedded labels ``Y E`` and products (N, H); the scaled labels (N, C)."""
        ws = self._workspaces.get(batch)
        if ws is None:
            be, dt, features = self.backend, self.dtype, self.in_features
            ws = self._workspaces[batch] = SimpleNamespace(
                embedded=be.empty((batch, features), dt), product=be.empty((batch, features), dt),
                spread=be.empty((batch, self.classes), dt),
                scaled=be.empty((batch, self.classes), dt))
        return ws

    def forward(self, x: Any, training: bool) -> Any:
        """``psi(x) + rowsum((Y E) * x)``, Y = :attr:`labels`, kept with x for backward."""
        if self.labels is None or self.labels.shape != (x.shape[0], self.classes):
            raise ConfigError(f"the projection discriminator needs one-hot labels of shape "
                              f"({x.shape[0]}, {self.classes}) with its input")
        be, ws = self.backend, self.workspace(x.shape[0])
        ws.x, ws.labels = x, self.labels
        logits = self.inner.forward(x, training)
        be.gemm(ws.labels, self.E, ws.embedded)                   # Y E
        be.multiply(ws.embedded, x, ws.product)                   # (Y E) * h
        be.gemm(ws.product, self.ones[self.in_features], logits, trans_b=True,
                accumulate=True)                                  # logit += p 1
        return logits

    def backward(self, dy: Any, input_grad: bool, param_grads: bool) -> Any:
        """``G = (g 1^T) * Y``; then psi's backward; ``dE = G^T h``, ``dh += G E``."""
        be, ws = self.backend, self._workspaces[dy.shape[0]]
        be.gemm(dy, self.ones[self.classes], ws.spread)           # g 1^T
        be.multiply(ws.spread, ws.labels, ws.scaled)              # G = g * Y
        dx = self.inner.backward(dy, input_grad, param_grads)
        if param_grads:
            be.gemm(ws.scaled, ws.x, self.dE, trans_a=True)       # dE = G^T h
        if dx is not None:
            be.gemm(ws.scaled, self.E, dx, accumulate=True)       # dh += G E
        return dx
