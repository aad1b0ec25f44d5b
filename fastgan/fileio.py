"""Atomic file writes: a file is either its old self or completely new, never half-written."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, sync it, then rename it to ``path``.

    Creates missing parent folders. On any failure (``write`` raising included, e.g. a failed
    checksum) the temporary file is removed and the error propagates; ``path`` keeps its
    previous content, if any.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as file:  # "x": never reuse a file; honours the umask
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_folder_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a new temporary folder beside ``path``, then rename it to ``path``.

    An existing ``path`` (folder or file) is replaced only once the new folder is complete;
    on any failure the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(6)
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
