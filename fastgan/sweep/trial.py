"""One trial of a sweep, as a worker runs it: an ordinary run folder trained to a budget.

:func:`run_trial` starts the trial's run folder (the first rung) or resumes it from its
checkpoint (a later rung), trains until the rung's budget is used up, evaluates the GAN every
``every`` and where it stops, and returns what happened as plain data. It never raises: a
trial that diverges or fails is a result like any other, so the sweep goes on. Each worker
process keeps one evaluator per dataset, built once.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainingDiverged
from ..evaluation.metrics import METRICS, Evaluator
from ..gan.model import GAN
from ..runs import folder as runs
from ..runs.folder import Run, TrainConfig, prepare
from ..training.loop import TrainingLoop
from ..training.monitors import MetricsLog, WallClock
from .budget import Amount

UNBOUNDED_STEPS = 2**62
"""The step count a run under a wall-time budget is given: its clock stops it first."""

EVAL_SEED = 0
"""Seed of every trial's evaluator: all trials are scored on the same real samples and
latent vectors, so their numbers compare."""

_evaluators: dict[tuple[Any, ...], Evaluator] = {}


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
    (evaluations excluded), calls ``evaluate`` every ``every`` and where training ends, and
    stops training once ``target`` is used up. ``seconds`` counts on from the seconds trained
    before; the clock starts after the first step, which on a fresh worker also loads the
    compiled kernels (seconds, on a busy machine), so that every trial is timed alike."""

    def __init__(self, target: Amount, every: Amount | None,
                 evaluate: Callable[[GAN], dict[str, Any]] | None, seconds: float = 0.0) -> None:
        super().__init__(target.value if target.is_time else None, seconds=seconds,
                         from_first_step=True)
        self.target, self.every, self.evaluate = target, every, evaluate
        self.step = 0
        self.records: list[dict[str, Any]] = []
        self._next = math.inf

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Note the step; the first evaluation falls on the next multiple of ``every``."""
        super().on_train_begin(loop)
        self.step = loop.gan.steps
        if self.every is not None and self.evaluate is not None:
            self._next = self._next_multiple(self.every)

    def on_step_end(self, loop: TrainingLoop) -> None:
        """Advance the clock (it stops training at a target of seconds itself); stop at the
        target, else evaluate when one is due."""
        super().on_step_end(loop)
        self.step = loop.gan.steps
        if self.target.reached(self.seconds, self.step):
            loop.request_stop()          # the evaluation where training ends follows
        elif self.every is not None and self._position(self.every) >= self._next:
            self._evaluate(loop)
            self._next = self._next_multiple(self.every)

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


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Train ``task``'s trial to its rung's budget; returns ``trial``, ``rung``, ``status``
    ("completed", "diverged" or "failed"), ``error`` (None or one line), ``step``,
    ``seconds`` (training seconds in all), the last ``d_loss``/``g_loss`` and
    ``evaluations`` (eval records with ``step``, ``epoch``, ``seconds`` and every metric)."""
    result = outcome(task, "completed")
    clock: TrialClock | None = None
    try:
        run = _open(task)
        clock = TrialClock(task.target, task.evaluation and task.evaluation.every,
                           _evaluation(task, run), task.trained_seconds)
        history = run.train(progress=False, callbacks=[clock])
        if task.target.is_time:
            run.end_here()
        if history.logs:
            result.update(d_loss=history.logs[-1]["d_loss"], g_loss=history.logs[-1]["g_loss"])
    except TrainingDiverged as exc:
        result.update(status="diverged", error=str(exc))
    except Exception as exc:      # a failed trial is a result: the sweep goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    if clock is not None:
        result.update(step=clock.step, seconds=clock.seconds, evaluations=clock.records)
    return result


def outcome(task: TrialTask, status: str, error: str | None = None) -> dict[str, Any]:
    """The result of ``task`` before training tells more: no step, no evaluation."""
    return {"trial": task.name, "rung": task.rung, "status": status, "error": error,
            "step": None, "seconds": task.trained_seconds, "d_loss": None, "g_loss": None,
            "evaluations": []}


def _open(task: TrialTask) -> Run:
    """The first rung starts the run folder afresh (an unfinished earlier attempt is
    removed); a later rung resumes it at the checkpoint the rung before left."""
    folder = Path(task.folder)
    steps = UNBOUNDED_STEPS if task.target.is_time else task.target.steps
    if task.rung > 0:
        return prepare(resume=folder, changes={"steps": steps})
    if folder.exists():
        shutil.rmtree(folder)
    config = dataclasses.replace(TrainConfig.from_json(task.config), epochs=None, steps=steps)
    return prepare(config, folder)


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
