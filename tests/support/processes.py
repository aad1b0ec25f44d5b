"""The child processes of a fault drill: each in a session of its own (so that a signal meant
for it reaches nothing else, and its group can be ended whole), its output in a log file, all
of them ended when the drill ends, whatever happened."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

END_TIMEOUT = 30
"""Seconds to reap a process after SIGKILL."""


class Processes(contextlib.AbstractContextManager):
    """A drill's processes, started in ``folder`` with environment ``env`` and ``preexec``
    (the signal dispositions the drill's children start with); leaving the ``with`` block
    SIGKILLs the group of every one still running, and reaps them all."""

    def __init__(self, folder: Path, env: Mapping[str, str], preexec: Callable[[], None]
                 ) -> None:
        self.folder, self.env, self.preexec = folder, dict(env), preexec
        self.started: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}

    def start(self, argv: list[str], name: str | None = None,
              preexec: Callable[[], None] | None = None) -> subprocess.Popen:
        """Start ``argv`` with its stdout and stderr in ``FOLDER/NAME.log`` (default: its
        number among the drill's processes); ``preexec`` replaces the drill's own."""
        log_path = self.folder / f"{name or len(self.started)}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(argv, cwd=self.folder, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=preexec or self.preexec)
        self.started.append(process)
        self.logs[process.pid] = log_path
        return process

    def output(self, process: subprocess.Popen) -> str:
        """What ``process`` wrote (stdout and stderr)."""
        return self.logs[process.pid].read_text()

    def __exit__(self, *exc_info: object) -> None:
        """SIGKILL the group of every process still running, and reap them all."""
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=END_TIMEOUT)
