"""One training step, side by side: the step's floor, fastgan's numba and numpy backends,
and PyTorch eager running the very same algorithm (when torch is installed).

Every contender is built for the same preset and batch size in float32, with the same
thread count for BLAS, Numba and torch (``FASTGAN_NUM_THREADS``, default: physical cores).
Each round runs every contender once, rotating who goes first, so load changes on the
machine hit all of them alike; the figures are medians over the rounds.

The floor is the step's GEMMs alone, back to back into preallocated outputs (timed as one
more contender), plus the optimizers' memory traffic at measured bandwidth
(:mod:`fastgan.benchmarking.floor`). Run::

    PYTHONPATH=. python -m pytest benchmarks/bench_train_step.py -s --benchmark-json=out.json

``FASTGAN_BENCH_ROUNDS`` (default 30) sets the rounds; pytest-benchmark records one round of
all contenders, and ``extra_info`` (in the JSON) holds each contender's median.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import pytest

from fastgan import threads
from fastgan.benchmarking.bench import (
    Case,
    fastgan_step,
    gemms_step,
    interleaved,
    settle_time,
    spread,
    torch_step,
)
from fastgan.benchmarking.floor import measure_bandwidth, optimizer_bytes
from fastgan.benchmarking.provenance import machine
from fastgan.gan import presets

CASES = [("pytorch-vanilla", 100), ("numpy-mlp", 64), ("pytorch-vanilla", 512),
         ("pytorch-vanilla", 1024)]
DTYPE = "float32"
ROUNDS = int(os.environ.get("FASTGAN_BENCH_ROUNDS", "30"))
WARMUP = 3


def _threads() -> int:
    """One thread count for every contender, applied to BLAS and Numba here."""
    return threads.set_num_threads()


def _describe_machine() -> str:
    found = machine()
    return f"{found['cpu']}, {found['logical_cpus']} logical CPUs"


def _torch_step(case: Case, threads: int) -> Callable[[], None]:
    from fastgan.benchmarking.torch_peer import set_threads

    set_threads(threads)
    return torch_step(case, compile=False)


def _torch_unavailable() -> str | None:
    try:
        import fastgan.benchmarking.torch_peer  # noqa: F401
    except Exception as exc:  # missing module or BackendUnavailable (no torch)
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("preset,batch", CASES, ids=[f"{p}-b{b}" for p, b in CASES])
def test_train_step_side_by_side(benchmark, summary_rows, preset, batch):
    threads = _threads()
    case = Case(preset, batch, DTYPE)
    contenders = {"gemms": gemms_step(case),
                  "numba": fastgan_step("numba", case),
                  "numpy": fastgan_step("numpy", case)}
    torch_missing = _torch_unavailable()
    if torch_missing is None:
        contenders["torch eager"] = _torch_step(case, threads)
    seconds = interleaved(contenders, ROUNDS, WARMUP, settle_time())
    benchmark.pedantic(lambda: [run() for run in contenders.values()], rounds=1, iterations=1)

    ms = {name: spread(values)["median"] for name, values in seconds.items()}
    optimizer_ms = 1e3 * optimizer_bytes(presets.get(preset), 4) / measure_bandwidth(dtype=DTYPE)
    ms["floor"] = ms["gemms"] + optimizer_ms
    torch_ms = ms.get("torch eager")
    benchmark.extra_info.update({"threads": threads, "rounds": ROUNDS, "median_ms": ms,
                                 "torch": torch_missing or "eager"})
    summary_rows.append({"machine": f"{_describe_machine()}, {threads} threads", "table": {
        "preset": preset, "batch": str(batch),
        "floor": f"{ms['floor']:.2f}", "numba": f"{ms['numba']:.2f}",
        "numpy": f"{ms['numpy']:.2f}",
        "torch eager": f"{torch_ms:.2f}" if torch_ms else "n/a",
        "numba / floor": f"{ms['numba'] / ms['floor']:.2f}",
        "torch / numba": f"{torch_ms / ms['numba']:.2f}x" if torch_ms else "n/a",
        "numpy / numba": f"{ms['numpy'] / ms['numba']:.2f}x",
    }})
    if torch_missing:
        warnings.warn(f"PyTorch peer not measured: {torch_missing}", stacklevel=1)
