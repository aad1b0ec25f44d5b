"""The Numba CPU backend: GEMMs through BLAS, everything else in fused serial kernels.

A training step is mostly matrix products; what NumPy spends outside them (a temporary
and a pass over memory per operator) is what this backend removes. The GEMMs stay in
NumPy's BLAS (``np.matmul`` with ``out=`` on transposed views, no copy: the same calls as
the reference, so the same rounding; ``np.dot`` inside ``@njit`` would call SciPy's OpenBLAS,
a different build, for no measurable gain in call overhead, about 1 us per call); every
elementwise job runs as one pass of a kernel from :mod:`fastgan.backends.numba_kernels`,
which are compiled once and cached on disk.

Threads: one knob sets both BLAS's pool and Numba's (:func:`fastgan.threads.set_num_threads`, or the
``FASTGAN_NUM_THREADS`` environment variable read when the backend is created; the default
is the number of physical cores). An elementwise job over at least
:data:`PARALLEL_MIN_ELEMENTS` values (Adam over a flat buffer, a large activation's epilogue,
dropout) is split over Numba's threads (its ``*_parallel`` kernel, bit-identical to the serial
one); smaller ones stay serial, where waking the pool would cost more than it saves.

Random numbers stay NumPy's PCG64 on the host (the reference's stream), so noise and
dropout masks for a seed are identical to the NumPy backend's whatever the thread count.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from .. import threads
from ..errors import ConfigError
from .base import Backend, ConvGeometry, Rng

try:
    import numba

    from . import numba_kernels as kernels
except ImportError as exc:  # the backend registry reports this as the reason
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

PARALLEL_MIN_ELEMENTS = 1 << 17
"""Arrays of at least this many values get their elementwise kernels split over Numba's
threads (when more than one is set); smaller ones run serially."""


def chunks_for(size: int) -> int:
    """How many parts an elementwise job over ``size`` values is split into: Numba's thread
    count from :data:`PARALLEL_MIN_ELEMENTS` values on, else 1 (serial)."""
    if size < PARALLEL_MIN_ELEMENTS:
        return 1
    return numba.get_num_threads()


def unavailable_reason() -> str | None:
    """None when numba imports, else what is missing and how to get it."""
    if _IMPORT_ERROR is None:
        return None
    return f"numba cannot be imported ({_IMPORT_ERROR}); install it with `pip install numba`"


# ---------------------------------------------------------------------- backend
class NumbaRng(Rng):
    """The reference PCG64 stream; each dropout mask is drawn and thresholded in one pass.

    The draws are NumPy's own (its bit generator's C function, called from the kernel), so
    masks equal the reference's. A mask of at least :data:`PARALLEL_MIN_ELEMENTS` values is
    split into one contiguous part per thread, each drawn by a generator of its own standing
    where the one stream is at the part's first value (PCG64 jumps ahead in O(log n) steps:
    ``advance``); the mask and the generator's state afterwards are the serial draw's, bit for
    bit, whatever the thread count.
    """

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence) -> None:
        super().__init__(backend, seed)
        self._helpers: list[np.random.Generator] = []        # parts 2, 3, ...
        self._interfaces = [self.generator.bit_generator.ctypes]  # keeps the pointers alive
        self._draw = {np.dtype(np.float32): _address(self._interfaces[0].next_uint32),
                      np.dtype(np.float64): _address(self._interfaces[0].next_double)}
        self._states = np.array([self._interfaces[0].state_address], np.uintp)
        self._starts = np.zeros(2, np.int64)
        self._one_state = self._states.copy()
        self._one_part = np.zeros(2, np.int64)

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with an inverted-dropout mask: 1/(1-rate) with prob. 1-rate, else 0."""
        if not out.flags.c_contiguous:
            raise ConfigError("a dropout mask must be a C-contiguous array")
        keep = 1.0 - rate
        scalar = out.dtype.type
        mask, draw = out.reshape(-1), self._draw[out.dtype]
        parts = min(chunks_for(out.size), out.size // 2)
        if parts <= 1:
            self._one_part[1] = out.size
            kernels.dropout_mask(draw, self._one_state, mask, scalar(keep), scalar(1.0 / keep),
                                 self._one_part)
            return
        before = self._split_stream(out.size, out.dtype, parts)
        kernels.dropout_mask_parallel(draw, self._states, mask, scalar(keep),
                                      scalar(1.0 / keep), self._starts)
        after = self._helpers[-1].bit_generator.state
        if out.dtype != np.float32:        # float64 draws leave a buffered 32-bit half alone
            after = {**after, "has_uint32": before["has_uint32"],
                     "uinteger": before["uinteger"]}
        self.generator.bit_generator.state = after

    def _split_stream(self, size: int, dtype: np.dtype, parts: int) -> dict:
        """Bounds of ``parts`` parts of the next ``size`` uniform draws of ``dtype`` in
        ``self._starts``, and a generator standing at the start of each part but the first;
        returns the stream's state before the draws.

        A float64 draw takes one 64-bit output; float32 draws take its two 32-bit halves in
        turn, the second kept in the state (``has_uint32``). A part other than the first
        therefore starts on a fresh output (``advance`` also empties the buffer): at an even
        count of float32 values after any buffered half, ``(start - buffered) / 2`` outputs
        ahead.
        """
        if len(self._helpers) != parts - 1:
            self._helpers = [np.random.Generator(np.random.PCG64()) for _ in range(parts - 1)]
            self._interfaces[1:] = [h.bit_generator.ctypes for h in self._helpers]
            self._states = np.array([i.state_address for i in self._interfaces], np.uintp)
            self._starts = np.zeros(parts + 1, np.int64)
        state = self.generator.bit_generator.state
        halves = dtype == np.float32
        buffered = state["has_uint32"] if halves else 0
        self._starts[parts] = size
        for part, helper in enumerate(self._helpers, 1):
            start = part * size // parts
            start += (start - buffered) % 2 if halves else 0
            self._starts[part] = start
            helper.bit_generator.state = state
            helper.bit_generator.advance((start - buffered) // 2 if halves else start)
        return state


def _address(function: Any) -> int:
    """The address of a ctypes function pointer, as an integer."""
    return ctypes.cast(function, ctypes.c_void_p).value


class NumbaBackend(Backend):
    """Host NumPy arrays; BLAS GEMMs; fused, cached Numba kernels for everything else.

    Creating it applies the default thread count (:func:`fastgan.threads.apply_default_once`)
    unless a count was set before.
    """

    name = "numba"
    xp = np
    rng_class = NumbaRng

    def __init__(self) -> None:
        threads.apply_default_once()
        self._scratch: dict[tuple[int, np.dtype], tuple[np.ndarray, np.ndarray]] = {}
        self._products: dict[tuple[tuple[int, ...], np.dtype], np.ndarray] = {}

    # ------------------------------------------------------------ dense layer
    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``): NumPy's BLAS (the reference's
        own calls, so the same rounding), except an outer product (inner dimension 1), which
        BLAS does slowly; an accumulated product goes through a scratch matrix made once per
        shape."""
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if accumulate:
            key = (out.shape, out.dtype)
            if key not in self._products:
                self._products[key] = np.empty(out.shape, out.dtype)
            np.matmul(a, b, out=self._products[key])
            np.add(out, self._products[key], out=out)
        elif a.shape[1] == 1:
            kernels.outer(a[:, 0], b[0], out)
        else:
            np.matmul(a, b, out=out)

    def bias_act(self, y: Any, bias: Any, act: int, alpha: float) -> None:
        """Dense epilogue, in place: ``y = act(y + bias)``, one pass."""
        chunks = chunks_for(y.size)
        if chunks > 1:
            kernels.bias_act_parallel(y, bias, act, y.dtype.type(alpha), chunks)
        else:
            kernels.bias_act(y, bias, act, y.dtype.type(alpha))

    def act_backward(self, dy: Any, y: Any, act: int, alpha: float, dbias: Any = None) -> None:
        """``dy *= act'(.)`` and ``dbias = sum(dy, axis=0)``, one pass."""
        chunks = chunks_for(dy.size)
        if chunks > 1:
            kernels.act_backward_parallel(dy, y, act, y.dtype.type(alpha), dbias, chunks)
        else:
            kernels.act_backward(dy, y, act, y.dtype.type(alpha), dbias)

    def multiply(self, a: Any, b: Any, out: Any) -> None:
        """``out = a * b``: NumPy's SIMD loop, split over Numba's threads when large."""
        chunks = chunks_for(out.size)
        if chunks > 1 and out.ndim == 2:
            kernels.multiply_parallel(a, b, out, chunks)
        else:
            np.multiply(a, b, out=out)

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
        kernels.im2col(x, cols, *geometry.kernel_args)

    def col2im(self, cols: Any, geometry: ConvGeometry, dx: Any) -> None:
        """Scatter-add the patches back onto the input's pixels in one pass over ``cols``."""
        kernels.col2im(cols, dx, *geometry.kernel_args)

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

    def ema_update(self, average: Any, value: Any, decay: float) -> None:
        """``average = decay average + (1-decay) value`` in one pass, no temporary."""
        scalar = average.dtype.type
        kernels.ema_update(average, value, scalar(decay), scalar(1.0 - decay))

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        """Bias-corrected Adam in one pass over the flat buffer."""
        scalar = param.dtype.type
        scalars = (scalar(beta1), scalar(1.0 - beta1), scalar(beta2), scalar(1.0 - beta2),
                   scalar(lr / (1.0 - beta1**step)), scalar(np.sqrt(1.0 - beta2**step)),
                   scalar(eps))
        chunks = chunks_for(param.size)
        if chunks > 1:
            kernels.adam_update_parallel(param, grad, m, v, *scalars, chunks)
        else:
            kernels.adam_update(param, grad, m, v, *scalars)
