"""Timing a piece of work: the seconds of one call, and of a call repeated after warm-up.

Every benchmark times with these, so that a figure means the same thing throughout: the
clock (``time.perf_counter`` unless another is given) read right before and right after
the call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

Work = Callable[[], object]
Clock = Callable[[], float]


def seconds_of(run: Work, clock: Clock | None = None) -> float:
    """Seconds one call of ``run`` takes on ``clock`` (default ``time.perf_counter``)."""
    read = clock or time.perf_counter
    start = read()
    run()
    return read() - start


def repeated(run: Work, repeats: int, warmup: int = 0, *, before: Work | None = None
             ) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run`` after ``warmup`` calls left out;
    ``before`` runs untimed ahead of every call, warm-up included (a barrier, say)."""
    seconds = []
    for _ in range(warmup + repeats):
        if before is not None:
            before()
        seconds.append(seconds_of(run))
    return seconds[warmup:]


def median_seconds(run: Work, repeats: int, warmup: int = 0, *, before: Work | None = None
                   ) -> float:
    """The median of :func:`repeated`: seconds per call of ``run``."""
    return statistics.median(repeated(run, repeats, warmup, before=before))


def cpu_per_wall(run: Work, seconds: float) -> float:
    """CPU seconds of this process (all its threads) per wall second while ``run`` is called
    back to back for at least ``seconds``: 1.0 is one core kept busy, 2.0 two."""
    calls = 0
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    while not calls or time.perf_counter() - wall_start < seconds:
        run()
        calls += 1
    return (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
