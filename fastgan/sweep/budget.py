"""How long a trial trains: an amount of wall-clock training seconds or of steps.

``Amount.parse`` reads what users write: ``"300s"``, ``"5m"``, ``"1.5h"`` are seconds of
training; ``"2000"`` (or ``"2000steps"``) is a step count. Budgets, evaluation intervals and
the rungs of successive halving are all amounts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError

SECONDS_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"\s*(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(s|m|h|steps?)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Amount:
    """``value`` seconds of training (``unit == "s"``) or ``value`` steps (``unit == "steps"``)."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in ("s", "steps"):
            raise ConfigError(f"an amount is in seconds or steps, not {self.unit!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ConfigError(f"an amount must be positive, got {self.value}")
        if self.unit == "steps" and self.value != int(self.value):
            raise ConfigError(f"a step count must be whole, got {self.value}")

    @classmethod
    def parse(cls, text: str | int | float) -> Amount:
        """``"300s"``, ``"5m"``, ``"1.5h"`` (seconds) or ``"2000"``, ``"2000steps"`` (steps)."""
        if isinstance(text, int | float) and not isinstance(text, bool):
            return cls(float(text), "steps")
        match = _PATTERN.fullmatch(str(text))
        if match is None:
            raise ConfigError(f"cannot read {text!r} as an amount: write seconds as 300s, 5m or "
                              "1.5h, or a step count as 2000")
        number, unit = float(match.group(1)), (match.group(2) or "steps").lower()
        if unit.startswith("step"):
            return cls(number, "steps")
        return cls(number * SECONDS_PER[unit], "s")

    @property
    def is_time(self) -> bool:
        """Whether this is a number of seconds."""
        return self.unit == "s"

    @property
    def steps(self) -> int:
        """The step count (for an amount of steps)."""
        if self.is_time:
            raise ConfigError(f"{self} is a time, not a step count")
        return int(self.value)

    def fraction(self, divisor: float) -> Amount:
        """This amount divided by ``divisor`` (steps rounded up, at least one)."""
        if self.is_time:
            return Amount(self.value / divisor, "s")
        return Amount(float(max(1, math.ceil(self.value / divisor))), "steps")

    def reached(self, seconds: float, steps: int) -> bool:
        """Whether a trial at ``seconds`` of training and ``steps`` steps has used it up."""
        return seconds >= self.value if self.is_time else steps >= self.value

    def __str__(self) -> str:
        if self.is_time:
            return f"{self.value:g}s"
        return f"{int(self.value)} steps"
