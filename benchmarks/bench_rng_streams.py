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

from fastgan import threads
from fastgan.backends.numba_backend import NumbaBackend
from fastgan.benchmarking.bench import (
    GEMMS,
    Case,
    alternating_windows,
    fastgan_step,
    gemms_step,
    paired_rounds,
    quartiles,
    settle_time,
)
from fastgan.benchmarking.floor import measure_bandwidth
from fastgan.benchmarking.provenance import provenance

STREAMS = ("philox", "pcg64")


def measure(case: Case, rounds: int, window: float, warmup: int = 3,
            thread_count: int = 1) -> dict[str, Any]:
    """``fastgan bench --windows`` figures of numba drawing each stream (contenders named by
    the stream), and Philox's speed-up over PCG64 round by round (``philox_speedup``), after
    their provenance (command, commit, machine, date)."""
    contenders = {GEMMS: gemms_step(case),
                  **{s: fastgan_step(NumbaBackend(rng=s), case) for s in STREAMS}}
    seconds = alternating_windows(contenders, rounds, window, warmup, settle_time())
    result = paired_rounds(case, seconds, window,
                           measure_bandwidth(dtype=case.dtype, threads=thread_count))
    speedup = [p / x for p, x in zip(seconds["pcg64"], seconds["philox"], strict=True)]
    return {**provenance(), **result, "threads": thread_count,
            "philox_speedup": quartiles(speedup)}


def report(result: dict[str, Any]) -> str:
    """One line per stream and the speed-up, medians [quartiles] over the rounds."""
    lines = [f"{result['preset']} b{result['batch']} {result['dtype']}, {result['threads']} "
             f"thread(s), {len(result['rounds'])} rounds of {result['window_s']} s windows:"]
    for stream in STREAMS:
        q = result["pct_floor"][stream]
        steps = statistics.median(row["contenders"][stream]["steps_per_s"]
                                  for row in result["rounds"])
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
