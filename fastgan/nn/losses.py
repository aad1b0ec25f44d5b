"""The GAN losses, on logits (the discriminator never ends in a sigmoid).

Each function writes the gradient w.r.t. the logits into ``grad`` and the loss and mean
sigmoid of the logits (D's probability, reported whatever the loss) into ``stats``. BCE runs
as BCE-with-logits in its stable form; hinge, least squares and the linear hinge-generator
loss run as the backend's ``score_loss`` kernel. One-sided label smoothing s moves the real
target of BCE and least squares to ``1 - s``; the hinge has no target to move.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import HINGE, LINEAR, SQUARED, Backend

D_LOSSES = ("bce", "hinge", "least_squares")
G_LOSSES = ("non_saturating", "minimax", "hinge", "least_squares")


def discriminator_loss(backend: Backend, kind: str, logits: Any, grad: Any, stats: Any,
                       label_smoothing: float = 0.0) -> None:
    """Loss ``kind`` of D on ``logits`` = [real rows; fake rows] (equal halves of B rows each).

    bce: ``L_D = mean_real BCE(l, 1 - s) + mean_fake BCE(l, 0)``, ``dL/dl = (sigmoid(l) - t)/B``.
    hinge: ``L_D = mean_real max(0, 1 - l) + mean_fake max(0, 1 + l)``,
    ``dL/dl = -[l < 1]/B`` (real), ``+[l > -1]/B`` (fake).
    least_squares: ``L_D = mean_real (l - 1 + s)^2/2 + mean_fake l^2/2``, ``dL/dl = (l - t)/B``.
    stats[0:2] = (real loss, D(x)); stats[2:4] = (fake loss, D(G(z))).
    """
    half = logits.shape[0] // 2
    real, fake = (logits[:half], grad[:half], stats[0:2]), (logits[half:], grad[half:], stats[2:4])
    if kind == "bce":
        backend.bce_with_logits(real[0], 1.0 - label_smoothing, 1.0 / half, *real[1:])
        backend.bce_with_logits(fake[0], 0.0, 1.0 / half, *fake[1:])
    elif kind == "hinge":
        backend.score_loss(real[0], HINGE, 1.0, 1.0 / half, *real[1:])
        backend.score_loss(fake[0], HINGE, -1.0, 1.0 / half, *fake[1:])
    else:
        backend.score_loss(real[0], SQUARED, 1.0 - label_smoothing, 1.0 / half, *real[1:])
        backend.score_loss(fake[0], SQUARED, 0.0, 1.0 / half, *fake[1:])


def generator_loss(backend: Backend, kind: str, logits: Any, grad: Any, stats: Any) -> None:
    """Loss ``kind`` of G on D's ``logits`` for B fakes; stats[0:2] = (G loss, D(G(z))).

    non_saturating: ``L_G = mean -log sigmoid(l) = mean BCE(l, 1)``, ``dL/dl = (sigmoid(l)-1)/B``.
    minimax: ``L_G = mean log(1 - sigmoid(l)) = -mean BCE(l, 0)``, ``dL/dl = -sigmoid(l)/B``.
    hinge: ``L_G = -mean l``, ``dL/dl = -1/B``.
    least_squares: ``L_G = mean (l - 1)^2/2``, ``dL/dl = (l - 1)/B``.
    """
    batch = logits.shape[0]
    if kind == "non_saturating":
        backend.bce_with_logits(logits, 1.0, 1.0 / batch, grad, stats)
    elif kind == "minimax":
        backend.bce_with_logits(logits, 0.0, -1.0 / batch, grad, stats)
    elif kind == "hinge":
        backend.score_loss(logits, LINEAR, 0.0, -1.0 / batch, grad, stats)
    else:
        backend.score_loss(logits, SQUARED, 1.0, 1.0 / batch, grad, stats)
