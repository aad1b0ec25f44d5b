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
is the number of physical cores). The kernels themselves are serial: between OpenBLAS
calls a second busy pool oversubscribes the cores, and one core already streams them at
memory speed. They release the GIL, so the scheduled step (:mod:`fastgan.gan.scheduled`)
runs slices of the optimizer passes, and a convolution's slices of the batch, on its own
threads side by side.

Noise and dropout masks come from the counter-based Philox4x32-10 stream (:mod:`.philox`),
drawn by a vectorized kernel at about 1 ns per value (NumPy's PCG64 and a threshold pass took
3-5 ns): the same numbers as the CuPy backend's for a seed, whatever the thread count.
``NumbaBackend(rng="pcg64")`` draws NumPy's PCG64 stream instead, the NumPy backend's numbers,
for parity tests.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np

from .. import threads
from .base import Backend, ConvGeometry, PhiloxRng, Rng

try:
    import numba  # noqa: F401 - its absence is the reason this backend is unavailable

    from . import numba_kernels as kernels
except ImportError as exc:  # the backend registry reports this as the reason
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

def unavailable_reason() -> str | None:
    """None when numba imports, else what is missing and how to get it."""
    if _IMPORT_ERROR is None:
        return None
    return f"numba cannot be imported ({_IMPORT_ERROR}); install it with `pip install numba`"


# ---------------------------------------------------------------------- backend
class NumbaRng(Rng):
    """The NumPy backend's PCG64 stream; the dropout mask is thresholded in one fused pass."""

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with an inverted-dropout mask: 1/(1-rate) with prob. 1-rate, else 0."""
        keep = 1.0 - rate
        self.generator.random(out=out, dtype=out.dtype)
        scalar = out.dtype.type
        kernels.dropout_mask(out, scalar(keep), scalar(1.0 / keep))


class NumbaBackend(Backend):
    """Host NumPy arrays; BLAS GEMMs; fused, cached Numba kernels for everything else.

    Creating it applies the default thread count (:func:`fastgan.threads.apply_default_once`)
    unless a count was set before. ``rng``: ``"philox"`` (default) or ``"pcg64"`` (see
    :class:`~fastgan.backends.base.Backend`).
    """

    name = "numba"
    xp = np
    rng_classes: ClassVar[dict[str, type[Rng]]] = {"pcg64": NumbaRng, "philox": PhiloxRng}
    default_rng = "philox"

    def __init__(self, *, rng: str | None = None) -> None:
        super().__init__(rng=rng)
        threads.apply_default_once()
        self._scratch: dict[tuple[int, np.dtype], tuple[np.ndarray, np.ndarray]] = {}
        self._products: dict[tuple[tuple[int, ...], np.dtype, int], np.ndarray] = {}

    # ------------------------------------------------------------ random numbers
    def philox_fill(self, out: Any, key: int, draws: Any, kind: int, a: float, b: float) -> None:
        """Fill the contiguous ``out`` from the Philox stream ``key`` at draw ``draws[0]``, then
        count the draw: one vectorized pass."""
        if not out.flags.c_contiguous:
            raise ValueError("philox_fill needs a C-contiguous array")
        scalar = out.dtype.type
        kernels.PHILOX_KERNELS[kind](out.reshape(-1), np.uint64(key), draws, scalar(a), scalar(b))

    # ------------------------------------------------------------ dense layer
    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """``out = op(a) @ op(b)`` (``+=`` with ``accumulate``): NumPy's BLAS (the reference's
        own calls, so the same rounding), except an outer product (inner dimension 1), which
        BLAS does slowly; an accumulated product goes through a scratch matrix made once per
        shape and thread (a convolution's lanes accumulate side by side)."""
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if accumulate:
            key = (out.shape, out.dtype, threading.get_ident())
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

    def score_loss(self, logits: Any, kind: int, target: float, scale: float, grad: Any,
                   stats: Any) -> None:
        """Hinge, least-squares or linear loss, gradient and stats in one pass."""
        scalar = logits.dtype.type
        kernels.score_loss(logits, kind, scalar(target), scalar(scale), grad, stats)

    # ------------------------------------------------------------ spectral normalisation
    def power_iteration(self, w: Any, u: Any, v: Any) -> None:
        """One power iteration, in place (see the base class), one jitted pass per vector."""
        kernels.power_iteration(w, u, v)

    def spectral_weight(self, w: Any, u: Any, v: Any, sigma: Any, w_bar: Any) -> None:
        """``sigma = v^T w u`` and ``w_bar = w / sigma``, one jitted kernel."""
        kernels.spectral_weight(w, u, v, sigma, w_bar)

    def spectral_backward(self, grad: Any, w_bar: Any, u: Any, v: Any, sigma: Any) -> None:
        """dL/dw_bar -> dL/dw with u, v fixed (see the base class), one jitted kernel."""
        kernels.spectral_backward(grad, w_bar, u, v, sigma)

    # ------------------------------------------------------------ class labels
    def one_hot(self, codes: Any, out: Any, start: int, classes: int) -> None:
        """One-hot rows of the classes ``codes`` encode, into a block of ``out``, one pass."""
        kernels.one_hot(codes, out, start, classes)

    def label_maps(self, x: Any, labels: Any, labels_start: int, out: Any, channels: int,
                   classes: int) -> None:
        """Images with their labels as constant channels (see the base class), one pass."""
        kernels.label_maps(x, labels, labels_start, out, channels, classes)

    def image_channels(self, maps: Any, out: Any, channels: int, classes: int) -> None:
        """The image channels of label maps (see the base class), one pass."""
        kernels.image_channels(maps, out, channels, classes)

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
        self._flat_pass(kernels.sgd_update, (param, grad, velocity), scalar(lr),
                        scalar(momentum))

    def ema_update(self, average: Any, value: Any, decay: float) -> None:
        """``average = decay average + (1-decay) value`` in one pass, no temporary."""
        scalar = average.dtype.type
        self._flat_pass(kernels.ema_update, (average, value), scalar(decay),
                        scalar(1.0 - decay))

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        """Bias-corrected Adam in one pass over the flat buffer."""
        scalar = param.dtype.type
        self._flat_pass(kernels.adam_update, (param, grad, m, v), scalar(beta1),
                        scalar(1.0 - beta1), scalar(beta2), scalar(1.0 - beta2),
                        scalar(lr / (1.0 - beta1**step)), scalar(np.sqrt(1.0 - beta2**step)),
                        scalar(eps))

    def _flat_pass(self, kernel: Any, buffers: tuple[np.ndarray, ...], *scalars: Any) -> None:
        """``kernel(*buffers, *scalars)``, an elementwise pass over flat buffers of one size:
        one call, or inside :meth:`gemms_on` slices of it side by side on the schedule's
        threads (each element computed as in one call, so the result is the same)."""
        if self.gemm_schedule is None:
            kernel(*buffers, *scalars)
        else:
            self.gemm_schedule.run_flat(kernel, buffers, scalars)
