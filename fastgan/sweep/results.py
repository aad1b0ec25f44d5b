"""Reading a sweep's results: segments of trials, their scores, one row per trial.

A *segment* is a trial's training to one rung, as ``results.jsonl`` records it: an end
record (status, step, seconds, losses) and the evaluation records before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from ..evaluation.metrics import METRICS
from ..training.monitors import Fields
from ..training.serialization import Absent
from .plan import Plan

Segment = tuple[dict[str, Any], list[dict[str, Any]]]
"""A trial's run to one rung, as recorded: its end record and its evaluation records."""

RESULT_FIELDS: Fields = {
    "eval": {"trial": str, "rung": int, "step": int, "seconds": float,
             **dict.fromkeys(METRICS, float)},
    "end": {"trial": str, "rung": int, "status": str, "error": str | None,
            "attempt": int | None | Absent, "resumed_from": int | None | Absent,
            "step": int | None, "seconds": float, "d_loss": float | None, "g_loss": float | None},
    "session": {"where": str | None, "wall_seconds": float},
}
"""What the records of a sweep's results.jsonl hold (see
:func:`~fastgan.training.monitors.read_records`), as far as the sweep reads them back."""


class Results(list):
    """One dict per trial: ``trial``, ``setting``, ``seed``, ``rung`` reached, ``status``,
    ``error``, ``attempt`` (at that rung: 2 or more where an earlier attempt was cut short),
    ``resumed_from`` (the step of the earlier attempt's checkpoint it continued; None: it
    trained the rung from its start), ``step``, ``seconds``, the last ``d_loss``/``g_loss`` and
    every metric of its last evaluation (where the data could be evaluated)."""

    def frame(self) -> Any:
        """The results as a pandas DataFrame (needs pandas), a column per setting name."""
        try:
            import pandas
        except ImportError:
            raise ConfigError("Results.frame needs pandas: pip install pandas") from None
        return pandas.json_normalize(list(self), sep=".")


def segments(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int], Segment]:
    """Each (trial, rung) that ended, with its end record and its evaluations (the latest
    attempt's, where a failed trial was retried)."""
    pending: dict[tuple[str, int], list[dict[str, Any]]] = {}
    ended: dict[tuple[str, int], Segment] = {}
    for record in records:
        key = (record.get("trial"), record.get("rung"))
        if record.get("event") == "eval":
            pending.setdefault(key, []).append(record)
        elif record.get("event") == "end":
            ended[key] = (record, pending.pop(key, []))
    return ended


def trial_score(plan: Plan, segment: Segment | None) -> float:
    """A trial's metric where its segment ended; NaN if it did not complete or was not scored."""
    if segment is None or plan.metric is None:
        return math.nan
    end, evaluations = segment
    if end["status"] != "completed" or not evaluations or evaluations[-1]["step"] != end["step"]:
        return math.nan
    return float(evaluations[-1][plan.metric])


def setting_scores(plan: Plan, found: dict[tuple[str, int], Segment], rung: int,
                   indices: Iterable[int]) -> dict[int, float]:
    """The mean score over seeds of each setting at ``rung`` (NaN if any seed has none)."""
    scores = {}
    for index in indices:
        values = [trial_score(plan, found.get((trial.name, rung)))
                  for trial in plan.trials if trial.setting_index == index]
        scores[index] = math.fsum(values) / len(values)
    return scores


def last_rung(plan: Plan, found: dict[tuple[str, int], Segment], index: int) -> int | None:
    """The highest rung any trial of setting ``index`` ended (None: none ended yet)."""
    names = {trial.name for trial in plan.trials if trial.setting_index == index}
    return max((rung for name, rung in found if name in names), default=None)


def trial_rows(plan: Plan, found: dict[tuple[str, int], Segment]) -> list[dict[str, Any]]:
    """One dict per trial that ended a segment, at the last rung it reached."""
    rows = []
    for trial in plan.trials:
        rungs = [rung for name, rung in found if name == trial.name]
        if not rungs:
            continue
        end, evaluations = found[(trial.name, max(rungs))]
        row = {"trial": trial.name, "setting": trial.setting, "seed": trial.seed,
               **{key: end[key] for key in ("rung", "status", "error", "step", "seconds",
                                            "d_loss", "g_loss")},
               "attempt": end.get("attempt"), "resumed_from": end.get("resumed_from")}
        if evaluations:
            row.update({name: evaluations[-1][name] for name in METRICS})
        rows.append(row)
    return rows
