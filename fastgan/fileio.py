"""File writes that never leave a half-written file behind: a file written atomically is either
its old self or completely new; a record appended is whole or absent. An error of a write that
found no room (a full disk, a quota, a file-size limit) names the file it was writing."""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

OUT_OF_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EFBIG: "the file-size limit was reached"}
"""The errors of a write that found no room, and what each means. (``write()`` raises them
naming no file; the writers here name the file they were writing.)"""

TOKEN_BYTES = 6
"""Random bytes in the name of a temporary file (``.NAME.<hex>.tmp``)."""
LEFTOVER = re.compile(rf"\..+\.[0-9a-f]{{{2 * TOKEN_BYTES}}}\.tmp")
"""The name of a temporary file of :func:`write_atomically`."""


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, sync it, then rename it to ``path``.

    Creates missing parent folders. On any failure (``write`` raising included, e.g. a failed
    checksum) the temporary file is removed and the error propagates; ``path`` keeps its
    previous content, if any. An :data:`OUT_OF_ROOM` error names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(TOKEN_BYTES)}.tmp")
    try:
        with _naming_out_of_room(path):
            with open(temporary, "xb") as file:  # "x": never reuse a file; honours the umask
                write(file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that :func:`write_atomically` left in ``folder`` where its
    process was killed in a write (SIGKILL, a power cut); returns them. Only for a folder no
    other process is writing: one whose lock (:mod:`fastgan.runs.lock`) this process holds."""
    leftovers = [path for path in Path(folder).glob(".*.tmp")
                 if LEFTOVER.fullmatch(path.name) and path.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def append(path: str | os.PathLike, data: bytes) -> None:
    """Append ``data`` to the file at ``path`` (made if missing), whole or not at all.

    When a write fails part way (no room: an :data:`OUT_OF_ROOM` error, which names ``path``),
    the file is cut back to its length before and the error propagates, so that it never ends
    in a fragment that the next record would be glued to. (A crash in the middle of the one
    ``write()`` of a short record can still leave one: readers skip a damaged line.)
    """
    with _naming_out_of_room(path), open(path, "ab", buffering=0) as file:
        start = file.seek(0, os.SEEK_END)
        rest = memoryview(data)
        try:
            while rest:
                rest = rest[file.write(rest):]
        except BaseException:
            file.truncate(start)
            raise


@contextmanager
def _naming_out_of_room(path: str | os.PathLike) -> Iterator[None]:
    """Make an :data:`OUT_OF_ROOM` error raised in the block name ``path``, the file being
    written (``write()`` names none; a temporary stand-in would mean nothing to a user)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in OUT_OF_ROOM:
            exc.filename, exc.filename2 = os.fspath(path), None
        raise


def write_folder_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a new temporary folder beside ``path``, then rename it to ``path``.

    An existing ``path`` (folder or file) is replaced only once the new folder is complete;
    on any failure the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(TOKEN_BYTES)
    temporary = path.with_name(f".{path.name}.{token}.tmp")
    temporary.mkdir()
    try:
        write(temporary)
        if path.exists():
            previous = path.with_name(f".{path.name}.{token}.old")
            os.replace(path, previous)
            os.replace(temporary, path)
            shutil.rmtree(previous) if previous.is_dir() else previous.unlink()
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path
