"""DataParallel: one GAN trained by many processes (MPI ranks), each on its share of every batch.

    gan = fastgan.GAN.from_preset("tiny", data_dim=2, seed=0)   # on every rank, alike
    dp = fastgan.distributed.DataParallel(gan)                  # MPI.COMM_WORLD
    dp.fit(fastgan.data.ring(), epochs=5)                       # mpiexec -n 4 python train.py

Semantics:

* **Batches.** ``gan.batch_size`` is the *global* batch B, the one a single process would
  train on; each of the W ranks trains on B/W rows of it (the local batch; W must divide B).
  Every rank holds the whole dataset and orders each epoch from the same seed, then takes its
  own contiguous share of every global batch: rank r takes rows r B/W to (r+1) B/W of each
  discriminator step's batch (see :class:`fastgan.training.loop.Shard`).
* **Randomness.** Each rank draws its noise and dropout masks from its own streams, derived
  from the GAN's seed and the rank; rank 0 keeps the GAN's own streams, so that one rank
  trains exactly as ``GAN.fit`` does.
* **The step.** Each discriminator step computes D's gradients on the rank's real rows and as
  many fakes, then takes **one all-reduce (mean) of D's flat gradient buffer**; every rank
  applies the same optimizer update to the same parameters, so the replicas stay identical.
  The generator step is the same with one all-reduce of G's buffer. The mean over the ranks
  of each rank's mean loss is the mean loss over the global batch, so W ranks at local batch
  b take the steps one process takes at batch W b, up to rounding and to the noise drawn.
* **Statistics** (losses, D outputs) are averaged over the ranks only when they are read: at
  log points, not every step.
* **Batch norm** normalises with each process's own batch statistics (as PyTorch's
  DistributedDataParallel); each rank keeps its own running statistics, and sampling and
  checkpoints use rank 0's.
* **Checkpoints** (:meth:`DataParallel.save`): rank 0 writes one replica plus every rank's
  random streams. Restoring with as many ranks continues bit for bit; with another number,
  training continues with a warning that the random streams differ from an uninterrupted run.
* **Stopping.** A stop asked on any rank (``request_stop``; Ctrl-C in ``fastgan train``)
  takes effect on every rank at the next log point, agreed through a tiny all-reduce. A NaN on
  any rank reaches every rank's averaged statistics and parameters, so every rank raises
  TrainingDiverged at the same log point. Any other exception on a rank ends every rank
  (``MPI_Abort``, see :func:`fastgan.distributed.mpi.failing_fast`): no rank waits forever.
* **GPUs.** With the cupy backend each rank drives one GPU (call
  :func:`fastgan.distributed.devices.use_local_gpu` before building the GAN) and the
  gradients are all-reduced by NCCL on the GPUs; without NCCL they go through host memory.
  With ``graph=True`` each step is replayed as one CUDA graph, the NCCL all-reduces inside.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import ConfigError, TrainingDiverged
from ..gan.cuda_graph import GraphedStep, capture_refusal
from ..gan.model import GAN, stats_record
from ..gan.streams import STEP_STREAMS
from ..training import checkpoint
from ..training.loop import DEFAULT_LOG_EVERY, Callback, History, Shard, TrainingLoop
from .allreduce import Allreduce, HostAllreduce, NcclAllreduce, StagedAllreduce
from .devices import nccl_communicator
from .mpi import agree, failing_fast, import_mpi, same_on_every_rank, world

RANK_KEY = 0x72616E6B
"""Spawn-key entry ("rank" in ASCII) under which each rank's streams derive from the seed."""


def gradient_allreduce(comm: Any, backend: Backend) -> Allreduce:
    """How gradients on ``backend`` are averaged over ``comm``: MPI on host arrays; NCCL on
    GPU arrays, or MPI through host memory where a rank lacks NCCL."""
    if backend.xp is np:
        return HostAllreduce(comm)
    communicator = nccl_communicator(comm) if backend.name == "cupy" else None
    if communicator is None:
        return StagedAllreduce(comm, backend)
    return NcclAllreduce(communicator, comm.size)


class DivergedOnEveryRank(TrainingDiverged):
    """Divergence found in statistics and parameters that every rank shares: every rank
    raises it at the same step."""


class ParallelLoop(TrainingLoop):
    """The training loop on one rank: its shard of every batch; a stop asked on any rank takes
    effect on every rank at the next log point; divergence is found on every rank at once."""

    stepper: DataParallel

    def __init__(self, trainer: DataParallel, dataset: Any, **options: Any) -> None:
        super().__init__(trainer.gan, dataset, shard=trainer.shard, stepper=trainer, **options)
        self.stop_asked = False

    def request_stop(self) -> None:
        """Ask for a stop (safe in a signal handler); every rank stops at the next log point."""
        self.stop_asked = True

    def log(self) -> dict[str, Any]:
        """Agree whether any rank asked to stop, then log as a single process does."""
        if self.stepper.any_rank(self.stop_asked):
            self.stop_requested = True
        return super().log()

    def checked_stats(self) -> dict[str, float]:
        """The ranks' averaged statistics, checked as a single process checks its own."""
        try:
            return super().checked_stats()
        except TrainingDiverged as exc:
            raise DivergedOnEveryRank(str(exc)) from None


class SharedNoise:
    """For tests: every rank draws the noise of the whole global batch from one stream and
    keeps its share of the rows, so W ranks see exactly the noise one process at the global
    batch sees (the streams of all ranks must start alike)."""

    def __init__(self, rng: Any, shard: Shard, backend: Backend) -> None:
        self.rng, self.shard, self.backend = rng, shard, backend
        self._whole: dict[tuple[int, ...], Any] = {}

    def normal(self, out: Any) -> None:
        """Fill ``out`` with this rank's rows of a global N(0, 1) draw."""
        whole = self._draw_whole(out)
        self.rng.normal(whole)
        self._keep_share(whole, out)

    def uniform(self, out: Any, low: float = -1.0, high: float = 1.0) -> None:
        """Fill ``out`` with this rank's rows of a global U[low, high) draw."""
        whole = self._draw_whole(out)
        self.rng.uniform(whole, low, high)
        self._keep_share(whole, out)

    def _draw_whole(self, out: Any) -> Any:
        shape = (out.shape[0] * self.shard.count, *out.shape[1:])
        if shape not in self._whole:
            self._whole[shape] = self.backend.empty(shape, out.dtype)
        return self._whole[shape]

    def _keep_share(self, whole: Any, out: Any) -> None:
        rows = out.shape[0]
        self.backend.copy(whole[self.shard.index * rows:(self.shard.index + 1) * rows], out)

    def get_state(self) -> dict:
        """The shared stream's state."""
        return self.rng.get_state()

    def set_state(self, state: dict) -> None:
        """Restore the shared stream's state."""
        self.rng.set_state(state)


class DataParallel:
    """``gan`` trained by every rank of ``comm`` (default ``MPI.COMM_WORLD``), each on its
    share of every batch, with one gradient all-reduce per network per step (see the module
    docstring for the semantics).

    Every rank makes its own DataParallel of its own copy of the GAN, built alike (same preset,
    sizes and dtype; a different architecture on any rank is an error on every rank). Making
    it copies rank 0's whole training state to every rank. It trains with the loop, monitors
    and checkpoints of a single process: :meth:`fit` takes the arguments of ``GAN.fit``.

    It wraps what steps the GAN: the GAN itself (eager), or its
    :class:`~fastgan.gan.cuda_graph.GraphedStep` (``DataParallel(GraphedStep(gan))``, or
    ``graph=True``: cupy backend, NCCL, device random generator), which replays each step as
    one CUDA graph with the two NCCL all-reduces inside it (``graph=None``: wherever that
    can run). Either way the all-reduce mean is the step's gradient hook
    (``GAN.step(batch, gradient_hook=...)``).
    ``allreduce`` replaces the averaging of gradients (default: :func:`gradient_allreduce`);
    ``shared_noise`` is for tests: every rank draws the same global noise and keeps its rows
    (:class:`SharedNoise`), so that W ranks see the inputs of one process at the global batch.
    """

    def __init__(self, gan: GAN | GraphedStep, comm: Any = None, *, graph: bool | None = False,
                 allreduce: Allreduce | None = None, shared_noise: bool = False) -> None:
        wrapped = gan
        gan = wrapped.gan if isinstance(wrapped, GraphedStep) else wrapped
        self.gan = gan
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.rank, self.comm.size
        self._mpi = import_mpi()
        agree(self.comm, self._check_batch)
        self._check_same_model()
        self.shard = Shard(self.rank, self.size)
        self.allreduce = gradient_allreduce(self.comm, gan.backend) if allreduce is None \
            else allreduce
        on_nccl = isinstance(self.allreduce, NcclAllreduce)
        if isinstance(wrapped, GraphedStep):
            graph = True
        elif graph is None:
            graph = on_nccl and capture_refusal(gan) is None
        if graph and not on_nccl:
            raise ConfigError("a CUDA graph needs gradients all-reduced by NCCL on the GPUs "
                              "(the cupy backend and cupy.cuda.nccl on every rank); this run "
                              f"averages them with {type(self.allreduce).__name__}")
        self.inner = gan.graphed() if graph and wrapped is gan else wrapped
        self.gradient_mean = self.allreduce.mean
        self._stats = np.zeros(len(gan.stats), np.float64)
        self._broadcast_state()
        if shared_noise:
            gan.draw_training_noise_from(SharedNoise(gan.noise_rng, self.shard, gan.backend))
        else:
            self._derive_streams()

    # ------------------------------------------------------------------ start-up
    def _check_batch(self) -> None:
        if self.gan.batch_size % self.size:
            raise ConfigError(
                f"the batch size {self.gan.batch_size} cannot be shared by {self.size} "
                "processes: each trains on batch size / processes rows, so choose a batch "
                f"size divisible by {self.size}")

    def _check_same_model(self) -> None:
        gan = self.gan
        description = {"model": gan.config.to_json(), "backend": gan.backend.name,
                       "dtype": gan.dtype.name}
        same_on_every_rank(self.comm, description, "model (architecture, optimizers, "
                            "batch size, backend or dtype)")

    def _broadcast_state(self) -> None:
        """Copy rank 0's whole training state (arrays and counters) to every rank."""
        gan, backend = self.gan, self.gan.backend
        for array in checkpoint.state_arrays(gan).values():
            host = np.ascontiguousarray(backend.to_numpy(array))
            self.comm.Bcast(host, root=0)
            backend.copy(host, array)
        progress = checkpoint.progress(gan) if self.rank == 0 else None
        checkpoint.set_progress(gan, self.comm.bcast(progress, root=0))

    def _streams(self) -> dict[str, Any]:
        """This rank's own random streams, by name."""
        streams = self.gan.random_streams()
        return {name: streams[name] for name in STEP_STREAMS}

    def _derive_streams(self) -> None:
        """Ranks other than 0 start their streams from the GAN's seed and their rank."""
        if self.rank == 0:
            return
        seed = self.gan.data_order.seed
        rank_seed = np.random.SeedSequence(seed.entropy,
                                           spawn_key=(*seed.spawn_key, RANK_KEY, self.rank))
        children = rank_seed.spawn(len(STEP_STREAMS))
        for stream, child in zip(self._streams().values(), children, strict=True):
            stream.set_state(self.gan.backend.rng(child).get_state())

    # ------------------------------------------------------------------ training
    @property
    def local_batch(self) -> int:
        """Rows of each discriminator step's batch this rank trains on."""
        return self.gan.batch_size // self.size

    def step(self, local_batch: Any) -> None:
        """One training step on this rank's k x local-batch rows (every rank calls it
        together): the wrapped step, each optimizer update preceded by the all-reduce mean of
        its network's gradients."""
        self.inner.step(local_batch, gradient_hook=self.gradient_mean)

    def last_stats(self) -> dict[str, float]:
        """The last step's losses and mean D outputs, averaged over the ranks (every rank
        calls it together)."""
        self._stats[:] = self.gan.backend.to_numpy(self.gan.stats)
        self.comm.Allreduce(self._mpi.IN_PLACE, self._stats, op=self._mpi.SUM)
        self._stats /= self.size
        return stats_record(self._stats)

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank calls it together)."""
        return bool(self.comm.allreduce(int(bool(flag)), op=self._mpi.MAX))

    def fit(self, dataset: Any, *, epochs: int | None = None, steps: int | None = None,
            callbacks: Iterable[Callback] = (), log_every: int = DEFAULT_LOG_EVERY,
            sampling: str = "epoch") -> History:
        """Train as ``GAN.fit`` does, on every rank together, each on its shard of every
        batch. Every rank passes the same dataset (checked) and arguments; callbacks that
        write (metrics, pictures) belong on rank 0 only, while :class:`Checkpoints
        <fastgan.training.monitors.Checkpoints>` goes on every rank (it saves through
        :meth:`save`)."""
        host = np.asarray(getattr(dataset, "x", dataset))
        content = getattr(dataset, "sha256", None) or hashlib.sha256(
            np.ascontiguousarray(host).data).hexdigest()
        same_on_every_rank(self.comm, {"shape": list(host.shape), "data": content}, "data")
        loop = ParallelLoop(self, dataset, callbacks=callbacks, log_every=log_every,
                            sampling=sampling)
        with failing_fast(self.comm, agreed=(DivergedOnEveryRank,)):
            return loop.run(epochs=epochs, steps=steps)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike[str], *,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint of rank 0's replica, with every rank's random streams and the
        caller's ``extra`` (every rank calls it together; rank 0 writes); a failure to write
        is an error on every rank. ``fastgan.load`` reads the file as any checkpoint."""
        states = self.comm.gather({name: stream.get_state()
                                   for name, stream in self._streams().items()}, root=0)

        def write() -> Path:
            if self.rank != 0:
                return Path(path)
            record = {"world_size": self.size, "rank_streams": states}
            return self.gan.save(path, extra={**(extra or {}), checkpoint.DATA_PARALLEL: record})

        return agree(self.comm, write)

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Load the checkpoint at ``path`` (read by rank 0 only) into every rank: the replica,
        and each rank's random streams when the checkpoint was written by as many ranks
        (otherwise a warning: the streams restart from the seed)."""
        def read() -> dict[str, Any] | None:
            if self.rank != 0:
                return None
            stored = checkpoint.read(path)
            checkpoint.restore(self.gan, stored)
            return stored.metadata

        saved = self.comm.bcast(agree(self.comm, read), root=0)
        self._broadcast_state()
        self._derive_streams()
        if checkpoint.same_processes(saved, self.size) and self.size > 1:
            streams = saved["extra"][checkpoint.DATA_PARALLEL]["rank_streams"][self.rank]
            for name, stream in self._streams().items():
                stream.set_state(streams[name])

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, noise: np.ndarray | None = None, *,
               labels: Any = None) -> np.ndarray:
        """``n`` samples from this rank's replica (see ``GAN.sample``)."""
        return self.gan.sample(n, noise, labels=labels)

    def __repr__(self) -> str:
        return f"DataParallel({self.gan!r}, rank {self.rank} of {self.size})"

