"""Seed 003's DCGAN (keras-dcgan, 32 x 32 x 1, batch 64): one training step, side by side.

Contenders, all float32 with one thread count for BLAS, Numba and torch (``FASTGAN_NUM_THREADS``,
default: physical cores):

* ``floor``: the step's GEMMs alone (:mod:`fastgan.benchmarking.floor`: every convolution as
  its im2col GEMM), back to back into preallocated outputs, plus the optimizers' memory traffic;
* fastgan's ``numba`` and ``numpy`` backends;
* PyTorch eager running the same algorithm
  (:class:`fastgan.benchmarking.torch_peer.TorchGAN`, oneDNN convolutions), in NCHW and in
  channels-last memory format.

Each round runs every contender once, rotating who goes first, so load changes on the machine
hit all of them alike; figures are medians over the rounds. A second table splits one numba
step by kernel (GEMM, im2col, col2im, the rest), which says what bounds it. Run::

    PYTHONPATH=. python benchmarks/bench_dcgan.py            # or, under pytest-benchmark:
    PYTHONPATH=. python -m pytest benchmarks/bench_dcgan.py -s

``FASTGAN_BENCH_ROUNDS`` (default 7) sets the rounds. Nothing here asserts on time.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from fastgan import GAN, GANConfig, threads
from fastgan.benchmarking.bench import interleaved, settle_time, spread
from fastgan.benchmarking.floor import gemm_operands, measure_bandwidth, optimizer_bytes
from fastgan.benchmarking.timing import seconds_of
from fastgan.gan import presets

PRESET, BATCH, DATA_DIM, DTYPE = "keras-dcgan", 64, 1024, "float32"
ROUNDS = int(os.environ.get("FASTGAN_BENCH_ROUNDS", "7"))
WARMUP = 2
KERNEL_GROUPS = {"gemm": "GEMM", "im2col": "im2col", "col2im": "col2im"}


def _preset() -> GANConfig:
    return presets.get(PRESET, DATA_DIM, batch_size=BATCH)


def _fastgan(backend: str) -> tuple[GAN, Callable[[], None]]:
    gan = GAN.from_preset(PRESET, backend=backend, dtype=DTYPE, data_dim=DATA_DIM,
                          batch_size=BATCH)
    real = gan.backend.asarray(np.random.default_rng(0).uniform(-1, 1, (gan.k * BATCH,
                                                                       DATA_DIM)), DTYPE)
    return gan, lambda: gan.step(real)


def _torch(thread_count: int, channels_last: bool) -> Callable[[], None]:
    from fastgan.benchmarking.torch_peer import TorchGAN, set_threads

    set_threads(thread_count)
    peer = TorchGAN(_preset(), dtype=DTYPE, channels_last=channels_last)
    real = peer.make_batch()
    return lambda: peer.step(real)


def _gemms() -> Callable[[], None]:
    operands = gemm_operands(_preset(), BATCH, DTYPE)

    def run() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)

    return run


def _torch_missing() -> str | None:
    try:
        import fastgan.benchmarking.torch_peer  # noqa: F401
    except Exception as exc:  # no torch: BackendUnavailable or ImportError
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def kernel_timer(gan: GAN):
    """Within the block, seconds spent in each of the backend's kernels (by method name)."""
    backend, spent = gan.backend, Counter()
    names = [name for name in dir(type(backend)) if not name.startswith("_")
             and callable(getattr(backend, name)) and name not in ("rng", "xp")]
    originals = {name: getattr(backend, name) for name in names}

    def timed(name: str, method: Callable) -> Callable:
        def run(*args, **kwargs):
            start = time.perf_counter()
            result = method(*args, **kwargs)
            spent[name] += time.perf_counter() - start
            return result
        return run

    for name, method in originals.items():
        setattr(backend, name, timed(name, method))
    try:
        yield spent
    finally:
        for name in originals:
            delattr(backend, name)          # back to the class's methods


def numba_breakdown(step: Callable[[], None], gan: GAN, rounds: int) -> dict[str, float]:
    """Median ms per step in GEMM, im2col, col2im, the other kernels and outside kernels."""
    shares: dict[str, list[float]] = {}
    for _ in range(rounds):
        with kernel_timer(gan) as spent:
            total = seconds_of(step)
        groups = Counter({label: spent.pop(name, 0.0) for name, label in KERNEL_GROUPS.items()})
        groups["other kernels"] = sum(spent.values())
        groups["outside kernels"] = total - sum(groups.values())
        groups["step"] = total
        for label, seconds in groups.items():
            shares.setdefault(label, []).append(seconds)
    return {label: spread(seconds)["median"] for label, seconds in shares.items()}


def measure(rounds: int = ROUNDS) -> dict:
    """Every contender's median step, the floor, and the numba step's breakdown (ms)."""
    thread_count = threads.set_num_threads()
    numba_gan, numba_step = _fastgan("numba")
    contenders = {"gemms": _gemms(), "numba": numba_step, "numpy": _fastgan("numpy")[1]}
    missing = _torch_missing()
    if missing is None:
        contenders["torch"] = _torch(thread_count, channels_last=False)
        contenders["torch channels-last"] = _torch(thread_count, channels_last=True)
    seconds = interleaved(contenders, rounds, WARMUP, settle_time())
    ms = {name: spread(s)["median"] for name, s in seconds.items()}
    ms["floor"] = ms.pop("gemms") + 1e3 * optimizer_bytes(_preset(), 4) / measure_bandwidth()
    return {"threads": thread_count, "rounds": rounds, "ms": ms, "torch": missing or "eager",
            "numba_breakdown": numba_breakdown(numba_step, numba_gan, max(3, rounds // 2))}


def report(results: dict) -> str:
    """The measurements as two Markdown tables."""
    ms = results["ms"]
    lines = [f"keras-dcgan, batch {BATCH}, float32, {results['threads']} threads, median of "
             f"{results['rounds']} interleaved rounds; torch: {results['torch']}", "",
             "| contender | ms/step | / floor | / numba |", "|---|---|---|---|"]
    for name, value in sorted(ms.items(), key=lambda item: item[1]):
        lines.append(f"| {name} | {value:.0f} | {value / ms['floor']:.2f} | "
                     f"{value / ms['numba']:.2f} |")
    parts = results["numba_breakdown"]
    lines += ["", "| numba step | ms | share |", "|---|---|---|"]
    for label, value in parts.items():
        lines.append(f"| {label} | {value:.0f} | {value / parts['step']:.0%} |")
    return "\n".join(lines)


def test_keras_dcgan_step_side_by_side(benchmark):
    """pytest-benchmark entry: one round recorded, the full comparison in ``extra_info``."""
    results = measure()
    gan_step = _fastgan("numba")[1]
    benchmark.pedantic(gan_step, rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    print("\n" + report(results))


if __name__ == "__main__":
    print(report(measure()))
