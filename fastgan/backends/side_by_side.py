"""A small persistent pool that runs independent calls side by side on Python threads.

NumPy's ``matmul`` releases the GIL while BLAS works, so T Python threads, each calling a
single-threaded BLAS, multiply T matrices at the same time. :class:`SideBySide` keeps T - 1
worker threads, created once; the calling thread is the T-th and runs a share itself. A call
hands each worker one job through a pair of locks made when the worker is (``start``, which
the worker waits on, and ``done``, which the caller waits on), so running a set of jobs makes
no thread, lock, event or future: handing a job over costs a lock release and a wake-up.

A job is a function and its argument tuple. The jobs given together must not depend on each
other (no job may read what another writes); the call returns when all have finished, and
re-raises the first exception a worker met. The workers end with :meth:`SideBySide.close`, or
when the pool is garbage collected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

Job = tuple[Callable[..., Any], tuple[Any, ...]]
"""A function and the positional arguments to call it with."""


class _Worker:
    """One daemon thread that runs the jobs handed to it, one at a time."""

    def __init__(self, name: str) -> None:
        self.job: Job | None = None
        self.error: BaseException | None = None
        self.start, self.done = threading.Lock(), threading.Lock()
        self.start.acquire()            # held: the worker waits until a job is handed over
        self.done.acquire()             # held: the caller waits until the job has run
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            self.start.acquire()
            if self.job is None:        # the pool is closing
                return
            function, args = self.job
            try:
                function(*args)
            except BaseException as exc:        # handed back to the caller
                self.error = exc
            self.done.release()

    def hand(self, job: Job | None) -> None:
        """Start ``job`` on this worker's thread (None: end the thread)."""
        self.job = job
        self.start.release()

    def join(self) -> BaseException | None:
        """Wait for the job handed over last; its exception, if it raised one."""
        self.done.acquire()
        error, self.error = self.error, None
        return error


class SideBySide:
    """``threads`` threads (this one and ``threads`` - 1 workers) running independent jobs at
    the same time; see the module. With one thread every job runs in the caller, in order."""

    def __init__(self, threads: int) -> None:
        if not (isinstance(threads, int) and threads >= 1):
            raise ConfigError(f"a pool needs a positive number of threads, got {threads!r}")
        self.threads = threads
        self._workers = [_Worker(f"fastgan-side-by-side-{i}") for i in range(1, threads)]
        self._finalizer = weakref.finalize(self, _end, self._workers)

    def close(self) -> None:
        """End the worker threads (a closed pool runs nothing more)."""
        self._finalizer()

    def run(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` (at most :attr:`threads`, independent of each other) side by side:
        ``jobs[0]`` here, each other on a worker; return when all are done."""
        if len(jobs) > self.threads:
            raise ConfigError(f"{len(jobs)} jobs for a pool of {self.threads} threads")
        if not self._finalizer.alive:
            raise ConfigError("this pool is closed")
        workers = self._workers[:len(jobs) - 1]
        for worker, job in zip(workers, jobs[1:], strict=True):
            worker.hand(job)
        function, args = jobs[0]
        try:
            function(*args)
        finally:
            errors = [worker.join() for worker in workers]
        for error in errors:
            if error is not None:
                raise error


def _end(workers: list[_Worker]) -> None:
    """Hand every worker the end of its thread and wait for it."""
    for worker in workers:
        worker.hand(None)
    for worker in workers:
        worker.thread.join()
