"""Central finite differences in float64 against hand-derived gradients.

``check_gradient(loss, theta, analytic)`` perturbs the flat array ``theta`` (a backend
array, changed in place and restored) and compares ``(L(t+e d) - L(t-e d)) / 2e`` with
``<analytic, d>``: along random directions (every coordinate at once) and per coordinate
for a sample of coordinates. A mismatch raises AssertionError naming the parameter, the
analytic and numeric values and the relative error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .tolerances import GRADIENT


def check_gradient(loss: Callable[[], float], theta: Any, analytic: Any, backend: Any, *,
                   names: Mapping[str, slice] | None = None, directions: int = 6,
                   coordinates: int = 12, seed: int = 0) -> None:
    """Assert that ``analytic`` is the gradient of ``loss`` w.r.t. ``theta`` (both float64),
    within tolerances.GRADIENT."""
    eps, rtol, atol = GRADIENT["eps"], GRADIENT["rtol"], GRADIENT["atol"]
    host_theta = backend.to_numpy(theta).copy()
    grad = backend.to_numpy(analytic).astype(np.float64).ravel().copy()
    assert host_theta.dtype == np.float64, "finite differences need float64"
    rng = np.random.default_rng(seed)
    failures = []

    def numeric(direction: np.ndarray) -> float:
        values = []
        for sign in (1.0, -1.0):
            backend.copy((host_theta.ravel() + sign * eps * direction).reshape(host_theta.shape),
                         theta)
            values.append(loss())
        backend.copy(host_theta, theta)
        return (values[0] - values[1]) / (2 * eps)

    def compare(label: str, num: float, ana: float) -> None:
        err = abs(num - ana) / max(abs(num), abs(ana), 1e-12)
        if abs(num - ana) > atol + rtol * max(abs(num), abs(ana)):
            failures.append(f"{label}: analytic {ana:.10g} vs numeric {num:.10g} "
                            f"(relative error {err:.2e})")

    for i in range(directions):
        d = rng.standard_normal(grad.size)
        d /= np.linalg.norm(d)
        compare(f"random direction {i}", numeric(d), float(grad @ d))
    for index in rng.choice(grad.size, size=min(coordinates, grad.size), replace=False):
        d = np.zeros(grad.size)
        d[index] = 1.0
        compare(f"{_name_of(int(index), names)}", numeric(d), float(grad[index]))
    assert not failures, "gradient check failed:\n  " + "\n  ".join(failures)


def _name_of(index: int, names: Mapping[str, slice] | None) -> str:
    for name, span in (names or {}).items():
        if span.start <= index < span.stop:
            return f"{name}[{index - span.start}]"
    return f"coordinate {index}"


def slot_names(params: Any) -> dict[str, slice]:
    """Parameter name -> its span in a FlatParams buffer (for readable failures)."""
    return {name: slice(s.offset, s.offset + s.size) for name, s in params.slots.items()}
