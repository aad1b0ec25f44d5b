"""Successive halving (Jamieson & Talwalkar 2016; one bracket of Li et al.'s Hyperband).

Every setting trains to the first rung's budget; the settings are ranked by their score there
and the best 1/eta of them continue, resumed from their checkpoints, to the next rung, eta
times further; and so on until the last rung, the full budget. The rungs are the budget
divided by eta^k: as many as halve the settings down to one, fewer where a rung would fall
below a minimum budget. The rule is synchronous: a rung is ranked once all its trials end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from ..errors import ConfigError
from .budget import Amount

Key = TypeVar("Key", bound=Hashable)


def rungs(budget: Amount, eta: int, n_settings: int,
          min_budget: Amount | None = None) -> list[Amount]:
    """The rungs' budgets, smallest first, the last one ``budget``."""
    if not (isinstance(eta, int) and eta >= 2):
        raise ConfigError(f"halving needs an integer eta >= 2 (the fraction 1/eta continues), "
                          f"got {eta!r}")
    if min_budget is not None and min_budget.unit != budget.unit:
        raise ConfigError(f"the minimum budget ({min_budget}) and the budget ({budget}) must "
                          "both be times or both be step counts")
    halvings = 0
    while eta ** (halvings + 1) <= n_settings:
        halvings += 1
    while halvings and (min_budget is not None
                        and budget.value / eta**halvings < min_budget.value):
        halvings -= 1
    while True:
        ladder = [budget.fraction(eta**k) for k in range(halvings, -1, -1)]
        if all(a.value < b.value for a, b in itertools.pairwise(ladder)):
            return ladder
        halvings -= 1                        # a step budget too small to split this often


def survivors_count(n: int, eta: int) -> int:
    """How many of ``n`` settings continue past a rung: the best 1/eta, at least one."""
    return max(1, n // eta)


def ranked(scores: Mapping[Key, float], lower_is_better: bool) -> list[Key]:
    """The keys from best to worst score; NaN (a failed or unscored setting) last, ties in
    the mapping's order."""
    def order(key: Key) -> tuple[bool, float]:
        score = scores[key]
        missing = score is None or math.isnan(score)
        return missing, 0.0 if missing else (score if lower_is_better else -score)
    return sorted(scores, key=order)


def planned_cost(ladder: Sequence[Amount], counts: Sequence[int]) -> float:
    """Budget units (seconds or steps) the rungs take when ``counts[i]`` trials reach rung i,
    each resumed from where the rung before stopped."""
    previous, total = 0.0, 0.0
    for rung, count in zip(ladder, counts, strict=True):
        total += count * (rung.value - previous)
        previous = rung.value
    return total
