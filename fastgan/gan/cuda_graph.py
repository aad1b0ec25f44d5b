"""A GAN training step replayed as one CUDA graph (opt-in; the eager step is the reference).

    gan.fit(data, steps=10_000, graph=True)     # cupy backend, device random generator
    graphed = GraphedStep(gan)                  # or by hand:
    for batch in batches:
        graphed.step(batch)                     # same effect as gan.step(batch)

The first call at a batch shape runs ``gan.step`` eagerly (it checks the batch, compiles the
kernels, creates every work array and lets cuBLAS pick its algorithms) and then captures the
step into a graph; later calls copy the batch into the graph's input array and launch the
graph: ~80 kernel launches become one.

A graph replays its kernels with the arguments they had at capture, so nothing that changes
between steps may be a host value baked into a launch:

* noise and dropout masks: :class:`~fastgan.backends.base.PhiloxRng` keeps its draw
  counter in device memory and a kernel advances it;
* the optimizers: the captured step (``GAN.launch_step`` with ``schedules``) updates with a
  step count and learning rate that live in device memory (:class:`DeviceSchedule`; a
  one-thread kernel advances the step and computes Adam's bias corrections); before each
  replay the host's step count and the learning rate of the current epoch are written there
  if they changed (an eager step, a loaded checkpoint or a new epoch), and after it the GAN
  counts the step on the host (``GAN.count_replayed_step``);
* the batch: the graph reads a fixed device array, filled before each launch.

Data parallelism (:class:`fastgan.distributed.DataParallel` of a GraphedStep, or with
``graph=True``) passes the gradient all-reduce as ``gradient_hook``: each network's gradient
buffer goes through it just before the network's update, eagerly and in the graph (an NCCL
all-reduce on the capturing stream is recorded with the kernels).

Arrays the step uses must be updated in place (as checkpoint loading does), never replaced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..backends.base import PhiloxRng
from ..backends.cupy_backend import CupyBackend
from ..errors import ConfigError
from ..nn.optim import BoundOptimizer
from ..training.loop import GradientHook, History
from .streams import STEP_STREAMS


class DeviceSchedule:
    """One optimizer's step count and learning rate in device memory, which a captured update
    reads (a one-thread kernel advances the count and computes Adam's bias corrections)."""

    def __init__(self, gan: Any, optimizer: BoundOptimizer) -> None:
        self.gan, self.optimizer = gan, optimizer
        self.schedule = gan.backend.new_schedule()
        self._on_device: tuple[int, float] | None = None   # (steps, lr) the schedule holds

    def sync(self) -> None:
        """Before a replay: make the device hold the host's step count and current rate."""
        wanted = (self.optimizer.steps, self.optimizer.lr(self.gan.epoch))
        if wanted != self._on_device:
            self.gan.backend.set_schedule(self.schedule, wanted[0], wanted[1],
                                          *self.optimizer.schedule_betas())
            self._on_device = wanted

    def followed(self) -> None:
        """After a replay counted on the host: the device advanced to the host's count."""
        self._on_device = (self.optimizer.steps, self._on_device[1])


def capture_refusal(gan: Any) -> str | None:
    """Why ``gan``'s step cannot be replayed as a CUDA graph, or None when it can."""
    if not isinstance(gan.backend, CupyBackend):
        return f"CUDA-graph replay needs the cupy backend; this GAN runs on {gan.backend.name}"
    streams = gan.random_streams()
    if not all(isinstance(streams[name], PhiloxRng) for name in STEP_STREAMS):
        return ("CUDA-graph replay needs the device random generator; this GAN draws on the "
                "host (made with CupyBackend(rng='pcg64'))")
    if gan.r1 is not None and gan.r1.every > 1:
        return ("CUDA-graph replay repeats one step's kernels, but a lazy R1 penalty "
                f"(r1_every={gan.r1.every}) changes from D step to D step: train without the "
                "graph, or with r1_every=1")
    return None


class GraphedStep:
    """Runs ``gan.step`` as a replayed CUDA graph, one graph per batch shape and gradient
    hook; a stepper for :func:`fastgan.training.loop.fit` like the GAN itself."""

    def __init__(self, gan: Any) -> None:
        refusal = capture_refusal(gan)
        if refusal is not None:
            raise ConfigError(refusal)
        self.gan = gan
        self.d_schedule = DeviceSchedule(gan, gan.d_optimizer)
        self.g_schedule = DeviceSchedule(gan, gan.g_optimizer)
        self._graphs: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def step(self, real_batch: Any, *, gradient_hook: GradientHook | None = None) -> None:
        """One training step, as ``gan.step(real_batch, gradient_hook=...)`` (host or device
        batch). The first call at a shape and hook runs eagerly, then captures the graph."""
        gan = self.gan
        if real_batch.ndim == 3:
            real_batch = real_batch.reshape(-1, real_batch.shape[-1])
        key = (real_batch.shape, gradient_hook)
        entry = self._graphs.get(key)
        if entry is None:
            gan.step(real_batch, gradient_hook=gradient_hook)
            self._graphs[key] = self._capture(real_batch.shape, gradient_hook)
            return
        graph, real_input = entry
        gan.backend.copy(real_batch, real_input)
        self.d_schedule.sync()
        self.g_schedule.sync()
        graph.launch()
        gan.count_replayed_step()
        self.d_schedule.followed()
        self.g_schedule.followed()

    def last_stats(self) -> dict[str, float]:
        """The last step's losses and mean D outputs (one small device-to-host read)."""
        return self.gan.last_stats()

    def save(self, path: str | os.PathLike[str], *,
             extra: dict[str, Any] | None = None) -> Path:
        """A checkpoint of the GAN (everything the graph changes lives in its arrays)."""
        return self.gan.save(path, extra=extra)

    def fit(self, dataset: Any, **options: Any) -> History:
        """``gan.fit(dataset, graph=True, **options)``: train with this graph's steps."""
        return self.gan.fit(dataset, graph=True, **options)

    def train_step(self, real_batch: Any) -> dict[str, float]:
        """One step, then the losses and D outputs (one small device-to-host read)."""
        self.step(real_batch)
        return self.last_stats()

    def _capture(self, shape: tuple[int, ...],
                 gradient_hook: GradientHook | None) -> tuple[Any, Any]:
        gan = self.gan
        real_input = gan.backend.empty(shape, gan.dtype)
        schedules = (self.d_schedule.schedule, self.g_schedule.schedule)
        with gan.backend.device.capture() as captured:
            gan.launch_step(real_input, gradient_hook=gradient_hook, schedules=schedules)
        return captured.graph, real_input
