"""The training loop behind ``GAN.fit``: data on the device, batches gathered there, few reads.

The whole dataset is copied to the backend once. Each step gathers its k*B rows into one
preallocated batch array with ``backend.take_rows``, from an index order made per epoch:
a fresh shuffle cut into full batches (``sampling="epoch"``), or batches drawn with
replacement (``sampling="random"``, as seed 001 does). ``gan.epoch`` counts completed epochs
and drives the learning-rate schedules. Losses are read back only every ``log_every`` steps
(and at epoch ends), where NaN or infinity in a loss or a parameter stops training with
:class:`~fastgan.errors.TrainingDiverged`.

Where the loop stands in the data is part of the GAN (:class:`DataOrder`): each epoch's order
is derived from one seed and the epoch number, and the position within the epoch is saved in
checkpoints, so a resumed run sees exactly the batches an uninterrupted one would.

A process of a data-parallel run trains on one :class:`Shard` of every batch: the loop orders
the epoch by whole batches as a single process would, then keeps this process's share of each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import numpy as np

from .. import data
from ..backends.base import Backend
from ..errors import ConfigError, TrainingDiverged

SAMPLINGS = ("epoch", "random")
DEFAULT_LOG_EVERY = 50


class DataOrder:
    """Where training stands in the data: the seed of every epoch's order, and how many
    batches of the current epoch are done."""

    def __init__(self, seed: np.random.SeedSequence) -> None:
        self.seed = seed
        self.batch = 0

    def rng(self, epoch: int) -> np.random.Generator:
        """The random stream that orders epoch ``epoch`` (the same every time it is asked)."""
        epoch_seed = np.random.SeedSequence(self.seed.entropy,
                                            spawn_key=(*self.seed.spawn_key, epoch))
        return np.random.Generator(np.random.PCG64(epoch_seed))

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state (for checkpoints)."""
        return {"entropy": self.seed.entropy, "spawn_key": list(self.seed.spawn_key),
                "batch": self.batch}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`."""
        self.seed = np.random.SeedSequence(state["entropy"], spawn_key=tuple(state["spawn_key"]))
        self.batch = int(state["batch"])


@dataclass(frozen=True)
class Shard:
    """The part of every batch one process trains on: share ``index`` of ``count`` equal,
    contiguous shares (rows ``index * b`` to ``(index + 1) * b`` of each batch, ``b`` = batch
    size / ``count``). The whole batch is share 0 of 1."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and isinstance(self.index, int)
                and 0 <= self.index < self.count):
            raise ConfigError(f"a shard is share index of count with 0 <= index < count, got "
                              f"{self.index} of {self.count}")

    def rows(self, order: np.ndarray, batch_size: int) -> np.ndarray:
        """This share of ``order``, a run of whole batches of ``batch_size`` indices each."""
        if self.count == 1:
            return order
        return order.reshape(-1, self.count, batch_size // self.count)[:, self.index].ravel()


WHOLE = Shard()
"""The whole of every batch: what a single process trains on."""


class Trainable(Protocol):
    """What the loop needs of the model it trains (``fastgan.GAN`` is one): its sizes, its
    counters, where it stands in the data, its learning rates and a check of its
    parameters."""

    backend: Backend
    dtype: np.dtype
    row_features: int
    k: int
    batch_size: int
    steps: int
    epoch: int
    data_order: DataOrder

    def learning_rates(self) -> dict[str, float]:
        """The learning rates in force this epoch, by name (e.g. ``g_lr``, ``d_lr``)."""

    def training_rows(self, dataset: Any) -> np.ndarray:
        """The (N, row_features) host rows a step's real batch is gathered from (a
        conditional GAN's carry their one-hot labels)."""

    def nonfinite_parameters(self) -> list[str]:
        """The names of the networks whose parameters hold NaN or infinity."""


GradientHook = Callable[[Any], None]
"""Called on a network's flat gradient buffer, in place and on the current stream, between
the network's gradients and its optimizer's update (data parallelism's mean over ranks)."""


class Stepper(Protocol):
    """What steps the model, for the loop: the GAN itself (eager), a
    :class:`~fastgan.gan.cuda_graph.GraphedStep`, a
    :class:`~fastgan.distributed.DataParallel`, or one wrapping another."""

    def step(self, real_batch: Any) -> None:
        """One training step on k*B real rows."""

    def last_stats(self) -> dict[str, float]:
        """The last step's ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake``."""

    def save(self, path: Any, *, extra: dict[str, Any] | None = None) -> Any:
        """Write a checkpoint of the training state (the checkpoint callback calls it)."""


class Callback:
    """Hooks that ``fit`` calls; subclass and override the ones you need.

    ``loop`` is the running :class:`TrainingLoop` (``loop.gan``, ``loop.stepper``,
    ``loop.request_stop()``...).
    Log and epoch records are dicts of plain numbers (see :meth:`TrainingLoop.log`).
    """

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Before the first step."""

    def on_step_end(self, loop: TrainingLoop) -> None:
        """After every step (nothing has been read back from the device)."""

    def on_log(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """Every ``log_every`` steps, and after the last step, with the step's statistics."""

    def on_epoch_end(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """After the last batch of an epoch (``loop.gan.epoch`` already counts it)."""

    def on_train_end(self, loop: TrainingLoop) -> None:
        """Once at the end; ``loop.outcome`` is "completed", "stopped" or "diverged"."""


@dataclass
class History:
    """What one ``fit`` call logged, and how it ended."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "completed"

    def series(self, key: str) -> list[float]:
        """One logged quantity (e.g. "d_loss") over the log records, in step order."""
        return [record[key] for record in self.logs]


class TrainingLoop:
    """One ``fit`` call: the dataset on the device, the batch buffer, callbacks and history.

    ``stepper`` steps ``gan`` (default: the GAN itself, eagerly); ``shard`` is this process's
    share of every batch."""

    def __init__(self, gan: Trainable, dataset: Any, *, callbacks: Iterable[Callback] = (),
                 log_every: int = DEFAULT_LOG_EVERY, sampling: str = "epoch",
                 shard: Shard = WHOLE, stepper: Stepper | None = None) -> None:
        host = gan.training_rows(dataset)
        if host.ndim != 2 or host.shape[1] != gan.row_features:
            raise ConfigError(f"the data must be rows of {gan.row_features} features for this "
                              f"GAN, got shape {host.shape}")
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if not (isinstance(log_every, int) and log_every >= 1):
            raise ConfigError(f"log_every must be a positive number of steps, got {log_every!r}")
        if gan.batch_size % shard.count:
            raise ConfigError(f"a batch of {gan.batch_size} cannot be cut into {shard.count} "
                              "equal shares")
        self.gan = gan
        self.stepper = gan if stepper is None else stepper
        self.callbacks = tuple(callbacks)
        self.log_every = log_every
        self.sampling = sampling
        self.shard = shard
        self.rows = gan.k * gan.batch_size // shard.count     # this process's rows per step
        self.n_samples = host.shape[0]
        self.steps_per_epoch = steps_per_epoch(gan, self.n_samples)
        backend = gan.backend
        self.data = backend.asarray(host, gan.dtype)
        self.batch = backend.empty((self.rows, gan.row_features), gan.dtype)
        self.history = History()
        self.outcome = "running"
        self.stop_requested = False
        self._order: Any = None
        self._order_epoch: int | None = None
        self._checked_step = -1
        self._clock = (time.perf_counter(), gan.steps)

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Stop after the step in progress (safe to call from a signal handler)."""
        self.stop_requested = True

    def run(self, *, epochs: int | None = None, steps: int | None = None) -> History:
        """Train ``epochs`` more epochs (the current partial epoch counts as one) or ``steps``
        more steps; returns the history. Raises TrainingDiverged after ``on_train_end``."""
        gan = self.gan
        if gan.data_order.batch >= self.steps_per_epoch:   # a dataset with fewer batches
            gan.data_order.batch = 0
            gan.epoch += 1
        end_step = gan.steps + self._steps_to_train(epochs, steps)
        self._emit("on_train_begin")
        try:
            while gan.steps < end_step and not self.stop_requested:
                self._train_one_step()
                if gan.steps % self.log_every == 0:
                    self.log()
                if gan.data_order.batch == self.steps_per_epoch:
                    self._end_epoch()
                self._emit("on_step_end")
            if not self.history.logs or self.history.logs[-1]["step"] != gan.steps:
                self.log()
        except TrainingDiverged:
            self.outcome = self.history.outcome = "diverged"
            self._emit("on_train_end")
            raise
        self.outcome = self.history.outcome = "stopped" if self.stop_requested else "completed"
        self._emit("on_train_end")
        return self.history

    def _steps_to_train(self, epochs: int | None, steps: int | None) -> int:
        if (epochs is None) == (steps is None):
            raise ConfigError("give exactly one of epochs= or steps=")
        count = epochs if steps is None else steps
        if not (isinstance(count, int) and count >= 0):
            raise ConfigError(f"epochs/steps must be a non-negative integer, got {count!r}")
        if steps is not None:
            return steps
        if epochs == 0:
            return 0
        left_in_epoch = self.steps_per_epoch - self.gan.data_order.batch
        return left_in_epoch + (epochs - 1) * self.steps_per_epoch

    # ------------------------------------------------------------------ steps and epochs
    def _train_one_step(self) -> None:
        gan, start = self.gan, self.gan.data_order.batch * self.rows
        gan.backend.take_rows(self.data, self._epoch_order()[start:start + self.rows], self.batch)
        self.stepper.step(self.batch)
        gan.data_order.batch += 1

    def _epoch_order(self) -> Any:
        """This epoch's sample indices, all its batches end to end (this shard's share of
        each), on the device."""
        gan, epoch = self.gan, self.gan.epoch
        if self._order_epoch != epoch:
            batches = _index_batches(self.sampling, self.n_samples, gan.k * gan.batch_size,
                                     gan.data_order.rng(epoch))
            host = np.concatenate(list(islice(batches, self.steps_per_epoch)))
            host = self.shard.rows(host, gan.batch_size)
            self._order, self._order_epoch = gan.backend.asarray(host), epoch
        return self._order

    def _end_epoch(self) -> None:
        gan = self.gan
        gan.epoch += 1
        gan.data_order.batch = 0
        record = {"event": "epoch", "epoch": gan.epoch, "step": gan.steps,
                  **self.checked_stats()}
        self.history.epochs.append(record)
        self._emit("on_epoch_end", record)

    # ------------------------------------------------------------------ reading back
    def log(self) -> dict[str, Any]:
        """Read the last step's statistics, check them, record and announce them.

        The record: ``event="log"``, ``step``, ``epoch`` (fractional, in epochs done),
        ``d_loss``, ``g_loss``, ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)), the learning
        rates ``g_lr``/``d_lr`` and ``steps_per_s`` since the previous log.
        """
        gan = self.gan
        now, step = time.perf_counter(), gan.steps
        then, then_step = self._clock
        self._clock = (now, step)
        rate = (step - then_step) / (now - then) if now > then and step > then_step else None
        record = {"event": "log", "step": step,
                  "epoch": gan.epoch + gan.data_order.batch / self.steps_per_epoch,
                  **self.checked_stats(), **gan.learning_rates(), "steps_per_s": rate}
        self.history.logs.append(record)
        self._emit("on_log", record)
        return record

    def checked_stats(self) -> dict[str, float]:
        """The last step's losses and mean D outputs, after checking that the losses and both
        networks' parameters are finite (TrainingDiverged names what is not)."""
        gan = self.gan
        stats = self.stepper.last_stats()
        if self._checked_step == gan.steps:
            return stats
        problems = [f"the {network} loss is {stats[key]}"
                    for key, network in (("d_loss", "discriminator"), ("g_loss", "generator"))
                    if not math.isfinite(stats[key])]
        problems += [f"the {name}'s parameters hold NaN or infinity"
                     for name in gan.nonfinite_parameters()]
        if problems:
            raise TrainingDiverged(f"training diverged (found at step {gan.steps}, epoch "
                                   f"{gan.epoch + 1}): {'; '.join(problems)}. "
                                   "A lower learning rate may help.")
        self._checked_step = gan.steps
        return stats

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def steps_per_epoch(gan: Trainable, n_samples: int) -> int:
    """Full steps (k*B rows each) in one pass over ``n_samples`` samples (at least one)."""
    rows = gan.k * gan.batch_size
    if n_samples < rows:
        raise ConfigError(f"the dataset has {n_samples} samples, fewer than one step takes "
                          f"(k * batch size = {rows}); use a smaller batch size")
    return n_samples // rows


def _index_batches(sampling: str, n: int, rows: int,
                   rng: np.random.Generator) -> Iterator[np.ndarray]:
    if sampling == "epoch":
        return data.epoch_batches(n, rows, rng)
    return data.random_batches(n, rows, rng)


def fit(gan: Trainable, dataset: Any, *, epochs: int | None = None, steps: int | None = None,
        callbacks: Iterable[Callback] = (), log_every: int = DEFAULT_LOG_EVERY,
        sampling: str = "epoch", stepper: Stepper | None = None) -> History:
    """Train ``gan`` on ``dataset`` (a :class:`fastgan.data.Dataset` or an (N, F) array) for
    ``epochs`` more epochs or ``steps`` more steps, each step taken by ``stepper`` (default:
    the GAN); see :class:`TrainingLoop`."""
    loop = TrainingLoop(gan, dataset, callbacks=callbacks, log_every=log_every,
                        sampling=sampling, stepper=stepper)
    return loop.run(epochs=epochs, steps=steps)
