"""The machine's limit for one training step: its GEMMs alone plus the optimizer's memory traffic.

A training step of a GAN is dominated by matrix products. However well the elementwise
work is fused, a step that runs its GEMMs one after another cannot run faster than

    floor = (time of the step's GEMMs, back to back into preallocated outputs)
          + (bytes the optimizers must read and write) / (measured memory bandwidth).

A step that runs independent GEMMs side by side (:mod:`fastgan.gan.scheduled`) can beat that;
the graph floor at T threads bounds every schedule (:func:`graph_floor`): the GEMM part is the
larger of the step's critical path (its chain of stages, each at least its slowest GEMM at
its fastest on up to T threads) and its total work at the best rate T threads reached
together (T copies of one of the step's GEMMs side by side).

:func:`step_gemms` lists every GEMM of one fastgan training step (k D steps, then a G step,
as :mod:`fastgan.gan.model` runs it); :func:`measure_gemm_floor` times them with NumPy's BLAS on
this machine and adds the optimizer's traffic. Dense layers compute ``y = x @ W`` with W of
shape (in, out); Conv2D layers ``y = cols @ W`` over their im2col matrix, one row per output
pixel, with W of shape (k^2 C, filters); ConvTranspose2D layers ``cols = x @ W^T``, one row
per input pixel, with W of shape (k^2 filters, C), which the floor counts as a dense product
of (C, k^2 filters) (gathering and scattering the patches is not a GEMM, so it is not in the
floor); a GEMM here is ``C (m x n) = A (m x k) @ B (k x n)``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from ..backends.base import resolve_dtype
from ..backends.scheduled import blocks
from ..backends.side_by_side import SideBySide
from ..errors import ConfigError
from ..gan.config import GANConfig
from ..nn.optim import SGD, Adam, OptimizerConfig
from ..nn.specs import BatchNorm, Conv2D, ConvTranspose2D, Dense, LayerSpec, output_shapes
from ..threads import blas_threads, set_blas_threads
from .timing import median_seconds, seconds_of

BANDWIDTH_BYTES = 64 * 2**20
"""Size of each of the three arrays :func:`measure_bandwidth` streams: larger than the caches."""


@dataclass(frozen=True)
class Gemm:
    """One GEMM ``C (m x n) = A (m x k) @ B (k x n)`` of a training step.

    ``kind`` says which product of weight layer ``layer`` (counted among Dense, Conv2D and
    ConvTranspose2D layers only) of network ``network`` ("G" or "D") it is: ``forward`` (``x @ W``),
    ``grad_weight`` (``x^T @ dy``) or ``grad_input`` (``dy @ W^T``).
    """

    m: int
    n: int
    k: int
    role: str
    network: str
    layer: int
    kind: str

    @property
    def flops(self) -> int:
        """Floating-point operations: one multiply and one add per term."""
        return 2 * self.m * self.n * self.k


# ---------------------------------------------------------------- the step's GEMMs
def weight_shapes(layers: Sequence[LayerSpec], in_features: int
                  ) -> list[tuple[int, int, int]]:
    """(rows per sample, in, out) of the forward GEMM of every Dense, Conv2D and
    ConvTranspose2D layer of a network reading ``in_features`` features: Dense (1, in, units);
    Conv2D (Ho Wo, k^2 C, filters); ConvTranspose2D (H W, C, k^2 filters)."""
    shapes = []
    for spec, in_shape, out_shape in _layer_shapes(layers, in_features):
        if isinstance(spec, Dense):
            shapes.append((1, in_shape[0], spec.units))
        elif isinstance(spec, Conv2D):
            shapes.append((out_shape[0] * out_shape[1], spec.kernel**2 * in_shape[-1],
                           spec.filters))
        elif isinstance(spec, ConvTranspose2D):
            shapes.append((in_shape[0] * in_shape[1], in_shape[-1],
                           spec.kernel**2 * spec.filters))
    return shapes


def parameter_count(layers: Sequence[LayerSpec], in_features: int) -> int:
    """Trainable parameters: W and b per Dense, Conv2D or ConvTranspose2D (a bias per unit or
    filter), gamma and beta per BatchNorm (one pair per feature, or per channel after a
    spatial layer)."""
    count = sum(inp * out for _, inp, out in weight_shapes(layers, in_features))
    for spec, in_shape, _ in _layer_shapes(layers, in_features):
        if isinstance(spec, Dense):
            count += spec.units
        elif isinstance(spec, Conv2D | ConvTranspose2D):
            count += spec.filters
        elif isinstance(spec, BatchNorm):
            count += 2 * in_shape[-1]
    return count


def _layer_shapes(layers: Sequence[LayerSpec], in_features: int):
    """(spec, input shape, output shape) of each layer."""
    shapes = output_shapes(layers, in_features)
    return zip(layers, [(in_features,), *shapes[:-1]], shapes, strict=True)


def _forward(step: str, network: str, shapes: list[tuple[int, int, int]], batch: int
             ) -> list[Gemm]:
    return [Gemm(batch * rows, out, inp, f"{step}.{network}.forward[{i}]", network, i,
                 "forward") for i, (rows, inp, out) in enumerate(shapes)]


def _backward(step: str, network: str, shapes: list[tuple[int, int, int]], batch: int, *,
              weights: bool, first_input: bool) -> list[Gemm]:
    """Backward from the last layer to the first: ``dW = x^T dy`` when ``weights``, then
    ``dx = dy W^T`` for every layer but the first (and the first too when ``first_input``)."""
    gemms = []
    for i in reversed(range(len(shapes))):
        rows, inp, out = shapes[i]
        if weights:
            gemms.append(Gemm(inp, out, batch * rows, f"{step}.{network}.grad_weight[{i}]",
                              network, i, "grad_weight"))
        if i > 0 or first_input:
            gemms.append(Gemm(batch * rows, inp, out, f"{step}.{network}.grad_input[{i}]",
                              network, i, "grad_input"))
    return gemms


def step_gemms(preset: GANConfig, batch: int) -> list[Gemm]:
    """Every GEMM of one training step of ``preset`` with B = ``batch``, in execution order.

    Per D step (k of them): G forward on B rows; D forward on the 2B rows [real; fake]; D
    backward with every weight gradient and every input gradient but the first layer's (real
    images need none). G step: G forward (B), D forward (B), D backward with input gradients
    only (all layers: the gradient flows on into G), G backward with every weight gradient and
    every input gradient but the first layer's.
    """
    _check_batch(batch)
    g = weight_shapes(preset.generator, preset.generator_inputs)
    d = weight_shapes(preset.discriminator, preset.discriminator_inputs)
    gemms: list[Gemm] = []
    for s in range(preset.k):
        step = f"d_step[{s}]"
        gemms += _forward(step, "G", g, batch)
        gemms += _forward(step, "D", d, 2 * batch)
        gemms += _backward(step, "D", d, 2 * batch, weights=True, first_input=False)
    gemms += _forward("g_step", "G", g, batch)
    gemms += _forward("g_step", "D", d, batch)
    gemms += _backward("g_step", "D", d, batch, weights=False, first_input=True)
    gemms += _backward("g_step", "G", g, batch, weights=True, first_input=False)
    return gemms


def step_gemm_shapes(preset: GANConfig, batch: int) -> list[tuple[int, int, int, str]]:
    """(m, n, k, role) of every GEMM of one training step (see :func:`step_gemms`)."""
    return [(g.m, g.n, g.k, g.role) for g in step_gemms(preset, batch)]


# ---------------------------------------------------------------- the optimizer's traffic
def optimizer_arrays(config: OptimizerConfig) -> int:
    """Arrays of n_params elements one update reads or writes.

    Adam reads p, g, m, v and writes p, m, v (7); SGD reads p, g and writes p (3), plus
    reading and writing the velocity with momentum (5).
    """
    if isinstance(config, Adam):
        return 7
    if isinstance(config, SGD):
        return 5 if config.momentum else 3
    raise ConfigError(f"no traffic model for optimizer {config!r}")


def optimizer_bytes(preset: GANConfig, itemsize: int) -> int:
    """Bytes the optimizers move in one training step (D's optimizer runs k times)."""
    g_params = parameter_count(preset.generator, preset.generator_inputs)
    d_params = parameter_count(preset.discriminator, preset.discriminator_inputs)
    return itemsize * (optimizer_arrays(preset.g_optimizer) * g_params
                       + preset.k * optimizer_arrays(preset.d_optimizer) * d_params)


# ---------------------------------------------------------------- measurements
def gemm_operands(preset: GANConfig, batch: int, dtype: str = "float32", seed: int = 0
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(A, B, C) arrays for each GEMM of :func:`step_gemms`, laid out as a step has them.

    Each network's weights W (in, out) and weight gradients are one array per layer, shared
    by the GEMMs that use them; ``grad_weight`` multiplies the transposed view ``x.T`` of a
    C-ordered activation, ``grad_input`` multiplies by the view ``W.T``. Inputs are random
    normal (never zeros, which some BLAS paths shortcut).
    """
    resolve_dtype(dtype)
    rng = np.random.default_rng(seed)

    def random(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.dtype(dtype).type)

    weights: dict[tuple[str, int], np.ndarray] = {}
    grads: dict[tuple[str, int], np.ndarray] = {}
    operands = []
    for g in step_gemms(preset, batch):
        key = (g.network, g.layer)
        if g.kind == "forward":  # x (rows, in) @ W (in, out)
            w = weights.setdefault(key, random(g.k, g.n))
            operands.append((random(g.m, g.k), w, np.empty((g.m, g.n), dtype)))
        elif g.kind == "grad_weight":  # x^T (in, rows) @ dy (rows, out)
            dw = grads.setdefault(key, np.empty((g.m, g.n), dtype))
            operands.append((random(g.k, g.m).T, random(g.k, g.n), dw))
        else:  # dy (rows, out) @ W^T (out, in)
            w = weights.setdefault(key, random(g.n, g.k))
            operands.append((random(g.m, g.k), w.T, np.empty((g.m, g.n), dtype)))
    return operands


def measure_bandwidth(n_bytes: int = BANDWIDTH_BYTES, dtype: str = "float32",
                      repeats: int = 5, threads: int = 1) -> float:
    """Memory bandwidth in bytes/s: ``np.add(a, b, out=c)`` over three ``n_bytes`` arrays
    (read a, read b, write c: 3 * n_bytes moved), median of ``repeats`` after one warm-up.

    With ``threads`` > 1 the arrays are cut into as many contiguous parts, each added by its
    own thread at the same time (NumPy releases the GIL inside ``np.add``): the bandwidth an
    optimizer update spread over that many threads could reach.
    """
    resolve_dtype(dtype)
    _check_repeats(repeats)
    if not (isinstance(threads, int) and threads >= 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    n = max(threads, n_bytes // np.dtype(dtype).itemsize)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(n, dtype=np.dtype(dtype).type) for _ in range(2))
    c = np.empty_like(a)
    if threads == 1:
        seconds = median_seconds(lambda: np.add(a, b, out=c), repeats, warmup=1)
        return 3 * a.nbytes / seconds
    parts = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        def add_in_parallel() -> None:
            for done in [pool.submit(np.add, a[p], b[p], out=c[p]) for p in parts]:
                done.result()

        seconds = median_seconds(add_in_parallel, repeats, warmup=1)
    return 3 * a.nbytes / seconds


def measure_gemm_floor(preset: GANConfig, batch: int, dtype: str = "float32", repeats: int = 20,
                       threads: int | None = None) -> dict[str, float | int]:
    """Time the step's GEMMs back to back (``np.matmul(a, b, out=c)``) and add the
    optimizer's traffic at measured bandwidth.

    Median of ``repeats`` passes after warm-up; ``threads`` limits BLAS's pool for the
    measurement (None: leave it as it is). Returns ``gemm_ms``, ``gemm_gflops``, ``flops``,
    ``n_gemms``, ``bandwidth_gbs``, ``optimizer_bytes``, ``optimizer_ms`` and ``floor_ms`` =
    gemm_ms + optimizer_ms.
    """
    _check_repeats(repeats)
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    operands = gemm_operands(preset, batch, dtype)
    flops = sum(g.flops for g in step_gemms(preset, batch))

    def all_gemms() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)

    limits = threadpool_limits(threads, user_api="blas") if threads else nullcontext()
    with limits:
        gemm_s = median_seconds(all_gemms, repeats, warmup=3)
    bandwidth = measure_bandwidth(dtype=dtype)
    traffic = optimizer_bytes(preset, np.dtype(dtype).itemsize)
    optimizer_s = traffic / bandwidth
    return {
        "gemm_ms": gemm_s * 1e3,
        "gemm_gflops": flops / gemm_s / 1e9,
        "flops": flops,
        "n_gemms": len(operands),
        "bandwidth_gbs": bandwidth / 1e9,
        "optimizer_bytes": traffic,
        "optimizer_ms": optimizer_s * 1e3,
        "floor_ms": (gemm_s + optimizer_s) * 1e3,
    }


# ---------------------------------------------------------------- the floor at T threads
def gemm_stages(gemms: Sequence[Gemm]) -> list[list[int]]:
    """The step's GEMMs as a chain of stages (indices into ``gemms``, in order): each stage
    needs the one before it, and the GEMMs within a stage do not depend on each other (a
    layer's ``grad_weight`` and ``grad_input`` in one backward: both read the same ``dy``);
    every other GEMM is a stage of its own."""
    stages: list[list[int]] = []
    previous = None
    for index, g in enumerate(gemms):
        key = (g.role.split(".")[0], g.network, g.layer) if g.kind != "forward" else None
        if key is not None and key == previous:
            stages[-1].append(index)
        else:
            stages.append([index])
        previous = key
    return stages


def graph_floor(flops: Sequence[int], fastest_s: Sequence[float], copies_s: Sequence[float],
                stages: Sequence[Sequence[int]], threads: int) -> dict[str, float]:
    """The least time ``threads`` threads need for GEMMs with these ``flops`` in these
    ``stages`` (:func:`gemm_stages`), given each GEMM's fastest measured time on at most
    ``threads`` threads (``fastest_s``) and the time ``threads`` copies of it took side by
    side, one thread each (``copies_s``):

    * ``critical_path_s``: the stages run one after another and a stage takes at least as
      long as its slowest GEMM at its fastest, so the sum over stages of that;
    * ``work_s``: the threads together compute no faster than the best total rate they
      were measured to reach on any of these GEMMs (``together_flops``, flop/s: the larger of
      ``threads`` x flops / copies_s and flops / fastest_s), so all the work at that rate.
      Measured, not ``threads`` times one thread's rate: two vCPUs need not deliver twice
      one's (shared cores, clocks, caches);
    * ``floor_s``: the larger of the two (both are bounds).
    """
    if not (isinstance(threads, int) and threads >= 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    together = max(max(threads * f / c, f / t)
                   for f, c, t in zip(flops, copies_s, fastest_s, strict=True))
    critical = sum(max(fastest_s[i] for i in stage) for stage in stages)
    work = sum(flops) / together
    return {"critical_path_s": critical, "work_s": work, "together_flops": together,
            "floor_s": max(critical, work)}


WAYS = ("one_thread", "side_by_side", "blas_pool")
"""How :func:`gemm_times` runs each GEMM on T threads: whole on one thread; cut into T blocks
run side by side, BLAS on one thread each (as a scheduled step cuts it:
:func:`fastgan.backends.scheduled.blocks`); whole on BLAS's own pool of T threads."""
COPIES = "copies"
"""What :func:`gemm_times` also times: T copies of each GEMM side by side, one thread each
(their own outputs), T times the work: what the T threads deliver together."""


def gemm_times(operands: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], threads: int,
               repeats: int = 10) -> dict[str, list[float]]:
    """Each GEMM's median seconds in each of :data:`WAYS` on ``threads`` threads, and of
    :data:`COPIES`, by way.

    Each way runs the step's GEMMs back to back in order, as the floor does (so each GEMM finds
    the caches as the one before leaves them), one pass to warm up and ``repeats`` timed, each
    GEMM timed on its own. The ways take turns pass by pass, so that a change in the machine's
    speed meets them all alike (on the 2-vCPU VM, what two threads deliver together swung
    from 1.0x to 2.2x one thread's rate from one minute to the next). BLAS's thread count is as
    before afterwards.
    """
    _check_repeats(repeats)
    before = blas_threads()
    pool = SideBySide(threads)
    whole = [partial(np.matmul, a, b, out=c) for a, b, c in operands]
    calls = {"one_thread": (1, whole), "blas_pool": (threads, whole),
             "side_by_side": (1, [partial(pool.run, blocks((a, b, c, False, False), threads))
                                  for a, b, c in operands]),
             COPIES: (1, [partial(pool.run, [(np.matmul, (a, b, np.empty_like(c)))
                                             for _ in range(threads)])
                          for a, b, c in operands])}
    passes: dict[str, list[list[float]]] = {way: [] for way in calls}
    try:
        for _ in range(1 + repeats):
            for way, (blas, runs) in calls.items():
                set_blas_threads(blas)
                passes[way].append([seconds_of(run) for run in runs])
    finally:
        pool.close()
        set_blas_threads(max(before, 1))
    return {way: [statistics.median(column) for column in zip(*timed[1:], strict=True)]
            for way, timed in passes.items()}


def measure_graph_floor(preset: GANConfig, batch: int, threads: int, dtype: str = "float32",
                        repeats: int = 10) -> dict[str, float]:
    """:func:`graph_floor` of the step's GEMMs from :func:`gemm_times` on ``threads`` (each
    GEMM at its fastest of the three ways), in milliseconds: ``critical_path_ms``,
    ``work_ms``, ``together_gflops`` and ``gemm_ms`` (the larger bound; the optimizer's
    traffic is the caller's to add)."""
    gemms = step_gemms(preset, batch)
    times = gemm_times(gemm_operands(preset, batch, dtype), threads, repeats)
    fastest = [min(ways) for ways in zip(*(times[way] for way in WAYS), strict=True)]
    bound = graph_floor([g.flops for g in gemms], fastest, times[COPIES], gemm_stages(gemms),
                        threads)
    return {"critical_path_ms": 1e3 * bound["critical_path_s"], "work_ms": 1e3 * bound["work_s"],
            "together_gflops": bound["together_flops"] / 1e9,
            "gemm_ms": 1e3 * bound["floor_s"]}


# ---------------------------------------------------------------- argument checks
def _check_batch(batch: int) -> None:
    if not (isinstance(batch, int) and batch >= 1):
        raise ConfigError(f"batch size must be a positive integer, got {batch!r}")


def _check_repeats(repeats: int) -> None:
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
