"""A training run on disk: the folder ``fastgan train`` writes, and how to resume it.

A run folder holds::

    config.json        what was asked (TrainConfig) and what it resolved to: backend, dtype,
                       data (name, size, image shape, SHA-256), steps per epoch, total steps,
                       the full model (layer specs, optimizers), package versions, the command
    metrics.jsonl      one JSON line per logged step, per epoch, per warning, and at the end
    fixed_noise.npy    the latent vectors every sample picture is drawn from
    samples/epoch_NNNN.png   those samples after epoch NNNN (a grid; a scatter for 2-D data),
                       every --sample-every epochs (by default at most 100 pictures)
    samples/final.png  the same for the state training ended in
    training.gif       the sample pictures in order, made when training ends
    loss_curves.png    D and G losses, D(x) and D(G(z)) over the steps (drawn with matplotlib)
    checkpoint.npz     the latest checkpoint (every --checkpoint-every steps, and at the end)
    tensorboard/       TensorBoard event files, with --tensorboard

``Run.start`` opens a new run and ``Run.resume`` reopens one with its own configuration (its
last checkpoint loaded by ``Run.restore``), so that the resumed run continues exactly where it
stopped; neither writes until ``Run.write_folder``. :func:`prepare` does it all for one
process. A run writes its folder holding the folder's lock (:mod:`fastgan.runs.lock`), so that
two commands never write one run at once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
import time
import typing
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data, environment
from ..data.dataset import renumbered
from ..errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from ..fileio import remove_leftovers, write_atomically
from ..gan import presets
from ..gan.conditioning import class_names
from ..gan.config import GANConfig, loss_fields
from ..gan.cuda_graph import capture_refusal
from ..gan.model import GAN
from ..gan.scheduled import ScheduledStep, schedule_refusal
from ..nn.optim import Adam
from ..threads import default_num_threads, set_num_threads
from ..training import checkpoint, serialization
from ..training.loop import DEFAULT_LOG_EVERY, Callback, History, steps_per_epoch
from ..training.monitors import (
    METRIC_FIELDS,
    TENSORBOARD_MISSING,
    Checkpoints,
    MetricsLog,
    ProgressBar,
    SampleGrids,
    TensorBoardLog,
)
from ..training.monitors import read_records as read_metrics
from .lock import check_unlocked, locked, vacant

CONFIG = "config.json"
METRICS = "metrics.jsonl"
FIXED_NOISE = "fixed_noise.npy"
SAMPLES = "samples"
GIF = "training.gif"
LOSS_CURVES = "loss_curves.png"
TENSORBOARD = "tensorboard"
GRID_SAMPLES = 64        # images per sample picture: an 8x8 grid
GRID_COLUMNS = 8         # a conditional run's picture: one row of 8 per class
SCATTER_SAMPLES = 512    # points per sample picture of non-image (2-D) data
DEFAULT_RUNS_FOLDER = Path("runs")
DEFAULT_STEPS = 10_000
MAX_PICTURES = 100   # with sample_every unset, sample pictures are spread to at most this many
RESUMABLE = ("epochs", "steps", "log_every", "checkpoint_every", "sample_every", "eval_every",
             "eval_n", "tensorboard", "threads", "graph", "schedule")
"""The settings ``--resume`` may change; the rest define the run and stay as they were."""


@dataclass(frozen=True)
class TrainConfig:
    """What a run was asked to do. ``None`` means the preset's own value; with neither
    ``epochs`` nor ``steps`` the run trains :data:`DEFAULT_STEPS` steps; ``sample_every``
    ``None`` draws at most :data:`MAX_PICTURES` sample pictures; ``threads`` limits the BLAS
    and OpenMP thread pools (``None``: leave them as they are); ``graph`` replays each step
    as a CUDA graph (``None``: wherever the step can be captured, the cupy backend);
    ``schedule`` takes each step's independent GEMMs and a convolution's slices of the batch
    side by side on the threads (:class:`~fastgan.gan.scheduled.ScheduledStep`; ``None``: with
    the numba backend on more than one thread).
    ``g_filters``, ``d_filters``, ``kernel``, ``upsample``, ``norm`` and ``alpha`` (the
    LeakyReLU slope) are the convolutional presets' architecture (``fast-dcgan``;
    ``keras-dcgan`` takes the filters); a preset without one refuses it. ``upsample`` and
    ``norm`` list their values in their fields' ``choices`` metadata: ``norm="none"`` is no
    normalisation, where ``None`` is the preset's (``batch``).
    ``conditional`` trains a class-conditional GAN on the data's labels (with ``classes``,
    class i is the i-th kept label in ascending order), ``projection`` with the projection
    discriminator."""

    preset: str = "tiny"
    data: str = "digits"
    classes: tuple[int, ...] | None = None
    image_size: int | None = None
    pad: int = 0
    backend: str = "auto"
    dtype: str = "float32"
    epochs: int | None = None
    steps: int | None = None
    latent_dim: int | None = None
    g_hidden: tuple[int, ...] | None = None
    d_hidden: tuple[int, ...] | None = None
    g_filters: tuple[int, ...] | None = None
    d_filters: tuple[int, ...] | None = None
    kernel: int | None = None
    upsample: str | None = dataclasses.field(default=None,
                                             metadata={"choices": presets.UPSAMPLINGS})
    norm: str | None = dataclasses.field(default=None, metadata={"choices": presets.NORMS})
    alpha: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    g_lr: float | None = None
    d_lr: float | None = None
    beta1: float | None = None
    k: int | None = None
    label_smoothing: float | None = None
    loss: str | None = None
    spectral_norm: bool | None = None
    r1_gamma: float | None = None
    r1_every: int | None = None
    conditional: bool | None = None
    projection: bool | None = None
    ema: float | None = None
    seed: int = 0
    sampling: str = "epoch"
    log_every: int = DEFAULT_LOG_EVERY
    checkpoint_every: int = 1000
    sample_every: int | None = None
    eval_every: int = 0
    eval_n: int = 10000
    tensorboard: bool = False
    threads: int | None = None
    graph: bool | None = None
    schedule: bool | None = None

    @property
    def is_conditional(self) -> bool:
        """Whether the run trains a conditional GAN: ``conditional``, or a preset that is one
        (``fast-cgan``)."""
        return bool(self.conditional) or presets.get(self.preset).conditional

    def __post_init__(self) -> None:
        if self.epochs is not None and self.steps is not None:
            raise ConfigError("give --epochs or --steps, not both")
        if self.projection and not self.is_conditional:
            raise ConfigError("--projection is a conditional GAN's discriminator: add "
                              "--conditional")
        for name in ("epochs", "steps", "threads", "sample_every", "log_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")

    def total_steps(self, per_epoch: int) -> int:
        """The step count the run ends at."""
        if self.epochs is not None:
            return self.epochs * per_epoch
        return DEFAULT_STEPS if self.steps is None else self.steps

    def picture_every(self, per_epoch: int) -> int:
        """Epochs between sample pictures: ``sample_every``, or enough for MAX_PICTURES."""
        if self.sample_every is not None:
            return self.sample_every
        epochs = math.ceil(self.total_steps(per_epoch) / per_epoch)
        return max(1, math.ceil(epochs / MAX_PICTURES))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists)."""
        return serialization.encode_fields(self)

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_json`; a value of the wrong type is a ConfigError."""
        hints = typing.get_type_hints(cls)
        wrong = serialization.misfits(values, {name: hints[name] for name in values
                                               if name in hints})
        if wrong:
            raise ConfigError("training settings of another type: "
                              + ", ".join(f"{name}={values[name]!r}" for name in wrong))
        return serialization.decode_fields(cls, values, "training settings")


def load_data(config: TrainConfig) -> data.Dataset:
    """The dataset ``config`` names, with its class filter, image size and padding; for a
    conditional run its labels numbered as the GAN's classes (:func:`class_names`)."""
    dataset = data.load(config.data, classes=config.classes, image_size=config.image_size,
                        pad=config.pad)
    if not config.is_conditional:
        return dataset
    if dataset.y is None:
        raise ConfigError(f"--conditional needs labelled data, and {config.data} has no "
                          "labels (digits, mnist, fashion-mnist and an .npz with y have them)")
    return renumbered(dataset, class_names(config.classes, int(dataset.y.max()) + 1))


def gan_config(config: TrainConfig, data_dim: int, num_classes: int = 0) -> GANConfig:
    """The GAN ``config`` describes for data of ``data_dim`` features (and ``num_classes``
    classes when conditional): its preset with the settings it overrides."""
    overrides: dict[str, Any] = {key: getattr(config, key)
                                 for key in ("latent_dim", "g_hidden", "d_hidden",
                                             "g_filters", "d_filters", "kernel", "upsample",
                                             "norm", "alpha", "lr", "batch_size", "k",
                                             "label_smoothing", "spectral_norm", "r1_gamma",
                                             "r1_every")
                                 if getattr(config, key) is not None}
    if config.is_conditional:
        overrides.update(conditional=True, num_classes=num_classes)
    if config.projection is not None:           # else the preset's (fast-cgan's: projection)
        overrides["projection"] = config.projection
    if config.ema is not None:
        overrides["ema_decay"] = config.ema
    if config.loss is not None:
        overrides.update(loss_fields(config.loss))
    described = presets.get(config.preset, data_dim, **overrides)
    changes = {}
    for key, lr in (("g_optimizer", config.g_lr), ("d_optimizer", config.d_lr)):
        optimizer = getattr(described, key)
        change = {name: value for name, value in (("lr", lr), ("beta1", config.beta1))
                  if value is not None}
        if "beta1" in change and not isinstance(optimizer, Adam):
            raise ConfigError(f"beta1 is Adam's; preset {config.preset} trains with "
                              f"{type(optimizer).__name__}")
        if change:
            changes[key] = dataclasses.replace(optimizer, **change)
    return described.replace(**changes)


def build_gan(config: TrainConfig, dataset: data.Dataset, backend: str | None = None) -> GAN:
    """The GAN ``config`` describes, sized for ``dataset`` (and its classes when
    conditional: :func:`load_data` numbered them 0..C-1), freshly initialised."""
    num_classes = int(dataset.y.max()) + 1 if config.is_conditional and dataset.y is not None else 0
    return GAN(gan_config(config, dataset.n_features, num_classes),
               backend=backend or config.backend,
               dtype=config.dtype, seed=config.seed)


class Run:
    """A run folder with everything training in it needs: its config, data, GAN and the
    fixed noise of its sample pictures.

    Opening a run (:meth:`start`, :meth:`resume`) reads and checks but writes nothing;
    :meth:`restore` loads the checkpoint of a resumed run and :meth:`write_folder` makes or
    updates the folder (:func:`prepare` does all three for one process). A data-parallel run
    (:mod:`fastgan.distributed`) opens one Run per process: rank 0's is the ``primary``, the
    only one that reads and writes the folder; the others (``primary`` False) hold the same
    configuration, data and model, get their state from rank 0, and keep no records.
    ``world_size`` processes share every batch. The primary run writes holding the folder's
    lock (:meth:`writing`).
    """

    def __init__(self, folder: Path, config: TrainConfig, dataset: data.Dataset, gan: GAN,
                 noise: np.ndarray, *, primary: bool = True, started: str | None = None,
                 resumed: bool = False, world_size: int = 1) -> None:
        for flag, refuse in (("graph", capture_refusal), ("schedule", schedule_refusal)):
            refusal = refuse(gan) if getattr(config, flag) else None
            if refusal is not None:
                raise ConfigError(f"--{flag}: {refusal}; leave --{flag} out (or --no-{flag})")
        self.folder, self.config, self.dataset, self.gan = folder, config, dataset, gan
        self.noise = noise
        self.primary = primary
        self.started, self.resumed = started, resumed
        self.started_over = False
        self.world_size = world_size
        self.steps_per_epoch = steps_per_epoch(gan, len(dataset))
        self.total_steps = config.total_steps(self.steps_per_epoch)

    def writing(self) -> AbstractContextManager[object]:
        """Hold the run folder's lock within the block (:func:`fastgan.runs.lock.locked`: a
        block within another shares its lock); a run that is not primary takes none."""
        return locked(self.folder) if self.primary else nullcontext()

    @property
    def checkpoint_path(self) -> Path:
        """Where the run's checkpoint lives."""
        return self.folder / checkpoint.CHECKPOINT_NAME

    # ------------------------------------------------------------------ opening
    @classmethod
    def start(cls, config: TrainConfig, folder: Path | None = None, *, primary: bool = True,
              world_size: int = 1) -> Run:
        """A new run for ``folder`` (default ``runs/<time>-<preset>``), which must not exist
        or be empty, nor locked by another process (a run that is not ``primary`` does not
        look). Nothing is written."""
        _check_tensorboard(config)
        folder = new_folder(config) if folder is None else folder
        if primary:
            check_unlocked(folder)
        if primary and not vacant(folder):
            raise ConfigError(f"{folder} already exists; choose another --out, or continue "
                              f"that run with --resume {folder}")
        dataset = load_data(config)
        gan = build_gan(config, dataset)
        noise = gan.draw_sample_noise(picture_samples(gan, dataset))
        return cls(folder, config, dataset, gan, noise, primary=primary, world_size=world_size)

    @classmethod
    def resume(cls, folder: Path, changes: Mapping[str, Any] | None = None, *,
               primary: bool = True, record: Mapping[str, Any] | None = None,
               world_size: int = 1) -> Run:
        """The run in ``folder``, its GAN built as it started (:meth:`restore` loads its last
        checkpoint); ``changes`` may set the :data:`RESUMABLE` settings (e.g. more epochs).
        A run that is not ``primary`` takes the folder's config.json as ``record`` (rank 0
        read it) and reads nothing. Nothing is written; a folder another process is writing
        (its lock held) is refused."""
        if primary:
            check_unlocked(folder)
        record = read_config(folder) if record is None else record
        changes = dict(changes or {})
        fixed = sorted(set(changes) - set(RESUMABLE))
        if fixed:
            raise ConfigError(f"a resumed run keeps its settings; {', '.join(fixed)} cannot "
                              f"change (only {', '.join(RESUMABLE)} can)")
        if "epochs" in changes or "steps" in changes:     # a new end replaces the old one
            changes = {"epochs": None, "steps": None, **changes}
        with _settings_of(folder / CONFIG):
            stored = TrainConfig.from_json(record["config"])
            dataset = load_data(stored)
            gan = build_gan(stored, dataset, backend=record["backend"])
        config = dataclasses.replace(stored, **changes)
        _check_tensorboard(config)
        if dataset.sha256 != record["data"]["sha256"]:
            raise ConfigError(f"the data of run {folder} ({config.data}) has changed since the "
                              f"run started (its SHA-256 is not the one {folder / CONFIG} "
                              "records), so resuming would not continue the same run")
        if primary:
            noise = _read_noise(folder / FIXED_NOISE)
        else:
            noise = gan.draw_sample_noise(picture_samples(gan, dataset))
        return cls(folder, config, dataset, gan, noise, primary=primary,
                   started=record.get("started"), resumed=True, world_size=world_size)

    def restore(self) -> None:
        """Load the run's checkpoint into its GAN (one process; a data-parallel trainer
        restores every rank itself). A run stopped before its first checkpoint starts over
        (:meth:`start_over`)."""
        if not self.checkpoint_path.exists():
            self.start_over()
            return
        stored = checkpoint.read(self.checkpoint_path)
        try:
            checkpoint.restore(self.gan, stored)
        except checkpoint.ModelMismatch as exc:
            raise CheckpointError(f"{exc} (this model: the one {self.folder / CONFIG} "
                                  "describes)") from None
        checkpoint.same_processes(stored.metadata, 1)

    def start_over(self) -> None:
        """Stand a resumed run that has no checkpoint yet (it was stopped or killed before its
        first) where :meth:`start` stood it: its GAN as built, the sampling stream past the
        fixed noise (which the primary run read from the folder instead of drawing it), so
        that it trains as if it had never stopped."""
        if self.primary:
            self.gan.draw_sample_noise(len(self.noise))
        self.started_over = True

    def write_folder(self) -> None:
        """Make the folder of a new run (samples/, the fixed noise, config.json), or bring a
        resumed one up to date (metric lines past the checkpoint dropped, config.json
        rewritten, the temporary files of writes a killed process left removed). Only the
        primary run writes."""
        if not self.primary:
            raise ConfigError("only the primary run (rank 0) writes the run folder")
        with self.writing():
            if not self.resumed:
                (self.folder / SAMPLES).mkdir(parents=True, exist_ok=True)
                write_atomically(self.folder / FIXED_NOISE,
                                 lambda file: np.save(file, self.noise))
            else:
                for folder in (self.folder, self.folder / SAMPLES):
                    remove_leftovers(folder)
                self.forget_metrics_after(self.gan.steps)
            self.write_config()

    def write_config(self) -> None:
        """Write config.json: the settings, what they resolved to, versions, the command."""
        gan, dataset = self.gan, self.dataset
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.started = self.started or now
        record = {
            "config": self.config.to_json(),
            "backend": gan.backend.name,
            "dtype": gan.dtype.name,
            "seed": self.config.seed,
            "data": {"name": dataset.name, "samples": len(dataset),
                     "features": dataset.n_features,
                     "image_shape": None if dataset.image_shape is None
                     else list(dataset.image_shape), "sha256": dataset.sha256},
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "processes": {"world_size": self.world_size, "global_batch": gan.batch_size,
                          "batch_per_process": gan.batch_size // self.world_size},
            "model": gan.config.to_json(),
            "versions": environment.versions(),
            "command": sys.argv,
            "started": self.started,
            "updated": now,
        }
        with self.writing():
            _write_text(self.folder / CONFIG, json.dumps(record, indent=2) + "\n")

    def end_here(self) -> None:
        """Make the step the GAN stands at the run's end, in config.json too: a run stopped
        early (by a wall-time budget) is then complete, and resuming it with a larger
        ``steps`` extends it."""
        self.config = dataclasses.replace(self.config, epochs=None, steps=self.gan.steps)
        self.total_steps = self.gan.steps
        self.write_config()

    def forget_metrics_after(self, step: int) -> None:
        """Drop metric lines past ``step`` (written after the checkpoint a run resumes from)."""
        path = self.folder / METRICS
        records = read_metrics(path, METRIC_FIELDS)
        kept = [r for r in records if r.get("step", 0) <= step]
        if len(kept) != len(records):
            with self.writing():
                _write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    # ------------------------------------------------------------------ training
    @property
    def remaining_steps(self) -> int:
        """Steps left until the run's end (0 when it is complete)."""
        return max(self.total_steps - self.gan.steps, 0)

    def train(self, *, progress: bool = True, callbacks: Iterable[Callback] = (),
              trainer: Any = None) -> History:
        """Train up to the run's total steps, keeping its records; returns fit's history.

        ``trainer`` trains in the GAN's place when given: its
        :class:`~fastgan.gan.cuda_graph.GraphedStep`, or a
        :class:`fastgan.distributed.DataParallel` of it on every rank of a data-parallel run
        (each rank checkpoints through the trainer, which saves on rank 0; only the primary
        run keeps records). A divergence is re-raised naming the last good checkpoint. The
        primary run trains holding its folder's lock."""
        config = self.config
        extra = {"image_shape": None if self.dataset.image_shape is None
                 else list(self.dataset.image_shape), "data": config.data,
                 "classes": None if config.classes is None else list(config.classes)}
        checkpoints = Checkpoints(self.checkpoint_path, config.checkpoint_every, extra)
        try:
            with self.writing():
                keepers = self.record_keepers(progress) if self.primary else []
                if config.threads is not None:
                    set_num_threads(config.threads)
                trainer = self.stepper() if trainer is None else trainer
                return trainer.fit(self.dataset, steps=self.remaining_steps,
                                   callbacks=[*keepers, checkpoints, *callbacks],
                                   log_every=config.log_every, sampling=config.sampling)
        except TrainingDiverged as exc:
            kept = ("No checkpoint had been written yet." if checkpoints.saved_step is None
                    else f"The last good checkpoint (step {checkpoints.saved_step}) is kept: "
                         f"{self.checkpoint_path}")
            raise TrainingDiverged(f"{exc} {kept}") from None

    def stepper(self) -> Any:
        """What trains this run in one process: its GAN's CUDA graph (:meth:`uses_graph`), its
        scheduled step (:meth:`uses_schedule`), or the GAN itself."""
        if self.uses_graph():
            return self.gan.graphed()
        if self.uses_schedule():
            return ScheduledStep(self.gan, self.config.threads)
        return self.gan

    def uses_schedule(self) -> bool:
        """Whether one process trains this run with the scheduled step: as its ``schedule``
        setting says, or by default with the numba backend on more than one thread."""
        if self.config.schedule is None:
            threads = self.config.threads or default_num_threads()
            return self.gan.backend.name == "numba" and threads > 1
        return self.config.schedule

    def uses_graph(self) -> bool:
        """Whether one process trains this run with CUDA graphs: as its ``graph`` setting
        says, or by default wherever the GAN's step can be captured."""
        if self.config.graph is None:
            return capture_refusal(self.gan) is None
        return self.config.graph

    def grid_rows(self) -> dict[str, Any]:
        """A conditional image run's pictures: one row of :data:`GRID_COLUMNS` samples per
        class (``labels`` and ``ncols`` for the grids; nothing for other runs)."""
        if not (self.gan.num_classes and self.dataset.image_shape):
            return {}
        return {"labels": np.arange(len(self.noise)) // GRID_COLUMNS, "ncols": GRID_COLUMNS}

    def record_keepers(self, progress: bool) -> list[Callback]:
        """Progress bar, metrics log, sample pictures and, if asked, TensorBoard."""
        config, folder = self.config, self.folder
        bar = ProgressBar(self.total_steps, enabled=progress)
        title = f"{self.gan.config.name} on {self.dataset.name}"
        metrics = MetricsLog(folder / METRICS, folder / LOSS_CURVES, title=title)

        def warn(record: dict[str, Any]) -> None:
            metrics.write(record)
            bar.write(f"fastgan: warning: {record['message']}")

        reference = self.dataset.x[np.random.default_rng(config.seed)
                                   .permutation(len(self.dataset))[:len(self.noise)]]
        grids = SampleGrids(folder / SAMPLES, self.noise, reference, self.dataset.image_shape,
                            every=config.picture_every(self.steps_per_epoch), warn=warn,
                            gif=folder / GIF, **self.grid_rows())
        keepers: list[Callback] = [bar, metrics, grids]
        if config.eval_every:
            from ..evaluation.metrics import Evaluation, Evaluator

            evaluator = Evaluator.for_dataset(
                config.data, n=config.eval_n, classes=config.classes,
                image_size=config.image_size, seed=config.seed,
                notify=lambda message: bar.write(f"fastgan: {message}"))
            keepers.append(Evaluation(evaluator, config.eval_every, record=metrics.write,
                                      announce=bar.write))
        if config.tensorboard:
            keepers.append(TensorBoardLog(folder / TENSORBOARD, grids))
        return keepers


def picture_samples(gan: GAN, dataset: data.Dataset) -> int:
    """Samples per picture: a grid of :data:`GRID_SAMPLES` images (a conditional GAN's: a
    row of :data:`GRID_COLUMNS` per class), or :data:`SCATTER_SAMPLES` points."""
    if not dataset.image_shape:
        return SCATTER_SAMPLES
    return GRID_COLUMNS * gan.num_classes if gan.num_classes else GRID_SAMPLES


def prepare(config: TrainConfig | None = None, folder: Path | None = None, *,
            resume: Path | None = None, changes: Mapping[str, Any] | None = None) -> Run:
    """For one process: start a new run (``config``, in ``folder``) or resume the one in
    ``resume`` (with ``changes``) from its checkpoint, and write its folder, holding its lock
    while it restores and writes. (To hold it on until training ends, as ``fastgan train``
    does, call this and :meth:`Run.train` within :func:`fastgan.runs.lock.locked` of the
    folder.)"""
    run = Run.start(config, folder) if resume is None else Run.resume(resume, changes)
    with run.writing():
        if resume is not None:
            run.restore()
        run.write_folder()
    return run


def read_config(folder: Path) -> dict[str, Any]:
    """The config.json of run ``folder``, checked for what resuming it reads: the run's
    ``config`` (an object), its ``data`` (an object with its ``sha256``), its ``backend`` and
    when it ``started``; anything else is a ConfigError naming the file."""
    path = folder / CONFIG
    if not path.is_file():
        raise ConfigError(f"{folder} is not a run folder (it has no {CONFIG})")
    try:
        record = json.loads(path.read_bytes())
    except ValueError as exc:                       # not UTF-8, or not JSON
        raise ConfigError(f"{path} is damaged ({exc})") from None
    whole = (isinstance(record, dict) and isinstance(record.get("config"), dict)
             and isinstance(record.get("data"), dict)
             and isinstance(record["data"].get("sha256"), str)
             and isinstance(record.get("backend"), str)
             and isinstance(record.get("started"), str | None))
    if not whole:
        raise ConfigError(f"{path} is damaged: it lacks the run's config, data, backend or "
                          "start time, or holds one of another type")
    return record


@contextmanager
def _settings_of(path: Path) -> Iterator[None]:
    """Errors of what is made from the settings ``path`` stores (the data, the GAN) name the
    file: it is damaged, or names what cannot be had here."""
    try:
        yield
    except (DataError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def _read_noise(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the run's fixed noise {path}: {exc}") from None


def new_folder(config: TrainConfig) -> Path:
    """A new folder for a run of ``config``: ``runs/<time>-<preset>`` (numbered where taken)."""
    stem = DEFAULT_RUNS_FOLDER / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.preset}"
    folder, number = stem, 1
    while folder.exists():
        number += 1
        folder = stem.with_name(f"{stem.name}-{number}")
    return folder


def _check_tensorboard(config: TrainConfig) -> None:
    if config.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(TENSORBOARD_MISSING)
