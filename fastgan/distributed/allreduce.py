"""Averaging a flat gradient buffer over every rank, in place: the one collective of a step.

Each kind takes the sum over the ranks (an all-reduce) and scales it by 1/ranks, so every rank
ends with the same mean:

* :class:`HostAllreduce`: a host (NumPy, Numba) buffer, with MPI's ``Allreduce``;
* :class:`NcclAllreduce`: a GPU buffer, with NCCL (``cupy.cuda.nccl``) on the current CUDA
  stream: no host round trip, and over NVLink or InfiniBand where the machines have them;
* :class:`StagedAllreduce`: a GPU buffer without NCCL: copied to host memory, all-reduced
  there by MPI, copied back.

None of them allocates an array per call.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..backends.base import Backend
from .mpi import import_mpi


class Allreduce(Protocol):
    """What a data-parallel step needs: the mean over the ranks of a buffer, in place."""

    def mean(self, buffer: Any) -> None:
        """Replace ``buffer`` (on every rank) by its mean over the ranks."""


class HostAllreduce:
    """The mean of a host buffer over the ranks of ``comm``: one MPI all-reduce (sum) in
    place, then a scaling by 1/ranks."""

    def __init__(self, comm: Any) -> None:
        mpi = import_mpi()
        self.comm = comm
        self.scale = 1.0 / comm.size
        self._in_place, self._sum = mpi.IN_PLACE, mpi.SUM

    def mean(self, buffer: np.ndarray) -> None:
        """Replace ``buffer`` by its mean over the ranks."""
        self.comm.Allreduce(self._in_place, buffer, op=self._sum)
        np.multiply(buffer, self.scale, out=buffer)


class StagedAllreduce:
    """The mean of a device buffer over the ranks, through host memory: the buffer is copied
    to a host buffer kept per size, all-reduced there (:class:`HostAllreduce`), copied back."""

    def __init__(self, comm: Any, backend: Backend) -> None:
        self.host = HostAllreduce(comm)
        self.backend = backend
        self._staging: dict[tuple[int, str], np.ndarray] = {}

    def mean(self, buffer: Any) -> None:
        """Replace the device ``buffer`` by its mean over the ranks."""
        key = (buffer.size, np.dtype(buffer.dtype).str)
        staging = self._staging.get(key)
        if staging is None:
            staging = self._staging[key] = np.empty(buffer.shape, buffer.dtype)
        self.backend.download(buffer, staging)
        self.host.mean(staging)
        self.backend.copy(staging, buffer)


class NcclAllreduce:
    """The mean of a GPU buffer over the ranks with NCCL, on CuPy's current stream: one
    in-place ``ncclAllReduce`` (sum), then a scaling by 1/ranks (one elementwise kernel)."""

    def __init__(self, communicator: Any, ranks: int) -> None:
        import cupy
        from cupy.cuda import nccl

        self.cupy = cupy
        self.communicator = communicator
        self.scale = 1.0 / ranks
        self._sum = nccl.NCCL_SUM
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                       np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def mean(self, buffer: Any) -> None:
        """Replace the GPU ``buffer`` by its mean over the ranks."""
        stream = self.cupy.cuda.get_current_stream().ptr
        pointer = buffer.data.ptr
        self.communicator.allReduce(pointer, pointer, buffer.size, self._types[buffer.dtype],
                                    self._sum, stream)
        buffer *= self.scale
