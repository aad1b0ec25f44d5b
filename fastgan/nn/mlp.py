"""MLP: a stack of layers over one FlatParams; forward records a tape, backward walks it.

The stack may hold convolutional layers too (the DCGAN of seed 003): the network still reads
and writes (batch, features) rows, and the shapes the layers see in between are tracked
while it is built (see :func:`fastgan.nn.specs.output_shapes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends import get_backend
from ..backends.base import Backend, resolve_dtype
from ..errors import ConfigError
from .layers import DenseLayer, Layer, SpectralNormalised, build_layer
from .params import FlatParams
from .projection import ProjectionLayer
from .specs import WEIGHTED, BatchNorm, LayerSpec, output_shapes


class MLP:
    """A feed-forward network built from layer specs, on one backend and dtype.

    ``MLP([Dense(256, "leaky_relu", alpha=0.2), Dropout(0.3), Dense(1)], in_features=784)``,
    or convolutional: ``MLP([Reshape((28, 28, 1)), Conv2D(32, stride=2, activation="relu"),
    Flatten(), Dense(1)], in_features=784)``. ``seed`` fixes the initial weights (drawn on
    the host, so equal on every backend) and the dropout masks. ``spectral_norm`` divides
    every Dense, Conv2D and ConvTranspose2D layer's weight by its largest singular value,
    estimated by one :meth:`power_iteration` per training step
    (:class:`~fastgan.nn.layers.SpectralNormalised`).
    ``projection_classes`` (C > 0) makes the last layer a projection discriminator's
    (:class:`~fastgan.nn.projection.ProjectionLayer`): :meth:`forward` then takes the batch's
    one-hot ``labels`` (N, C) too.
    """

    def __init__(self, layers: Sequence[LayerSpec], *, in_features: int,
                 backend: str | Backend | None = None, dtype: Any = "float32",
                 seed: int | np.random.SeedSequence = 0, spectral_norm: bool = False,
                 projection_classes: int = 0) -> None:
        if not isinstance(in_features, int) or in_features < 1:
            raise ConfigError(f"in_features must be a positive integer, got {in_features!r}")
        self.specs = tuple(layers)
        shapes = output_shapes(self.specs, in_features)
        if not any(isinstance(s, WEIGHTED) for s in self.specs):
            raise ConfigError("a network needs at least one Dense, Conv2D or ConvTranspose2D "
                              "layer")
        self.backend = get_backend(backend)
        self.dtype = resolve_dtype(dtype)
        seeds = (seed if isinstance(seed, np.random.SeedSequence)
                 else np.random.SeedSequence(seed)).spawn(2)
        init_rng = np.random.Generator(np.random.PCG64(seeds[0]))
        self.dropout_rng = self.backend.rng(seeds[1])
        self.params = FlatParams(self.backend, self.dtype)
        self.layers: list[Layer] = []
        for index, (spec, in_shape, out_shape) in enumerate(
                zip(self.specs, [(in_features,), *shapes[:-1]], shapes, strict=True)):
            self.layers.append(build_layer(spec, index, self.backend, self.dtype, in_shape,
                                           out_shape, self.params, init_rng, self.dropout_rng,
                                           spectral_norm))
        self._normalised = [layer for layer in self.layers
                            if isinstance(layer, SpectralNormalised)]
        self.projection: ProjectionLayer | None = None
        if projection_classes:
            if not isinstance(self.layers[-1], DenseLayer):
                raise ConfigError("the projection discriminator needs a Dense last layer")
            self.projection = ProjectionLayer(self.layers[-1], projection_classes,
                                              self.params, init_rng)
            self.layers[-1] = self.projection
        self.params.allocate()
        for layer in self.layers:
            layer.bind(self.params)
        self.in_features = in_features
        trained = [i for i, layer in enumerate(self.layers) if layer.has_params]
        self._first_trained, self._last_trained = trained[0], trained[-1]
        self.out_shape = shapes[-1]
        self.out_features = self.layers[-1].out_features

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return self.params.size

    @property
    def has_batchnorm(self) -> bool:
        """True when a layer normalises over the batch (samples are then not independent)."""
        return any(isinstance(s, BatchNorm) for s in self.specs)

    def buffers(self) -> dict[str, Any]:
        """Non-trainable state (batch-norm running statistics), by qualified name."""
        return {f"{i}.{name}": array
                for i, layer in enumerate(self.layers)
                for name, array in layer.buffers().items()}

    def power_iteration(self) -> None:
        """One power iteration of every spectrally normalised layer (none: nothing to do)."""
        for layer in self._normalised:
            layer.power_iteration()

    def forward(self, x: Any, training: bool = True, labels: Any = None) -> Any:
        """Network output for a batch ``x`` of shape (batch, in_features) on the backend
        (with a projection layer, ``labels`` are the batch's one-hot classes).

        The returned array is the last layer's workspace: valid until the next forward at
        this batch size.
        """
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ConfigError(f"expected input of shape (batch, {self.in_features}), got {x.shape}")
        if self.projection is not None:
            self.projection.labels = labels
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy: Any, input_grad: bool = False, param_grads: bool = True,
                 finish: bool = True) -> Any:
        """Backpropagate ``dy`` (gradient w.r.t. the output; overwritten) through the tape of
        the last training forward at this batch size. Parameter gradients land in
        ``params.grad`` when ``param_grads``; returns the input gradient when ``input_grad``.
        Without ``input_grad`` the walk stops at the first layer with parameters (what comes
        before it, e.g. a Reshape, has nothing to learn), which skips its input gradient.
        ``finish=False`` leaves the normalised layers' gradients w.r.t. W_bar, for another
        pass (:meth:`penalty_backward`) to add to before :meth:`finish_param_grads`.
        """
        last = 0 if input_grad else self._first_trained
        for index in range(len(self.layers) - 1, last - 1, -1):
            dy = self.layers[index].backward(dy, input_grad or index > last, param_grads)
        if param_grads and finish:
            self.finish_param_grads()
        return dy if input_grad else None

    def finish_param_grads(self) -> None:
        """Turn each spectrally normalised layer's gradient w.r.t. W_bar into the gradient
        w.r.t. its parameter W (none: nothing to do)."""
        for layer in self._normalised:
            layer.finish_param_grads()

    def penalty_backward(self, g: Any) -> None:
        """Add to the parameter gradients those of ``P = sum(g * g) / 2``, for ``g`` the input
        gradient the last backward at this batch size returned (its upstream held fixed).

        A tangent walks forward: ``r = dP/dg = g`` at the input, and each layer maps the
        tangent at its input gradient to the one at its output gradient (the transpose of
        its input-gradient map: ``r W_bar act'(y)`` for a dense layer), adding
        ``dP/dW_bar = r_in^T dz`` on the way (the layer's ``tangent``). With piecewise-linear
        activations that is all of dP (act'' = 0 almost everywhere). Spectrally normalised
        layers' gradients stay w.r.t. W_bar: :meth:`finish_param_grads` follows.
        """
        r = g
        for index in range(self._last_trained + 1):
            r = self.layers[index].tangent(r, output=index < self._last_trained)

    def __repr__(self) -> str:
        return (f"MLP(in={self.in_features}, out={self.out_features}, params={self.n_params:,}, "
                f"backend={self.backend.name}, dtype={self.dtype.name})")



