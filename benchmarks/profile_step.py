"""Where a training step's milliseconds go, kernel by kernel, and what the threads do meanwhile.

Every backend kernel and random draw is wrapped in a timer (GEMMs by kind: ``forward``
``x W``, ``grad_weight`` ``x^T dy``, ``grad_input`` ``dy W^T``); what remains of the step is
the Python around them (layers, workspaces, optimizer bookkeeping). Beside the step, the same
GEMMs run back to back (the floor's list, :func:`fastgan.benchmarking.floor.gemm_operands`),
interleaved step by step with the step itself, so that the GEMMs inside the step can be
compared with the GEMMs alone in the same minute. Each thread's CPU time per step comes from
``/proc/self/task/*/schedstat`` (Linux): the BLAS worker's CPU time against the step's wall
time shows how much of the step its worker spins. Usage::

    PYTHONPATH=. python benchmarks/profile_step.py pytorch-vanilla 100 --backend numba --threads 2

On a busy machine, ``--threads 1 --clock cpu`` counts only the time the step's thread ran.
On a GPU, ``--backend cupy --clock gpu`` waits for the GPU around each kernel, so each one's
time is its own, launch to end (the synchronisations slow the step as a whole).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fastgan import GAN
from fastgan.backends.base import Backend, Rng
from fastgan.benchmarking.bench import spread
from fastgan.benchmarking.floor import gemm_operands, step_gemms
from fastgan.benchmarking.timing import seconds_of
from fastgan.environment import gemm_library
from fastgan.gan import presets
from fastgan.gan.streams import STEP_STREAMS

KERNELS = [name for name, value in vars(Backend).items()
           if callable(value) and not name.startswith("_")
           and name not in {"rng", "empty", "zeros", "asarray", "to_numpy", "all_finite",
                            "philox_fill",           # timed inside the draws below
                            "gemms", "gemms_on",     # hand their products to gemm, timed there
                            "side_by_side"}]         # runs the layers' slices, timed inside
DRAWS = ["normal", "uniform", "dropout_mask"]
GEMM_KINDS = {(False, False): "gemm forward", (True, False): "gemm grad_weight",
              (False, True): "gemm grad_input"}

def _gpu_clock() -> float:
    """The wall clock once the GPU has finished the work queued so far: each kernel is then
    timed from its launch to its end."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
    return time.perf_counter()


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time, "gpu": _gpu_clock}
clock = CLOCKS["wall"]


def _timed(totals: dict[str, float], counts: dict[str, int], name: str,
           function: Callable) -> Callable:
    @functools.wraps(function)
    def run(*args, **kwargs):
        start = clock()
        result = function(*args, **kwargs)
        totals[name] += clock() - start
        counts[name] += 1
        return result
    return run


def _timed_gemm(totals: dict[str, float], counts: dict[str, int], gemm: Callable) -> Callable:
    @functools.wraps(gemm)
    def run(a, b, out, trans_a=False, trans_b=False, accumulate=False):
        name = GEMM_KINDS.get((trans_a, trans_b), "gemm other")
        start = clock()
        gemm(a, b, out, trans_a, trans_b, accumulate)
        totals[name] += clock() - start
        counts[name] += 1
    return run


@contextlib.contextmanager
def _instrumented(gan: GAN, totals: dict[str, float], counts: dict[str, int]
                  ) -> Iterator[None]:
    """Within the block every kernel of ``gan``'s backend and every draw of its random streams
    is timed: attributes of the instances shadow their methods, and are removed at the end
    (the backend is shared by every GAN of the process)."""
    backend, shadowed = gan.backend, []
    for name in KERNELS:
        timed = _timed_gemm(totals, counts, backend.gemm) if name == "gemm" \
            else _timed(totals, counts, name, getattr(backend, name))
        setattr(backend, name, timed)
        shadowed.append((backend, name))
    streams: list[Rng] = [gan.random_streams()[name] for name in STEP_STREAMS]
    for stream in streams:
        for name in DRAWS:
            setattr(stream, name, _timed(totals, counts, f"rng.{name}", getattr(stream, name)))
            shadowed.append((stream, name))
    try:
        yield
    finally:
        for owner, name in shadowed:
            delattr(owner, name)


def thread_cpu_ns() -> dict[int, int]:
    """CPU time (ns) each thread of this process has run so far (empty off Linux)."""
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        return {}
    found = {}
    for task in tasks.iterdir():
        try:
            found[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return found


def profile(preset: str, batch: int, backend: str, steps: int, threads: int | None
            ) -> dict[str, Any]:
    """Median step time, each kernel's ms per step, the GEMMs back to back, and CPU ms per
    step of the main thread, of the threads that existed before the backend was built (the
    BLAS pool) and of those started later (Numba's pool)."""
    import fastgan.threads

    if backend == "numba" or threads:
        fastgan.threads.set_num_threads(threads)
    preset_spec = presets.get(preset, batch_size=batch)
    operands = gemm_operands(preset_spec, batch, "float32")
    np.matmul(*operands[0][:2], out=operands[0][2])          # BLAS pool started
    blas_threads = set(thread_cpu_ns())
    gan = GAN.from_preset(preset, backend=backend, dtype="float32", batch_size=batch)
    real = gan.backend.asarray(np.random.default_rng(0).uniform(-1, 1, (gan.k * batch,
                                                                         gan.data_dim)),
                               "float32")

    def gemms_alone() -> None:
        for a, b, c in operands:
            np.matmul(a, b, out=c)

    for _ in range(3):
        gan.step(real)
        gemms_alone()
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    step_seconds, gemm_seconds, step_cpu = [], [], defaultdict(int)
    main = threading.get_native_id()
    with _instrumented(gan, totals, counts):
        for _ in range(steps):
            gemm_seconds.append(seconds_of(gemms_alone))
            before = thread_cpu_ns()
            step_seconds.append(seconds_of(lambda: gan.step(real), clock))
            for tid, ns in thread_cpu_ns().items():
                role = "main" if tid == main else "blas pool" if tid in blas_threads \
                    else "numba pool"
                step_cpu[role] += ns - before.get(tid, 0)
    mean_ms = 1e3 * sum(step_seconds) / steps
    gemms_alone_ms = spread(gemm_seconds)["median"]
    flops = sum(g.flops for g in step_gemms(preset_spec, batch))
    return {"preset": preset, "batch": batch, "backend": backend,
            "threads": {"numba": fastgan.threads.get_num_threads()["numba"],
                        "numpy's blas": (gemm_library() or {}).get("threads")}, "steps": steps,
            "clock": next(name for name, function in CLOCKS.items() if function is clock),
            "step_ms": spread(step_seconds)["median"], "mean_ms": mean_ms,
            "kernels": {name: {"calls": counts[name] / steps, "ms": 1e3 * seconds / steps}
                        for name, seconds in sorted(totals.items(), key=lambda item: -item[1])},
            "other_ms": mean_ms - 1e3 * sum(totals.values()) / steps,
            "gemms_alone_ms": gemms_alone_ms, "gemm_gflops_alone": flops / gemms_alone_ms / 1e6,
            "cpu_ms_per_step": {role: ns / 1e6 / steps for role, ns in step_cpu.items()},
            "load_average": os.getloadavg()}


def report(result: dict[str, Any]) -> str:
    """The profile as text: kernel table, GEMMs in the step against alone, threads' CPU."""
    mean_ms = result["mean_ms"]
    lines = [f"{result['preset']} batch {result['batch']}, {result['backend']}, threads "
             f"{result['threads']}: median step {result['step_ms']:.2f} ms (mean {mean_ms:.2f} "
             f"ms, {result['steps']} steps, {result['clock']} clock, load "
             f"{result['load_average'][0]:.2f})",
             f"{'kernel':<22}{'calls/step':>11}{'ms/step':>10}{'share':>8}"]
    for name, row in result["kernels"].items():
        lines.append(f"{name:<22}{row['calls']:>11.0f}{row['ms']:>10.3f}"
                     f"{row['ms'] / mean_ms:>8.1%}")
    other = result["other_ms"]
    lines.append(f"{'python and the rest':<22}{'':>11}{other:>10.3f}{other / mean_ms:>8.1%}")
    in_step = sum(row["ms"] for name, row in result["kernels"].items() if name.startswith("gemm"))
    lines.append(f"GEMMs in the step {in_step:.2f} ms; the same GEMMs back to back "
                 f"{result['gemms_alone_ms']:.2f} ms ({result['gemm_gflops_alone']:.1f} GFLOP/s)")
    lines.append("CPU ms per step by thread: " + ", ".join(
        f"{role} {ms:.2f}" for role, ms in sorted(result["cpu_ms_per_step"].items())))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("batch", type=int)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: the calling thread's CPU time (use with --threads 1); "
                        "gpu: wall time with the GPU synchronised around each kernel")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    print(report(profile(args.preset, args.batch, args.backend, args.steps, args.threads)))


if __name__ == "__main__":
    main()
