"""Data-parallel training: one GAN on many processes (MPI, through mpi4py) and GPUs (NCCL),
one gradient all-reduce per network per step. See :mod:`.data_parallel` for the semantics.

May import: runs, evaluation, gan, training, nn, backends, environment and the leaves; only the
command line and the package root import it. mpi4py is imported on first use (with a clear
error naming the ``fastgan[mpi]`` extra when it is missing), never by ``import fastgan``.
"""

from __future__ import annotations

from typing import Any

from .data_parallel import DataParallel
from .devices import use_local_gpu
from .launch import detect, is_parallel
from .mpi import MPI_MISSING

__all__ = ["MPI_MISSING", "DataParallel", "detect", "is_parallel", "rank", "use_local_gpu",
           "world_size"]


def rank(comm: Any = None) -> int:
    """This process's rank in ``comm`` (default ``MPI.COMM_WORLD``); 0 in a process that no
    MPI launcher started (then mpi4py is not imported)."""
    if comm is None and not is_parallel():
        return 0
    from .mpi import world

    return (world() if comm is None else comm).rank


def world_size(comm: Any = None) -> int:
    """The number of processes in ``comm`` (default ``MPI.COMM_WORLD``); 1 in a process that
    no MPI launcher started (then mpi4py is not imported)."""
    if comm is None and not is_parallel():
        return 1
    from .mpi import world

    return (world() if comm is None else comm).size
