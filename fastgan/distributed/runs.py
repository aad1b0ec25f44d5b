"""A run folder trained by every rank: what ``mpiexec -n N fastgan train`` does before it trains.

Every rank opens the run (:class:`fastgan.runs.folder.Run`) from its own command line; rank
0's is the primary, the only one to read and write the folder. Everything that can fail is
checked on every rank before anything is written, so a failure leaves no half-written folder:

1. the GPU of each rank, when the run is on the cupy backend (before the model is built);
2. the run, opened by rank 0 first (it checks the folder and may download the data), then by
   the others;
3. one configuration on every rank: a hash of the settings, the data and the model;
4. the data-parallel trainer (the batch must be divisible by the number of ranks; rank 0's
   state, or its checkpoint when resuming, copied to every rank);

and only then does rank 0 write the folder, recording the number of processes and both batch
sizes in config.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..backends import available_backends
from ..runs.folder import Run, TrainConfig, read_config
from .data_parallel import DataParallel
from .devices import use_local_gpu
from .mpi import AgreedError, agree, same_on_every_rank


def open_run(comm: Any, *, config: TrainConfig | None = None, folder: Path | None = None,
             resume: Path | None = None,
             changes: Mapping[str, Any] | None = None) -> tuple[Run, DataParallel]:
    """Start a new run (``config``, in ``folder``) or resume the one in ``resume`` (with
    ``changes``) on every rank of ``comm`` together; returns this rank's run and its
    data-parallel trainer (replaying CUDA graphs as the run's ``graph`` setting says), the
    folder written. Any failure is an :class:`~fastgan.distributed.mpi.AgreedError` on
    every rank."""
    primary = comm.rank == 0
    record = None
    if resume is not None:
        record = comm.bcast(agree(comm, lambda: read_config(resume) if primary else None),
                            root=0)
    backend = record["backend"] if record is not None else config.backend
    _choose_gpus(comm, backend)

    def open_here() -> Run:
        if resume is None:
            return Run.start(config, folder, primary=primary, world_size=comm.size)
        return Run.resume(resume, changes, primary=primary, record=record,
                          world_size=comm.size)

    run = agree(comm, open_here, root_first=True)
    gan = run.gan
    same_on_every_rank(comm, {"config": run.config.to_json(), "data": run.dataset.sha256,
                              "model": gan.config.to_json(),
                              "backend": gan.backend.name, "dtype": gan.dtype.name,
                              "fastgan": __version__},
                       "run's configuration (preset, data, settings or fastgan version)")
    trainer = agree(comm, lambda: DataParallel(gan, comm, graph=run.config.graph))
    if resume is not None:
        if comm.bcast(run.checkpoint_path.exists() if primary else None, root=0):
            trainer.restore(run.checkpoint_path)
        else:
            run.start_over()
    agree(comm, lambda: run.write_folder() if primary else None)
    return run, trainer


def _choose_gpus(comm: Any, backend: str) -> None:
    """Give each rank its GPU when the run is on the cupy backend (on every rank or none)."""
    on_gpu = backend == "cupy" or (backend == "auto" and available_backends()["cupy"] is None)
    everywhere = comm.allgather(on_gpu)
    if all(everywhere):
        use_local_gpu(comm)
    elif any(everywhere):
        cpu_only = [rank for rank, gpu in enumerate(everywhere) if not gpu]
        raise AgreedError(f"the backend ({backend}) resolves to cupy on some ranks but not on "
                          f"rank(s) {', '.join(map(str, cpu_only))}, which cannot run cupy; "
                          "choose --backend explicitly")
