"""The GAN losses, on logits (the discriminator never ends in a sigmoid).

Each function writes the gradient w.r.t. the logits into ``grad`` and the loss and mean
D-probability into ``stats``; all are BCE-with-logits in its stable form (backend kernel).
"""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend


def discriminator_loss(backend: Backend, logits: Any, grad: Any, stats: Any,
                       label_smoothing: float = 0.0) -> None:
    """Loss of D on ``logits`` = [real rows; fake rows] (equal halves of B rows each).

    ``L_D = mean_real BCE(l, 1 - s) + mean_fake BCE(l, 0)`` (one-sided smoothing s);
    ``dL/dl = (sigmoid(l) - t) / B``. stats[0:2] = (real loss, D(x)); stats[2:4] = (fake loss,
    D(G(z))).
    """
    half = logits.shape[0] // 2
    backend.bce_with_logits(logits[:half], 1.0 - label_smoothing, 1.0 / half, grad[:half],
                            stats[0:2])
    backend.bce_with_logits(logits[half:], 0.0, 1.0 / half, grad[half:], stats[2:4])


def generator_loss(backend: Backend, kind: str, logits: Any, grad: Any, stats: Any) -> None:
    """Loss of G on D's ``logits`` for fakes; stats[0:2] = (G loss, D(G(z))).

    non_saturating: ``L_G = mean -log sigmoid(l) = mean BCE(l, 1)``, ``dL/dl = (sigmoid(l)-1)/B``.
    minimax: ``L_G = mean log(1 - sigmoid(l)) = -mean BCE(l, 0)``, ``dL/dl = -sigmoid(l)/B``.
    """
    batch = logits.shape[0]
    if kind == "non_saturating":
        backend.bce_with_logits(logits, 1.0, 1.0 / batch, grad, stats)
    else:
        backend.bce_with_logits(logits, 0.0, -1.0 / batch, grad, stats)
