"""Running a sweep: the plan's trials, rung by rung, on a pool; results kept as they come.

The sweep folder holds ``sweep.json`` (the plan's identity), ``results.jsonl`` (one line per
evaluation and one per trial segment's end, appended as each trial finishes, and one per
invocation of the sweep: where it ran, its wall time, whether it was interrupted), the report
(:mod:`fastgan.sweep.report`) and one run folder per trial. Re-running the same sweep skips
every segment ``results.jsonl`` records as ended; a trial that was cut short (Ctrl-C, a lost
worker or scheduler) trains its rung again from the last checkpoint it saved (see
:mod:`fastgan.sweep.trial`). A lost Dask scheduler stops the sweep as Ctrl-C does, with a
:class:`~fastgan.sweep.pools.PoolLost` error instead of the interrupt.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs.folder import TrainConfig
from ..runs.lock import locked, vacant
from ..threads import physical_cores
from ..training.monitors import MetricsLog, read_records
from . import halving, pools, report
from .budget import Amount
from .plan import DEFAULT_EVAL_N, Plan, Trial, make_plan
from .pools import Pool, PoolLost, open_pool
from .results import RESULT_FIELDS, Results, segments, setting_scores, trial_rows
from .space import Space
from .trial import evaluator_for

SWEEP_FILE = "sweep.json"
RESULTS = "results.jsonl"


def run(space: Space | dict[str, Sequence[Any]], out: str | Path, *,
        budget: Amount | str | int, base: TrainConfig | None = None,
        seeds: int | Sequence[int] = 1, metric: str | None = None,
        eval_every: Amount | str | int | None = None, eval_n: int = DEFAULT_EVAL_N,
        halving_eta: int | None = None, min_budget: Amount | str | int | None = None,
        workers: int | None = None, scheduler: str | None = None, client: Any = None,
        retry_failed: bool = False, progress: bool = False,
        notify: Callable[[str], None] | None = None,
        command: Sequence[str] | None = None) -> Results:
    """Train every trial of ``space`` x ``seeds`` on ``base`` (a TrainConfig; its seed is
    replaced) under ``budget`` per trial, keeping the sweep in folder ``out``.

    ``space`` is a :class:`Space` or a grid ``{name: values}``. ``budget``, ``eval_every``
    and ``min_budget`` are amounts: ``"300s"``, ``"5m"`` (training seconds) or ``2000``
    (steps). Trials are scored by ``metric`` (default frechet_distance where the data can be
    evaluated) every ``eval_every`` and where they stop, on ``eval_n`` samples.
    ``halving_eta`` turns on successive halving (the best 1/eta of the settings go on at each
    rung; rungs no smaller than ``min_budget``). Trials run on ``client`` (a Dask client), on
    the Dask ``scheduler`` at an address, in this process (``workers=1``), or on a new local
    cluster of ``workers`` processes (default: the physical cores; 1 without Dask).
    ``retry_failed`` trains failed trials again; ``progress`` shows a progress bar;
    ``notify`` receives one-line notes; ``command`` is recorded in the report. Ctrl-C (or
    any KeyboardInterrupt, such as ``fastgan sweep``'s on SIGTERM) stops the sweep: the
    report is written with every finished trial, and the interrupt is raised again. So does
    losing the Dask scheduler, raising :class:`~fastgan.sweep.pools.PoolLost`.
    """
    say = notify or (lambda message: None)
    out = Path(out)
    space = space if isinstance(space, Space) else Space(grid=space)
    base = base if base is not None else TrainConfig(threads=1)
    workers = _workers(workers, scheduler, client, say)
    plan = make_plan(space, out, base=base, budget=_amount(budget), seeds=seeds, metric=metric,
                     eval_every=_amount(eval_every), eval_n=eval_n, eta=halving_eta,
                     min_budget=_amount(min_budget),
                     check_backends=scheduler is None and client is None)
    with locked(out):
        return _sweep(plan, out, workers=workers, scheduler=scheduler, client=client,
                      retry_failed=retry_failed, progress=progress, say=say, command=command)


def _sweep(plan: Plan, out: Path, *, workers: int, scheduler: str | None, client: Any,
           retry_failed: bool, progress: bool, say: Callable[[str], None],
           command: Sequence[str] | None) -> Results:
    """:func:`run`'s sweep of ``plan`` in ``out``, whose lock the caller holds."""
    claim(out, plan)
    log = MetricsLog(out / RESULTS)
    records = read_records(out / RESULTS, RESULT_FIELDS)
    started = time.perf_counter()
    stopped: KeyboardInterrupt | PoolLost | None = None
    bar = _bar(plan, progress)
    with ExitStack() as stack:
        opened: list[Pool] = []

        def pool() -> Pool:
            """The pool, opened the first time a trial needs it (after the evaluation
            classifiers are cached, so that workers do not each train one)."""
            if not opened:
                if plan.evaluation is not None:
                    for trial in {(t.config.data, t.config.classes, t.config.image_size): t
                                  for t in plan.trials}.values():
                        evaluator_for(trial.config, plan.evaluation.n, notify=say)
                opened.append(stack.enter_context(open_pool(workers, scheduler, client)))
            return opened[0]

        try:
            _run_rungs(plan, pool, log, records, bar, retry_failed)
        except (KeyboardInterrupt, PoolLost) as exc:
            stopped = exc
        finally:
            bar.close()
        session = {"event": "session", "where": opened[0].description if opened else None,
                   "wall_seconds": time.perf_counter() - started,
                   "interrupted": stopped is not None}
        if isinstance(stopped, PoolLost):
            session["error"] = str(stopped)
    log.write(session)
    records.append(session)
    report.write(out, plan, records, stopped=_why(stopped), command=command)
    if isinstance(stopped, PoolLost):
        raise PoolLost(f"{stopped}; every finished trial is kept in {out}: re-run the same "
                       "command, on a working scheduler, to finish the sweep") from None
    if stopped is not None:
        raise stopped
    return Results(trial_rows(plan, segments(records)))


def _why(stopped: BaseException | None) -> str | None:
    """Why the sweep stopped before its end, for the report (None: it did not)."""
    if stopped is None:
        return None
    if isinstance(stopped, KeyboardInterrupt):       # fastgan sweep's name the signal
        return f"interrupted ({stopped or 'Ctrl-C'})"
    return str(stopped)


def _amount(value: Amount | str | int | None) -> Amount | None:
    return value if value is None or isinstance(value, Amount) else Amount.parse(value)


def _workers(workers: int | None, scheduler: str | None, client: Any,
             say: Callable[[str], None]) -> int:
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if workers is not None or scheduler is not None or client is not None:
        return workers or 1
    if pools.dask_installed():
        return physical_cores()
    say("Dask is not installed, so trials run one at a time in this process (pip install "
        "'fastgan[sweep]' to run one per core)")
    return 1


def claim(out: Path, plan: Plan) -> None:
    """Make ``out`` the folder of ``plan``'s sweep, or check that it already is; a folder that
    holds anything else (another sweep, other files) is a ConfigError."""
    path, identity = out / SWEEP_FILE, plan.identity
    if path.exists():
        try:
            recorded = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:            # unreadable, not UTF-8, not JSON
            raise ConfigError(f"{path} is damaged ({exc})") from None
        if not isinstance(recorded, dict):
            raise ConfigError(f"{path} is damaged: it holds no sweep's description")
        differs = [key for key in identity if recorded.get(key) != identity[key]]
        if differs:
            raise ConfigError(f"{out} holds a different sweep (its {', '.join(differs)} "
                              f"{'differs' if len(differs) == 1 else 'differ'}); choose another "
                              "--out, or repeat that sweep's command")
        return
    if not vacant(out):
        raise ConfigError(f"{out} exists and is not a sweep folder; choose another --out")
    report.write_text(path, json.dumps(identity, indent=2) + "\n")


def _run_rungs(plan: Plan, pool: Callable[[], Pool], log: MetricsLog, records: list[dict[str, Any]],
               bar: Any, retry_failed: bool) -> None:
    active = list(range(len(plan.settings)))
    for rung, target in enumerate(plan.ladder):
        found = segments(records)
        tasks, trials = [], {}
        for trial in plan.trials:
            if trial.setting_index not in active:
                continue
            done = found.get((trial.name, rung))
            if done is not None and (done[0]["status"] == "completed" or not retry_failed):
                bar.update(1)
                continue
            before = found[(trial.name, rung - 1)][0]["seconds"] if rung else 0.0
            tasks.append(trial.task(target, rung, before, plan.evaluation))
            trials[trial.name] = trial
        for result in pool().results(tasks) if tasks else ():
            for record in _records(trials[result["trial"]], result, target):
                log.write(record)
                records.append(record)
            bar.update(1)
            _show_best(bar, plan, records)
        if rung + 1 < len(plan.ladder):
            scores = setting_scores(plan, segments(records), rung, active)
            keep = halving.survivors_count(len(active), plan.eta or 1)
            best = [i for i in halving.ranked(scores, plan.lower_is_better)
                    if not math.isnan(scores[i])]
            active = sorted(best[:keep])


def _records(trial: Trial, result: dict[str, Any], target: Amount) -> list[dict[str, Any]]:
    """The results.jsonl lines of one finished segment: its evaluations, then its end."""
    who = {"trial": trial.name, "setting": trial.setting, "seed": trial.seed,
           "rung": result["rung"]}
    end = {"event": "end", **who, "budget": str(target),
           **{key: result[key] for key in ("status", "error", "attempt", "resumed_from", "step",
                                           "seconds", "d_loss", "g_loss")}}
    return json.loads(json.dumps([{**record, **who} for record in result["evaluations"]] + [end]))


def _bar(plan: Plan, enabled: bool) -> Any:
    from tqdm import tqdm

    total = sum(count * len(plan.seeds) for count in plan.counts())
    return tqdm(total=total, unit="trial", desc="sweep", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def _show_best(bar: Any, plan: Plan, records: list[dict[str, Any]]) -> None:
    if plan.metric is None:
        return
    scored = [r for r in records if r.get("event") == "eval" and math.isfinite(r[plan.metric])]
    if scored:
        sign = 1 if plan.lower_is_better else -1
        best = min(scored, key=lambda r: sign * r[plan.metric])
        bar.set_postfix_str(f"best {plan.metric} {best[plan.metric]:.4g} ({best['trial']})",
                            refresh=False)
