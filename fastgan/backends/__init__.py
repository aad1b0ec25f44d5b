"""Backends: the array contract (``base``) and its NumPy, Numba and CuPy implementations with
their kernels; this module is the registry (which exist, which can run here, selection).

Backends know arrays only. May import: the leaves ``errors`` and ``threads``; never ``nn`` or
anything above. Backends are imported lazily, so ``import fastgan`` never imports numba or cupy.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from ..errors import BackendUnavailable, ConfigError
from .base import Backend

__all__ = ["Backend", "available_backends", "get_backend", "names", "use_backend"]

# name -> module (each module has ``unavailable_reason()`` and one Backend subclass)
_MODULES = {
    "numpy": "fastgan.backends.numpy_backend",
    "numba": "fastgan.backends.numba_backend",
    "cupy": "fastgan.backends.cupy_backend",
}
_AUTO_ORDER = ("cupy", "numba", "numpy")
_instances: dict[str, Backend] = {}
_default = ["numpy"]


def names() -> list[str]:
    """Every backend fastgan knows, usable here or not."""
    return list(_MODULES)


def _module(name: str):
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError as exc:  # the module itself could not load (e.g. numba missing)
        return exc


def _reason(name: str) -> str | None:
    module = _module(name)
    if isinstance(module, ImportError):
        return f"cannot import its dependencies: {module}"
    return module.unavailable_reason()


def available_backends() -> dict[str, str | None]:
    """Each backend's name -> ``None`` if it can run here, else the reason why not."""
    return {name: _reason(name) for name in _MODULES}


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name``: "numpy", "numba", "cupy", or "auto" (cupy > numba > numpy).

    ``None`` means the current default (numpy, or what :func:`use_backend` set). A backend
    that cannot run here raises :class:`BackendUnavailable` with the reason and the
    alternatives; there is never a silent fallback.
    """
    if isinstance(name, Backend):
        return name
    name = _default[0] if name is None else name
    if name == "auto":
        name = next(n for n in _AUTO_ORDER if _reason(n) is None)
    if name not in _MODULES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(names())} or auto")
    if name not in _instances:
        reason = _reason(name)
        if reason is not None:
            usable = [n for n, r in available_backends().items() if r is None]
            raise BackendUnavailable(
                f"backend {name!r} cannot run here: {reason}. Usable here: {', '.join(usable)}"
            )
        module = _module(name)
        backend_class = next(
            obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Backend) and obj.name == name
        )
        _instances[name] = backend_class()
    return _instances[name]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Within the block, ``backend=None`` everywhere means ``name``."""
    backend = get_backend(name)
    previous = _default[0]
    _default[0] = backend.name
    try:
        yield backend
    finally:
        _default[0] = previous
