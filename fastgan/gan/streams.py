"""What a GAN's random streams share: a host generator seen as a stream, and the names of the
streams a training step draws from (:meth:`fastgan.gan.model.GAN.random_streams` names every
stream, once, by its name in checkpoints)."""

from __future__ import annotations

from typing import Any

import numpy as np


class HostStream:
    """A NumPy generator seen as a random stream: its state read and restored as a dict."""

    def __init__(self, generator: np.random.Generator) -> None:
        self.generator = generator

    def get_state(self) -> dict[str, Any]:
        """The bit generator's state (JSON values)."""
        return self.generator.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self.generator.bit_generator.state = state


STEP_STREAMS = ("noise", "generator_dropout", "discriminator_dropout")
"""The random streams a training step draws from (names of :meth:`GAN.random_streams`): each
data-parallel rank has its own, and a CUDA graph needs them on the device."""
