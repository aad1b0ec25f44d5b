"""The space a sweep searches: a grid of hyper-parameter values, random draws from ranges, or both.

A hyper-parameter is any setting of :class:`~fastgan.runs.folder.TrainConfig` that defines a
run (not how it is kept: steps, logging, checkpoints...) other than the seed, which a sweep
varies on its own. Values given as text (the command line) are read with the type the
TrainConfig field declares: ``lr=2e-4`` is a float, ``g_hidden=256 512`` a tuple of ints (in
a TOML file also a list, ``[256, 512]``), ``ema=none`` is None. The architecture settings of
the convolutional presets (``g_filters``, ``d_filters``, ``kernel``, ``upsample``, ``norm``,
``alpha``) are hyper-parameters like the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..runs.folder import RESUMABLE, TrainConfig


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def hyper_parameters() -> tuple[str, ...]:
    """The names a sweep may vary: TrainConfig's fields that define a run, less the seed."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in RESUMABLE and f.name != "seed")


def check_name(name: str) -> None:
    """Raise ConfigError unless ``name`` is a hyper-parameter (the error lists them all)."""
    if name not in hyper_parameters():
        raise ConfigError(f"{name!r} is not a hyper-parameter a sweep can vary; choose from "
                          f"{', '.join(hyper_parameters())}")


def coerce(name: str, value: Any) -> Any:
    """``value`` (text, or a number/list from a TOML file) as the type of TrainConfig's
    ``name``: int, float, str, bool (true/false), a tuple of ints, or None (``none``) where
    the field allows it and ``none`` is not one of its choices."""
    check_name(name)
    kind, optional = _declared(name)
    if isinstance(value, str) and value.strip() in _choices(name):
        return value.strip()                  # norm=none is a normalisation, not the preset's
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        if optional:
            return None
        raise ConfigError(f"{name} cannot be none")
    try:
        return _as(kind, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} takes {_describe(kind)}, not {value!r}") from None


def _declared(name: str) -> tuple[Any, bool]:
    """The type TrainConfig declares for ``name`` less None, and whether it allows None."""
    kind = _field_types()[name]
    if isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind):
        return next(arg for arg in typing.get_args(kind) if arg is not type(None)), True
    return kind, False


def _choices(name: str) -> tuple[str, ...]:
    """The values TrainConfig's field ``name`` names in its metadata (none: any)."""
    return next(f.metadata.get("choices", ()) for f in dataclasses.fields(TrainConfig)
                if f.name == name)


def _as(kind: Any, value: Any) -> Any:
    if typing.get_origin(kind) is tuple:
        items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
        if not items:
            raise ValueError("empty")
        return tuple(_as(int, item) for item in items)
    if kind is bool:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in (True, False, "true", "false"):
            raise ValueError("not true or false")
        return text in (True, "true")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("not whole")
        return int(value) if not isinstance(value, str) else int(value.strip())
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("a bool")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("not text")
        return value.strip()
    raise TypeError(kind)


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "whole numbers separated by spaces (e.g. 256 512)"
    return {int: "a whole number", float: "a number", str: "text",
            bool: "true or false"}.get(kind, str(kind))


@dataclass(frozen=True)
class Range:
    """Values drawn uniformly from [low, high] (log-uniformly with ``log``; whole numbers
    for an integer hyper-parameter)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"a range needs finite low < high, got {self.low} .. {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log range needs low > 0, got {self.low}")

    @classmethod
    def parse(cls, text: str) -> Range:
        """``"1e-4:1e-3"`` or ``"1e-4:1e-3:log"``."""
        parts = [part.strip() for part in text.split(":")]
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "log"):
            raise ConfigError(f"cannot read the range {text!r}: write LOW:HIGH or LOW:HIGH:log")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ConfigError(f"cannot read the range {text!r}: LOW and HIGH are numbers") \
                from None
        return cls(low, high, log=len(parts) == 3)

    def draw(self, rng: np.random.Generator, name: str) -> Any:
        """One value for hyper-parameter ``name``."""
        low, high = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        value = rng.uniform(low, high)
        value = math.exp(value) if self.log else value
        return coerce(name, round(value) if _declared(name)[0] is int else float(value))


@dataclass(frozen=True)
class Space:
    """A grid (name -> values: every combination is tried), random ranges (name -> Range:
    ``samples`` draws, each combined with every grid point) and explicit ``points`` (settings
    given whole, e.g. the winners of an earlier sweep, each combined with the rest); ``seed``
    seeds the draws."""

    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    random: Mapping[str, Range] = field(default_factory=dict)
    samples: int = 0
    seed: int = 0
    points: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        grid = {name: tuple(coerce(name, v) for v in _values(name, values))
                for name, values in self.grid.items()}
        points = tuple({name: coerce(name, value) for name, value in point.items()}
                       for point in self.points)
        for name in {name for point in points for name in point}:
            if name in grid or name in self.random:
                raise ConfigError(f"{name} is set by the points and also by the grid or a "
                                  "range; choose one")
        for name in self.random:
            check_name(name)
            if name in grid:
                raise ConfigError(f"{name} is both in the grid and drawn at random; choose one")
            kind, _ = _declared(name)
            if kind not in (int, float):
                raise ConfigError(f"{name} takes {_describe(kind)}: give its values as a "
                                  "grid, not a range")
        if self.random and self.samples < 1:
            raise ConfigError("random ranges need a number of samples >= 1")
        if self.samples and not self.random:
            raise ConfigError(f"{self.samples} random samples asked, but no range to draw from")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "points", points)

    def settings(self) -> list[dict[str, Any]]:
        """Every setting, in a fixed order: each point (or none), with each grid combination
        (the last name varying fastest), with each random draw."""
        names = list(self.grid)
        combinations = [dict(zip(names, values, strict=True))
                        for values in itertools.product(*self.grid.values())]
        rng = np.random.default_rng(self.seed)
        draws = [{name: spec.draw(rng, name) for name, spec in self.random.items()}
                 for _ in range(self.samples)] or [{}]
        return [{**point, **combination, **draw} for point in self.points or [{}]
                for combination in combinations for draw in draws]


def _values(name: str, values: Any) -> Sequence[Any]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"the grid of {name} needs a list of at least one value, "
                          f"got {values!r}")
    return values


def parse_grid(text: str) -> tuple[str, list[str]]:
    """``"lr=1e-4,2e-4"`` -> ``("lr", ["1e-4", "2e-4"])`` (the name checked)."""
    name, values = _assignment(text, "--grid", "lr=1e-4,2e-4")
    return name, [value.strip() for value in values.split(",")]


def parse_random(text: str) -> tuple[str, Range]:
    """``"lr=1e-4:1e-3:log"`` -> ``("lr", Range(1e-4, 1e-3, log=True))``."""
    name, spec = _assignment(text, "--random", "lr=1e-4:1e-3:log")
    return name, Range.parse(spec)


def _assignment(text: str, option: str, example: str) -> tuple[str, str]:
    name, equals, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not equals or not rest.strip():
        raise ConfigError(f"{option} takes NAME=VALUES, e.g. {option} {example}; got {text!r}")
    check_name(name)
    return name, rest


def varying(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names whose value differs between ``settings`` (in first-seen order)."""
    names = list(dict.fromkeys(name for setting in settings for name in setting))
    return [name for name in names
            if len({repr(setting.get(name)) for setting in settings}) > 1]


def describe(setting: Mapping[str, Any], names: Sequence[str]) -> str:
    """``"lr=0.0002 ema=0.999"``: the named values of a setting ("default" if none vary)."""
    parts = [f"{name}={_text(setting.get(name))}" for name in names]
    return " ".join(parts) or "default"


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
