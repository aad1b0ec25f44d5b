"""What each rank runs in the data-parallel tests (``mpiexec -n 2 python distributed_worker.py
CHECK``); test_distributed.py launches it and reads its exit status and output.

Checks:

* ``equivalence OPTIMIZER K [--plant sum] [--conditional]``: 2 ranks at local batch B against
  1 process at batch 2B, step by step for 20 steps of a small float64 GAN (dropout off, the
  same global noise on every rank): the worst parameter difference must be at most 1e-10.
  ``--plant sum`` replaces the mean of the gradients by their sum, a bug the check must
  catch. ``--conditional`` makes the GAN conditional on the ring's 8 modes (labels in every
  row's last columns, fake classes from the shared noise).
* ``replicas``: dropout on and each rank's own noise; after 30 steps every rank's flat buffers
  have the same checksum, while the noise the ranks drew differs.
* ``resume PATH [--plant]``: 20 steps in one go against 10 steps, a checkpoint at PATH and 10
  more steps in a fresh trainer restored from it (dropout on, each rank's own noise): the
  parameters must agree bit for bit. ``--plant`` restores only rank 0's random streams, which
  the check must catch.
* ``fail-alone``: rank 1 raises inside training; rank 0, waiting in the next all-reduce, must
  be ended by it (bounded time, non-zero status).
* ``nan-alone``: rank 1's discriminator turns to NaN after step 3; the all-reduce carries it
  to rank 0, and every rank must stop with TrainingDiverged at the same step (status 3).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

import fastgan
from fastgan import GAN, SGD, Adam, Callback, Dense, Dropout, GANConfig
from fastgan.distributed import DataParallel
from fastgan.distributed.allreduce import HostAllreduce
from fastgan.errors import TrainingDiverged
from fastgan.training import checkpoint

STEPS = 20
TOLERANCE = 1e-10
LOCAL_BATCH = 16


def build(optimizer: str, k: int, batch: int, dropout: float = 0.0,
          backend: str = "numpy", **options) -> GAN:
    """A small float64 GAN on 2-D data, the same on every rank for one seed (``options``:
    more GANConfig fields)."""
    update = SGD(lr=0.05, momentum=0.5) if optimizer == "sgd" else Adam(lr=2e-3, beta1=0.5)
    dropped = (Dropout(dropout),) if dropout else ()
    config = GANConfig(latent_dim=4, generator=(Dense(32, "relu"), *dropped, Dense(2, "tanh")),
                       discriminator=(Dense(32, "leaky_relu", alpha=0.2), *dropped, Dense(1)),
                       g_optimizer=update, d_optimizer=update, k=k, batch_size=batch,
                       **options)
    return GAN(config, backend=backend, dtype="float64", seed=3)


class Trace(Callback):
    """Both networks' parameters after every step."""

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []

    def on_step_end(self, loop) -> None:
        gan = loop.gan
        self.params.append(np.concatenate([gan.backend.to_numpy(gan.generator.params.data),
                                           gan.backend.to_numpy(gan.discriminator.params.data)]))


def equivalence(comm, optimizer: str, k: int, conditional: bool = False) -> int:
    data = fastgan.data.ring(n=2048, seed=4)
    options = {"conditional": True, "num_classes": 8} if conditional else {}
    single, parallel = Trace(), Trace()
    build(optimizer, k, comm.size * LOCAL_BATCH, **options).fit(data, steps=STEPS,
                                                                callbacks=[single])
    dp = DataParallel(build(optimizer, k, comm.size * LOCAL_BATCH, **options), comm,
                      shared_noise=True)
    dp.fit(data, steps=STEPS, callbacks=[parallel], log_every=5)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(single.params, parallel.params,
                                                               strict=True))
    print(f"rank {comm.rank}: worst difference over {STEPS} steps {worst:.3e}", flush=True)
    return 0 if worst <= TOLERANCE else 1


def checksum(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def replicas(comm) -> int:
    dp = DataParallel(build("adam", 1, comm.size * LOCAL_BATCH, dropout=0.3), comm)
    dp.fit(fastgan.data.ring(n=2048, seed=4), steps=30, log_every=10)
    sums = comm.allgather([checksum(dp.gan.generator.params.data),
                           checksum(dp.gan.discriminator.params.data)])
    noise = comm.allgather(checksum(dp.gan.workspace(LOCAL_BATCH).z))
    identical = all(s == sums[0] for s in sums)
    distinct_noise = len(set(noise)) == comm.size
    print(f"rank {comm.rank}: replicas identical {identical}, noise distinct {distinct_noise}",
          flush=True)
    return 0 if identical and distinct_noise else 1


def resume(comm, path: str) -> int:
    data = fastgan.data.ring(n=2048, seed=4)

    def trainer() -> DataParallel:
        return DataParallel(build("adam", 1, comm.size * LOCAL_BATCH, dropout=0.3), comm)

    whole = trainer()
    whole.fit(data, steps=20, log_every=5)
    first = trainer()
    first.fit(data, steps=10, log_every=5)
    first.save(path)
    again = trainer()
    again.restore(path)
    again.fit(data, steps=10, log_every=5)
    same = all(checksum(a.params.data) == checksum(b.params.data)
               for a, b in ((whole.gan.generator, again.gan.generator),
                            (whole.gan.discriminator, again.gan.discriminator)))
    print(f"rank {comm.rank}: resumed run bit for bit {same}", flush=True)
    return 0 if all(comm.allgather(same)) else 1


class FailOnRank1(Callback):
    def on_step_end(self, loop) -> None:
        if loop.gan.steps == 3 and loop.stepper.rank == 1:
            raise RuntimeError("planted failure on rank 1")


def fail_alone(comm) -> int:
    dp = DataParallel(build("sgd", 1, comm.size * LOCAL_BATCH), comm)
    dp.fit(fastgan.data.ring(n=2048, seed=4), steps=1000, callbacks=[FailOnRank1()])
    print(f"rank {comm.rank}: trained on although rank 1 failed", flush=True)
    return 0


class NanOnRank1(Callback):
    def on_step_end(self, loop) -> None:
        if loop.gan.steps == 3 and loop.stepper.rank == 1:
            loop.gan.discriminator.params.data[:] = np.nan


def nan_alone(comm) -> int:
    dp = DataParallel(build("sgd", 1, comm.size * LOCAL_BATCH), comm)
    try:
        dp.fit(fastgan.data.ring(n=2048, seed=4), steps=100, callbacks=[NanOnRank1()],
               log_every=5)
    except TrainingDiverged:
        print(f"rank {comm.rank}: diverged, stopped at step {dp.gan.steps}", flush=True)
        return 3
    print(f"rank {comm.rank}: trained on through a NaN", flush=True)
    return 0


def plant_fresh_streams() -> None:
    """Restore no rank's random streams but rank 0's (the bug the resume check must catch)."""
    checkpoint.same_processes = lambda metadata, processes: False


def plant_sum() -> None:
    """Replace the mean over the ranks by the sum (the bug the equivalence check must catch)."""
    def summed(self: HostAllreduce, buffer: np.ndarray) -> None:
        self.comm.Allreduce(self._in_place, buffer, op=self._sum)

    HostAllreduce.mean = summed


def main(argv: list[str]) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    check = argv[0]
    if "--plant" in argv:
        (plant_fresh_streams if check == "resume" else plant_sum)()
    if check == "equivalence":
        return equivalence(comm, argv[1], int(argv[2]), "--conditional" in argv)
    if check == "replicas":
        return replicas(comm)
    if check == "resume":
        return resume(comm, argv[1])
    if check == "fail-alone":
        return fail_alone(comm)
    if check == "nan-alone":
        return nan_alone(comm)
    raise SystemExit(f"unknown check {check!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
