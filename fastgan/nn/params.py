"""FlatParams: one contiguous parameter buffer and one gradient buffer per network.

Layers reserve named slots while the network is built; ``allocate`` then creates the two
buffers once, and each layer works on views into them. One buffer means one optimizer
launch per network and a checkpoint that is a single array.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from ..backends.base import Backend, resolve_dtype
from ..errors import ConfigError


@dataclass(frozen=True)
class Slot:
    """Where one named parameter lives in the flat buffer."""

    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of scalars in the slot."""
        return prod(self.shape)


class FlatParams:
    """Named views over one flat parameter buffer ``data`` and its gradient ``grad``."""

    def __init__(self, backend: Backend, dtype: Any) -> None:
        self.backend = backend
        self.dtype = resolve_dtype(dtype)
        self.slots: dict[str, Slot] = {}
        self._initial: dict[str, np.ndarray] = {}
        self.size = 0
        self.data: Any = None
        self.grad: Any = None

    def reserve(self, name: str, initial: np.ndarray) -> None:
        """Reserve slot ``name``, shaped and started like the host array ``initial``."""
        if self.data is not None:
            raise ConfigError("FlatParams is already allocated; reserve every slot before")
        if name in self.slots:
            raise ConfigError(f"parameter name {name!r} is reserved twice")
        self.slots[name] = Slot(self.size, tuple(initial.shape))
        self._initial[name] = initial
        self.size += self.slots[name].size

    def allocate(self) -> None:
        """Create both buffers on the backend, filled with the initial values (grad zero)."""
        host = np.empty(self.size, dtype=self.dtype)
        for name, slot in self.slots.items():
            host[slot.offset: slot.offset + slot.size] = self._initial[name].ravel()
        self._initial.clear()
        self.data = self.backend.asarray(host)
        self.grad = self.backend.zeros((self.size,), self.dtype)

    def view(self, name: str) -> Any:
        """The parameter ``name`` as an array view into ``data``."""
        return self._view(self.data, name)

    def grad_view(self, name: str) -> Any:
        """The gradient of ``name`` as an array view into ``grad``."""
        return self._view(self.grad, name)

    def _view(self, buffer: Any, name: str) -> Any:
        slot = self.slots[name]
        return buffer[slot.offset: slot.offset + slot.size].reshape(slot.shape)
