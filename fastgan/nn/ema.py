"""An exponential moving average (EMA) of a network's weights, sampled from in place of them.

After every generator step ``average = decay * average + (1 - decay) * weights``. Averaged
weights often give smoother, steadier samples than the latest ones. The average is a second
flat buffer beside the network's own; ``swapped_in`` puts it into the network for the
duration of a block (sampling), then restores the training weights bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import ConfigError
from .params import FlatParams


class WeightAverage:
    """EMA of one network's flat parameter buffer."""

    def __init__(self, params: FlatParams, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), e.g. 0.999; got {decay}")
        backend = params.backend
        self.params = params
        self.decay = float(decay)
        self.average = backend.empty(params.data.shape, params.dtype)
        backend.copy(params.data, self.average)
        self._training_weights = backend.empty(params.data.shape, params.dtype)

    def update(self) -> None:
        """Fold the network's current weights into the average."""
        self.params.backend.ema_update(self.average, self.params.data, self.decay)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the network computes with the averaged weights."""
        backend, data = self.params.backend, self.params.data
        backend.copy(data, self._training_weights)
        backend.copy(self.average, data)
        try:
            yield
        finally:
            backend.copy(self._training_weights, data)
