"""The CuPy backend: the contract on an NVIDIA GPU.

GEMMs go to cuBLAS (:mod:`.cublas`, called directly so CUDA graphs can capture them);
everything else is one launch of a fused kernel from :mod:`.cuda_kernels`: bias + activation
after each GEMM, activation derivative fused with the bias-gradient column sum, BCE-with-logits
with its gradient and statistics (which stay on the device), dropout, batch norm, and one
SGD/Adam update over a whole flat buffer. Noise and dropout masks come from the counter-based
Philox stream drawn on the device (:class:`~fastgan.backends.base.PhiloxRng`).
:mod:`fastgan.gan.cuda_graph` replays a whole training step as a CUDA graph.

CuPy is imported only when a backend object is made (or availability is asked), never by
``import fastgan``. The GPU work goes through a *device* object (:class:`CupyDevice`); the
tests substitute a CPU emulation of it to run these same kernels and this same launch logic
where no GPU exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, FastganError
from .base import IDENTITY, Backend, ConvGeometry, PhiloxRng, Rng
from .cublas import Cublas
from .cuda_kernels import (
    COLSUM_ONLY,
    KERNELS,
    REDUCE_THREADS,
    ROW_LANES,
    SOURCE,
    TILE_COLS,
    name_expressions,
)

INSTALL_HINT = "pip install 'fastgan[cuda12]' (CUDA 12 driver) or 'fastgan[cuda13]' (CUDA 13)"
LIBRARIES_HINT = ("install cupy with the CUDA libraries (pip install 'cupy-cuda12x[ctk]', or "
                  "'cupy-cuda13x[ctk]') or a CUDA toolkit")
RNG_OLD_NAMES = {"host": "pcg64", "device": "philox"}
"""The names ``CupyBackend(rng=...)`` took before every backend could draw Philox."""
ELEMENTWISE_THREADS = 256
BLOCKS_PER_SM = 32            # cap of grid-stride launches: plenty to fill an SM
COLUMN_BLOCKS_PER_SM = 4      # target occupancy of the column-sum kernel
MIN_ROWS_PER_CHUNK = 64       # a column-sum block adds at least this many rows
CUDA_ERROR_INSUFFICIENT_DRIVER, CUDA_ERROR_NO_DEVICE = 35, 100


# ---------------------------------------------------------------- availability
def _import_cupy() -> Any:
    import cupy

    return cupy


def _cuda_versions(cupy: Any) -> tuple[int, int]:
    """(driver, runtime) CUDA versions as 1000 major + 10 minor; driver 0 means no driver."""
    return cupy.cuda.runtime.driverGetVersion(), cupy.cuda.runtime.runtimeGetVersion()


def _device_count(cupy: Any) -> int:
    return cupy.cuda.runtime.getDeviceCount()


def _load_libraries(cupy: Any) -> None:
    """Load NVRTC (it compiles the kernels) and cuBLAS; raises when one cannot be found."""
    cupy.cuda.nvrtc.getVersion()
    from cupy_backends.cuda.libs import cublas  # noqa: F401  (the import loads libcublas)


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _old_driver(driver: int, runtime: int) -> str:
    advice = (f"or install the cupy build for CUDA {driver // 1000} (fastgan[cuda{driver // 1000}])"
              if driver >= 12000 else "(CUDA 12 or newer)")
    return (f"the NVIDIA driver is too old: it supports CUDA {_version(driver)} but this cupy "
            f"needs CUDA {_version(runtime)}; update the driver {advice}")


def unavailable_reason() -> str | None:
    """None if a CUDA device can run cupy here, else why not: cupy missing or broken, no
    driver or device, a driver too old for cupy's CUDA version, or NVRTC or cuBLAS missing."""
    try:
        cupy = _import_cupy()
    except ImportError as exc:
        if exc.name == "cupy":
            return f"cupy is not installed ({INSTALL_HINT})"
        return f"cupy is installed but cannot be imported: {exc}"
    try:
        driver, runtime = _cuda_versions(cupy)
    except Exception as exc:  # a CUDA library cupy needs is missing or broken
        return f"cupy cannot query CUDA: {exc}"
    if driver == 0:
        return "no NVIDIA driver is installed, so there is no CUDA device on this machine"
    if driver // 1000 < runtime // 1000:
        return _old_driver(driver, runtime)
    try:
        count = _device_count(cupy)
    except Exception as exc:  # cupy's CUDARuntimeError carries the CUDA status
        status = getattr(exc, "status", None)
        if status == CUDA_ERROR_INSUFFICIENT_DRIVER:
            return _old_driver(driver, runtime)
        if status == CUDA_ERROR_NO_DEVICE:
            return "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)"
        return f"CUDA cannot start: {exc}"
    if count == 0:
        return "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)"
    try:
        _load_libraries(cupy)
    except Exception as exc:  # cuda-pathfinder's DynamicLibNotFoundError, ImportError, ...
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cupy cannot load a CUDA library it needs ({first_line}); {LIBRARIES_HINT}"
    return None


# ---------------------------------------------------------------- the device
def _refuse_allocation(size: int) -> Any:
    raise FastganError(
        f"the training step tried to allocate {size} bytes of GPU memory while being captured "
        "into a CUDA graph; every array it uses must exist before capture (run the step once "
        "eagerly at this batch size first)")


class CupyDevice:
    """The GPU as the backend sees it: kernel launches, cuBLAS GEMMs, copies, graph capture.

    Everything runs on CuPy's current stream, in order.
    """

    def __init__(self, tf32: bool = False) -> None:
        cupy = _import_cupy()
        self.cupy = cupy
        self.xp = cupy
        names = name_expressions()
        module = cupy.RawModule(code=SOURCE, options=("--std=c++17",), name_expressions=names)
        # compile (NVRTC; cupy caches the binary on disk) and load every kernel now, so that
        # no module is ever loaded while a graph is being captured
        self._functions = {name: module.get_function(name) for name in names}
        self.multiprocessors = cupy.cuda.Device().attributes["MultiProcessorCount"]
        self.blas = Cublas(cupy, tf32=tf32)
        self._capture_stream: Any = None

    def is_device_array(self, a: Any) -> bool:
        """Whether ``a`` is a CuPy array (else host data)."""
        return isinstance(a, self.cupy.ndarray)

    def launch(self, kernel: Any, dtype: Any, grid: tuple[int, ...], block: tuple[int, ...],
               args: tuple) -> None:
        """Launch ``kernel`` (compiled for ``dtype``) with checked, exactly typed arguments."""
        self._functions[kernel.instance(dtype)](grid, block, kernel.arguments(dtype, args))

    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool, trans_b: bool,
             accumulate: bool) -> None:
        """``out = op(a) @ op(b)`` (``out += ...`` when ``accumulate``) with cuBLAS."""
        self.blas.gemm(a, b, out, trans_a, trans_b, accumulate)

    def copy(self, src: Any, dst: Any) -> None:
        """Asynchronous device-to-device copy of equal contiguous arrays."""
        dst.data.copy_from_device_async(src.data, dst.nbytes)

    def upload(self, host: np.ndarray, dst: Any) -> None:
        """Host-to-device copy into the contiguous ``dst`` (same shape and dtype)."""
        dst.set(host)

    def download(self, a: Any) -> np.ndarray:
        """Device-to-host copy (synchronises)."""
        return self.cupy.asnumpy(a)

    def download_into(self, a: Any, out: np.ndarray) -> None:
        """Device-to-host copy into the host array ``out`` (synchronises)."""
        self.cupy.asnumpy(a, out=out)

    @contextlib.contextmanager
    def capture(self) -> Iterator[SimpleNamespace]:
        """Capture the GPU work of the block into ``captured.graph`` (a ``cupy.cuda.Graph``)
        instead of running it. Allocating GPU memory inside the block is an error: the graph
        would keep pointers into memory the pool hands out again."""
        cupy = self.cupy
        cupy.cuda.get_current_stream().synchronize()
        if self._capture_stream is None:
            self._capture_stream = cupy.cuda.Stream(non_blocking=True)
        stream = self._capture_stream
        captured = SimpleNamespace(graph=None)
        self.blas.bind(stream.ptr)                 # cuBLAS set-up calls stay outside capture
        with stream, cupy.cuda.using_allocator(_refuse_allocation):
            stream.begin_capture()
            try:
                yield captured
            except BaseException:
                with contextlib.suppress(Exception):   # end the capture, drop the graph,
                    stream.end_capture()               # report the first error
                raise
            captured.graph = stream.end_capture()


# ---------------------------------------------------------------- random numbers
class HostRng(Rng):
    """NumPy's PCG64 on the host, copied to the GPU: exactly the NumPy backend's stream, for
    parity tests (``CupyBackend(rng="pcg64")``). Slow, and not replayable by a CUDA graph."""

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence) -> None:
        super().__init__(backend, seed)
        self._staging: dict[tuple, np.ndarray] = {}

    def _staged(self, out: Any, draw: Any) -> None:
        key = (out.shape, out.dtype.str)
        host = self._staging.get(key)
        if host is None:
            host = self._staging[key] = np.empty(out.shape, dtype=out.dtype)
        draw(host)
        self.backend.copy(host, out)

    def normal(self, out: Any) -> None:
        """Fill ``out`` with N(0, 1) samples drawn on the host."""
        self._staged(out, lambda host: Rng.normal(self, host))

    def uniform(self, out: Any, low: float = -1.0, high: float = 1.0) -> None:
        """Fill ``out`` with U[low, high) samples drawn on the host."""
        self._staged(out, lambda host: Rng.uniform(self, host, low, high))

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with a dropout mask drawn on the host."""
        self._staged(out, lambda host: Rng.dropout_mask(self, host, rate))


# ---------------------------------------------------------------- the backend
def _blocks(n: int, per_block: int) -> int:
    return max(1, -(-n // per_block))


class CupyBackend(Backend):
    """CuPy arrays on an NVIDIA GPU; fused CUDA kernels and cuBLAS (see the module docstring).

    ``tf32=True`` lets float32 GEMMs use TF32 tensor cores (see :class:`.cublas.Cublas` for
    the tolerance); ``rng="pcg64"`` draws noise and masks with NumPy's generator on the host,
    as the NumPy backend does (for parity tests; ``"host"`` is its older name, and
    ``"device"`` the default ``"philox"``'s); ``device`` replaces the GPU (default
    ``CupyDevice(tf32)``; the tests pass a CPU emulation). Kernels need C-contiguous arrays.
    ``get_backend("cupy")`` gives the default one; pass an object for other options::

        gan = GAN.from_preset("pytorch-vanilla", backend=CupyBackend(tf32=True))
    """

    name = "cupy"
    im2col_bytes = None       # the whole batch's im2col matrix at once: GPU memory is ample

    rng_classes: ClassVar[dict[str, type[Rng]]] = {"pcg64": HostRng, "philox": PhiloxRng}
    default_rng = "philox"

    def __init__(self, *, tf32: bool = False, rng: str | None = None, device: Any = None) -> None:
        super().__init__(rng=RNG_OLD_NAMES.get(rng, rng))
        self.device = device if device is not None else CupyDevice(tf32=tf32)
        self.xp = self.device.xp
        self.tf32 = tf32
        self._eager_schedule = self.new_schedule()
        self._scratch: dict[tuple, Any] = {}

    # ------------------------------------------------------------ plumbing
    def _launch(self, name: str, dtype: Any, grid: tuple[int, ...], block: tuple[int, ...],
                *args: Any) -> None:
        self.device.launch(KERNELS[name], dtype, grid, block, args)

    def _elementwise(self, name: str, dtype: Any, n: int, *args: Any) -> None:
        blocks = min(_blocks(n, ELEMENTWISE_THREADS), BLOCKS_PER_SM * self.device.multiprocessors)
        self._launch(name, dtype, (blocks,), (ELEMENTWISE_THREADS,), *args)

    def _column_grid(self, cols: int) -> int:
        return _blocks(cols, TILE_COLS)

    def _scratch_array(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A reusable work array (kernels run in order on one stream, so sharing is safe)."""
        key = (shape, np.dtype(dtype).str)
        array = self._scratch.get(key)
        if array is None:
            array = self._scratch[key] = self.xp.empty(shape, dtype=dtype)
        return array

    # ------------------------------------------------------------ allocation and transfer
    def to_numpy(self, a: Any) -> np.ndarray:
        """A host NumPy array with ``a``'s values (synchronises)."""
        return self.device.download(a)

    def copy(self, src: Any, out: Any) -> None:
        """``out[...] = src`` for a device or host ``src``; equal contiguous arrays are one
        asynchronous copy (the only kind a captured graph may contain)."""
        if not self.device.is_device_array(src):
            host = np.asarray(src, dtype=out.dtype)
            if host.shape == out.shape and out.flags.c_contiguous:
                self.device.upload(np.ascontiguousarray(host), out)
                return
            src = self.xp.asarray(host)
        elif (src.shape == out.shape and src.dtype == out.dtype and src.flags.c_contiguous
              and out.flags.c_contiguous):
            self.device.copy(src, out)
            return
        self.xp.copyto(out, src)

    def download(self, a: Any, out: np.ndarray) -> None:
        """``out[...] = a`` for a device array ``a`` and a host array ``out`` (synchronises)."""
        self.device.download_into(a, out)

    def philox_fill(self, out: Any, key: int, draws: Any, kind: int, a: float, b: float) -> None:
        """Fill ``out`` from the Philox stream ``key`` at draw ``draws[0]``, then count the draw
        on the device (see :mod:`.philox`)."""
        self._elementwise("philox_fill", out.dtype, _blocks(out.size, 4), out, out.size, key,
                          draws, kind, a, b)
        self._launch("philox_advance", None, (1,), (1,), draws)

    # ------------------------------------------------------------ dense layer
    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """``out = op(a) @ op(b)`` (``out += ...`` when ``accumulate``) with cuBLAS."""
        self.device.gemm(a, b, out, trans_a, trans_b, accumulate)

    def bias_act(self, y: Any, bias: Any, act: int, alpha: float) -> None:
        """Dense epilogue, in place: ``y = act(y + bias)``, one pass."""
        self._elementwise("bias_act", y.dtype, y.size, y, bias, y.size, y.shape[1], act, alpha)

    def act_backward(self, dy: Any, y: Any, act: int, alpha: float, dbias: Any = None) -> None:
        """``dy *= act'(y)`` fused with ``dbias = sum(dy, axis=0)``.

        The column sum splits the rows into chunks when the columns alone give too few
        blocks to fill the GPU; the chunks' partial sums are then added by a second launch.
        """
        if dbias is None:
            if act != IDENTITY:
                self._elementwise("act_grad", dy.dtype, dy.size, dy, y, dy.size, act, alpha)
            return
        rows, cols = dy.shape
        tiles = self._column_grid(cols)
        wanted = _blocks(COLUMN_BLOCKS_PER_SM * self.device.multiprocessors, tiles)
        chunks = max(1, min(wanted, rows // MIN_ROWS_PER_CHUNK))
        rows_per_chunk = _blocks(rows, chunks)
        chunks = _blocks(rows, rows_per_chunk)
        sums = dbias if chunks == 1 else self._scratch_array((chunks, cols), dy.dtype)
        block = (TILE_COLS, ROW_LANES)
        self._launch("act_grad_colsum", dy.dtype, (tiles, chunks), block, dy, y, sums, rows, cols,
                     act, alpha, rows_per_chunk)
        if chunks > 1:
            self._launch("act_grad_colsum", dy.dtype, (tiles, 1), block, sums, None, dbias,
                         chunks, cols, COLSUM_ONLY, 0.0, chunks)

    # ------------------------------------------------------------ loss
    def bce_with_logits(self, logits: Any, target: float, scale: float, grad: Any,
                        stats: Any) -> None:
        """Stable BCE-with-logits, its gradient and ``stats`` = (scale sum bce, mean sigmoid),
        in one single-block launch; the statistics stay on the device."""
        self._launch("bce_logits", logits.dtype, (1,), (REDUCE_THREADS,), logits, grad, stats,
                     logits.size, target, scale)

    def score_loss(self, logits: Any, kind: int, target: float, scale: float, grad: Any,
                   stats: Any) -> None:
        """Hinge, least-squares or linear loss (see the base class), its gradient and
        ``stats``, in one single-block launch; the statistics stay on the device."""
        self._launch("score_logits", logits.dtype, (1,), (REDUCE_THREADS,), logits, grad, stats,
                     logits.size, kind, target, scale)

    # ------------------------------------------------------------ spectral normalisation
    def power_iteration(self, w: Any, u: Any, v: Any) -> None:
        """One power iteration, in place (see the base class), one single-block launch."""
        self._launch("power_iteration", w.dtype, (1,), (REDUCE_THREADS,), w, u, v, *w.shape)

    def spectral_weight(self, w: Any, u: Any, v: Any, sigma: Any, w_bar: Any) -> None:
        """``sigma = v^T w u`` and ``w_bar = w / sigma``, one single-block launch."""
        self._launch("spectral_weight", w.dtype, (1,), (REDUCE_THREADS,), w, u, v, sigma, w_bar,
                     *w.shape)

    def spectral_backward(self, grad: Any, w_bar: Any, u: Any, v: Any, sigma: Any) -> None:
        """dL/dw_bar -> dL/dw with u, v fixed (see the base class), one single-block launch."""
        self._launch("spectral_backward", grad.dtype, (1,), (REDUCE_THREADS,), grad, w_bar, u, v,
                     sigma, *grad.shape)

    # ------------------------------------------------------------ class labels
    def copy_columns(self, src: Any, src_start: int, out: Any, out_start: int,
                     width: int) -> None:
        """A block of ``width`` columns of ``src`` into ``out`` (see the base class), one
        launch over the whole matrices."""
        total = src.shape[0] * width
        self._elementwise("copy_columns", out.dtype, total, src, src.shape[1], src_start, out,
                          out.shape[1], out_start, width, total)

    def one_hot(self, codes: Any, out: Any, start: int, classes: int) -> None:
        """One-hot rows of the classes ``codes`` encode, into a block of ``out``, one launch."""
        total = out.shape[0] * classes
        self._elementwise("one_hot", out.dtype, total, codes, out, out.shape[1], start, classes,
                          total)

    def label_maps(self, x: Any, labels: Any, labels_start: int, out: Any, channels: int,
                   classes: int) -> None:
        """Images with their labels as constant channels (see the base class), one launch."""
        self._elementwise("label_maps", out.dtype, out.size, x, x.shape[1], labels,
                          labels.shape[1], labels_start, out, out.shape[1], channels, classes,
                          out.size)

    def image_channels(self, maps: Any, out: Any, channels: int, classes: int) -> None:
        """The image channels of label maps (see the base class), one launch."""
        self._elementwise("image_channels", out.dtype, out.size, maps, out, out.shape[1],
                          channels, classes, out.size)

    # ------------------------------------------------------------ dropout
    def multiply(self, a: Any, b: Any, out: Any) -> None:
        """``out = a * b`` for arrays of one shape."""
        if not a.shape == b.shape == out.shape:
            raise ConfigError(f"multiply needs equal shapes, got {a.shape}, {b.shape}, "
                              f"{out.shape}")
        self._elementwise("multiply", out.dtype, out.size, a, b, out, out.size)

    # ------------------------------------------------------------ batch norm
    def batchnorm_train(self, x: Any, gamma: Any, beta: Any, y: Any, xhat: Any, invstd: Any,
                        running_mean: Any, running_var: Any, momentum: float, eps: float) -> None:
        """Training-mode batch norm (see the base class), one launch."""
        rows, cols = x.shape
        self._launch("bn_train", x.dtype, (self._column_grid(cols),), (TILE_COLS, ROW_LANES), x,
                     gamma, beta, y, xhat, invstd, running_mean, running_var, rows, cols,
                     momentum, eps)

    def batchnorm_eval(self, x: Any, gamma: Any, beta: Any, y: Any, running_mean: Any,
                       running_var: Any, eps: float) -> None:
        """Inference-mode batch norm, one elementwise launch."""
        self._elementwise("bn_eval", x.dtype, x.size, x, gamma, beta, y, running_mean,
                          running_var, x.size, x.shape[1], eps)

    def batchnorm_backward(self, dy: Any, xhat: Any, gamma: Any, invstd: Any, dgamma: Any,
                           dbeta: Any, dx: Any = None) -> None:
        """Backward of training-mode batch norm, one launch."""
        rows, cols = dy.shape
        self._launch("bn_backward", dy.dtype, (self._column_grid(cols),), (TILE_COLS, ROW_LANES),
                     dy, xhat, gamma, invstd, dgamma, dbeta, dx, rows, cols)

    # ------------------------------------------------------------ convolution
    def im2col(self, x: Any, geometry: ConvGeometry, cols: Any) -> None:
        """Gather the convolution's input patches (see the base class), one launch."""
        self._elementwise("im2col", x.dtype, cols.size, x, cols, cols.size,
                          *geometry.kernel_args)

    def col2im(self, cols: Any, geometry: ConvGeometry, dx: Any) -> None:
        """The adjoint of :meth:`im2col`, one launch; each pixel gathers its own sum."""
        self._elementwise("col2im", dx.dtype, dx.size, cols, dx, dx.size,
                          *geometry.kernel_args)

    def upsample2x(self, x: Any, shape: tuple[int, int, int], y: Any) -> None:
        """Nearest upsampling by 2 (see the base class), one launch."""
        self._elementwise("upsample2x", y.dtype, y.size, x, y, y.size, *shape)

    def upsample2x_backward(self, dy: Any, shape: tuple[int, int, int], dx: Any) -> None:
        """Sum of each 2 x 2 block of ``dy``, one launch."""
        self._elementwise("upsample2x_backward", dx.dtype, dx.size, dy, dx, dx.size, *shape)

    # ------------------------------------------------------------ optimizers
    def new_schedule(self) -> Any:
        """Device memory for an optimizer's per-step values
        ``[lr / (1 - b1^t), 1 / sqrt(1 - b2^t), t, lr]`` (see :meth:`set_schedule`)."""
        return self.xp.zeros((4,), dtype=np.float64)

    def set_schedule(self, schedule: Any, step: int, lr: float, beta1: float = 0.0,
                     beta2: float = 0.0) -> None:
        """Put step ``step`` and learning rate ``lr`` into ``schedule`` (a kernel launch, so no
        host-to-device copy); SGD uses the betas' default 0."""
        self._launch("schedule_set", None, (1,), (1,), schedule, step, lr, beta1, beta2)

    def _sgd(self, param: Any, grad: Any, velocity: Any, momentum: float, schedule: Any) -> None:
        self._elementwise("sgd", param.dtype, param.size, param, grad,
                          velocity if momentum else None, param.size, schedule, momentum)

    def _adam(self, param: Any, grad: Any, m: Any, v: Any, beta1: float, beta2: float,
              eps: float, schedule: Any) -> None:
        self._elementwise("adam", param.dtype, param.size, param, grad, m, v, param.size,
                          schedule, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps)

    def sgd_update(self, param: Any, grad: Any, velocity: Any, lr: float, momentum: float) -> None:
        """``v = momentum v + g; p -= lr v`` (momentum 0: ``p -= lr g``), one pass."""
        self.set_schedule(self._eager_schedule, 1, lr)
        self._sgd(param, grad, velocity, momentum, self._eager_schedule)

    def ema_update(self, average: Any, value: Any, decay: float) -> None:
        """``average = decay average + (1-decay) value``, one pass with no temporary (so a
        captured graph may contain it)."""
        self._elementwise("ema", average.dtype, average.size, average, value, average.size,
                          decay, 1.0 - decay)

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        """Bias-corrected Adam at step ``step``, one pass (corrections computed on the device,
        by the same code a replayed graph uses)."""
        self.set_schedule(self._eager_schedule, step, lr, beta1, beta2)
        self._adam(param, grad, m, v, beta1, beta2, eps, self._eager_schedule)

    def sgd_update_scheduled(self, param: Any, grad: Any, velocity: Any, momentum: float,
                             schedule: Any) -> None:
        """SGD taking its learning rate from ``schedule`` after advancing it one step: nothing
        comes from the host, so a CUDA graph can replay it."""
        self._launch("schedule_next", None, (1,), (1,), schedule, 0.0, 0.0)
        self._sgd(param, grad, velocity, momentum, schedule)

    def adam_update_scheduled(self, param: Any, grad: Any, m: Any, v: Any, beta1: float,
                              beta2: float, eps: float, schedule: Any) -> None:
        """Adam at the step after ``schedule``'s (advanced on the device), with its learning
        rate: nothing comes from the host, so a CUDA graph can replay it."""
        self._launch("schedule_next", None, (1,), (1,), schedule, beta1, beta2)
        self._adam(param, grad, m, v, beta1, beta2, eps, schedule)
