"""Where a training step's milliseconds go, kernel by kernel.

Every backend kernel and random draw is wrapped in a timer; what remains of the step is the
Python around them (layers, workspaces, optimizer bookkeeping). Usage::

    PYTHONPATH=. python benchmarks/profile_step.py pytorch-vanilla 100 --backend numba

On a busy machine, ``--threads 1 --clock cpu`` counts only the time the step's thread ran.
On a GPU, ``--backend cupy --clock gpu`` waits for the GPU around each kernel, so each one's
time is its own, launch to end (the synchronisations slow the step as a whole).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from fastgan import GAN
from fastgan.backends.base import Backend, Rng

KERNELS = [name for name, value in vars(Backend).items()
           if callable(value) and not name.startswith("_")
           and name not in {"rng", "empty", "zeros", "asarray", "to_numpy", "all_finite"}]
DRAWS = ["normal", "uniform", "dropout_mask"]


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


def _instrument(gan: GAN, totals: dict[str, float], counts: dict[str, int]) -> None:
    backend = gan.backend
    for name in KERNELS:
        setattr(backend, name, _timed(totals, counts, name, getattr(backend, name)))
    streams: list[Rng] = [gan.noise_rng, gan.generator.dropout_rng, gan.discriminator.dropout_rng]
    for stream in streams:
        for name in DRAWS:
            setattr(stream, name, _timed(totals, counts, f"rng.{name}", getattr(stream, name)))


def profile(preset: str, batch: int, backend: str, steps: int, threads: int | None) -> None:
    """Print the median step time and each kernel's share of it."""
    if backend == "numba" or threads:
        from fastgan.threads import set_num_threads
        set_num_threads(threads)
    gan = GAN.from_preset(preset, backend=backend, dtype="float32", batch_size=batch)
    real = gan.backend.asarray(np.random.default_rng(0).uniform(-1, 1, (gan.k * batch,
                                                                         gan.data_dim)),
                               "float32")
    for _ in range(3):
        gan.step(real)
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    step_seconds = []
    _instrument(gan, totals, counts)
    for _ in range(steps):
        start = clock()
        gan.step(real)
        step_seconds.append(clock() - start)
    step_ms = 1e3 * statistics.median(step_seconds)
    mean_ms = 1e3 * sum(step_seconds) / steps
    print(f"{preset} batch {batch}, {backend}: median step {step_ms:.2f} ms "
          f"(mean {mean_ms:.2f} ms, {steps} steps)")
    print(f"{'kernel':<22}{'calls/step':>11}{'ms/step':>10}{'share':>8}")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        ms = 1e3 * seconds / steps
        print(f"{name:<22}{counts[name] / steps:>11.0f}{ms:>10.3f}{ms / mean_ms:>8.1%}")
    other = mean_ms - 1e3 * sum(totals.values()) / steps
    print(f"{'python and the rest':<22}{'':>11}{other:>10.3f}{other / mean_ms:>8.1%}")


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
    profile(args.preset, args.batch, args.backend, args.steps, args.threads)


if __name__ == "__main__":
    main()
