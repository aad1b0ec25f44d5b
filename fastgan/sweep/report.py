"""A sweep's report: ``summary.md`` (settings ranked, trials listed), ``curves.png`` (the
metric against training seconds, one line per trial, the best highlighted) and
``samples.png`` (each setting's final samples on one contact sheet)."""

from __future__ import annotations

import math
import shlex
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import viz
from ..fileio import write_atomically
from ..training.monitors import FINAL_PICTURE
from . import halving
from .plan import Plan
from .results import Segment, last_rung, segments, setting_scores, trial_rows, trial_score

SUMMARY, CURVES, SHEET = "summary.md", "curves.png", "samples.png"


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def setting_rows(plan: Plan, found: dict[tuple[str, int], Segment]) -> list[dict[str, Any]]:
    """One dict per setting, best first: the ``rung`` it reached (further is better), its
    ``score`` there (mean over seeds; NaN if a seed failed), the ``mean`` and ``spread``
    (standard deviation) of the seeds that were scored, ``scored`` of ``seeds``, and its
    ``best`` trial."""
    rows = []
    for index in range(len(plan.settings)):
        trials = [trial for trial in plan.trials if trial.setting_index == index]
        rung = last_rung(plan, found, index)
        scores = {trial.name: trial_score(plan, found.get((trial.name, rung)))
                  for trial in trials}
        finite = {name: value for name, value in scores.items() if not math.isnan(value)}
        rows.append({
            "index": index, "label": plan.label(index), "rung": rung,
            "score": math.nan if rung is None else setting_scores(plan, found, rung,
                                                                  [index])[index],
            "mean": statistics.fmean(finite.values()) if finite else math.nan,
            "spread": statistics.stdev(finite.values()) if len(finite) > 1 else math.nan,
            "scored": len(finite), "seeds": len(trials),
            "best": (halving.ranked(finite, plan.lower_is_better)[0] if finite
                     else trials[0].name),
        })
    by_rung: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_rung.setdefault(-1 if row["rung"] is None else row["rung"], []).append(row)
    ordered = []
    for rung in sorted(by_rung, reverse=True):
        group = {row["index"]: row for row in by_rung[rung]}
        ordered += [group[i] for i in halving.ranked({i: r["score"] for i, r in group.items()},
                                                     plan.lower_is_better)]
    return ordered


def write(out: Path, plan: Plan, records: Sequence[dict[str, Any]], *, stopped: str | None,
          command: Sequence[str] | None) -> None:
    """Write summary.md, curves.png and samples.png into ``out`` from the sweep's records
    (``stopped``: why the last invocation stopped before its end, or None)."""
    found = segments(records)
    settings = setting_rows(plan, found)
    curves = _draw_curves(out, plan, found, settings)
    sheet = _draw_sheet(out, plan, settings)
    sessions = [record for record in records if record.get("event") == "session"]
    write_text(out / SUMMARY, summary(plan, found, settings, sessions, stopped=stopped,
                                      command=command,
                                      pictures=[p for p in (curves, sheet) if p is not None]))


def summary(plan: Plan, found: dict[tuple[str, int], Segment],
            settings: list[dict[str, Any]], sessions: Sequence[dict[str, Any]], *,
            stopped: str | None, command: Sequence[str] | None,
            pictures: Sequence[Path]) -> str:
    """The text of summary.md."""
    config = plan.trials[0].config
    ended = list(found.values())
    where = next((s["where"] for s in reversed(sessions) if s["where"]), "nowhere yet")
    wall = math.fsum(session["wall_seconds"] for session in sessions)
    lines = [f"# Sweep: {config.preset} on {config.data}", ""]
    if command:
        lines += [f"Command: `fastgan {shlex.join(command[1:])}`", ""]
    lines += [
        f"- {len(plan.trials)} trials: {len(plan.settings)} settings x {len(plan.seeds)} seeds "
        f"({', '.join(map(str, plan.seeds))}); varying: {', '.join(plan.varying) or 'nothing'}",
        f"- budget per trial: {plan.budget} of training (evaluations not counted)",
        f"- backend {config.backend}, {config.dtype}, {config.threads or 'default'} thread(s) "
        f"per trial, run {where}",
        f"- wall time: {wall:.1f} s over {len(sessions)} invocation(s)"
        + (f"; the last stopped early, **{stopped}**: re-run the same command to continue"
           if stopped else ""),
        f"- segments ended: {len(ended)}; failed or diverged: "
        f"{sum(end['status'] != 'completed' for end, _ in ended)}",
    ]
    if plan.eta is not None:
        lines += _halving_lines(plan, found)
    lines.append("")
    if plan.metric is None:
        lines += [f"No evaluation: {config.data} has no evaluation classifier, so the trials "
                  "are listed, not ranked.", ""]
    else:
        direction = "lower" if plan.lower_is_better else "higher"
        lines += [f"## Settings ranked by {plan.metric} ({direction} is better)", "",
                  f"Mean ± standard deviation over the seeds at the last rung each setting "
                  f"reached (evaluated on {plan.evaluation.n if plan.evaluation else 0} "
                  "samples).", "",
                  f"| rank | setting | rung | seeds scored | {plan.metric} | best trial |",
                  "| ---: | --- | ---: | ---: | --- | --- |"]
        for rank, row in enumerate(settings, 1):
            spread = "" if math.isnan(row["spread"]) else f" ± {row['spread']:.4g}"
            lines.append(f"| {rank} | {row['label']} | {_rung(row['rung'])} | "
                         f"{row['scored']}/{row['seeds']} | {row['mean']:.4g}{spread} | "
                         f"{row['best']} |")
        lines.append("")
    lines += _trial_table(plan, found)
    lines += [f"![{picture.stem}]({picture.name})" for picture in pictures]
    return "\n".join(lines) + "\n"


def _halving_lines(plan: Plan, found: dict[tuple[str, int], Segment]) -> list[str]:
    counts = [count * len(plan.seeds) for count in plan.counts()]
    full = len(plan.trials) * plan.budget.value
    planned = halving.planned_cost(plan.ladder, counts)
    unit = "s" if plan.budget.is_time else " steps"
    used = _used(plan, found)
    return [f"- successive halving, eta {plan.eta}: rungs {', '.join(map(str, plan.ladder))}; "
            f"trials per rung {', '.join(map(str, counts))}",
            f"- budget: {planned:.6g}{unit} planned of {full:.6g}{unit} without halving "
            f"({1 - planned / full:.0%} saved); used so far {used:.6g}{unit}"]


def _used(plan: Plan, found: dict[tuple[str, int], Segment]) -> float:
    """Training seconds (or steps) the ended segments used."""
    key = "seconds" if plan.budget.is_time else "step"
    latest: dict[str, float] = {}
    for (name, _), (end, _) in sorted(found.items(), key=lambda item: item[0][1]):
        if end[key] is not None:
            latest[name] = end[key]
    return math.fsum(latest.values())


def _trial_table(plan: Plan, found: dict[tuple[str, int], Segment]) -> list[str]:
    rows = trial_rows(plan, found)
    if not rows:
        return ["No trial has finished yet.", ""]
    columns = [plan.metric] if plan.metric else ["d_loss", "g_loss"]
    lines = ["## Trials", "",
             f"| trial | setting | seed | rung | step | seconds | {' | '.join(columns)} | "
             "status |",
             "| --- | --- | ---: | ---: | ---: | ---: | " + "---: | " * len(columns) + "--- |"]
    labels = {trial.name: plan.label(trial.setting_index) for trial in plan.trials}
    for row in rows:
        values = " | ".join(_number(row.get(column)) for column in columns)
        lines.append(f"| {row['trial']} | {labels[row['trial']]} | {row['seed']} | "
                     f"{row['rung']} | {row['step']} | {_number(row['seconds'])} | {values} | "
                     f"{row['status']} |")
    errors = [f"- {row['trial']}: {row['error']}" for row in rows if row["error"]]
    retried = [f"- {row['trial']}: attempt {row['attempt']} at rung {row['rung']}, "
               + ("trained from its start" if row["resumed_from"] is None
                  else f"resumed from step {row['resumed_from']}")
               for row in rows if (row["attempt"] or 1) > 1]
    lines.append("")
    if errors:
        lines += ["Failures:", "", *errors, ""]
    if retried:
        lines += ["Cut short and trained again (a lost worker, an interrupted sweep):", "",
                  *retried, ""]
    return lines


def _rung(rung: int | None) -> str:
    return "-" if rung is None else str(rung)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _draw_curves(out: Path, plan: Plan, found: dict[tuple[str, int], Segment],
                 settings: list[dict[str, Any]]) -> Path | None:
    if plan.metric is None:
        return None
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for (name, _), (_, evaluations) in sorted(found.items(), key=lambda item: item[0][1]):
        x, y = curves.setdefault(name, ([], []))
        for record in evaluations:
            x.append(record["seconds"])
            y.append(record[plan.metric])
    curves = {name: curve for name, curve in sorted(curves.items()) if curve[0]}
    if not curves:
        return None
    best = next((row["best"] for row in settings if row["best"] in curves), None)
    config = plan.trials[0].config
    return viz.save_metric_curves(out / CURVES, curves, highlight=best,
                                  xlabel="training seconds", ylabel=plan.metric,
                                  title=f"{config.preset} on {config.data}: "
                                        f"{len(curves)} trials")


def _draw_sheet(out: Path, plan: Plan, settings: list[dict[str, Any]]) -> Path | None:
    pictures, labels = [], []
    for rank, row in enumerate(settings, 1):
        picture = out / row["best"] / "samples" / FINAL_PICTURE
        if picture.exists():
            pictures.append(picture)
            labels.append(f"{rank}. {row['label']}" if plan.metric else row["label"])
    if not pictures:
        return None
    return viz.save_contact_sheet(out / SHEET, pictures, labels)
