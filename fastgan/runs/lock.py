"""The lock of a folder fastgan writes (a run folder, a sweep folder): one command at a time.

A folder's lock is the operating system's lock (``flock``) on a file in it, :data:`LOCK_NAME`,
which names its holder: the process id, the host and the time it took the lock, for the error
a second command meets. The system releases the lock when its process ends, however it ends,
so a killed command never blocks the next one (and a reused process id cannot fake a holder).
The holder removes the file when it is done; a file whose lock is free was left by a process
that was killed (SIGKILL, a power cut), and is taken over with a warning. Between hosts the
lock holds where the file system passes ``flock`` on (local disks; NFS on Linux does).

The lock is the process's: :func:`locked` blocks nested within one process, for the same
folder, share one lock, which the outermost block takes and releases.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, FastganError

LOCK_NAME = ".lock"
"""The lock file in a locked folder."""

TAKE_ATTEMPTS = 3
"""Tries at locking: the first, and more where the holder removed its file as it ended."""


class FolderInUse(FastganError):
    """Another process holds the lock of a folder this one is to write."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a folder's lock: process ``pid`` on ``host``, ``since`` a local time."""

    pid: int
    host: str
    since: str

    @classmethod
    def this_process(cls) -> LockHolder:
        """This process, from now."""
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"))

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder a lock file's ``text`` names (None: the text is not a lock's)."""
        try:
            holder = cls(**json.loads(text))
        except (ValueError, TypeError):
            return None
        valid = (type(holder.pid) is int and isinstance(holder.host, str)
                 and isinstance(holder.since, str))
        return holder if valid else None

    def describe(self) -> str:
        """E.g. "process 42 on host node7 since 2026-12-05 10:00:00"."""
        return f"process {self.pid} on host {self.host} since {self.since}"


@dataclass
class _Hold:
    """A lock this process holds: its open lock file, as whom, and how many :func:`locked`
    blocks hold it."""

    descriptor: int
    holder: LockHolder
    depth: int = 0


_held: dict[Path, _Hold] = {}
"""The folders whose lock this process holds, by their resolved path."""


@contextmanager
def locked(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder``'s lock within the block (see the module's docstring); yields the
    folder. A missing folder is created for the lock file, and removed with it where nothing
    else was written into it. Raises :class:`FolderInUse` where another process holds it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a folder")
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    try:
        hold = _held.get(key) or _take(folder)
        _held[key] = hold
        hold.depth += 1
        try:
            yield folder
        finally:
            hold.depth -= 1
            if hold.depth == 0:
                del _held[key]
                (folder / LOCK_NAME).unlink(missing_ok=True)      # still locked: nobody took it
                os.close(hold.descriptor)                         # releases the lock
    finally:
        for path in created:                  # the deepest first, while they are empty
            try:
                path.rmdir()
            except OSError:
                break


def check_unlocked(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`FolderInUse` where another process holds ``folder``'s lock; writes
    nothing."""
    folder = Path(folder)
    if folder.resolve() in _held:
        return
    try:
        descriptor = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:                           # no lock file: nobody holds it
        return
    try:
        _lock_or_refuse(folder, descriptor)
    finally:
        os.close(descriptor)


def vacant(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is missing or an empty folder (its lock file aside)."""
    folder = Path(folder)
    if not folder.exists():
        return True
    return folder.is_dir() and all(entry.name == LOCK_NAME for entry in folder.iterdir())


def _take(folder: Path) -> _Hold:
    """Lock ``folder`` for this process and name it in the lock file (a file left by a killed
    holder is taken over with a warning); raise :class:`FolderInUse` where another holds it."""
    path = folder / LOCK_NAME
    for _ in range(TAKE_ATTEMPTS):
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_or_refuse(folder, descriptor)
            if not _is_file_at(descriptor, path):     # its holder removed it as we opened it
                os.close(descriptor)
                continue
            left = os.read(descriptor, 4096).decode("utf-8", errors="replace")
            if left:
                _warn_taken_over(folder, LockHolder.parse(left))
            holder = LockHolder.this_process()
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (json.dumps(asdict(holder)) + "\n").encode("utf-8"), 0)
            return _Hold(descriptor, holder)
        except BaseException:
            with suppress(OSError):
                os.close(descriptor)
            raise
    raise FolderInUse(f"{folder} is being locked and unlocked by other commands; try again")


def _lock_or_refuse(folder: Path, descriptor: int) -> None:
    """Lock the open lock file ``descriptor`` of ``folder``, or raise :class:`FolderInUse`
    naming the process that holds it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = LockHolder.parse(os.pread(descriptor, 4096, 0).decode("utf-8", "replace"))
        who = "another command" if holder is None else holder.describe()
        raise FolderInUse(f"{folder} is in use by {who} (its lock {folder / LOCK_NAME}); wait "
                          "for it to end (or stop it) and try again") from None


def _is_file_at(descriptor: int, path: Path) -> bool:
    """Whether the open file ``descriptor`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def _warn_taken_over(folder: Path, left: LockHolder | None) -> None:
    """Warn that ``folder``'s lock file, left by ``left`` (None: unreadable), is taken over."""
    who = "a command" if left is None else left.describe()
    warnings.warn(f"{folder} was locked by {who}, which ended without unlocking it "
                  f"(killed?); taking its lock {folder / LOCK_NAME} over", stacklevel=3)
