"""MPI as fastgan uses it: mpi4py imported on first use, errors every rank agrees on, and a
rank that fails alone ending every rank instead of leaving them waiting.

A collective operation waits for every rank. A rank that raises where the others do not would
leave them waiting in the next collective forever, so:

* what can fail differently on different ranks before training (reading a run folder, loading
  data, building the model) runs under :func:`agree`: every rank learns whether any failed,
  and all raise together;
* inside training, an exception on one rank is not shared: :func:`failing_fast` prints it,
  waits until the launcher has read what it printed (:func:`wait_until_read`), and calls
  ``MPI_Abort``, which ends every rank of the job in bounded time (measured with MPICH: under
  a second). A rank killed outright is the launcher's to notice: ``mpiexec`` ends the others
  when one dies (with Slurm, give ``srun --kill-on-bad-exit=1``).
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import stat
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar

from ..errors import ConfigError, FastganError
from .launch import detect

MPI_MISSING = ("data-parallel training needs mpi4py and an MPI library: "
               "pip install 'fastgan[mpi]'")
EXIT_ERROR, EXIT_INTERRUPTED = 1, 130
READ_TIMEOUT_S = 5.0
"""The longest a failing rank waits for the launcher to read its last lines before
``MPI_Abort`` (see :func:`wait_until_read`)."""

T = TypeVar("T")


def import_mpi() -> Any:
    """mpi4py's ``MPI`` module (which initialises MPI); a clear error when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ConfigError(f"{MPI_MISSING} ({exc})") from None
    return MPI


def world() -> Any:
    """``MPI.COMM_WORLD``, checked against the launcher: a process started as one of N by a
    launcher must see N ranks, or mpi4py's MPI library is not the launcher's."""
    comm = import_mpi().COMM_WORLD
    launch = detect()
    if launch is not None and launch.size is not None and launch.size != comm.size:
        raise ConfigError(
            f"the launcher started {launch.size} processes ({launch.variable}) but MPI sees "
            f"{comm.size}: mpi4py's MPI library is not the one whose mpiexec started this "
            "process; use the mpiexec of the same installation (with fastgan[mpi], the one in "
            "the environment's bin folder)")
    return comm


class AgreedError(ConfigError):
    """An error every rank raises at the same point (see :func:`agree`), so none is left
    waiting: the message is the lowest failing rank's, naming it unless it is rank 0."""


def agree(comm: Any, action: Callable[[], T], *, root_first: bool = False) -> T:
    """``action()`` on every rank; when it fails on any rank, it fails on every rank.

    When the action raised a :class:`~fastgan.errors.FastganError` or an ``OSError`` on any
    rank, every rank raises an :class:`AgreedError` with the message of the lowest failing
    rank (chained to its own error where it had one). With ``root_first`` rank 0 acts first,
    alone, and the others only once it succeeded (so that what it downloads or checks, they
    can rely on).
    """
    result: Any = None
    failure: BaseException | None = None
    if root_first:
        if comm.rank == 0:
            result, failure = _attempt(action)
        _raise_first(comm.bcast(_message(comm, failure), root=0), failure)
    if not (root_first and comm.rank == 0):
        result, failure = _attempt(action)
    _raise_first(next((m for m in comm.allgather(_message(comm, failure)) if m), None),
                 failure)
    return result


def same_on_every_rank(comm: Any, value: Any, what: str) -> None:
    """Every rank's ``value`` (JSON) must be rank 0's: else the same error on every rank."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    digests = comm.allgather(digest)
    odd = [rank for rank, other in enumerate(digests) if other != digests[0]]
    if odd:
        raise AgreedError(f"the ranks disagree on the {what}: rank(s) "
                          f"{', '.join(map(str, odd))} differ from rank 0; start every rank "
                          "with the same settings and data")


def _attempt(action: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    try:
        return action(), None
    except (FastganError, OSError) as exc:
        return None, exc


def _message(comm: Any, failure: BaseException | None) -> str | None:
    if failure is None:
        return None
    text = describe(failure)
    return text if comm.rank == 0 else f"on rank {comm.rank}: {text}"


def _raise_first(message: str | None, own: BaseException | None) -> None:
    if message is not None:
        raise AgreedError(message) from own


def describe(error: BaseException) -> str:
    """One line for an error (an OSError as its reason and file)."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


@contextlib.contextmanager
def failing_fast(comm: Any, agreed: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Within the block, an exception this rank does not share with the others ends every
    rank: its message (and, for an unexpected error, its traceback) goes to standard error
    and ``MPI_Abort`` ends the job with status 1, or 130 for Ctrl-C. ``agreed`` exceptions,
    raised by every rank at the same point, pass through."""
    try:
        yield
    except agreed:
        raise
    except BaseException as exc:
        status = EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_ERROR
        lost = type(exc).__module__.startswith("mpi4py")    # MPI.Exception: a rank has gone
        if not (lost or isinstance(exc, FastganError | OSError | KeyboardInterrupt)):
            traceback.print_exc(file=sys.stderr)
        reason = lost_rank(comm, exc) if lost else describe(exc)
        print(f"fastgan: error on rank {comm.rank} of {comm.size}: {reason}; ending "
              "every rank", file=sys.stderr)
        wait_until_read((sys.stdout, sys.stderr))
        comm.Abort(status)
        os._exit(status)    # MPI_Abort does not return; should it ever, this rank still ends


def lost_rank(comm: Any, error: BaseException) -> str:
    """One line for an MPI error in a collective operation: another rank's process has ended
    (killed, its node lost) where the launcher had not ended this one yet. Of two ranks, the
    lost one is the other; of more, MPI does not say which."""
    who = f"rank {1 - comm.rank}" if comm.size == 2 else "another rank"
    detail = str(error).strip().splitlines()[-1].strip() if str(error).strip() else ""
    return (f"lost {who}: a collective operation failed as its process ended (killed?)"
            + (f" [MPI: {detail}]" if detail else ""))


def wait_until_read(streams: Sequence[IO[str]], timeout: float = READ_TIMEOUT_S,
                    poll: float = 0.001) -> bool:
    """Flush ``streams`` and wait until every byte written to those that are pipes has been
    read from them; True once read, False after ``timeout`` seconds with bytes still unread.

    A launcher (MPICH's Hydra, Open MPI's ``orted``) forwards each rank's output through a
    pipe, and ``MPI_Abort`` makes it kill the job and close the pipes, so a line still in a pipe
    when the rank aborts is lost. The bytes a pipe holds unread are what the ``FIONREAD`` ioctl
    reports on either end of it (Linux; where it is missing, no stream is waited for). Streams
    that are files or terminals are never waited for: once written, nothing can lose them."""
    pipes = []
    for stream in streams:
        stream.flush()
        with contextlib.suppress(AttributeError, OSError, ValueError):   # no fileno(): not
            if stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode):         # a pipe
                pipes.append(stream.fileno())
    deadline = time.monotonic() + timeout
    while any(_unread(fd) for fd in pipes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def _unread(fd: int) -> int:
    """Bytes written to the pipe ``fd`` (either end) and not yet read (0 where unknown)."""
    try:
        import fcntl
        import termios
    except ImportError:         # not a POSIX system
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count)
    except OSError:
        return 0
    return count[0]
