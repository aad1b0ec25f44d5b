"""Where trials run: one by one in this process, or as tasks on a Dask cluster.

A pool's ``results(tasks)`` runs :func:`~fastgan.sweep.trial.run_trial` on every task and
yields the results as they finish; leaving the loop early (Ctrl-C) cancels what has not
finished. :func:`open_pool` picks the pool: in-process for one worker, else a Dask
``LocalCluster`` of single-threaded worker processes, an existing scheduler, or a client the
caller made. Dask is imported only here, and only when it is used.
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from ..errors import ConfigError
from .trial import TrialTask, outcome, run_trial

DASK_MISSING = ("running trials in parallel needs Dask: pip install 'fastgan[sweep]' (or run "
                "them one at a time with --workers 1)")
CONNECT_TIMEOUT_S = 10.0
"""How long to try reaching an existing Dask scheduler before giving up."""


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
        self.description = f"on Dask at {client.scheduler.address}, {threads} worker threads"

    def results(self, tasks: Sequence[TrialTask]) -> Iterator[dict[str, Any]]:
        """Submit every task, then yield results as they complete; a task whose worker
        was lost is a failed trial. Leaving early cancels the unfinished tasks."""
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = {self.client.submit(run_trial, task, pure=False,
                                      key=f"fastgan-{task.name}-rung{task.rung}-{token}"): task
                   for task in tasks}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:   # the worker died or the task was cancelled
                    yield outcome(futures[future], "failed",
                                  f"the Dask task was lost: {type(exc).__name__}: {exc}")
        finally:
            unfinished = [future for future in futures if not future.done()]
            if unfinished:
                self.client.cancel(unfinished)


@contextmanager
def open_pool(workers: int, scheduler: str | None = None, client: Any = None,
              connect_timeout: float | None = None) -> Iterator[Pool]:
    """The pool to run trials in: ``client``'s cluster if given; the Dask scheduler at
    ``scheduler`` (reached within ``connect_timeout`` seconds, default
    :data:`CONNECT_TIMEOUT_S`, or a ConfigError); this process for ``workers == 1``; else a
    LocalCluster of ``workers`` single-threaded worker processes, closed when the block ends."""
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
        with remote:
            yield DaskPool(remote)
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as local:
        yield DaskPool(local)
