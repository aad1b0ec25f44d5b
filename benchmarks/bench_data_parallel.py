"""Data parallelism on one machine: 2 ranks x 1 thread against 1 rank x 2 threads and 1 rank x
1 thread, pytorch-vanilla (float32, numba backend) at global batch 200 and 1024.

For each global batch G the contenders are:

* ``1 rank x 1 thread`` and ``1 rank x 2 threads`` at batch G (what the processes replace);
* ``2 ranks x 1 thread`` at global batch G (local batch G/2), launched with ``mpiexec -n 2``;
* ``1 rank x 1 thread, batch G/2``: one of those ranks alone, the base of scaling efficiency.

Each contender is a fresh process (or pair) that trains ``--steps`` steps on a fixed batch after
``--warmup`` steps; rounds rotate the order of the contenders so load changes on the machine
hit them alike, and the figures are medians over the rounds. Reported: steps/s, samples/s
(global batch x steps/s), the share of the step rank 0 spends in the gradient all-reduces
(waiting for the other rank included), and

* scaling efficiency = samples/s of 2 ranks x 1 thread / (2 x samples/s of 1 rank x 1 thread at
  the same per-rank batch G/2); the goal is at least 85 %;
* processes against threads = samples/s of 2 ranks x 1 thread / samples/s of 1 rank x 2 threads
  at the same global batch; the goal is above 1.

Figures mean something only on an otherwise idle machine: the report gives the load average.
Run (needs ``pip install -e ".[mpi]"``)::

    python benchmarks/bench_data_parallel.py [--steps 200] [--rounds 3] [--json out.json]

Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from fastgan.benchmarking.bench import rotated_turns
from fastgan.benchmarking.provenance import provenance
from fastgan.benchmarking.timing import seconds_of

PRESET, BACKEND, DTYPE, DATA_DIM = "pytorch-vanilla", "numba", "float32", 784
BATCHES = (200, 1024)
RESULT = "RESULT "          # prefix of the worker's one line of JSON


class TimedAllreduce:
    """An all-reduce that adds the seconds it takes (waiting for other ranks included)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0

    def mean(self, buffer) -> None:
        self.seconds += seconds_of(lambda: self.inner.mean(buffer))


def worker(preset: str, batch: int, threads: int, steps: int, warmup: int) -> dict:
    """Train ``steps`` steps (after ``warmup``) on every rank of this launch; rank 0 returns
    the seconds they took and the seconds in all-reduces (None on other ranks)."""
    from fastgan import GAN
    from fastgan.distributed import world_size
    from fastgan.threads import set_num_threads

    set_num_threads(threads)
    ranks = world_size()
    gan = GAN.from_preset(preset, backend=BACKEND, dtype=DTYPE, batch_size=batch,
                          data_dim=DATA_DIM)
    rows = gan.k * batch // ranks
    real = gan.backend.asarray(np.random.default_rng(0).uniform(-1, 1, (rows, DATA_DIM)),
                               DTYPE)
    step, allreduce, barrier = gan.step, None, (lambda: None)
    if ranks > 1:
        from fastgan.distributed import DataParallel
        from fastgan.distributed.allreduce import HostAllreduce
        from fastgan.distributed.mpi import world

        comm = world()
        allreduce = TimedAllreduce(HostAllreduce(comm))
        step, barrier = DataParallel(gan, comm, allreduce=allreduce).step, comm.Barrier
    for _ in range(warmup):
        step(real)
    barrier()
    if allreduce is not None:
        allreduce.seconds = 0.0

    def train() -> None:
        for _ in range(steps):
            step(real)
        barrier()

    seconds = seconds_of(train)
    if ranks > 1 and comm.rank != 0:
        return {}
    return {"ranks": ranks, "threads": threads, "batch": batch, "steps": steps,
            "seconds": seconds, "allreduce_seconds": allreduce.seconds if allreduce else 0.0}


def contenders(batch: int) -> dict[str, tuple[int, int, int]]:
    """Name -> (ranks, threads per rank, global batch) for global batch ``batch``."""
    return {"1 rank x 1 thread": (1, 1, batch), "1 rank x 2 threads": (1, 2, batch),
            "2 ranks x 1 thread": (2, 1, batch),
            f"1 rank x 1 thread, batch {batch // 2}": (1, 1, batch // 2)}


def launch(ranks: int, threads: int, batch: int, options: argparse.Namespace) -> dict:
    """Run one contender in fresh processes; its worker's result."""
    command = [sys.executable, __file__, "--worker", "--preset", options.preset,
               "--batch", str(batch), "--threads", str(threads), "--steps", str(options.steps),
               "--warmup", str(options.warmup)]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
    environment = {**os.environ, "FASTGAN_NUM_THREADS": str(threads)}
    output = subprocess.run(command, capture_output=True, text=True, env=environment,
                            timeout=options.timeout, check=True).stdout
    return json.loads(next(line for line in output.splitlines()
                           if line.startswith(RESULT))[len(RESULT):])


def mpiexec() -> str:
    """The launcher of this environment's MPI (fastgan[mpi]), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("mpiexec not found: pip install -e '.[mpi]'")
    return found


def measure(options: argparse.Namespace) -> dict:
    """Every contender at every global batch, ``options.rounds`` rotated rounds: medians,
    after their provenance (command, commit, machine, date)."""
    results = {**provenance(), "preset": options.preset, "backend": BACKEND, "dtype": DTYPE,
               "steps": options.steps, "rounds": options.rounds,
               "load_average_before": os.getloadavg(), "batches": {}}
    for batch in options.batches:
        launches = {name: functools.partial(launch, *spec, options)
                    for name, spec in contenders(batch).items()}
        samples: dict[str, list[dict]] = {name: [] for name in launches}
        for name, launch_one in rotated_turns(launches, options.rounds):
            samples[name].append(launch_one())
        results["batches"][batch] = {name: summarise(found) for name, found in samples.items()}
    results["load_average_after"] = os.getloadavg()
    return results


def summarise(found: list[dict]) -> dict:
    """Medians over rounds: steps/s, samples/s (global), the all-reduce share of the step."""
    steps_per_s = statistics.median(f["steps"] / f["seconds"] for f in found)
    return {"ranks": found[0]["ranks"], "threads": found[0]["threads"],
            "batch": found[0]["batch"], "steps_per_s": steps_per_s,
            "samples_per_s": steps_per_s * found[0]["batch"],
            "allreduce_share": statistics.median(f["allreduce_seconds"] / f["seconds"]
                                                 for f in found)}


def report(results: dict) -> str:
    """The results as Markdown tables, one per global batch, with the two goals."""
    lines = [f"{results['preset']}, {results['dtype']}, {results['backend']} backend, "
             f"{results['steps']} steps per run, median of {results['rounds']} rotated rounds; "
             f"load average before {_load(results['load_average_before'])}, after "
             f"{_load(results['load_average_after'])}"]
    for batch, rows in results["batches"].items():
        lines += ["", f"global batch {batch}", "",
                  "| contender | steps/s | samples/s | all-reduce share |", "|---|---|---|---|"]
        for name, row in rows.items():
            lines.append(f"| {name} | {row['steps_per_s']:.1f} | {row['samples_per_s']:.0f} | "
                         f"{row['allreduce_share']:.0%} |")
        two = rows["2 ranks x 1 thread"]["samples_per_s"]
        half = rows[f"1 rank x 1 thread, batch {int(batch) // 2}"]["samples_per_s"]
        threads = rows["1 rank x 2 threads"]["samples_per_s"]
        lines += ["", f"scaling efficiency (goal >= 85 %): {two / (2 * half):.0%}; "
                      f"2 ranks x 1 thread / 1 rank x 2 threads (goal > 1): {two / threads:.2f}"]
    return "\n".join(lines)


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per launch")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        result = worker(options.preset, options.batch, options.threads, options.steps,
                        options.warmup)
        if result:
            print(RESULT + json.dumps(result), flush=True)
        return
    results = measure(options)
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))


if __name__ == "__main__":
    main()
