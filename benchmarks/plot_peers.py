"""Steps/s against threads for every contender of the [cpu-peers] runs (numba, numba scheduled
with ``--schedule``, PyTorch eager, torch.compile, JAX), the floor and the graph floor (runs
that measured it), one panel per case, from the JSON files ``fastgan bench`` wrote at 1 and 2
threads (``benchmarks/results/bench-2core-RUNS-threads{1,2}-KERNEL-*.json``; RUNS ``peers``
unless given).

    python benchmarks/plot_peers.py default docs/images/peers-2core-default.png
    python benchmarks/plot_peers.py default docs/images/scheduled-2core-default.png scheduled
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastgan.benchmarking.bench import plot_scaling

RESULTS = Path(__file__).parent / "results"


def main(kernel: str, out: Path, runs: str = "peers") -> None:
    """Plot the ``runs`` files of OpenBLAS kernel ``kernel`` ("default" or "haswell") into
    ``out``."""
    cases: dict[str, list[dict]] = {}
    for threads in (1, 2):
        for path in sorted(RESULTS.glob(f"bench-2core-{runs}-threads{threads}-{kernel}-*.json")):
            for result in json.loads(path.read_text())["results"]:
                key = f"{result['preset']} b{result['batch']}"
                cases.setdefault(key, []).append({**result, "x": threads})
    for key, rows in cases.items():
        drawn = plot_scaling(out.with_name(f"{out.stem}-{key.replace(' ', '-')}.png"),
                             {"threads": rows})
        print(drawn)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:4])
