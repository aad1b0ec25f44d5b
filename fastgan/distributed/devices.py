"""One GPU per process: which GPU a rank drives, and the NCCL communicator between them.

A machine runs some of the ranks (its *local* ranks, found with MPI's shared-memory split).
Local rank i drives GPU i when every process sees all the machine's GPUs; when the launcher
gave each process one GPU of its own (Slurm's ``--gpus-per-task=1`` sets
``CUDA_VISIBLE_DEVICES`` per task) each drives the one it sees. Two processes of a machine
driving the same GPU (fewer GPUs than processes) is an error: their GPU's PCI bus ids are
compared, so it is caught whatever the launcher did.

The GPU must be chosen before the CuPy backend is first made (it compiles its kernels on the
current device): call :func:`use_local_gpu` first, then build the GAN.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .mpi import agree, import_mpi


def device_for(local_rank: int, local_size: int, visible: int) -> int:
    """The index, among the ``visible`` GPUs, of the one local rank ``local_rank`` of
    ``local_size`` drives."""
    if visible < 1:
        raise ConfigError("no GPU is visible to this process (check CUDA_VISIBLE_DEVICES)")
    if visible >= local_size:
        return local_rank
    if visible == 1:
        return 0      # one GPU per process, chosen by the launcher (checked by check_distinct)
    raise ConfigError(f"{local_size} processes run on this machine but they see {visible} "
                      f"GPUs: start at most {visible} processes per machine (one GPU each)")


def check_distinct(bus_ids: list[str], host: str) -> None:
    """Every local rank (in order) must drive a GPU of its own: ``bus_ids`` are their GPUs'
    PCI bus ids."""
    first: dict[str, int] = {}
    for local_rank, bus_id in enumerate(bus_ids):
        if bus_id in first:
            raise ConfigError(
                f"processes {first[bus_id]} and {local_rank} on {host} would share the GPU at "
                f"{bus_id}: there are fewer GPUs than processes on this machine; start at most "
                "one process per GPU")
        first[bus_id] = local_rank


def use_local_gpu(comm: Any) -> int:
    """Make this rank's GPU CuPy's current device (every rank of ``comm`` calls this
    together); returns its index. Too few GPUs is an error on every rank."""
    mpi = import_mpi()
    node = comm.Split_type(mpi.COMM_TYPE_SHARED)

    def choose() -> tuple[int, str]:
        import cupy

        runtime = cupy.cuda.runtime
        index = device_for(node.rank, node.size, runtime.getDeviceCount())
        cupy.cuda.Device(index).use()
        return index, runtime.deviceGetPCIBusId(index)

    index, bus_id = agree(comm, choose)
    bus_ids = node.allgather(bus_id)
    agree(comm, lambda: check_distinct(bus_ids, mpi.Get_processor_name()))
    return index


def nccl_communicator(comm: Any) -> Any | None:
    """An NCCL communicator over the ranks of ``comm``, one GPU each (the current devices),
    its unique id made on rank 0 and broadcast over MPI; None when NCCL is missing on any
    rank (the caller then stages gradients through host memory)."""
    def available() -> bool:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return False
        return bool(getattr(nccl, "available", False))

    if not all(comm.allgather(available())):
        return None
    from cupy.cuda import nccl

    unique_id = comm.bcast(nccl.get_unique_id() if comm.rank == 0 else None, root=0)
    return nccl.NcclCommunicator(comm.size, unique_id, comm.rank)
