"""One training step, side by side: the step's floor, fastgan's numba and numpy backends,
and PyTorch eager running the very same algorithm (when torch is installed).

Every contender is built for the same preset and batch size in float32, with the same
thread count for BLAS, Numba and torch (``FASTGAN_NUM_THREADS``, default: physical cores).
Each round runs every contender once, rotating who goes first, so load changes on the
machine hit all of them alike; the figures are medians over the rounds.

The floor is the step's GEMMs alone, back to back into preallocated outputs, plus the
optimizers' memory traffic at the bandwidth of a streaming ``c = a + b`` (both timed as two
more contenders in the same rounds; the model is :mod:`fastgan.floor`'s). Run::

    PYTHONPATH=. python -m pytest benchmarks/bench_train_step.py -s --benchmark-json=out.json

``FASTGAN_BENCH_ROUNDS`` (default 30) sets the rounds; pytest-benchmark records one round of
all contenders, and ``extra_info`` (in the JSON) holds each contender's median.

On a machine shared with other work, wall-clock times of a 2-thread BLAS swing wildly.
``FASTGAN_BENCH_CLOCK=cpu`` (with ``FASTGAN_NUM_THREADS=1``) times each call by the CPU time
of the calling thread instead: every contender then runs on that one thread, and time spent
descheduled is not counted.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastgan import GAN, presets, threads
from fastgan.errors import ConfigError
from fastgan.floor import BANDWIDTH_BYTES, gemm_operands, optimizer_bytes

CASES = [("pytorch-vanilla", 100), ("numpy-mlp", 64), ("pytorch-vanilla", 512),
         ("pytorch-vanilla", 1024)]
DTYPE = "float32"
ROUNDS = int(os.environ.get("FASTGAN_BENCH_ROUNDS", "30"))
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
CLOCK = os.environ.get("FASTGAN_BENCH_CLOCK", "wall")
WARMUP = 3


def _threads() -> int:
    """One thread count for every contender, applied to BLAS and Numba here."""
    if CLOCK not in CLOCKS:
        raise ConfigError(f"FASTGAN_BENCH_CLOCK must be one of {', '.join(CLOCKS)}, got {CLOCK!r}")
    count = threads.set_num_threads()
    if CLOCK == "cpu" and count != 1:
        raise ConfigError("FASTGAN_BENCH_CLOCK=cpu counts one thread's time only: "
                          "set FASTGAN_NUM_THREADS=1")
    return count


def _machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical CPUs"


def _fastgan_step(backend: str, preset: str, batch: int) -> Callable[[], None]:
    gan = GAN.from_preset(preset, backend=backend, dtype=DTYPE, batch_size=batch)
    real = np.random.default_rng(0).uniform(-1, 1, (gan.k * batch, gan.data_dim))
    real = gan.backend.asarray(real, DTYPE)
    return lambda: gan.step(real)


def _torch_step(preset: str, batch: int, threads: int) -> Callable[[], None]:
    from fastgan.peers.torch_gan import TorchGAN, set_threads

    set_threads(threads)
    peer = TorchGAN(presets.get(preset, batch_size=batch), dtype=DTYPE)
    real = peer.make_batch()
    return lambda: peer.step(real)


def _gemms(preset: str, batch: int) -> Callable[[], None]:
    operands = gemm_operands(presets.get(preset), batch, DTYPE)

    def run() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)

    return run


def _stream() -> tuple[Callable[[], None], int]:
    """A pass of ``c = a + b`` over arrays larger than the caches, and the bytes it moves
    (what :func:`fastgan.floor.measure_bandwidth` times, here as one more contender)."""
    n = BANDWIDTH_BYTES // np.dtype(DTYPE).itemsize
    a, b, c = (np.ones(n, DTYPE) for _ in range(3))
    return lambda: np.add(a, b, out=c), 3 * a.nbytes


def _torch_unavailable() -> str | None:
    try:
        import fastgan.peers.torch_gan  # noqa: F401
    except Exception as exc:  # missing module or BackendUnavailable (no torch)
        return f"{type(exc).__name__}: {exc}"
    return None


def _interleaved(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, list]:
    """Seconds per call of each contender, one call each per round, rotating the order."""
    for run in contenders.values():
        for _ in range(WARMUP):
            run()
    names = list(contenders)
    clock = CLOCKS[CLOCK]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = clock()
            contenders[name]()
            seconds[name].append(clock() - start)
    return seconds


@pytest.mark.parametrize("preset,batch", CASES, ids=[f"{p}-b{b}" for p, b in CASES])
def test_train_step_side_by_side(benchmark, summary_rows, preset, batch):
    threads = _threads()
    stream, stream_bytes = _stream()
    contenders = {"gemms": _gemms(preset, batch), "stream": stream,
                  "numba": _fastgan_step("numba", preset, batch),
                  "numpy": _fastgan_step("numpy", preset, batch)}
    torch_missing = _torch_unavailable()
    if torch_missing is None:
        contenders["torch eager"] = _torch_step(preset, batch, threads)
    seconds = _interleaved(contenders, ROUNDS)
    benchmark.pedantic(lambda: [run() for run in contenders.values()], rounds=1, iterations=1)

    ms = {name: 1e3 * statistics.median(values) for name, values in seconds.items()}
    optimizer_ms = ms.pop("stream") * optimizer_bytes(presets.get(preset), 4) / stream_bytes
    ms["floor"] = ms["gemms"] + optimizer_ms
    benchmark.extra_info.update({"threads": threads, "rounds": ROUNDS, "clock": CLOCK,
                                 "median_ms": ms, "torch": torch_missing or "eager"})
    summary_rows.append({"machine": f"{_machine()}, {threads} threads, {CLOCK} clock",
                         "table": _table_row(preset, batch, ms)})
    if torch_missing:
        warnings.warn(f"PyTorch peer not measured: {torch_missing}", stacklevel=1)


def _table_row(preset: str, batch: int, ms: dict[str, float]) -> dict[str, str]:
    """One line of the summary: medians in ms and the ratios the targets are stated in."""
    torch_ms = ms.get("torch eager")
    return {
        "preset": preset, "batch": str(batch), "GEMMs": f"{ms['gemms']:.2f}",
        "floor": f"{ms['floor']:.2f}", "numba": f"{ms['numba']:.2f}",
        "numpy": f"{ms['numpy']:.2f}",
        "torch eager": f"{torch_ms:.2f}" if torch_ms else "n/a",
        "numba / floor": f"{ms['numba'] / ms['floor']:.2f}",
        "torch / numba": f"{torch_ms / ms['numba']:.2f}x" if torch_ms else "n/a",
        "numpy / numba": f"{ms['numpy'] / ms['numba']:.2f}x",
    }
