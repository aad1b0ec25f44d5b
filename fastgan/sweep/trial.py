"""One trial of a sweep, as a worker runs it: an ordinary run folder trained to a budget.

:func:`run_trial` starts the trial's run folder (the first rung) or resumes it from its
checkpoint (a later rung), trains until the rung's budget is used up, evaluates the GAN every
``every`` and where it stops, and returns what happened as plain data. It never raises: a
trial that diverges or fails is a result like any other, so the sweep goes on. Each worker
process keeps one evaluator per dataset, built once.

A trial may be started more than once for one rung: Dask runs a task again when the worker
running it died, and re-running a stopped sweep starts its unfinished trials again. So that an
attempt loses little, a trial saves its checkpoint as it trains (every tenth of its rung's
target, keeping the writing under 2 % of the time) with its progress beside the state (rung,
attempt, training seconds, evaluations so far), and the next attempt at the same rung
continues from there. Each attempt writes :data:`ATTEMPT_FILE` as it starts (its number and
the host and process running it) and again with its result as it ends; its result says which
attempt it was and the step it resumed from (``resumed_from``; None: it trained its rung from
the start). A rung an attempt completed is never trained again, even where its result was lost
on the way to the sweep (a worker or the scheduler lost just then): the next attempt returns
the noted result. A trial told that no one waits for it any more (``abandoned``: its task was
cancelled, its worker lost the scheduler) saves its checkpoint at the next step and ends with
:class:`TrialAbandoned`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, TrainingDiverged
from ..evaluation.metrics import METRICS, Evaluator
from ..fileio import write_atomically
from ..gan.model import GAN
from ..runs import folder as runs
from ..runs.folder import Run, TrainConfig, prepare
from ..training import checkpoint
from ..training.loop import TrainingLoop
from ..training.monitors import Checkpoints, MetricsLog, WallClock
from .budget import Amount

UNBOUNDED_STEPS = 2**62
"""The step count a run under a wall-time budget is given: its clock stops it first."""

EVAL_SEED = 0
"""Seed of every trial's evaluator: all trials are scored on the same real samples and
latent vectors, so their numbers compare."""

ATTEMPT_FILE = "attempt.json"
"""In a trial's run folder: the rung it trains, which attempt at that rung this is, the host
and process id running it (written as each attempt starts) and the attempt's result (written
as it ends; null until then)."""

PROGRESS = "sweep"
"""The entry of a trial checkpoint's ``extra`` holding the trial's progress within its rung:
``rung``, ``attempt``, ``seconds`` (of training) and ``evaluations`` so far."""

SAVES_PER_RUNG = 10
"""A trial saves its checkpoint at every 1/SAVES_PER_RUNG of its rung's target..."""

SAVE_SHARE = 0.02
"""... but spends at most this share of its time writing them: after a save that took t
seconds, the next waits at least t / SAVE_SHARE."""

_evaluators: dict[tuple[Any, ...], Evaluator] = {}


class TrialAbandoned(Exception):
    """No one waits for the trial's result any more; it saved its checkpoint and stopped."""


@dataclass(frozen=True)
class Attempt:
    """Where one attempt at a trial's rung starts: its ``number`` (1 for the first), the step
    of an earlier attempt's checkpoint it ``resumed_from`` (None: the rung's start), and the
    training ``seconds`` and ``evaluations`` of the rung it inherits."""

    number: int = 1
    resumed_from: int | None = None
    seconds: float = 0.0
    evaluations: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class EvalPlan:
    """Evaluate every ``every`` (None: only where a rung ends) on ``n`` samples."""

    every: Amount | None
    n: int


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to train one trial to one rung: its run folder, its TrainConfig
    (as JSON), the rung's budget ``target`` (cumulative), and the training seconds it had at
    the rung before (the clock of a wall-time budget continues from there)."""

    name: str
    folder: str
    config: dict[str, Any]
    target: Amount
    rung: int = 0
    trained_seconds: float = 0.0
    evaluation: EvalPlan | None = None


class TrialClock(WallClock):
    """A trial's :class:`~fastgan.training.monitors.WallClock`: counts its training seconds
    (evaluations and saves excluded), calls ``evaluate`` every ``every`` and where training
    ends, and stops training once ``target`` is used up. ``seconds`` counts on from the seconds
    trained before, ``records`` from the evaluations before; the clock starts after the first
    step, which on a fresh worker also loads the compiled kernels (seconds, on a busy machine),
    so that every trial is timed alike.

    With ``progress`` (``{"rung": .., "attempt": ..}``) the clock also saves the run's
    checkpoint with the trial's progress in it (see :data:`PROGRESS`) as training goes, and
    when ``abandoned()`` turns true it saves and raises :class:`TrialAbandoned`."""

    def __init__(self, target: Amount, every: Amount | None,
                 evaluate: Callable[[GAN], dict[str, Any]] | None, seconds: float = 0.0, *,
                 records: Sequence[dict[str, Any]] = (),
                 progress: dict[str, int] | None = None,
                 abandoned: Callable[[], bool] | None = None) -> None:
        super().__init__(target.value if target.is_time else None, seconds=seconds,
                         from_first_step=True)
        self.target, self.every, self.evaluate = target, every, evaluate
        self.progress, self.abandoned = progress, abandoned
        self.step = 0
        self.records: list[dict[str, Any]] = list(records)
        self._next = math.inf
        self._saves = target.fraction(SAVES_PER_RUNG)
        self._next_save = math.inf
        self._save_allowed_at = 0.0

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Note the step; the first evaluation falls on the next multiple of ``every``, the
        first save on the next multiple of a tenth of the target."""
        super().on_train_begin(loop)
        self.step = loop.gan.steps
        if self.every is not None and self.evaluate is not None:
            self._next = self._next_multiple(self.every)
        if self.progress is not None:
            self._next_save = self._next_multiple(self._saves)

    def on_step_end(self, loop: TrainingLoop) -> None:
        """Advance the clock (it stops training at a target of seconds itself); save and end
        an abandoned trial; stop at the target, else evaluate or save when one is due."""
        super().on_step_end(loop)
        self.step = loop.gan.steps
        if self.abandoned is not None and self.abandoned():
            self._save(loop)
            raise TrialAbandoned(f"abandoned at step {self.step}; its checkpoint is saved")
        if self.target.reached(self.seconds, self.step):
            loop.request_stop()          # the evaluation where training ends follows
        elif self.every is not None and self._position(self.every) >= self._next:
            self._evaluate(loop)
            self._next = self._next_multiple(self.every)
        elif (self._position(self._saves) >= self._next_save
              and time.perf_counter() >= self._save_allowed_at):
            self._save(loop)
            self._next_save = self._next_multiple(self._saves)

    def on_train_end(self, loop: TrainingLoop) -> None:
        """Evaluate the final state (unless training diverged or it was just evaluated)."""
        self.step = loop.gan.steps
        evaluated = self.records and self.records[-1]["step"] == self.step
        if self.evaluate is not None and loop.outcome != "diverged" and not evaluated:
            self._evaluate(loop)

    def _position(self, every: Amount) -> float:
        return self.seconds if every.is_time else self.step

    def _next_multiple(self, every: Amount) -> float:
        return (math.floor(self._position(every) / every.value) + 1) * every.value

    def _evaluate(self, loop: TrainingLoop) -> None:
        if self.evaluate is None:
            return
        gan = loop.gan
        with self.paused():
            self.records.append({"event": "eval", "step": gan.steps, "epoch": gan.epoch,
                                 "seconds": self.seconds, **self.evaluate(gan)})

    def _save(self, loop: TrainingLoop) -> None:
        """Save the checkpoint as the run's own :class:`Checkpoints` does, with the trial's
        progress added to its ``extra`` (nothing without ``progress`` or a run's saver)."""
        saver = next((c for c in loop.callbacks if isinstance(c, Checkpoints)), None)
        if self.progress is None or saver is None:
            return
        progress = {**self.progress, "seconds": self.seconds, "evaluations": self.records}
        started = time.perf_counter()
        with self.paused():
            Checkpoints(saver.path, 0, {**(saver.extra or {}), PROGRESS: progress}).save(loop)
        ended = time.perf_counter()
        self._save_allowed_at = ended + (ended - started) / SAVE_SHARE


def run_trial(task: TrialTask, abandoned: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train ``task``'s trial to its rung's budget; returns ``trial``, ``rung``, ``status``
    ("completed", "diverged", "failed", or "abandoned" when ``abandoned()`` turned true),
    ``error`` (None or one line), ``attempt`` (1 for the first at this rung),
    ``resumed_from`` (the step of an earlier attempt's checkpoint it continued, or None),
    ``step``, ``seconds`` (training seconds in all), the last ``d_loss``/``g_loss`` and
    ``evaluations`` (eval records with ``step``, ``epoch``, ``seconds`` and every metric).
    A rung an earlier attempt completed is not trained again: its result is returned."""
    earlier = _earlier_attempt(task)
    if earlier.get("result") and earlier["result"]["status"] == "completed":
        return earlier["result"]          # it ended, but the result never reached the sweep
    result = outcome(task, "completed")
    clock: TrialClock | None = None
    try:
        run, attempt = _open(task)
        result.update(attempt=attempt.number, resumed_from=attempt.resumed_from)
        clock = TrialClock(task.target, task.evaluation and task.evaluation.every,
                           _evaluation(task, run), attempt.seconds, records=attempt.evaluations,
                           progress={"rung": task.rung, "attempt": attempt.number},
                           abandoned=abandoned)
        history = run.train(progress=False, callbacks=[clock])
        if task.target.is_time:
            run.end_here()
        if history.logs:
            result.update(d_loss=history.logs[-1]["d_loss"], g_loss=history.logs[-1]["g_loss"])
    except TrialAbandoned as exc:
        result.update(status="abandoned", error=str(exc))
    except TrainingDiverged as exc:
        result.update(status="diverged", error=str(exc))
    except Exception as exc:      # a failed trial is a result: the sweep goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    if clock is not None:
        result.update(step=clock.step, seconds=clock.seconds, evaluations=clock.records)
    if result["attempt"] is not None:
        _note_attempt(task, result["attempt"], result)
    return result


def outcome(task: TrialTask, status: str, error: str | None = None) -> dict[str, Any]:
    """The result of ``task`` before training tells more: no attempt, step or evaluation."""
    return {"trial": task.name, "rung": task.rung, "status": status, "error": error,
            "attempt": None, "resumed_from": None, "step": None,
            "seconds": task.trained_seconds, "d_loss": None, "g_loss": None, "evaluations": []}


def _open(task: TrialTask) -> tuple[Run, Attempt]:
    """Open the trial's run folder for a new attempt at ``task``'s rung and note it in
    :data:`ATTEMPT_FILE`. An earlier attempt's checkpoint at this rung is resumed, with its
    progress; else the first rung starts the folder afresh (removing what an earlier attempt
    left) and a later rung resumes the checkpoint the rung before left."""
    folder = Path(task.folder)
    steps = UNBOUNDED_STEPS if task.target.is_time else task.target.steps
    number = _earlier_attempt(task).get("attempt", 0) + 1
    progress = _saved_progress(folder)
    if progress is not None and progress.get("rung") == task.rung:
        run = prepare(resume=folder, changes={"steps": steps})
        attempt = Attempt(number, run.gan.steps, progress["seconds"], progress["evaluations"])
    elif task.rung > 0:
        run = prepare(resume=folder, changes={"steps": steps})
        attempt = Attempt(number, None, task.trained_seconds)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        config = dataclasses.replace(TrainConfig.from_json(task.config), epochs=None,
                                     steps=steps)
        run, attempt = prepare(config, folder), Attempt(number)
    _note_attempt(task, number)
    return run, attempt


def _earlier_attempt(task: TrialTask) -> dict[str, Any]:
    """The note :data:`ATTEMPT_FILE` holds of an earlier attempt at ``task``'s rung ({}: none,
    or an unreadable note)."""
    try:
        note = json.loads((Path(task.folder) / ATTEMPT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) and note.get("rung") == task.rung else {}


def _note_attempt(task: TrialTask, number: int, result: dict[str, Any] | None = None) -> None:
    """Write :data:`ATTEMPT_FILE`: attempt ``number`` at ``task``'s rung, the host and process
    running it, and its ``result`` once it has one."""
    note = {"rung": task.rung, "attempt": number, "host": socket.gethostname(),
            "pid": os.getpid(), "result": result}
    write_atomically(Path(task.folder) / ATTEMPT_FILE,
                     lambda file: file.write(json.dumps(note).encode()))


def _saved_progress(folder: Path) -> dict[str, Any] | None:
    """The trial progress saved in the run's checkpoint (None: no checkpoint, or one the run
    saved itself, at a rung's end)."""
    path = folder / checkpoint.CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        return checkpoint.read_metadata(path).get("extra", {}).get(PROGRESS)
    except CheckpointError:
        return None


def evaluator_for(config: TrainConfig, n: int,
                  notify: Callable[[str], None] | None = None) -> Evaluator:
    """This process's evaluator of ``config``'s data on ``n`` samples, built once
    (``notify`` is told if its classifier has to be trained first)."""
    key = (config.data, config.classes, config.image_size, n)
    if key not in _evaluators:
        _evaluators[key] = Evaluator.for_dataset(config.data, n=n, classes=config.classes,
                                                 image_size=config.image_size, seed=EVAL_SEED,
                                                 notify=notify)
    return _evaluators[key]


def _evaluation(task: TrialTask, run: Run) -> Callable[[GAN], dict[str, Any]] | None:
    """A function scoring the run's GAN (every metric and its real-vs-real value), which also
    writes each score into the run's metrics.jsonl, or None without an evaluation plan."""
    if task.evaluation is None:
        return None
    evaluator = evaluator_for(run.config, task.evaluation.n)
    log = MetricsLog(run.folder / runs.METRICS)

    def evaluate(gan: GAN) -> dict[str, Any]:
        report = evaluator.evaluate(gan)
        scores = {key: report[key] for name in METRICS for key in (name, f"{name}_real")}
        log.write({"event": "eval", "step": gan.steps, "epoch": gan.epoch, **scores})
        return scores

    return evaluate
