"""What this machine offers fastgan: package versions, backends, threads, GEMM library and GPU.

``fastgan info`` prints it; every run records :func:`versions` in its config.json.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

from ._version import __version__
from .backends import available_backends, get_backend

PACKAGES = ("numpy", "numba", "scipy", "scikit-learn", "pillow", "tqdm", "threadpoolctl",
            "matplotlib", "tensorboardX", "torch")
CUPY_DISTRIBUTIONS = ("cupy-cuda13x", "cupy-cuda12x", "cupy")


def versions() -> dict[str, str | None]:
    """fastgan, Python and each related package's version (None: not installed)."""
    found: dict[str, str | None] = {"fastgan": __version__,
                                    "python": platform.python_version()}
    for name in PACKAGES:
        found[name] = _distribution_version(name)
    found["cupy"] = next(filter(None, map(_distribution_version, CUPY_DISTRIBUTIONS)), None)
    return found


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def backends() -> dict[str, Any]:
    """Each backend's reason it cannot run here (None: usable), and what "auto" picks."""
    reasons = available_backends()
    return {"backends": reasons, "auto": get_backend("auto").name}


def threads() -> dict[str, Any]:
    """CPU cores and the thread pools fastgan's kernels run on (BLAS, OpenMP, Numba)."""
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    pools = [{"library": info.get("internal_api"), "version": info.get("version"),
              "threads": info.get("num_threads")} for info in threadpool_info()]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    numba_threads = None
    if available_backends().get("numba") is None:
        import numba

        numba_threads = numba.config.NUMBA_NUM_THREADS
    return {"cpu_count": os.cpu_count(), "usable_cpus": usable, "pools": pools,
            "numba_threads": numba_threads}


def gemm_library() -> dict[str, Any] | None:
    """The BLAS library NumPy's matrix products (and so every CPU GEMM of fastgan) call.

    From threadpoolctl: ``library`` (its ``internal_api``: openblas, mkl, blis, ...),
    ``version``, ``kernel`` (the CPU kernel the library picked at load time, its
    ``architecture``: e.g. Haswell, SkylakeX, Zen; None where the library does not say),
    ``threading`` (its ``threading_layer``: pthreads, openmp, ...), ``threads`` and ``path``.
    When several BLAS libraries are loaded (torch or SciPy may bring their own), NumPy's is the
    one whose file lies in NumPy's install; None when no BLAS library is found.
    """
    import numpy
    from threadpoolctl import threadpool_info

    pools = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    if not pools:
        return None
    home = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    numpy_dirs = (os.path.join(home, "numpy"), os.path.join(home, "numpy.libs"))
    ours = [p for p in pools if os.path.abspath(p["filepath"]).startswith(numpy_dirs)]
    info = (ours or pools)[0]
    return {"library": info.get("internal_api"), "version": info.get("version"),
            "kernel": info.get("architecture"), "threading": info.get("threading_layer"),
            "threads": info.get("num_threads"), "path": info.get("filepath")}


def gpu() -> dict[str, Any]:
    """The CUDA device the cupy backend would use, or why there is none."""
    reason = available_backends().get("cupy")
    if reason is not None:
        return {"device": None, "reason": reason}
    import cupy

    device = cupy.cuda.Device()
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"]
    return {"device": name.decode() if isinstance(name, bytes) else name,
            "memory_gib": round(device.mem_info[1] / 2**30, 1),
            "compute_capability": device.compute_capability, "reason": None}
