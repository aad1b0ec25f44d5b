"""Callbacks that keep a run's records: metrics, sample pictures, checkpoints, progress, and
the wall clock of its training, which can stop it.

Each is a :class:`~fastgan.training.loop.Callback` with one job; :mod:`fastgan.runs.folder`
puts them together for ``fastgan train``, and library users can pass any of them to ``GAN.fit``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import fileio, viz
from ..errors import ConfigError
from .loop import Callback, TrainingLoop
from .serialization import misfits

COLLAPSE_THRESHOLD = 0.2
"""Diversity of the fixed-noise samples, relative to real data, a fall below which warns.

Measured on digits: real data 1.0 by definition; trained tiny, keras-mlp and numpy-mlp
generators 0.84-0.96; numpy-adam after its LR drop, drawing mostly one digit, 0.41; a
generator emitting one image, 0. Some fresh generators start below it (pytorch-vanilla's
small initial weights: 0.06), which is why only a fall from above it counts."""

MAX_GIF_FRAMES = 100
FINAL_PICTURE = "final.png"

TENSORBOARD_MISSING = "TensorBoard logging needs tensorboardX: pip install 'fastgan[tensorboard]'"

Fields = Mapping[str, Mapping[str, Any]]
"""What the records of a JSON-lines file hold, for :func:`read_records`: by event (``"*"``:
every record), the type of each field (a hint such as ``int | None``, as
:func:`~fastgan.training.serialization.misfits` reads it)."""

METRIC_FIELDS: Fields = {"*": {"step": int},
                         "log": dict.fromkeys(("d_loss", "g_loss", "d_real", "d_fake"), float)}
"""What the records of a run's metrics.jsonl hold, as far as fastgan reads them back."""


def diversity(samples: np.ndarray) -> float:
    """Mean Euclidean distance between two different rows of ``samples`` (n >= 2)."""
    x = np.asarray(samples, dtype=np.float64)
    squared = np.sum(x * x, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0.0))
    n = len(x)
    return float(distances.sum() / (n * (n - 1)))


class MetricsLog(Callback):
    """Appends one JSON line per log step, per epoch, per warning and at the end to a file;
    draws the loss curves of everything the file holds when training ends."""

    def __init__(self, path: Path, loss_curves: Path | None = None,
                 title: str | None = None) -> None:
        self.path = path
        self.loss_curves = loss_curves
        self.title = title

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line, written at once (a crash loses nothing logged) and
        whole or not at all (a full disk leaves no fragment of a line). After a torn last
        line (a crash in the middle of one) it starts a line of its own, so that it is not
        glued to the fragment, which readers skip."""
        line = (json.dumps(record) + "\n").encode("utf-8")
        fileio.append(self.path, b"\n" + line if _ends_torn(self.path) else line)

    def on_log(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """One line per logged step."""
        self.write(record)

    def on_epoch_end(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """One line per epoch."""
        self.write(record)

    def on_train_end(self, loop: TrainingLoop) -> None:
        """The closing line, then the loss-curve picture."""
        self.write({"event": "end", "outcome": loop.outcome, "step": loop.gan.steps,
                    "epoch": loop.gan.epoch})
        if self.loss_curves is None:
            return
        logs = [r for r in read_records(self.path, METRIC_FIELDS) if r.get("event") == "log"]
        if logs:
            history = {key: [r[key] for r in logs] for key in ("d_loss", "g_loss", "d_real",
                                                                "d_fake")}
            viz.save_loss_curves(self.loss_curves, history, steps=[r["step"] for r in logs],
                                 title=self.title)


def _ends_torn(path: Path) -> bool:
    """Whether the file at ``path`` ends in a line without its newline."""
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return False
            file.seek(-1, os.SEEK_END)
            return file.read(1) != b"\n"
    except FileNotFoundError:
        return False


def read_records(path: Path, fields: Fields | None = None) -> list[dict[str, Any]]:
    """The records of a JSON-lines file such as metrics.jsonl (none if it is missing).

    A line that is not a JSON object is skipped: the torn last line of a crash, a line the
    next record was glued to, garbled bytes. With ``fields``, a record that lacks a field of
    its event, or holds one of another type, is a ConfigError naming the file and the line.
    """
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:                      # not UTF-8, or not JSON
            continue
        if isinstance(record, dict):
            if fields is not None:
                _check_record(record, fields, f"{path}, line {number}")
            records.append(record)
    return records


def _check_record(record: dict[str, Any], fields: Fields, where: str) -> None:
    """Raise a ConfigError (at ``where``) unless ``record`` holds what ``fields`` says."""
    event = record.get("event")
    expected = {**fields.get("*", {}), **(fields.get(event, {}) if isinstance(event, str) else {})}
    wrong = misfits(record, expected)
    if wrong:
        raise ConfigError(f"{where} is damaged: its {', '.join(wrong)} missing or of another "
                          "type")


class SampleGrids(Callback):
    """Every ``every`` epochs: samples from fixed noise drawn as a picture (a grid of images,
    or a scatter over real points for 2-D data) and a check of their diversity. When training
    ends (unless it diverged): a picture of the final state, ``final.png``, and a GIF of the
    epochs' pictures and the final one.

    ``reference`` is a set of real samples: when the samples' :func:`diversity`, having
    reached :data:`COLLAPSE_THRESHOLD` times the reference's, falls below it, ``warn`` is
    called with a record — the generator is probably collapsing to a few outputs. It warns
    again only after the diversity has recovered.

    A conditional GAN's sample i is of class ``labels[i]`` (None: its default classes), and
    ``ncols`` sets the grid's width (None: a square), e.g. one row per class.
    """

    def __init__(self, folder: Path, noise: np.ndarray, reference: np.ndarray,
                 image_shape: tuple[int, int] | None, *, every: int = 1,
                 warn: Callable[[dict[str, Any]], None] | None = None,
                 gif: Path | None = None, labels: np.ndarray | None = None,
                 ncols: int | None = None) -> None:
        if not (isinstance(every, int) and every >= 1):
            raise ConfigError(f"sample_every must be a positive number of epochs, got {every!r}")
        self.folder, self.noise, self.reference = folder, noise, reference
        self.image_shape = image_shape
        self.every, self.warn, self.gif = every, warn, gif
        self.labels, self.ncols = labels, ncols
        self.reference_diversity = diversity(reference)
        self.armed = False      # the diversity has reached the threshold since the last warning
        self.latest: tuple[int, np.ndarray] | None = None   # (epoch, samples)
        height_width = max(image_shape) if image_shape else 1
        self.scale = max(1, round(56 / height_width))

    def on_epoch_end(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """Draw and check this epoch's samples when it is one of every ``every``."""
        epoch = loop.gan.epoch
        if epoch % self.every == 0:
            samples = self.draw(loop, self.folder / f"epoch_{epoch:04d}.png")
            self.latest = (epoch, samples)
            self.check_diversity(loop, samples)

    def draw(self, loop: TrainingLoop, path: Path) -> np.ndarray:
        """Samples from the fixed noise, drawn into ``path``; returns them."""
        samples = loop.gan.sample(len(self.noise), noise=self.noise, labels=self.labels)
        if self.image_shape is not None:
            viz.save_grid(path, samples, self.image_shape, scale=self.scale, ncols=self.ncols)
        elif samples.shape[1] == 2:
            viz.scatter_2d(path, self.reference, samples)
        return samples

    def check_diversity(self, loop: TrainingLoop, samples: np.ndarray) -> None:
        """Warn when the samples' diversity falls below the collapse threshold."""
        ratio = diversity(samples) / self.reference_diversity
        if ratio >= COLLAPSE_THRESHOLD:
            self.armed = True
            return
        if self.armed and self.warn is not None:
            self.warn({"event": "warning", "kind": "collapse", "step": loop.gan.steps,
                       "epoch": loop.gan.epoch, "diversity": ratio,
                       "message": f"the generator may be collapsing: its fixed-noise samples "
                                  f"are {ratio:.0%} as diverse as real data (epoch "
                                  f"{loop.gan.epoch}, step {loop.gan.steps})"})
        self.armed = False

    def on_train_end(self, loop: TrainingLoop) -> None:
        """The final picture, then a GIF of the epochs' grids in the folder and the final one
        (at most MAX_GIF_FRAMES, evenly spread)."""
        if loop.outcome == "diverged":
            return
        final = self.folder / FINAL_PICTURE
        self.draw(loop, final)
        if self.gif is None or self.image_shape is None:
            return
        frames = [*epoch_pictures(self.folder), final]
        if len(frames) > MAX_GIF_FRAMES:
            picks = np.linspace(0, len(frames) - 1, MAX_GIF_FRAMES).round().astype(int)
            frames = [frames[i] for i in picks]
        viz.save_gif(self.gif, frames)


def epoch_pictures(folder: Path) -> list[Path]:
    """The ``epoch_NNNN.png`` pictures in ``folder``, in epoch order."""
    numbered = [(int(match.group(1)), path) for path in folder.glob("epoch_*.png")
                if (match := re.fullmatch(r"epoch_(\d+)\.png", path.name))]
    return [path for _, path in sorted(numbered)]


class Checkpoints(Callback):
    """Saves the GAN every ``every`` steps (0: never) and when training ends, unless it
    diverged; the parameters are checked to be finite before every save, so the file always
    holds the last good state."""

    def __init__(self, path: Path, every: int, extra: dict[str, Any] | None = None) -> None:
        if not (isinstance(every, int) and every >= 0):
            raise ConfigError(f"checkpoint_every must be a number of steps >= 0, got {every!r}")
        self.path, self.every, self.extra = path, every, extra
        self.saved_step: int | None = None

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Note the step the run starts from (nothing to save until it moves)."""
        self.saved_step = loop.gan.steps if self.path.exists() else None

    def on_step_end(self, loop: TrainingLoop) -> None:
        """Save on every ``every``-th step."""
        if self.every and loop.gan.steps % self.every == 0:
            self.save(loop)

    def on_train_end(self, loop: TrainingLoop) -> None:
        """Save the final state, unless training diverged."""
        if loop.outcome != "diverged" and loop.gan.steps != self.saved_step:
            self.save(loop)

    def save(self, loop: TrainingLoop) -> None:
        """Check the state is finite, then write it atomically (with the trainer's own
        ``save``: a data-parallel trainer saves one replica and every rank's random state)."""
        loop.checked_stats()
        loop.stepper.save(self.path, extra=self.extra)
        self.saved_step = loop.gan.steps


class WallClock(Callback):
    """Seconds of training on the wall clock; stops training once they reach ``limit``.

    The clock starts when it is made, or with ``from_first_step`` at the end of the first step
    of each ``fit`` (leaving out that step's one-time costs, such as loading compiled kernels).
    ``seconds`` counts on from ``seconds`` (trained before) and leaves out the time spent
    inside :meth:`paused`. Training stops after the first step that ends with ``seconds`` at
    ``limit`` or past it (None: the clock never stops it).
    """

    def __init__(self, limit: float | None = None, *, seconds: float = 0.0,
                 from_first_step: bool = False) -> None:
        self.limit = limit
        self.seconds = seconds
        self.from_first_step = from_first_step
        self._before = seconds
        self._started: float | None = None if from_first_step else time.perf_counter()
        self._paused = 0.0

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """With ``from_first_step``, restart the clock at this fit's first step."""
        if self.from_first_step:
            self._before, self._started, self._paused = self.seconds, None, 0.0

    def on_step_end(self, loop: TrainingLoop) -> None:
        """Read the clock (starting it if not started); stop training at ``limit``."""
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        self.seconds = self._before + now - self._started - self._paused
        if self.limit is not None and self.seconds >= self.limit:
            loop.request_stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent in the block out of ``seconds``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._started is not None:      # a pause before the start is not counted
                self._paused += time.perf_counter() - started


class ProgressBar(Callback):
    """A tqdm bar over the run's steps with d_loss, g_loss, D(x), D(G(z)) and steps/s."""

    def __init__(self, total_steps: int, *, enabled: bool = True) -> None:
        self.total_steps = total_steps
        self.enabled = enabled
        self.bar: Any = None

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Open the bar at the run's current step."""
        from tqdm import tqdm

        self.bar = tqdm(total=self.total_steps, initial=loop.gan.steps, unit="step",
                        dynamic_ncols=True, disable=not self.enabled, file=sys.stderr,
                        mininterval=0.1 if sys.stderr.isatty() else 5.0,
                        desc=f"epoch {loop.gan.epoch + 1}")

    def on_step_end(self, loop: TrainingLoop) -> None:
        """Advance by one step; name the epoch when a new one has begun."""
        self.bar.update(1)
        if loop.gan.data_order.batch == 1:
            self.bar.set_description_str(f"epoch {loop.gan.epoch + 1}", refresh=False)

    def on_log(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """Show the latest statistics."""
        rate = record["steps_per_s"]
        self.bar.set_postfix_str(
            f"d_loss={record['d_loss']:.3f} g_loss={record['g_loss']:.3f} "
            f"D(x)={record['d_real']:.2f} D(G(z))={record['d_fake']:.2f}"
            + ("" if rate is None else f" {rate:.0f} steps/s"), refresh=False)

    def on_train_end(self, loop: TrainingLoop) -> None:
        """Close the bar."""
        self.bar.close()

    def write(self, message: str) -> None:
        """Print a line above the bar (or plainly when there is none)."""
        if self.bar is None:
            print(message, file=sys.stderr)
        else:
            self.bar.write(message, file=sys.stderr)


class TensorBoardLog(Callback):
    """Scalars at every log step and the latest sample grid per epoch, for TensorBoard
    (through tensorboardX, imported only when this callback is made)."""

    def __init__(self, folder: Path, grids: SampleGrids | None = None) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError(TENSORBOARD_MISSING) from None
        self.writer = SummaryWriter(str(folder))
        self.grids = grids

    def on_log(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """Losses, D outputs, learning rates and speed as scalars."""
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "g_lr", "d_lr", "steps_per_s"):
            if record[key] is not None:
                self.writer.add_scalar(key, record[key], record["step"])

    def on_epoch_end(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """The samples SampleGrids drew for this epoch, as one image, if any."""
        grids = self.grids
        if grids is None or grids.latest is None or grids.image_shape is None:
            return
        epoch, samples = grids.latest
        if epoch == loop.gan.epoch:
            grid = viz.image_grid(samples, grids.image_shape, scale=grids.scale)
            self.writer.add_image("samples", grid, loop.gan.steps, dataformats="HW")

    def on_train_end(self, loop: TrainingLoop) -> None:
        """Flush and close the event file."""
        self.writer.close()
