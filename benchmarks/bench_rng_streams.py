"""What the random stream costs a numba training step: Philox (the default) against NumPy's
PCG64 (``NumbaBackend(rng="pcg64")``), beside the step's GEMMs, in alternating windows in one
process; each stream's step time as a % of the same round's floor, and Philox's speed-up over
PCG64 round by round.

    python benchmarks/bench_rng_streams.py pytorch-vanilla 100 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import numpy as np

from fastgan import threads
from fastgan.benchmarking.bench import (
    Case,
    alternating_windows,
    gemms_step,
    machine,
    quartiles,
    settle_time,
)
from fastgan.benchmarking.floor import measure_bandwidth, optimizer_bytes

STREAMS = ("philox", "pcg64")


def numba_step(case: Case, rng: str):
    """One numba training step drawing the stream ``rng``, on a fixed batch."""
    from fastgan import GAN
    from fastgan.backends.numba_backend import NumbaBackend

    gan = GAN.from_preset(case.preset, backend=NumbaBackend(rng=rng), dtype=case.dtype,
                          batch_size=case.batch)
    real = np.random.default_rng(0).uniform(-1, 1, (gan.k * case.batch, gan.data_dim))
    real = gan.backend.asarray(real, case.dtype)
    return lambda: gan.step(real)


def measure(case: Case, rounds: int, window: float, warmup: int = 3,
            thread_count: int = 1) -> dict[str, Any]:
    """Per-round floor and step times of both streams, the % of floor and the speed-up."""
    contenders = {"floor": gemms_step(case), **{s: numba_step(case, s) for s in STREAMS}}
    seconds = alternating_windows(contenders, rounds, window, warmup, settle_time())
    bandwidth = measure_bandwidth(dtype=case.dtype, threads=thread_count)
    optimizer_s = optimizer_bytes(case.build(), np.dtype(case.dtype).itemsize) / bandwidth
    floors = [gemm + optimizer_s for gemm in seconds.pop("floor")]
    pct_floor = {s: [100 * f / t for f, t in zip(floors, seconds[s], strict=True)]
                 for s in STREAMS}
    speedup = [p / x for p, x in zip(seconds["pcg64"], seconds["philox"], strict=True)]
    return {"preset": case.preset, "batch": case.batch, "dtype": case.dtype,
            "threads": thread_count, "window_s": window, "floor_s": floors,
            "step_s": seconds, "pct_floor": {s: quartiles(v) for s, v in pct_floor.items()},
            "philox_speedup": quartiles(speedup), "machine": machine()}


def report(result: dict[str, Any]) -> str:
    """One line per stream and the speed-up, medians [quartiles] over the rounds."""
    lines = [f"{result['preset']} b{result['batch']} {result['dtype']}, {result['threads']} "
             f"thread(s), {len(result['floor_s'])} rounds of {result['window_s']} s windows:"]
    for stream in STREAMS:
        q = result["pct_floor"][stream]
        steps = statistics.median(1 / s for s in result["step_s"][stream])
        lines.append(f"  numba {stream}: {q['median']:.1f} % of the floor "
                     f"[{q['q1']:.1f}, {q['q3']:.1f}], {steps:.1f} steps/s")
    q = result["philox_speedup"]
    lines.append(f"  Philox over PCG64, per round: {q['median']:.3f}x "
                 f"[{q['q1']:.3f}, {q['q3']:.3f}]")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset")
    parser.add_argument("batch", type=int)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    threads.set_num_threads(args.threads)
    result = measure(Case(args.preset, args.batch, args.dtype), args.rounds, args.window,
                     thread_count=args.threads)
    print(report(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
