"""The Numba CPU backend: GEMMs through BLAS, everything else in fused serial kernels.

A training step is mostly matrix products; what NumPy spends outside them (a temporary
and a pass over memory per operator) is what this backend removes. The GEMMs stay where
they are fastest, in NumPy's BLAS (``np.matmul`` with ``out=`` on transposed views, no
copy); every elementwise job runs as one pass of a kernel from
:mod:`fastgan.backends.numba_kernels`, which are compiled once and cached on disk.

Threads: one knob sets both BLAS's pool and Numba's (:func:`set_num_threads`, or the
``FASTGAN_NUM_THREADS`` environment variable read when the backend is created; the default
is the number of physical cores). The kernels themselves are serial: between OpenBLAS
calls a second busy pool oversubscribes the cores, and one core already streams them at
memory speed.

Random numbers stay NumPy's PCG64 on the host (the reference's stream), so noise and
dropout masks for a seed are identical to the NumPy backend's whatever the thread count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import Backend, ConvGeometry, Rng

try:
    import numba
    import threadpoolctl

    from . import numba_kernels as kernels
except ImportError as exc:  # the backend registry reports this as the reason
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

THREADS_ENV = "FASTGAN_NUM_THREADS"


def unavailable_reason() -> str | None:
    """None when numba (and threadpoolctl) import, else what is missing and how to get it."""
    if _IMPORT_ERROR is None:
        return None
    return (f"numba or threadpoolctl cannot be imported ({_IMPORT_ERROR}); "
            "install them with `pip install numba threadpoolctl`")


# ---------------------------------------------------------------------- threads
def physical_cores() -> int:
    """Physical cores this process may run on (logical CPUs / hyper-threads per core).

    Linux topology files give threads per core; elsewhere every logical CPU counts.
    """
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    try:
        per_core = len(_cpu_list(siblings.read_text()))
    except OSError:
        per_core = 1
    return max(1, logical // max(per_core, 1))


def _cpu_list(text: str) -> list[int]:
    """Parse a Linux CPU list such as ``"0-3,8"``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def default_num_threads() -> int:
    """``FASTGAN_NUM_THREADS`` if set, else the number of physical cores."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return physical_cores()
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
    return threads


def set_num_threads(threads: int | None = None) -> int:
    """Use ``threads`` threads for BLAS and for Numba alike (None: :func:`default_num_threads`).

    Numba's count is capped by its pool size (``NUMBA_NUM_THREADS``, fixed at start-up).
    Returns the count in force.
    """
    threads = default_num_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"the thread count must be a positive integer, got {threads!r}")
    threadpoolctl.threadpool_limits(threads, user_api="blas")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def get_num_threads() -> dict[str, int]:
    """Threads in force now: ``{"numba": n, "blas": n}`` (BLAS: the largest of its pools)."""
    blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"]
    return {"numba": numba.get_num_threads(), "blas": max(blas, default=0)}


# ---------------------------------------------------------------------- backend
def _geometry_args(g: ConvGeometry) -> tuple[int, ...]:
    """The integers the im2col/col2im kernels take, in their order."""
    return (g.height, g.width, g.channels, g.kernel, g.stride, g.pad_top, g.pad_left,
            g.out_height, g.out_width)


class NumbaRng(Rng):
    """The reference PCG64 stream; the dropout mask is thresholded in one fused pass."""

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with an inverted-dropout mask: 1/(1-rate) with prob. 1-rate, else 0."""
        keep = 1.0 - rate
        self.generator.random(out=out, dtype=out.dtype)
        scalar = out.dtype.type
        kernels.dropout_mask(out, scalar(keep), scalar(1.0 / keep))


class NumbaBackend(Backend):
    """Host NumPy arrays; BLAS GEMMs; fused, cached Numba kernels for everything else.

    Creating it applies the thread knob (see :func:`set_num_threads`).
    """

    name = "numba"
    xp = np
    rng_class = NumbaRng

    def __init__(self) -> None:
        self.num_threads = set_num_threads()
        self._scratch: dict[tuple[int, np.dtype], tuple[np.ndarray, np.ndarray]] = {}
        self._products: dict[tuple[tuple[int, ...], np.dtype], np.ndarray] = {}

    # ------------------------------------------------------------ dense layer
    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """BLAS ``out = op(a) @ op(b)``; with ``accumulate`` the product goes through a
        scratch matrix (made once per shape) and is added to ``out``."""
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if not accumulate:
            np.matmul(a, b, out=out)
            return
        key = (out.shape, out.dtype)
        if key not in self._products:
            self._products[key] = np.empty(out.shape, out.dtype)
        np.matmul(a, b, out=self._products[key])
        np.add(out, self._products[key], out=out)

    def bias_act(self, y: Any, bias: Any, act: int, alpha: float) -> None:
        """Dense epilogue, in place: ``y = act(y + bias)``, one pass."""
        kernels.bias_act(y, bias, act, y.dtype.type(alpha))

    def act_backward(self, dy: Any, y: Any, act: int, alpha: float, dbias: Any = None) -> None:
        """``dy *= act'(.)`` and ``dbias = sum(dy, axis=0)``, one pass."""
        kernels.act_backward(dy, y, act, y.dtype.type(alpha), dbias)

    # ------------------------------------------------------------ loss
    def bce_with_logits(self, logits: Any, target: float, scale: float, grad: Any,
                        stats: Any) -> None:
        """BCE-with-logits loss, gradient and stats in one pass."""
        scalar = logits.dtype.type
        kernels.bce_with_logits(logits, scalar(target), scalar(scale), grad, stats)

    # ------------------------------------------------------------ batch norm
    def _vectors(self, features: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Two scratch vectors of ``features`` values, made once per size and dtype."""
        key = (features, dtype)
        if key not in self._scratch:
            self._scratch[key] = (np.empty(features, dtype), np.empty(features, dtype))
        return self._scratch[key]

    def batchnorm_train(self, x: Any, gamma: Any, beta: Any, y: Any, xhat: Any, invstd: Any,
                        running_mean: Any, running_var: Any, momentum: float, eps: float) -> None:
        """Training-mode batch norm, statistics and normalisation in one kernel."""
        scalar = x.dtype.type
        mean, var = self._vectors(x.shape[1], x.dtype)
        kernels.batchnorm_train(x, gamma, beta, y, xhat, invstd, running_mean, running_var,
                                scalar(momentum), scalar(1.0 - momentum), scalar(eps), mean, var)

    def batchnorm_eval(self, x: Any, gamma: Any, beta: Any, y: Any, running_mean: Any,
                       running_var: Any, eps: float) -> None:
        """Inference-mode batch norm, one pass."""
        kernels.batchnorm_eval(x, gamma, beta, y, running_mean, running_var, x.dtype.type(eps))

    def batchnorm_backward(self, dy: Any, xhat: Any, gamma: Any, invstd: Any, dgamma: Any,
                           dbeta: Any, dx: Any = None) -> None:
        """Backward of training-mode batch norm: one reduction pass, one elementwise pass."""
        kernels.batchnorm_backward(dy, xhat, gamma, invstd, dgamma, dbeta, dx)

    # ------------------------------------------------------------ convolution
    def im2col(self, x: Any, geometry: ConvGeometry, cols: Any) -> None:
        """Gather the convolution's patches in one pass over ``cols``."""
        kernels.im2col(x, cols, *_geometry_args(geometry))

    def col2im(self, cols: Any, geometry: ConvGeometry, dx: Any) -> None:
        """Scatter-add the patches back onto the input's pixels in one pass over ``cols``."""
        kernels.col2im(cols, dx, *_geometry_args(geometry))

    def upsample2x(self, x: Any, shape: tuple[int, int, int], y: Any) -> None:
        """Nearest upsampling by 2, one pass."""
        kernels.upsample2x(x, y, *shape)

    def upsample2x_backward(self, dy: Any, shape: tuple[int, int, int], dx: Any) -> None:
        """2 x 2 block sums, one pass."""
        kernels.upsample2x_backward(dy, dx, *shape)

    # ------------------------------------------------------------ optimizers
    def sgd_update(self, param: Any, grad: Any, velocity: Any, lr: float, momentum: float) -> None:
        """SGD (with momentum) in one pass over the flat buffer."""
        scalar = param.dtype.type
        kernels.sgd_update(param, grad, velocity, scalar(lr), scalar(momentum))

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        """Bias-corrected Adam in one pass over the flat buffer."""
        scalar = param.dtype.type
        kernels.adam_update(param, grad, m, v, scalar(beta1), scalar(1.0 - beta1),
                            scalar(beta2), scalar(1.0 - beta2),
                            scalar(lr / (1.0 - beta1**step)), scalar(np.sqrt(1.0 - beta2**step)),
                            scalar(eps))
