"""The NumPy backend: the reference every other backend is tested against.

It runs the generic kernels of :class:`~fastgan.backends.base.Backend` unchanged, so what
it computes is exactly what base.py's readable code says. Inside a kernel NumPy may make
temporaries; results always land in the caller's arrays.
"""

from __future__ import annotations

import numpy as np

from .base import Backend


def unavailable_reason() -> str | None:
    """NumPy is a hard dependency: always usable."""
    return None


class NumpyBackend(Backend):
    """Plain NumPy arrays on the host, the generic kernels as written."""

    name = "numpy"
    xp = np
