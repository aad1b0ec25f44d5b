"""Shared fixtures: every backend-parametrized test runs on each backend, skipping with the
reason where a backend cannot run here (so later backends inherit the tests by registering)."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable

import pytest

import fastgan
from fastgan import backends


def pytest_report_header() -> str:
    """Which OpenBLAS kernel the tests run on: it sets the rounding of every GEMM, and so each
    training trajectory (docs/testing-portability.md)."""
    from support.learning_runs import openblas_kernel

    return f"OpenBLAS kernel: {openblas_kernel()}"


@functools.cache
def _reasons() -> dict[str, str | None]:
    return fastgan.available_backends()


def _param(name: str):
    return pytest.param(name, marks=[pytest.mark.gpu] if name == "cupy" else [], id=name)


@pytest.fixture(params=[_param(n) for n in backends.names()])
def backend(request: pytest.FixtureRequest) -> backends.Backend:
    """Each registered backend that can run here."""
    reason = _reasons()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param} unavailable: {reason}")
    return fastgan.get_backend(request.param)


@functools.cache
def _comparable(name: str) -> backends.Backend:
    """Backend ``name`` drawing its noise and dropout masks as the NumPy reference does. The
    numba and cupy backends' own streams (Philox) differ from NumPy's by design; with
    ``rng="pcg64"`` they draw NumPy's values."""
    backend_class = type(fastgan.get_backend(name))
    return backend_class(rng="pcg64")


@pytest.fixture(params=[_param(n) for n in backends.names() if n != "numpy"])
def fast_backend(request: pytest.FixtureRequest) -> backends.Backend:
    """Each optimized backend that can run here, with the reference's random streams
    (compared with the NumPy reference value for value)."""
    reason = _reasons()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param} unavailable: {reason}")
    return _comparable(request.param)


@pytest.fixture(scope="session")
def emulator_library():
    """The CUDA kernels compiled for the CPU emulation (cuda_emulator.py), or a skip."""
    from support import cuda_emulator

    if not cuda_emulator.compiler_available():
        pytest.skip("g++ is not available to build the CPU emulation of the CUDA kernels")
    return cuda_emulator.build()


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> str:
    """Both supported floating-point types."""
    return request.param


@pytest.fixture(scope="session")
def tiny_recipe():
    """An evaluation-classifier recipe that trains in a blink: for plumbing tests, not accuracy."""
    from support.learning_runs import QUICK_RECIPE

    return QUICK_RECIPE


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache folder for the evaluation classifiers of a test session: each default
    classifier is trained once per run, and never read from the user's cache."""
    return tmp_path_factory.mktemp("fastgan-cache")


@pytest.fixture(params=[signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def child_dispositions(request: pytest.FixtureRequest) -> Callable[[], None]:
    """A ``preexec_fn`` for a child that a test sends signals to: SIGTERM at its default and
    SIGINT as a terminal starts it (default) or as a background job, ``nohup`` or a CI runner
    does (ignored), whatever the test runner itself inherited. Stop signals must work the
    same either way."""
    def preexec() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, request.param)
    return preexec
