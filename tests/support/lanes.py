"""Convolutions on lanes: a schedule's threads each taking whole slices of the batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from fastgan.backends.scheduled import GemmSchedule


@contextlib.contextmanager
def convolution_lanes(backend: Any, monkeypatch: pytest.MonkeyPatch, lanes: int) -> Iterator[None]:
    """Inside the block every convolution takes its batch one sample per slice, the slices
    shared among ``lanes`` threads (a schedule that cuts every product); one lane: one
    sample after another, as the serial step with small slices. Host backends only."""
    if lanes > 1 and backend.xp.__name__ != "numpy":
        pytest.skip(f"lanes are host threads; the {backend.name} backend has none")
    monkeypatch.setattr(type(backend), "im2col_bytes", 1)
    schedule = GemmSchedule(lanes, split_min_flops=0) if lanes > 1 else None
    with backend.gemms_on(schedule):
        yield
