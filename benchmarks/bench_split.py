"""Each GEMM of a training step on T threads, three ways: whole on one thread, cut into T
blocks side by side (BLAS on one thread each, as the scheduled step cuts a product), and whole
on BLAS's own pool of T threads; which is fastest, and the least work at which cutting wins
(what ``fastgan.backends.scheduled.DEFAULT_SPLIT_MIN_FLOPS`` guesses). Beside them, T copies
of the GEMM side by side (T times the work) and the speed-up they give over one thread: what
the T threads deliver together (T at best).

    PYTHONPATH=. python benchmarks/bench_split.py pytorch-vanilla 100 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastgan.benchmarking.floor import COPIES, WAYS, gemm_operands, gemm_times, step_gemms
from fastgan.benchmarking.provenance import provenance
from fastgan.fileio import write_atomically
from fastgan.gan import presets


def measure(preset: str, batch: int, threads: int, repeats: int, dtype: str = "float32"
            ) -> list[dict]:
    """One row per GEMM of the step: its shape, flops, microseconds each way and for the T
    copies, and the copies' speed-up (T x one thread's time over theirs)."""
    config = presets.get(preset, batch_size=batch)
    gemms = step_gemms(config, batch)
    times = gemm_times(gemm_operands(config, batch, dtype), threads, repeats)
    return [{"role": g.role, "m": g.m, "n": g.n, "k": g.k, "flops": g.flops,
             **{way: 1e6 * times[way][i] for way in (*WAYS, COPIES)},
             "copies_speedup": threads * times["one_thread"][i] / times[COPIES][i]}
            for i, g in enumerate(gemms)]


def report(rows: list[dict]) -> str:
    """The rows as a Markdown table, the fastest way of each, and where cutting starts to win."""
    lines = ["| GEMM | m | n | k | MFLOP | " + " | ".join(f"{w} us" for w in WAYS)
             + " | fastest | T copies us | copies' speed-up |", "|" + "---|" * (len(WAYS) + 8)]
    for row in rows:
        fastest = min(WAYS, key=row.__getitem__)
        lines.append(f"| {row['role']} | {row['m']} | {row['n']} | {row['k']} | "
                     f"{row['flops'] / 1e6:.2f} | "
                     + " | ".join(f"{row[w]:.0f}" for w in WAYS) + f" | {fastest} | "
                     f"{row[COPIES]:.0f} | {row['copies_speedup']:.2f} |")
    wins = sorted(row["flops"] for row in rows
                  if row["side_by_side"] < min(row["one_thread"], row["blas_pool"]))
    lines.append("")
    lines.append("cutting is fastest from " + (f"{wins[0] / 1e6:.2f} MFLOP up" if wins
                                              else "no size measured"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset")
    parser.add_argument("batch", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = measure(args.preset, args.batch, args.threads, args.repeats)
    print(report(rows))
    if args.json is not None:
        text = json.dumps({**provenance(), "threads": args.threads, "gemms": rows}, indent=1)
        write_atomically(args.json, lambda file: file.write(text.encode()))


if __name__ == "__main__":
    main()
