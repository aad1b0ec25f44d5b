"""The all-reduce of a data-parallel step alone: MPI ``Allreduce`` (sum, in place) of a float32
buffer as large as both networks' flat gradients of a preset, after a barrier, so that the
figure is the transfer without waiting for a slower rank.

    mpiexec -n 2 python benchmarks/bench_allreduce.py [--preset pytorch-vanilla] [--repeats 30]

Rank 0 prints the median time and the algorithmic bandwidth (bytes / time). Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse

import numpy as np
from mpi4py import MPI

from fastgan import GAN
from fastgan.benchmarking.timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pytorch-vanilla")
    parser.add_argument("--repeats", type=int, default=30)
    options = parser.parse_args()
    gan = GAN.from_preset(options.preset, backend="numpy", dtype="float32", seed=0)
    size = gan.generator.params.data.size + gan.discriminator.params.data.size
    buffer = np.ones(size, np.float32)
    comm = MPI.COMM_WORLD
    median = median_seconds(lambda: comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM),
                            options.repeats, warmup=3, before=comm.Barrier)
    if comm.rank == 0:
        print(f"{options.preset}: {size:,} float32 ({buffer.nbytes / 1e6:.1f} MB) on "
              f"{comm.size} ranks: median {median * 1e3:.2f} ms, "
              f"{buffer.nbytes / median / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
