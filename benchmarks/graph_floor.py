"""The serial floor's GEMMs aside, the graph floor alone: each [cpu-peers] case's bound on any
schedule of its GEMMs on T threads (:func:`fastgan.benchmarking.floor.measure_graph_floor`) plus
the optimizers' traffic at the T-thread bandwidth, without the contenders ``fastgan bench``
times beside it.

    PYTHONPATH=. python benchmarks/graph_floor.py --threads 1 2 --json graph-floor.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fastgan.benchmarking.floor import measure_bandwidth, measure_graph_floor, optimizer_bytes
from fastgan.benchmarking.provenance import provenance
from fastgan.fileio import write_atomically
from fastgan.gan import presets
from fastgan.threads import set_num_threads

CASES = (("pytorch-vanilla", 100), ("pytorch-vanilla", 1024), ("fast-mlp", 44))


def measure(threads: int, repeats: int, dtype: str = "float32") -> dict[str, dict[str, float]]:
    """Every case's graph floor on ``threads`` threads: its terms and ``floor_ms``."""
    set_num_threads(threads)
    bandwidth = measure_bandwidth(dtype=dtype, threads=threads)
    rows = {}
    for name, batch in CASES:
        config = presets.get(name, batch_size=batch)
        row = measure_graph_floor(config, batch, threads, dtype, repeats)
        row["optimizer_ms"] = 1e3 * optimizer_bytes(config, np.dtype(dtype).itemsize) / bandwidth
        row["floor_ms"] = row["gemm_ms"] + row["optimizer_ms"]
        rows[f"{name} b{batch}"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {str(threads): measure(threads, args.repeats) for threads in args.threads}
    for threads, rows in result.items():
        for case, row in rows.items():
            print(f"{case}, {threads} thread(s): critical path {row['critical_path_ms']:.2f} ms, "
                  f"work {row['work_ms']:.2f} ms ({row['together_gflops']:.0f} GFLOP/s together)"
                  f", + optimizer {row['optimizer_ms']:.2f} ms = {row['floor_ms']:.2f} ms "
                  f"({1e3 / row['floor_ms']:.1f} steps/s)")
    if args.json is not None:
        text = json.dumps({**provenance(), "repeats": args.repeats, "threads": result}, indent=1)
        write_atomically(args.json, lambda file: file.write(text.encode()))


if __name__ == "__main__":
    main()
