"""An exponential moving average (EMA) of a network's weights, sampled from in place of them.

After every generator step ``average = decay * average + (1 - decay) * weights``. Averaged
weights often give smoother, steadier samples than the latest ones. The average starts at
zero and, after t updates, is read as ``average / (1 - decay^t)`` (the bias correction Adam
applies to its moments): the exponentially weighted mean of the weights trained so far, in
which the initial weights take no part. Without the correction an average seeded with the
initial weights drags them along for ~1/(1 - decay) steps (2,000 at decay 0.9995), which
spoils every early sample. The average is a second flat buffer beside the network's own;
``swapped_in`` puts it into the network for the duration of a block (sampling), then
restores the training weights bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import ConfigError
from .params import FlatParams


class WeightAverage:
    """EMA of one network's flat parameter buffer.

    ``debiased`` is False only for an average restored from a checkpoint written before the
    average started at zero (it started at the initial weights and is read as it is).
    """

    def __init__(self, params: FlatParams, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), e.g. 0.999; got {decay}")
        backend = params.backend
        self.params = params
        self.decay = float(decay)
        self.debiased = True
        self.average = backend.zeros(params.data.shape, params.dtype)
        self._training_weights = backend.empty(params.data.shape, params.dtype)

    def update(self) -> None:
        """Fold the network's current weights into the average."""
        self.params.backend.ema_update(self.average, self.params.data, self.decay)

    def correction(self, updates: int) -> float:
        """What the average is multiplied by after ``updates`` updates: 1 / (1 - decay^t)."""
        return 1.0 / (1.0 - self.decay**updates) if self.debiased else 1.0

    @contextlib.contextmanager
    def swapped_in(self, updates: int) -> Iterator[None]:
        """Within the block the network computes with the averaged weights after ``updates``
        updates (the GAN's step count; with none yet, the weights themselves)."""
        backend, data = self.params.backend, self.params.data
        backend.copy(data, self._training_weights)
        if updates or not self.debiased:
            scale = self.correction(updates)
            # sampling, not the training step: one temporary array when the scale is not 1
            backend.copy(self.average if scale == 1.0 else self.average * scale, data)
        try:
            yield
        finally:
            backend.copy(self._training_weights, data)
