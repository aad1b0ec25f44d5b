"""The wall clock of training (:class:`fastgan.training.monitors.WallClock`): it counts
seconds from where it is told to start, on from the seconds trained before, leaves pauses out,
and stops ``fit`` after the first step that reaches its limit. Time is a fake clock moved by
hand, so every figure is exact."""

from __future__ import annotations

import pytest

import fastgan
from fastgan.training import monitors
from fastgan.training.loop import Callback, TrainingLoop
from fastgan.training.monitors import WallClock


class FakeTime:
    """A perf_counter that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StepCost(Callback):
    """Makes every step take ``seconds`` of the fake time."""

    def __init__(self, time: FakeTime, seconds: float) -> None:
        self.time, self.seconds = time, seconds

    def on_step_end(self, loop: TrainingLoop) -> None:
        self.time.now += self.seconds


class Loop:
    """What the clock asks of a training loop: a way to stop it."""

    stop_requested = False

    def request_stop(self) -> None:
        self.stop_requested = True


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    time = FakeTime()
    monkeypatch.setattr(monitors.time, "perf_counter", time)
    return time


def test_the_clock_stops_fit_after_the_first_step_that_reaches_its_limit(fake_time):
    gan = fastgan.GAN.from_preset("tiny", data_dim=2, backend="numpy")
    clock = WallClock(limit=2.5)               # started now: fit's own set-up counts too
    fake_time.now += 0.5
    history = gan.fit(fastgan.data.ring(1024), steps=100,
                      callbacks=[StepCost(fake_time, 1.0), clock])
    assert history.outcome == "stopped"
    assert gan.steps == 2 and clock.seconds == 2.5


def test_without_a_limit_the_clock_only_counts(fake_time):
    loop, clock = Loop(), WallClock()
    for _ in range(3):
        fake_time.now += 10.0
        clock.on_step_end(loop)
    assert clock.seconds == 30.0 and not loop.stop_requested


def test_from_the_first_step_on_from_seconds_before_and_without_pauses(fake_time):
    loop, clock = Loop(), WallClock(limit=14.0, seconds=10.0, from_first_step=True)
    fake_time.now += 50.0                      # made long before training begins
    clock.on_train_begin(loop)
    fake_time.now += 7.0                       # the first step: not counted
    clock.on_step_end(loop)
    assert clock.seconds == 10.0
    fake_time.now += 2.0
    with clock.paused():                       # an evaluation: not counted
        fake_time.now += 5.0
    clock.on_step_end(loop)
    assert clock.seconds == 12.0 and not loop.stop_requested
    fake_time.now += 2.0
    clock.on_step_end(loop)
    assert clock.seconds == 14.0 and loop.stop_requested


def test_a_second_fit_counts_on_and_leaves_its_first_step_out(fake_time):
    loop, clock = Loop(), WallClock(from_first_step=True)
    for _ in range(2):                         # two fits of two steps of 1 s each
        clock.on_train_begin(loop)
        for _ in range(2):
            fake_time.now += 1.0
            clock.on_step_end(loop)
        fake_time.now += 60.0                  # between the fits: not training
    assert clock.seconds == 2.0
