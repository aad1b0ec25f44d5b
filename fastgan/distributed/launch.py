"""Was this process started by an MPI launcher, and as which of how many? Read from the
environment alone, so that a process nobody launched never imports mpi4py.

Each launcher tells its processes their number and rank in environment variables:

======================================  ==============================  ====================
launcher                                size                            rank
======================================  ==============================  ====================
MPICH / Intel MPI ``mpiexec`` (Hydra),  ``PMI_SIZE``                    ``PMI_RANK``
``srun --mpi=pmi2``
Open MPI ``mpirun`` / ``mpiexec``       ``OMPI_COMM_WORLD_SIZE``        ``OMPI_COMM_WORLD_RANK``
PMIx launchers (``prterun``,            (none: the size comes from      ``PMIX_RANK``
``srun --mpi=pmix``)                    MPI once started)
Slurm ``srun`` (any plugin)             ``SLURM_STEP_NUM_TASKS``        ``SLURM_PROCID``
======================================  ==============================  ====================

(Checked with MPICH 5 and Open MPI 5 from PyPI; the Slurm names are from its documentation.)
``SLURM_NTASKS`` is not used: a batch script has it too, without being one of the tasks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


@dataclass(frozen=True)
class Launch:
    """What the environment says of this process: its rank and the number of processes
    (each ``None`` when the launcher does not say; MPI will know)."""

    rank: int | None
    size: int | None
    variable: str
    """The variable that revealed the launcher (for messages)."""


def detect(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch this process is part of, or None when no MPI launcher started it."""
    environ = os.environ if environ is None else environ
    size_name = next((name for name in SIZE_VARIABLES if name in environ), None)
    rank_name = next((name for name in RANK_VARIABLES if name in environ), None)
    if size_name is None and rank_name is None:
        return None
    return Launch(rank=_integer(environ, rank_name), size=_integer(environ, size_name),
                  variable=size_name or rank_name)


def is_parallel(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a launcher started this process as one of several (or of a number only MPI
    knows)."""
    launch = detect(environ)
    return launch is not None and launch.size != 1


def _integer(environ: Mapping[str, str], name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return int(environ[name])
    except ValueError:
        return None
