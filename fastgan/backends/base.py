"""The backend contract, and its generic implementation written once against ``xp``.

A backend owns an array module ``xp`` (numpy or cupy) and the kernels the GANs need:
allocation and transfer, random numbers, GEMM, the dense forward and backward epilogues,
BCE-with-logits and the hinge/least-squares losses (``score_loss``), spectral normalisation
(power iteration, W/sigma and its backward), softmax cross-entropy (for the evaluation
classifier), one-hot class labels written beside features (conditional GANs), dropout,
batch norm, the convolution's patch gathering (im2col) and scattering (col2im), nearest
upsampling, and the optimizer updates. Every kernel writes into caller-provided arrays
(``out``, or in place) and works for float32 and float64.

The methods of :class:`Backend` below are the reference semantics: plain ``xp`` code, easy to
read and check. NumPy runs them as they are; the Numba and CuPy backends override them with
fused kernels and are tested against them kernel by kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from . import philox

# Activation codes shared by every backend (jitted kernels take the integer).
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID = range(5)
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
                    "tanh": TANH, "sigmoid": SIGMOID}
DTYPES = {"float32": np.float32, "float64": np.float64}
# Codes of score_loss's per-logit losses (jitted and CUDA kernels take the integer).
HINGE, SQUARED, LINEAR = range(3)
NORM_EPS = 1e-12
"""Power iteration divides a vector by max(its norm, NORM_EPS), as PyTorch's normalize does."""


def resolve_dtype(dtype: Any) -> np.dtype:
    """``"float32"``/``"float64"`` (or the numpy types) -> np.dtype; anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


@dataclass(frozen=True)
class ConvGeometry:
    """Where a ``kernel`` x ``kernel``, stride-``stride`` convolution with Keras/TensorFlow
    "same" padding reads its (``height``, ``width``, ``channels``) channels-last input.

    The output is ``ceil(H/s) x ceil(W/s)``; the input is padded with zeros by
    ``pad = max((out - 1) s + kernel - in, 0)`` pixels along each axis, ``pad // 2`` at the
    top/left and the rest (one more when odd) at the bottom/right.
    """

    height: int
    width: int
    channels: int
    kernel: int
    stride: int

    @property
    def out_height(self) -> int:
        """Output rows: ``ceil(height / stride)``."""
        return -(-self.height // self.stride)

    @property
    def out_width(self) -> int:
        """Output columns: ``ceil(width / stride)``."""
        return -(-self.width // self.stride)

    @property
    def pad_top(self) -> int:
        """Zero rows above the input (the bottom gets the remainder)."""
        return max((self.out_height - 1) * self.stride + self.kernel - self.height, 0) // 2

    @property
    def pad_left(self) -> int:
        """Zero columns left of the input (the right gets the remainder)."""
        return max((self.out_width - 1) * self.stride + self.kernel - self.width, 0) // 2

    @property
    def patch_size(self) -> int:
        """Values in one patch, one row of the im2col matrix: ``kernel^2 channels``."""
        return self.kernel * self.kernel * self.channels

    @property
    def kernel_args(self) -> tuple[int, ...]:
        """The integers the compiled im2col/col2im kernels (Numba, CUDA) take, in their order:
        H, W, C, k, s, pad_top, pad_left, Ho, Wo."""
        return (self.height, self.width, self.channels, self.kernel, self.stride, self.pad_top,
                self.pad_left, self.out_height, self.out_width)


class Rng:
    """A reproducible stream of noise and dropout masks, filled into caller's arrays.

    This reference draws on the host with NumPy's PCG64 and copies to the device;
    backends with device-side generators override it.
    """

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence) -> None:
        self.backend = backend
        self.generator = np.random.Generator(np.random.PCG64(seed))

    def normal(self, out: Any) -> None:
        """Fill ``out`` with N(0, 1) samples."""
        self.generator.standard_normal(out=out, dtype=out.dtype)

    def uniform(self, out: Any, low: float = -1.0, high: float = 1.0) -> None:
        """Fill ``out`` with U[low, high) samples."""
        self.generator.random(out=out, dtype=out.dtype)
        out *= high - low
        out += low

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with an inverted-dropout mask: 1/(1-rate) with prob. 1-rate, else 0."""
        keep = 1.0 - rate
        self.generator.random(out=out, dtype=out.dtype)  # u in [0, 1)
        out += keep                                       # floor(u + keep) = 1 iff u >= rate
        np.floor(out, out=out)
        out *= 1.0 / keep

    def get_state(self) -> dict:
        """The generator's state, JSON-serialisable (for checkpoints)."""
        return self.generator.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self.generator.bit_generator.state = state


class PhiloxRng(Rng):
    """The Philox4x32-10 stream of :mod:`.philox`: a 64-bit key from the seed and a count of
    draws, kept in a one-element array on the backend's device (so a replayed CUDA graph
    draws fresh numbers each time). The backend's :meth:`Backend.philox_fill` draws; every
    backend draws the same numbers for a seed (up to the last bit of normals' libm).

    The state is ``{"generator": "philox4x32-10", "key": int, "draws": int}``.
    """

    GENERATOR = "philox4x32-10"

    def __init__(self, backend: Backend, seed: int | np.random.SeedSequence) -> None:
        self.backend = backend
        self.key = philox.key_of(seed)
        self.draws = backend.xp.zeros((1,), dtype=np.uint64)

    def normal(self, out: Any) -> None:
        """Fill ``out`` with N(0, 1) samples."""
        self.backend.philox_fill(out, self.key, self.draws, philox.RNG_NORMAL, 0.0, 0.0)

    def uniform(self, out: Any, low: float = -1.0, high: float = 1.0) -> None:
        """Fill ``out`` with U[low, high) samples."""
        self.backend.philox_fill(out, self.key, self.draws, philox.RNG_UNIFORM, low, high)

    def dropout_mask(self, out: Any, rate: float) -> None:
        """Fill ``out`` with 1/(1-rate) with probability 1-rate, else 0."""
        self.backend.philox_fill(out, self.key, self.draws, philox.RNG_DROPOUT, rate,
                                 1.0 / (1.0 - rate))

    def get_state(self) -> dict:
        """Key and draw count, JSON-serialisable (reading it synchronises with a GPU)."""
        draws = int(self.backend.to_numpy(self.draws)[0])
        return {"generator": self.GENERATOR, "key": self.key, "draws": draws}

    def set_state(self, state: dict) -> None:
        """Continue from a state returned by :meth:`get_state`."""
        if generator_of(state) != self.GENERATOR:
            raise ConfigError(f"this random state comes from {generator_of(state)!r}, not from "
                              f"the {self.GENERATOR} generator; it cannot be continued here")
        self.key = int(state["key"])
        self.backend.copy(np.array([state["draws"]], dtype=np.uint64), self.draws)


def generator_of(state: Any) -> str | None:
    """The generator that wrote a random state: ``"philox4x32-10"``, NumPy's bit generator
    (``"PCG64"``), or None for anything else."""
    if not isinstance(state, dict):
        return None
    return state.get("generator", state.get("bit_generator"))


class Backend:
    """The contract every backend fulfils; the methods are the reference implementation."""

    name: ClassVar[str] = "base"
    xp: Any = np
    rng_classes: ClassVar[dict[str, type[Rng]]] = {"pcg64": Rng, "philox": PhiloxRng}
    """The random streams this backend can draw, by name (see :meth:`rng`)."""
    default_rng: ClassVar[str] = "pcg64"
    im2col_bytes: ClassVar[int | None] = 512 * 2**10
    """Convolutions gather their im2col matrix for this many bytes of the batch at a time, a
    slice that stays in one core's L2 cache while its GEMMs read it (None: the whole batch in
    one matrix). On the 2-core VM (2 MB of L2 per core) the fast-dcgan step took 18.1 ms with
    512 KiB slices against 21.1 ms with 4 MiB, and 15.4 against 17.5 ms with two lanes."""
    gemm_schedule: Any = None
    """What runs :meth:`gemms` inside :meth:`gemms_on` (a
    :class:`~fastgan.backends.scheduled.GemmSchedule`); None: one product after another."""

    def __init__(self, *, rng: str | None = None) -> None:
        """``rng`` names the stream of noise and dropout masks: ``"pcg64"`` (NumPy's PCG64 on
        the host, the NumPy backend's default and the stream parity tests compare) or
        ``"philox"`` (counter-based Philox4x32-10, the same numbers on every backend);
        None for the backend's default."""
        rng = self.default_rng if rng is None else rng
        if rng not in self.rng_classes:
            raise ConfigError(f"rng must be one of {', '.join(map(repr, self.rng_classes))}, "
                              f"got {rng!r}")
        self.rng_stream = rng

    # ------------------------------------------------------------ allocation and transfer
    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uninitialised array on this backend's device."""
        return self.xp.empty(shape, dtype=resolve_dtype(dtype))

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Zero-filled array on this backend's device."""
        return self.xp.zeros(shape, dtype=resolve_dtype(dtype))

    def asarray(self, host: Any, dtype: Any = None) -> Any:
        """A device array holding ``host``'s values (a new array, or ``host`` if it fits)."""
        return self.xp.asarray(host, dtype=None if dtype is None else resolve_dtype(dtype))

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host NumPy array with ``a``'s values."""
        return np.asarray(a)

    def copy(self, src: Any, out: Any) -> None:
        """``out[...] = src`` (``src`` may be a host array)."""
        self.xp.copyto(out, self.xp.asarray(src))

    def download(self, a: Any, out: np.ndarray) -> None:
        """``out[...] = a``: a device array into the host array ``out`` of its shape and dtype
        (no new array)."""
        np.copyto(out, a)

    def take_rows(self, src: Any, index: Any, out: Any) -> None:
        """``out[i] = src[index[i]]``: gather a batch from a dataset held on the device."""
        self.xp.take(src, index, axis=0, out=out)

    def rng(self, seed: int | np.random.SeedSequence) -> Rng:
        """A reproducible random stream for noise and dropout masks, of the kind chosen when
        this backend was made."""
        return self.rng_classes[self.rng_stream](self, seed)

    def philox_fill(self, out: Any, key: int, draws: Any, kind: int, a: float, b: float) -> None:
        """Fill ``out`` from draw ``draws[0]`` of the Philox stream ``key``, then count the
        draw (``philox.RNG_*`` kinds; see :mod:`.philox`)."""
        philox.fill(out, key, int(self.to_numpy(draws)[0]), kind, a, b, self.xp)
        draws += 1

    def all_finite(self, a: Any) -> bool:
        """True when ``a`` holds no NaN or infinity (a host sync)."""
        return bool(self.xp.isfinite(a).all())

    # ------------------------------------------------------------ dense layer
    def gemm(self, a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False,
             accumulate: bool = False) -> None:
        """``out = op(a) @ op(b)`` where op transposes when asked; ``out += ...`` when
        ``accumulate``."""
        product = (a.T if trans_a else a, b.T if trans_b else b)
        if accumulate:
            out += self.xp.matmul(*product)
        else:
            self.xp.matmul(*product, out=out)

    def gemms(self, *products: tuple[Any, Any, Any, bool, bool]) -> None:
        """``out = op(a) @ op(b)`` for each ``(a, b, out, trans_a, trans_b)`` in ``products``,
        which do not depend on each other (none reads another's ``out``): one after another
        through :meth:`gemm`, or side by side on :attr:`gemm_schedule`."""
        if self.gemm_schedule is None:
            for product in products:
                self.gemm(*product)
        else:
            self.gemm_schedule.run(self, products)

    @property
    def lanes(self) -> int:
        """How many slices of a convolution's batch run at once (:meth:`side_by_side`): the
        schedule's lanes inside :meth:`gemms_on`, else one."""
        return 1 if self.gemm_schedule is None else self.gemm_schedule.lanes

    def side_by_side(self, jobs: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        """Call each ``(function, args)`` of ``jobs`` (at most :attr:`lanes`, none reading what
        another writes): at once on :attr:`gemm_schedule`'s threads, else one after another.
        A job's GEMMs then run on its own thread, as the schedule holds BLAS to one."""
        if self.gemm_schedule is None:
            for function, args in jobs:
                function(*args)
        else:
            self.gemm_schedule.pool.run(jobs)

    @contextlib.contextmanager
    def gemms_on(self, schedule: Any) -> Iterator[None]:
        """Run :meth:`gemms` on ``schedule`` inside the block (the previous one after it)."""
        previous, self.gemm_schedule = self.gemm_schedule, schedule
        try:
            yield
        finally:
            self.gemm_schedule = previous

    def bias_act(self, y: Any, bias: Any, act: int, alpha: float) -> None:
        """Dense epilogue, in place: ``y = act(y + bias)``."""
        xp = self.xp
        y += bias
        if act == RELU:
            xp.maximum(y, 0, out=y)
        elif act == LEAKY_RELU:
            xp.maximum(y, alpha * y, out=y)        # alpha < 1
        elif act == TANH:
            xp.tanh(y, out=y)
        elif act == SIGMOID:
            y *= -1                                  # 1 / (1 + exp(-y))
            xp.exp(y, out=y)
            y += 1
            xp.reciprocal(y, out=y)

    def act_backward(self, dy: Any, y: Any, act: int, alpha: float, dbias: Any = None) -> None:
        """Backward epilogue, in place: ``dy *= act'(.)`` expressed through the output ``y``;
        then ``dbias = sum(dy, axis=0)`` when ``dbias`` is given.

        relu: 1[y>0]; leaky: 1 if y>0 else alpha; tanh: 1-y^2; sigmoid: y(1-y).
        """
        xp = self.xp
        if act == RELU:
            dy *= y > 0
        elif act == LEAKY_RELU:
            dy *= xp.where(y > 0, 1.0, alpha).astype(dy.dtype, copy=False)
        elif act == TANH:
            dy *= 1 - y * y
        elif act == SIGMOID:
            dy *= y * (1 - y)
        if dbias is not None:
            xp.sum(dy, axis=0, out=dbias)

    # ------------------------------------------------------------ loss
    def bce_with_logits(self, logits: Any, target: float, scale: float, grad: Any,
                        stats: Any) -> None:
        """Binary cross-entropy on logits ``l`` against a constant ``target`` t, in stable form.

        ``bce_i = max(l,0) - l t + log(1 + exp(-|l|))``; writes ``grad = scale (sigmoid(l) - t)``
        (d/dl of ``scale * sum bce``), ``stats[0] = scale * sum(bce)`` and
        ``stats[1] = mean(sigmoid(l))``. ``scale = 1/n`` gives the mean loss; a negative scale
        turns it into a gain (the minimax generator loss).
        """
        xp = self.xp
        e = xp.exp(-xp.abs(logits))                      # in (0, 1]: never overflows
        bce = xp.maximum(logits, 0) - logits * target + xp.log1p(e)
        prob = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e))
        xp.multiply(prob - target, scale, out=grad)
        stats[0] = scale * bce.sum()
        stats[1] = prob.mean()

    def score_loss(self, logits: Any, kind: int, target: float, scale: float, grad: Any,
                   stats: Any) -> None:
        """A loss ``f(l)`` on logits ``l`` that needs no sigmoid: the hinge, least-squares and
        linear GAN losses. Writes ``grad = scale f'(l)``, ``stats[0] = scale sum f(l)`` and,
        for reporting as with BCE, ``stats[1] = mean(sigmoid(l))``.

        HINGE: ``f = max(0, 1 - t l)``, ``f' = -t [t l < 1]`` (t = +1 real, -1 fake);
        SQUARED: ``f = (l - t)^2 / 2``, ``f' = l - t``; LINEAR: ``f = l``, ``f' = 1`` (t unused).
        """
        xp = self.xp
        if kind == HINGE:
            margin = 1 - target * logits
            loss = xp.maximum(margin, 0)
            slope = xp.where(margin > 0, -target, 0.0)
        elif kind == SQUARED:
            slope = logits - target
            loss = slope * slope / 2
        else:
            loss, slope = logits, xp.ones_like(logits)
        xp.multiply(slope, scale, out=grad)
        stats[0] = scale * loss.sum()
        e = xp.exp(-xp.abs(logits))
        stats[1] = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e)).mean()

    # ------------------------------------------------------------ spectral normalisation
    def power_iteration(self, w: Any, u: Any, v: Any) -> None:
        """One power iteration on the (in, out) weight ``w``, in place: ``v = w u / |w u|``,
        then ``u = w^T v / |w^T v|`` (u: out values, v: in values; norms floored at
        :data:`NORM_EPS`). ``v^T w u`` then estimates the largest singular value of ``w``."""
        xp = self.xp
        xp.matmul(w, u, out=v)
        v /= max(float(xp.linalg.norm(v)), NORM_EPS)
        xp.matmul(w.T, v, out=u)
        u /= max(float(xp.linalg.norm(u)), NORM_EPS)

    def spectral_weight(self, w: Any, u: Any, v: Any, sigma: Any, w_bar: Any) -> None:
        """``sigma[0] = v^T w u`` (u, v held fixed) and ``w_bar = w / sigma``."""
        sigma[0] = v @ (self.xp.asarray(w) @ u)
        self.xp.divide(w, sigma[0], out=w_bar)

    def spectral_backward(self, grad: Any, w_bar: Any, u: Any, v: Any, sigma: Any) -> None:
        """``grad`` = dL/dw_bar in, dL/dw out (u, v fixed): with ``sigma = v^T w u`` and
        ``w_bar = w / sigma``, ``dL/dw = (grad - (sum grad * w_bar) v u^T) / sigma``."""
        xp = self.xp
        overlap = (grad * w_bar).sum()
        grad -= overlap * xp.outer(v, u)
        grad /= sigma[0]

    def softmax_cross_entropy(self, logits: Any, labels: Any, scale: float, grad: Any,
                              stats: Any) -> None:
        """Softmax cross-entropy of logits ``l`` (N, C) against integer ``labels`` (N,).

        With ``m_i = max_c l_ic`` (subtracted so ``exp`` never overflows),
        ``ce_i = m_i + log sum_c exp(l_ic - m_i) - l_i,label_i``; writes
        ``grad = scale (softmax(l) - onehot(labels))`` (d/dl of ``scale * sum ce``),
        ``stats[0] = scale * sum(ce)`` and ``stats[1]`` = the fraction of rows whose largest
        logit is the label's. ``scale = 1/N`` gives the mean loss.
        """
        xp = self.xp
        rows = xp.arange(logits.shape[0])
        shifted = logits - logits.max(axis=1, keepdims=True)
        xp.exp(shifted, out=grad)
        total = grad.sum(axis=1, keepdims=True)
        ce = xp.log(total[:, 0]) - shifted[rows, labels]
        grad /= total
        grad[rows, labels] -= 1
        grad *= scale
        stats[0] = scale * ce.sum()
        stats[1] = (shifted.argmax(axis=1) == labels).mean()

    # ------------------------------------------------------------ class labels
    def copy_columns(self, src: Any, src_start: int, out: Any, out_start: int,
                     width: int) -> None:
        """``out[:, out_start:out_start + width] = src[:, src_start:src_start + width]`` for
        two matrices of equal rows: writes features and one-hot labels side by side into a
        conditional network's input, or reads them apart."""
        out[:, out_start:out_start + width] = src[:, src_start:src_start + width]

    def one_hot(self, codes: Any, out: Any, start: int, classes: int) -> None:
        """Class ``c_i = min(floor(codes[i]), classes - 1)`` as a one-hot row in columns
        ``start`` to ``start + classes`` of ``out``: ``out[i, start + j] = [j == c_i]``.
        ``codes`` are U[0, classes) draws (the clamp guards a draw rounded up to ``classes``)."""
        xp = self.xp
        labels = xp.minimum(xp.floor(codes), classes - 1)
        out[:, start:start + classes] = labels[:, None] == xp.arange(classes)

    def label_maps(self, x: Any, labels: Any, labels_start: int, out: Any, channels: int,
                   classes: int) -> None:
        """Images with their one-hot labels as ``classes`` more constant channels (label maps):
        pixel p of row i of ``out`` (n, P (C + K)) is ``channels`` values of the channels-last
        image in the first P C columns of ``x``, then ``labels[i, labels_start:+K]``."""
        n = out.shape[0]
        maps = out.reshape(n, -1, channels + classes)
        pixels = maps.shape[1]
        maps[:, :, :channels] = x[:, :pixels * channels].reshape(n, pixels, channels)
        maps[:, :, channels:] = labels[:, None, labels_start:labels_start + classes]

    def image_channels(self, maps: Any, out: Any, channels: int, classes: int) -> None:
        """The image part of :meth:`label_maps`' adjoint: ``out`` (n, P C) = the first
        ``channels`` values of each pixel of ``maps`` (n, P (C + K)) (a gradient w.r.t. the
        label channels leads nowhere)."""
        n = out.shape[0]
        out.reshape(n, -1, channels)[...] = maps.reshape(n, -1, channels + classes)[:, :, :channels]

    # ------------------------------------------------------------ dropout
    def multiply(self, a: Any, b: Any, out: Any) -> None:
        """``out = a * b`` (dropout forward and backward: values or gradients times the mask)."""
        self.xp.multiply(a, b, out=out)

    # ------------------------------------------------------------ batch norm
    def batchnorm_train(self, x: Any, gamma: Any, beta: Any, y: Any, xhat: Any, invstd: Any,
                        running_mean: Any, running_var: Any, momentum: float, eps: float) -> None:
        """Training-mode batch norm over axis 0, Keras conventions.

        ``mu, var = mean(x), mean((x-mu)^2)`` (biased); ``invstd = 1/sqrt(var+eps)``;
        ``xhat = (x-mu) invstd``; ``y = gamma xhat + beta``;
        ``running = momentum running + (1-momentum) batch``.
        """
        xp = self.xp
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        xp.divide(1, xp.sqrt(var + eps), out=invstd)
        xp.multiply(x - mean, invstd, out=xhat)
        xp.multiply(xhat, gamma, out=y)
        y += beta
        running_mean *= momentum
        running_mean += (1 - momentum) * mean
        running_var *= momentum
        running_var += (1 - momentum) * var

    def batchnorm_eval(self, x: Any, gamma: Any, beta: Any, y: Any, running_mean: Any,
                       running_var: Any, eps: float) -> None:
        """Inference-mode batch norm:
        ``y = gamma (x - running_mean) / sqrt(running_var + eps) + beta``."""
        xp = self.xp
        xp.multiply(x - running_mean, gamma / xp.sqrt(running_var + eps), out=y)
        y += beta

    def batchnorm_backward(self, dy: Any, xhat: Any, gamma: Any, invstd: Any, dgamma: Any,
                           dbeta: Any, dx: Any = None) -> None:
        """Backward of training-mode batch norm.

        ``dbeta = sum(dy)``, ``dgamma = sum(dy xhat)``;
        ``dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat))`` when ``dx`` is given.
        """
        xp = self.xp
        xp.sum(dy, axis=0, out=dbeta)
        xp.sum(dy * xhat, axis=0, out=dgamma)
        if dx is not None:
            n = dy.shape[0]
            xp.multiply(dy - dbeta / n - xhat * (dgamma / n), gamma * invstd, out=dx)

    # ------------------------------------------------------------ convolution
    def _padded(self, n: int, g: ConvGeometry, dtype: Any) -> tuple[Any, Any]:
        """A zero (n, Hp, Wp, C) array and its view of the unpadded (n, H, W, C) interior,
        where Hp x Wp covers every pixel the windows read and the whole input."""
        rows = max((g.out_height - 1) * g.stride + g.kernel, g.pad_top + g.height)
        cols = max((g.out_width - 1) * g.stride + g.kernel, g.pad_left + g.width)
        padded = self.xp.zeros((n, rows, cols, g.channels), dtype)
        interior = padded[:, g.pad_top:g.pad_top + g.height, g.pad_left:g.pad_left + g.width]
        return padded, interior

    def _window_views(self, padded: Any, cols: Any, g: ConvGeometry):
        """For each kernel offset (dy, dx): the padded input's pixels that offset reads, and
        the matching (n, Ho, Wo, C) part of the im2col matrix."""
        n, s = padded.shape[0], g.stride
        patches = cols.reshape(n, g.out_height, g.out_width, g.kernel, g.kernel, g.channels)
        for dy in range(g.kernel):
            for dx in range(g.kernel):
                pixels = padded[:, dy:dy + s * (g.out_height - 1) + 1:s,
                                dx:dx + s * (g.out_width - 1) + 1:s]
                yield pixels, patches[:, :, :, dy, dx]

    def im2col(self, x: Any, geometry: ConvGeometry, cols: Any) -> None:
        """Gather the convolution's input patches: ``cols`` (n Ho Wo, k^2 C) from ``x`` (n, H W C).

        Row ``(i, ho, wo)`` holds the k x k x C window whose top-left corner is input pixel
        ``(ho s - pad_top, wo s - pad_left)`` of sample i, ordered (dy, dx, c); pixels
        outside the image are zeros. The convolution is then ``cols @ W`` with W of shape
        (k^2 C, filters).
        """
        g, n = geometry, x.shape[0]
        padded, interior = self._padded(n, g, x.dtype)
        interior[...] = x.reshape(n, g.height, g.width, g.channels)
        for pixels, patch in self._window_views(padded, cols, g):
            patch[...] = pixels

    def col2im(self, cols: Any, geometry: ConvGeometry, dx: Any) -> None:
        """The adjoint of :meth:`im2col`: ``dx`` (n, H W C) = each input pixel's sum over the
        patch entries that copied it (so with ``dcols = dy W^T``, ``dx`` is the convolution's
        input gradient). Entries that fell on the padding are dropped."""
        g, n = geometry, dx.shape[0]
        padded, interior = self._padded(n, g, dx.dtype)
        for pixels, patch in self._window_views(padded, cols, g):
            pixels += patch
        dx.reshape(n, g.height, g.width, g.channels)[...] = interior

    # ------------------------------------------------------------ nearest upsampling
    def upsample2x(self, x: Any, shape: tuple[int, int, int], y: Any) -> None:
        """Nearest upsampling by 2: ``y[i, 2h+a, 2w+b, c] = x[i, h, w, c]`` for a, b in {0, 1};
        ``x`` is (n, H W C) for ``shape`` = (H, W, C), ``y`` is (n, 4 H W C)."""
        n, (height, width, channels) = x.shape[0], shape
        blocks = y.reshape(n, height, 2, width, 2, channels)
        blocks[...] = x.reshape(n, height, 1, width, 1, channels)

    def upsample2x_backward(self, dy: Any, shape: tuple[int, int, int], dx: Any) -> None:
        """The adjoint of :meth:`upsample2x`: ``dx[i, h, w, c]`` = the sum of ``dy`` over the
        2 x 2 block that pixel became."""
        n, (height, width, channels) = dx.shape[0], shape
        blocks = dy.reshape(n, height, 2, width, 2, channels)
        self.xp.sum(blocks, axis=(2, 4), out=dx.reshape(n, height, width, channels))

    # ------------------------------------------------------------ optimizers
    def sgd_update(self, param: Any, grad: Any, velocity: Any, lr: float, momentum: float) -> None:
        """``v = momentum v + g; p -= lr v`` (with momentum 0: ``p -= lr g``)."""
        if momentum:
            velocity *= momentum
            velocity += grad
            param -= lr * velocity
        else:
            param -= lr * grad

    def ema_update(self, average: Any, value: Any, decay: float) -> None:
        """Exponential moving average, in place: ``average = decay average + (1-decay) value``."""
        average *= decay
        average += (1 - decay) * value

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, step: int) -> None:
        """Bias-corrected Adam at step ``step`` (1-based):
        ``m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
        p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)``."""
        xp = self.xp
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        step_size = lr / (1 - beta1**step)
        denom = xp.sqrt(v) / np.sqrt(1 - beta2**step) + eps
        param -= step_size * m / denom
