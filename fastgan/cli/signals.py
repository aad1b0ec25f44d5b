"""Stop signals for long-running commands: SIGINT (Ctrl-C) and SIGTERM (what Slurm, Kubernetes
and other batch systems send on preemption, before SIGKILL) ask the command to stop cleanly;
a second signal quits at once.

The handlers are installed whatever dispositions the process inherited: a job started in the
background by a script, under ``nohup`` or by a CI runner starts with SIGINT ignored, and
Python then gives it no KeyboardInterrupt of its own.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived (``signum``): the command stops at once, keeping what it can."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(signum: int) -> int:
    """The shell's exit status for a command stopped by signal ``signum``: 128 + ``signum``
    (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def signal_name(signum: int) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class StopSignals:
    """While :meth:`installed`, the first SIGINT or SIGTERM calls ``first(signum)`` (which may
    raise :class:`Interrupted` to stop at once) and a second one raises
    :class:`Interrupted`. ``received`` is the first signal's number (None: none came)."""

    def __init__(self, first: Callable[[int], None]) -> None:
        self.first = first
        self.received: int | None = None

    def handle(self, signum: int, frame: Any) -> None:
        """The handler of both signals."""
        if self.received is not None:
            raise Interrupted(signum)
        self.received = signum
        self.first(signum)

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle the stop signals within the block; the previous handlers come back after."""
        previous = {signum: signal.signal(signum, self.handle) for signum in STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
