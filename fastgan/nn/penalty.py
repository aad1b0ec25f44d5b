"""The R1 penalty (Mescheder et al., 2018) and its second-order gradient, derived by hand.

``P = gamma/(2B) sum_i |grad_x D(x_i)|^2`` over the B real rows of a discriminator step, D's
logit per row. With ``every = n > 1`` the penalty is lazy (StyleGAN2): it is added on every
n-th D step only, scaled by n.

Its gradient w.r.t. D's parameters is a double backward, written as three passes over the
network (see :meth:`fastgan.nn.mlp.MLP.penalty_backward`): a forward on the real rows; a
backward from the constant upstream ``s = sqrt(gamma n / B)``, which gives ``g = s grad_x D``
and keeps each layer's pre-activation gradient ``s dz``; then a tangent pass from ``r = g``
that adds ``r_in^T (s dz)`` to each weight's gradient. Both factors carry s, so the sum is
the gradient of ``sum(g * g) / 2 = n P``: no scaling kernel is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ConfigError
from .mlp import MLP
from .specs import WEIGHTED, Activation, BatchNorm, Dropout, Flatten, LayerSpec, Reshape

PIECEWISE_LINEAR = ("identity", "relu", "leaky_relu")
"""The activations the R1 pass goes through: their second derivative vanishes a.e."""


def r1_refusal(specs: Sequence[LayerSpec]) -> str | None:
    """Why the R1 penalty's gradient cannot be derived through the layers ``specs`` (a
    discriminator), or None when it can."""
    for index, spec in enumerate(specs):
        if isinstance(spec, BatchNorm):
            return (f"the R1 penalty needs each real sample's own input gradient, but layer "
                    f"{index} (BatchNorm) mixes the samples of a batch: remove BatchNorm from "
                    "the discriminator (spectral_norm or Dropout regularise it instead) or "
                    "set r1_gamma to 0")
        if not isinstance(spec, (*WEIGHTED, Dropout, Activation, Reshape, Flatten)):
            return f"the R1 penalty cannot pass through layer {index} ({type(spec).__name__})"
        activation = spec.name if isinstance(spec, Activation) else getattr(spec, "activation",
                                                                             "identity")
        if activation not in PIECEWISE_LINEAR:
            return (f"the R1 penalty's gradient is derived for piecewise-linear activations "
                    f"({', '.join(PIECEWISE_LINEAR)}); layer {index} of the discriminator uses "
                    f"{activation}, whose second derivative it would miss: use leaky_relu or "
                    "set r1_gamma to 0")
    return None


class R1Penalty:
    """The R1 penalty of ``network`` (a discriminator with one logit per row) with weight
    ``gamma``, applied on every ``every``-th D step scaled by ``every``.

    :meth:`accumulate` adds the penalty's gradient to the network's gradient buffer (w.r.t.
    W_bar for spectrally normalised layers: the network's :meth:`~MLP.finish_param_grads`
    follows). Its arrays are made once per batch size.
    """

    def __init__(self, network: MLP, gamma: float, every: int = 1) -> None:
        refusal = r1_refusal(network.specs)
        if refusal is not None:
            raise ConfigError(refusal)
        if network.out_features != 1:
            raise ConfigError(f"the R1 penalty needs one logit per row, the network makes "
                              f"{network.out_features}")
        self.network, self.gamma, self.every = network, gamma, every
        self._workspaces: dict[int, SimpleNamespace] = {}

    def due(self, d_step: int) -> bool:
        """True when D step ``d_step`` (0-based count of D updates) carries the penalty."""
        return d_step % self.every == 0

    def workspace(self, batch: int) -> SimpleNamespace:
        """The constant upstream ``sqrt(gamma every / batch)`` and its working copy."""
        ws = self._workspaces.get(batch)
        if ws is None:
            net = self.network
            scale = math.sqrt(self.gamma * self.every / batch)
            ws = self._workspaces[batch] = SimpleNamespace(
                start=net.backend.asarray(np.full((batch, 1), scale), net.dtype),
                upstream=net.backend.empty((batch, 1), net.dtype), g=None)
        return ws

    def accumulate(self, real: Any) -> None:
        """Add ``every`` times the penalty's gradient on the rows ``real`` (a backend array)
        to the network's gradients: a training forward (fresh dropout masks), a backward to
        the input, the tangent pass."""
        net, ws = self.network, self.workspace(real.shape[0])
        net.backend.copy(ws.start, ws.upstream)
        net.forward(real, training=True)
        ws.g = net.backward(ws.upstream, input_grad=True, param_grads=False)
        net.penalty_backward(ws.g)

    def value(self, batch: int) -> float:
        """The penalty the last :meth:`accumulate` at ``batch`` rows applied,
        ``every gamma/(2B) sum |grad_x D|^2`` (a device-to-host read: for tests and reports)."""
        g = self.network.backend.to_numpy(self._workspaces[batch].g).astype(np.float64)
        return float((g * g).sum() / 2)
