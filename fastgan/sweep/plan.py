"""A sweep's plan: its trials, rungs and evaluation, checked before any trial starts.

:func:`make_plan` expands the space into settings and the settings into trials (one per
seed), builds each setting's GAN once on NumPy so that a bad value fails here with the error
``fastgan train`` would give, and works out what to score and when. The plan's ``identity``
is what a sweep folder records, so that a re-run can tell its own sweep from another.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import get_backend
from ..errors import ConfigError, FastganError
from ..evaluation.metrics import DATASETS_WITH_TEST_SPLIT, LOWER_IS_BETTER, METRICS, NEIGHBOURS
from ..runs.folder import TrainConfig, build_gan, load_data
from ..training.loop import steps_per_epoch
from . import halving
from .budget import Amount
from .space import Space, describe, varying
from .trial import EvalPlan, TrialTask

FORMAT = 1
"""Version of the sweep folder's layout (sweep.json, results.jsonl)."""

DEFAULT_METRIC = "frechet_distance"
DEFAULT_EVAL_N = 5000
TRIAL_SETTINGS: dict[str, Any] = {"checkpoint_every": 0, "sample_every": 10**9,
                                  "eval_every": 0, "tensorboard": False}
"""How every trial's run folder is kept: a checkpoint only where a rung ends (the state the
next rung resumes from), one sample picture at the end, the sweep's own evaluations."""


@dataclass(frozen=True)
class Trial:
    """One setting with one seed: a run folder of the sweep."""

    name: str
    setting_index: int
    setting: dict[str, Any]
    seed: int
    config: TrainConfig
    folder: Path

    def task(self, target: Amount, rung: int, trained_seconds: float,
             evaluation: EvalPlan | None) -> TrialTask:
        """What a worker needs to train this trial to ``target`` at ``rung``."""
        return TrialTask(self.name, str(self.folder), self.config.to_json(), target, rung,
                         trained_seconds, evaluation)


@dataclass(frozen=True)
class Plan:
    """Everything a sweep will do."""

    settings: list[dict[str, Any]]
    trials: list[Trial]
    seeds: list[int]
    budget: Amount
    ladder: list[Amount]
    eta: int | None
    metric: str | None
    evaluation: EvalPlan | None

    @property
    def varying(self) -> list[str]:
        """The hyper-parameters whose value differs between settings."""
        return varying(self.settings)

    @property
    def lower_is_better(self) -> bool:
        """Whether a lower value of the metric is better."""
        return self.metric in LOWER_IS_BETTER

    def label(self, index: int) -> str:
        """Setting ``index`` in words, e.g. ``lr=0.0002 ema=0.999``."""
        return describe(self.settings[index], self.varying)

    def counts(self) -> list[int]:
        """How many settings each rung trains (if all of them finish)."""
        counts = [len(self.settings)]
        for _ in self.ladder[1:]:
            counts.append(halving.survivors_count(counts[-1], self.eta or 1))
        return counts

    @property
    def identity(self) -> dict[str, Any]:
        """What makes this sweep this sweep (its settings, seeds, budget, rungs, scoring),
        as JSON values."""
        record = {"format": FORMAT, "base": _base_of(self.trials[0].config),
                  "settings": self.settings, "seeds": self.seeds, "budget": str(self.budget),
                  "rungs": [str(rung) for rung in self.ladder], "eta": self.eta,
                  "evaluation": None if self.evaluation is None else
                  {"every": None if self.evaluation.every is None else str(self.evaluation.every),
                   "n": self.evaluation.n},
                  "metric": self.metric if self.eta else None}
        return json.loads(json.dumps(record))


def _base_of(config: TrainConfig) -> dict[str, Any]:
    """The settings every trial shares, less the seed: preset, data and those not at their
    default (so that a setting added to TrainConfig later leaves old sweeps the same)."""
    defaults = TrainConfig().to_json()
    return {key: value for key, value in config.to_json().items()
            if key in ("preset", "data") or (key != "seed" and value != defaults[key])}


def make_plan(space: Space, out: Path, *, base: TrainConfig, budget: Amount,
              seeds: int | Sequence[int] = 1, metric: str | None = None,
              eval_every: Amount | None = None, eval_n: int = DEFAULT_EVAL_N,
              eta: int | None = None, min_budget: Amount | None = None,
              check_backends: bool = True) -> Plan:
    """Check everything about a sweep and return its plan (see the module docstring).

    ``metric`` None means :data:`DEFAULT_METRIC` where the data can be evaluated (digits,
    mnist, fashion-mnist) and no evaluation elsewhere. ``check_backends`` also checks that
    each trial's backend can run here (not for a remote cluster, whose workers may differ).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ConfigError(f"seeds must be a positive count or distinct seeds, got {seeds!r}")
    settings = space.settings() or [{}]
    trials = _trials(settings, seed_list, base, out)
    _check_settings(trials, check_backends)
    metric, evaluation = _scoring(trials, metric, eval_every, eval_n)
    if eta is not None and metric is None:
        raise ConfigError("successive halving ranks trials by a metric, and this data cannot be "
                          f"evaluated (only {', '.join(DATASETS_WITH_TEST_SPLIT)} can)")
    if min_budget is not None and eta is None:
        raise ConfigError("a minimum budget applies to successive halving; give --halving too")
    ladder = [budget] if eta is None else halving.rungs(budget, eta, len(settings), min_budget)
    return Plan(settings, trials, seed_list, budget, ladder, eta, metric, evaluation)


def _trials(settings: list[dict[str, Any]], seeds: list[int], base: TrainConfig,
            out: Path) -> list[Trial]:
    width = max(3, len(str(len(settings) * len(seeds) - 1)))
    trials = []
    for index, setting in enumerate(settings):
        for seed in seeds:
            try:
                config = dataclasses.replace(base, **setting, **TRIAL_SETTINGS, seed=seed,
                                             epochs=None, steps=None)
            except ConfigError as exc:
                raise ConfigError(f"{_which(setting)}{exc}") from None
            name = f"trial-{len(trials):0{width}d}"
            trials.append(Trial(name, index, setting, seed, config, out / name))
    return trials


def _check_settings(trials: list[Trial], check_backends: bool) -> None:
    """Build each setting's GAN (first seed) on NumPy: the checks ``fastgan train`` makes."""
    datasets: dict[tuple[Any, ...], Any] = {}
    for trial in trials:
        if trial.seed != trials[0].seed:
            continue
        config = trial.config
        try:
            key = (config.data, config.classes, config.image_size, config.pad)
            if key not in datasets:
                datasets[key] = load_data(config)
            gan = build_gan(config, datasets[key], backend="numpy")
            steps_per_epoch(gan, len(datasets[key]))
            if check_backends:
                get_backend(config.backend)
        except FastganError as exc:
            raise type(exc)(f"{_which(trial.setting)}{exc}") from None


def _which(setting: dict[str, Any]) -> str:
    """``"setting lr=0.1 ema=2: "`` to start an error about ``setting`` (nothing if empty)."""
    return f"setting {describe(setting, list(setting))}: " if setting else ""


def _scoring(trials: list[Trial], metric: str | None, every: Amount | None,
             n: int) -> tuple[str | None, EvalPlan | None]:
    data = sorted({trial.config.data for trial in trials})
    evaluable = all(name in DATASETS_WITH_TEST_SPLIT for name in data)
    if metric is not None and metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if not evaluable:
        if metric is not None or every is not None:
            raise ConfigError(f"cannot evaluate on {', '.join(data)}: evaluation needs a "
                              f"labelled dataset with a test split "
                              f"({', '.join(DATASETS_WITH_TEST_SPLIT)})")
        return None, None
    if not (isinstance(n, int) and n >= 2 * NEIGHBOURS):
        raise ConfigError(f"evaluation needs at least {2 * NEIGHBOURS} samples, got {n!r}")
    return metric or DEFAULT_METRIC, EvalPlan(every, n)
