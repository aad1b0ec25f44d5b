"""Limits a drill puts on its child processes."""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable


def file_size_limit(limit: int, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A child's ``preexec_fn``: ``then()`` (say, the signal dispositions the drill's children
    start with), and writes past ``limit`` bytes of a file fail with EFBIG (SIGXFSZ, which
    would kill the process instead, ignored)."""
    def preexec() -> None:
        if then is not None:
            then()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return preexec
