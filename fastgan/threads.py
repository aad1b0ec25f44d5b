"""One thread knob for every thread pool fastgan drives: BLAS (threadpoolctl) and Numba.

``FASTGAN_NUM_THREADS`` or :func:`set_num_threads` sets both together so that they never
oversubscribe the cores; the default is the number of physical cores. On a busy machine,
or for small layers, one thread is often faster: a waiting BLAS thread spins.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path

import threadpoolctl

from .errors import ConfigError

THREADS_ENV = "FASTGAN_NUM_THREADS"
_in_force: int | None = None      # what set_num_threads last applied
_blas_settings = 0                # how many times BLAS's thread count was set here


_allowed: tuple[int, ...] | None = None     # the CPUs the process might use, as first seen


def allowed_cpus() -> tuple[int, ...]:
    """The logical CPUs this process may run on, as it started (:func:`pin_cpus` narrows
    what it uses, not this)."""
    global _allowed
    if _allowed is None:
        _allowed = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") \
            else tuple(range(os.cpu_count() or 1))
    return _allowed


def physical_cores() -> int:
    """Physical cores this process may run on (:func:`allowed_cpus` / hyper-threads per core).

    Linux topology files give threads per core; elsewhere every logical CPU counts.
    """
    siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    try:
        per_core = len(_cpu_list(siblings.read_text()))
    except OSError:
        per_core = 1
    return max(1, len(allowed_cpus()) // max(per_core, 1))


def pin_cpus(cores: int) -> tuple[int, ...]:
    """Keep every thread of this process on ``cores`` physical cores of :func:`allowed_cpus`
    (one logical CPU of each; all of them when ``cores`` reaches :func:`physical_cores`);
    returns the CPUs. For pools whose own thread settings do not hold (XLA runs independent
    operations at once whatever its flags say); a no-op where the system cannot pin."""
    allowed = allowed_cpus()
    if not hasattr(os, "sched_setaffinity"):
        return allowed
    chosen = allowed
    if cores < physical_cores():
        firsts = []
        for cpu in allowed:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
            try:
                first = min(_cpu_list(siblings.read_text()))
            except OSError:
                first = cpu
            if first == cpu or first not in allowed:
                firsts.append(cpu)
        chosen = tuple(firsts[:cores])
    tasks = Path("/proc/self/task")              # every thread: affinity is a thread's own
    for thread in (int(name) for name in os.listdir(tasks)) if tasks.is_dir() else [0]:
        with suppress(ProcessLookupError):      # a thread that has ended meanwhile
            os.sched_setaffinity(thread, chosen)
    return chosen


def _cpu_list(text: str) -> list[int]:
    """Parse a Linux CPU list such as ``"0-3,8"``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def default_num_threads() -> int:
    """``FASTGAN_NUM_THREADS`` if set, else the number of physical cores."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return physical_cores()
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
    return threads


def set_num_threads(threads: int | None = None) -> int:
    """Use ``threads`` threads for BLAS and for Numba alike (None: :func:`default_num_threads`).

    Numba's count is capped by its pool size (``NUMBA_NUM_THREADS``, fixed at start-up).
    Returns the count in force.
    """
    threads = default_num_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"the thread count must be a positive integer, got {threads!r}")
    global _in_force, _blas_settings
    threadpoolctl.threadpool_limits(threads, user_api="blas")
    _in_force = threads
    _blas_settings += 1
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def get_num_threads() -> dict[str, int]:
    """Threads in force now: ``{"numba": n, "blas": n}`` (BLAS: the largest of its pools;
    numba: 0 when numba has not been imported)."""
    blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"]
    numba = sys.modules.get("numba")
    return {"numba": numba.get_num_threads() if numba else 0, "blas": max(blas, default=0)}


_blas_pools: threadpoolctl.ThreadpoolController | None = None  # BLAS's pools, found once


def _blas(rescan: bool = False) -> threadpoolctl.ThreadpoolController:
    """The BLAS libraries loaded (found on the first call or with ``rescan``: a millisecond)."""
    global _blas_pools
    if _blas_pools is None or rescan:
        _blas_pools = threadpoolctl.ThreadpoolController().select(user_api="blas")
    return _blas_pools


def set_blas_threads(threads: int, *, rescan: bool = False) -> None:
    """BLAS's pools alone at ``threads`` (Numba's, and the count :func:`set_num_threads` keeps,
    stay as they are): for a step that runs its own threads, each calling BLAS on one. A
    microsecond per library, so a benchmark may switch it between contenders; ``rescan``
    looks for the BLAS libraries loaded since the last scan first (SciPy brings its own)."""
    global _blas_settings
    for library in _blas(rescan).lib_controllers:
        library.set_num_threads(threads)
    _blas_settings += 1


def blas_settings() -> int:
    """How many times this module has set BLAS's thread count (:func:`set_num_threads`,
    :func:`set_blas_threads`): a step that keeps its own count compares it, for nothing,
    rather than ask the libraries every step."""
    return _blas_settings


def blas_threads() -> int:
    """The threads BLAS would use now (the largest of its pools; 0 without BLAS), read in
    microseconds from the libraries :func:`set_blas_threads` sets."""
    return max((library.get_num_threads() for library in _blas().lib_controllers), default=0)


def apply_default_once() -> int:
    """Apply :func:`default_num_threads` unless a count was set before, in which case apply
    that count again (Numba may have been imported since); return the count in force
    (backends call this when created, so a user's earlier choice wins)."""
    return set_num_threads(_in_force)
