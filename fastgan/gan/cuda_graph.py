"""A GAN training step replayed as one CUDA graph (opt-in; the eager step is the reference).

    graphed = GraphedStep(gan)          # gan on the cupy backend, device random generator
    for batch in batches:
        graphed.step(batch)             # same effect as gan.step(batch)

The first call at a batch shape runs ``gan.step`` eagerly (it checks the batch, compiles the
kernels, creates every work array and lets cuBLAS pick its algorithms) and then captures the
step into a graph; later calls copy the batch into the graph's input array and launch the
graph: ~80 kernel launches become one.

A graph replays its kernels with the arguments they had at capture, so nothing that changes
between steps may be a host value baked into a launch:

* noise and dropout masks: :class:`~fastgan.backends.base.PhiloxRng` keeps its draw
  counter in device memory and a kernel advances it;
* the optimizers: while capturing, each bound optimizer is stood in for by a scheduled update
  whose step count and learning rate live in device memory (a one-thread kernel advances the
  step and computes Adam's bias corrections); before each replay the host's step count and
  the learning rate of the current epoch are written there if they changed (an eager step,
  a loaded checkpoint or a new epoch), and after it the host's counts follow the device's;
* the batch: the graph reads a fixed device array, filled before each launch.

Data parallelism (:class:`fastgan.distributed.DataParallel` with ``graph=True``) passes the
gradient all-reduce as ``gradient_mean``: each network's gradient buffer goes through it just
before the network's update, eagerly and in the graph (an NCCL all-reduce on the capturing
stream is recorded with the kernels), and ``eager_step`` runs the data-parallel step when a
shape is first seen.

Arrays the step uses must be updated in place (as checkpoint loading does), never replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ..backends.base import PhiloxRng
from ..backends.cupy_backend import CupyBackend
from ..errors import ConfigError


class ScheduledUpdate:
    """Stands in for one of a GAN's bound optimizers while its step is captured: the update
    takes its step count and learning rate from device memory, advancing the count itself."""

    def __init__(self, gan: Any, attribute: str,
                 gradient_mean: Callable[[Any], None] | None = None) -> None:
        self.gan = gan
        self.attribute = attribute
        self.optimizer = getattr(gan, attribute)
        self.gradient_mean = gradient_mean
        self.schedule = gan.backend.new_schedule()
        self._on_device: tuple[int, float] | None = None   # (steps, lr) the schedule holds

    def step(self, epoch: int = 0) -> None:
        """The update as the graph records it (called by ``GAN.step`` during capture), after
        the gradients' mean over the ranks when there is one."""
        if self.gradient_mean is not None:
            self.gradient_mean(self.optimizer.params.grad)
        self.optimizer.step_scheduled(self.schedule)

    @contextlib.contextmanager
    def standing_in(self) -> Iterator[None]:
        """Within the block, the GAN's optimizer attribute is this object."""
        setattr(self.gan, self.attribute, self)
        try:
            yield
        finally:
            setattr(self.gan, self.attribute, self.optimizer)

    def sync(self) -> None:
        """Before a replay: make the device hold the host's step count and current rate."""
        optimizer = self.optimizer
        wanted = (optimizer.steps, optimizer.lr(self.gan.epoch))
        if wanted != self._on_device:
            self.gan.backend.set_schedule(self.schedule, wanted[0], wanted[1],
                                          *optimizer.schedule_betas())
            self._on_device = wanted

    def advanced(self, updates: int) -> None:
        """After a replay that ran ``updates`` updates: the host's count follows the device's."""
        self.optimizer.steps += updates
        self._on_device = (self.optimizer.steps, self._on_device[1])


class GraphedStep:
    """Runs ``gan.step`` as a replayed CUDA graph, one graph per batch shape.

    ``gradient_mean`` (called on a gradient buffer, in place, on the current stream) and
    ``eager_step`` (default ``gan.step``) are for data parallelism: see the module docstring.
    """

    def __init__(self, gan: Any, *, gradient_mean: Callable[[Any], None] | None = None,
                 eager_step: Callable[[Any], None] | None = None) -> None:
        if not isinstance(gan.backend, CupyBackend):
            raise ConfigError(f"CUDA-graph replay needs the cupy backend; this GAN runs on "
                              f"{gan.backend.name}")
        generators = (gan.noise_rng, gan.generator.dropout_rng, gan.discriminator.dropout_rng)
        if not all(isinstance(g, PhiloxRng) for g in generators):
            raise ConfigError("CUDA-graph replay needs the device random generator; this GAN "
                              "draws on the host (made with CupyBackend(rng='pcg64'))")
        self.gan = gan
        self.eager_step = gan.step if eager_step is None else eager_step
        self.d_update = ScheduledUpdate(gan, "d_optimizer", gradient_mean)
        self.g_update = ScheduledUpdate(gan, "g_optimizer", gradient_mean)
        self._graphs: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def step(self, real_batch: Any) -> None:
        """One training step, as ``gan.step(real_batch)`` (host or device batch)."""
        gan = self.gan
        if real_batch.ndim == 3:
            real_batch = real_batch.reshape(-1, real_batch.shape[-1])
        entry = self._graphs.get(real_batch.shape)
        if entry is None:
            self.eager_step(real_batch)
            self._graphs[real_batch.shape] = self._capture(real_batch.shape)
            return
        graph, real_input = entry
        gan.backend.copy(real_batch, real_input)
        self.d_update.sync()
        self.g_update.sync()
        graph.launch()
        self.d_update.advanced(gan.k)
        self.g_update.advanced(1)
        gan.steps += 1

    def train_step(self, real_batch: Any) -> dict[str, float]:
        """One step, then the losses and D outputs (one small device-to-host read)."""
        self.step(real_batch)
        return self.gan.last_stats()

    def _capture(self, shape: tuple[int, ...]) -> tuple[Any, Any]:
        gan = self.gan
        real_input = gan.backend.empty(shape, gan.dtype)
        steps = gan.steps
        with self.d_update.standing_in(), self.g_update.standing_in(), \
                gan.backend.device.capture() as captured:
            gan.step(real_input)
        gan.steps = steps                  # capturing ran no step
        return captured.graph, real_input
