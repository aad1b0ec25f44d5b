"""Where trials run: one by one in this process, or as tasks on a Dask cluster.

A pool's ``results(tasks)`` runs :func:`~fastgan.sweep.trial.run_trial` on every task and
yields the results as they finish; leaving the loop early (Ctrl-C) cancels what has not
finished. :func:`open_pool` picks the pool: in-process for one worker, else a Dask
``LocalCluster`` of single-threaded worker processes, an existing scheduler, or a client the
caller made. Dask is imported only here, and only when it is used.

On Dask, what can go wrong is met so: a worker that dies takes its trial with it, and the
scheduler runs the task again elsewhere (the trial continues from its last checkpoint, see
:mod:`fastgan.sweep.trial`); a task whose workers kept dying (Dask's ``KilledWorker``) is a
failed trial; a finished trial's result is released as soon as it is read, so that losing the
worker that holds it cannot make the scheduler train it again; a trial whose task was cancelled
or whose worker lost the scheduler saves its checkpoint and stops at the next step instead of
training on for no one; and losing the scheduler itself ends the pool with :class:`PoolLost`.
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import Any, Protocol

from ..errors import ConfigError, FastganError
from .trial import TrialTask, outcome, run_trial

DASK_MISSING = ("running trials in parallel needs Dask: pip install 'fastgan[sweep]' (or run "
                "them one at a time with --workers 1)")
CONNECT_TIMEOUT_S = 10.0
"""How long to try reaching an existing Dask scheduler before giving up."""


class PoolLost(FastganError):
    """The cluster running the trials went away (the Dask scheduler stopped answering); the
    trials that finished before are kept."""


class Pool(Protocol):
    """Runs trial tasks; ``description`` says where, for the sweep's report."""

    description: str

    def results(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        """The result of every task, in the order they finish."""


def dask_installed() -> bool:
    """Whether Dask's distributed scheduler can be imported."""
    return importlib.util.find_spec("distributed") is not None


class SerialPool:
    """Trials one after another, in this process."""

    description = "in one process, one trial at a time"

    def results(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        """Run each task in turn."""
        for task in tasks:
            yield run_trial(task)


class DaskPool:
    """Trials as tasks of a Dask client, each on one worker thread."""

    def __init__(self, client: Any) -> None:
        self.client = client
        threads = sum(client.nthreads().values())
        self.address = client.scheduler.address
        self.description = f"on Dask at {self.address}, {threads} worker threads"

    def results(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        """Submit every task, then yield results as they complete, releasing each once read;
        a task Dask gave up on (its workers kept dying) is a failed trial, and a lost scheduler
        raises :class:`PoolLost`. Leaving early cancels the unfinished tasks."""
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = {self.client.submit(run_on_worker, task, pure=False,
                                      key=f"fastgan-{task.name}-rung{task.rung}-{token}"): task
                   for task in tasks}
        try:
            for future in as_completed(list(futures)):
                task = futures.pop(future)
                try:
                    result = future.result()
                except CancelledError as exc:   # not by us: the client lost the scheduler
                    why = getattr(exc, "reason", None) or type(exc).__name__
                    raise PoolLost(f"lost the Dask scheduler at {self.address} ({why})") from None
                except Exception as exc:        # Dask gave up: KilledWorker, or worse
                    result = outcome(task, "failed",
                                     f"the Dask task was lost: {type(exc).__name__}: {exc}")
                future.release()
                yield result
        finally:
            unfinished = [future for future in futures if not future.done()]
            if unfinished and self.client.status == "running":
                self.client.cancel(unfinished)


def run_on_worker(task: TrialTask) -> dict[str, Any]:
    """:func:`~fastgan.sweep.trial.run_trial` as a Dask task: the trial is abandoned (it saves
    its checkpoint and stops) once its task is no longer executing (cancelled, or its worker
    gave it up) or its worker is closing (it lost the scheduler)."""
    from distributed import get_worker
    from distributed.core import Status

    worker = get_worker()
    key = worker.get_current_task()

    def abandoned() -> bool:
        state = worker.state.tasks.get(key)
        return (worker.status not in (Status.running, Status.paused) or state is None
                or state.state != "executing")

    return run_trial(task, abandoned)


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Within the block, logger ``name`` logs nothing (its level is restored after)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def open_pool(workers: int, scheduler: str | None = None, client: Any = None,
              connect_timeout: float | None = None) -> Iterator[Pool]:
    """The pool to run trials in: ``client``'s cluster if given; the Dask scheduler at
    ``scheduler`` (reached within ``connect_timeout`` seconds, default
    :data:`CONNECT_TIMEOUT_S`, or a ConfigError); this process for ``workers == 1``; else a
    LocalCluster of ``workers`` single-threaded worker processes, closed when the block ends.
    The client of an existing scheduler logs nothing: what goes wrong is raised instead."""
    connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
    if client is not None:
        yield DaskPool(client)
        return
    if scheduler is None and workers == 1:
        yield SerialPool()
        return
    if not dask_installed():
        raise ConfigError(DASK_MISSING)
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            remote = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} within "
                              f"{connect_timeout:g} s ({exc})") from None
        with _quiet("distributed.client"), remote:     # a lost scheduler is PoolLost's line,
            yield DaskPool(remote)                      # not the client's tracebacks
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as local:
        yield DaskPool(local)
