"""``fastgan info``: versions, usable backends, threads, GEMM library, GPU, presets and datasets."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan info``."""
    parser = subparsers.add_parser(
        "info", help="versions, usable backends, threads and GPU",
        description="What fastgan finds on this machine.")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan info``: versions, backends (and why not), threads, the GEMM library and its
    kernel, GPU, presets, datasets."""
    from .. import data, environment
    from ..gan import presets

    versions = environment.versions()
    print(f"fastgan {versions.pop('fastgan')} on Python {versions.pop('python')}")
    print("packages: " + ", ".join(f"{name} {version or '-'}"
                                   for name, version in versions.items()))
    backends = environment.backends()
    print("backends:")
    for name, reason in backends["backends"].items():
        print(f"  {name:6} {'usable' if reason is None else 'not usable: ' + reason}")
    print(f"  auto   -> {backends['auto']}")
    threads = environment.threads()
    pools = "; ".join(f"{p['library']} {p['version']}, {p['threads']} threads"
                      for p in threads["pools"]) or "none found"
    numba = "" if threads["numba_threads"] is None else f"; numba {threads['numba_threads']}"
    print(f"threads: {threads['cpu_count']} CPUs ({threads['usable_cpus']} usable); "
          f"{pools}{numba}")
    gemm = environment.gemm_library()
    print("GEMM: none found (NumPy loaded no BLAS library threadpoolctl knows)" if gemm is None
          else f"GEMM: {gemm['library']} {gemm['version']}, kernel {gemm['kernel'] or '-'}, "
               f"{gemm['threading']}, {gemm['threads']} threads ({gemm['path']})")
    gpu = environment.gpu()
    if gpu["device"] is None:
        print(f"GPU: none usable ({gpu['reason']})")
    else:
        print(f"GPU: {gpu['device']}, {gpu['memory_gib']} GiB, compute capability "
              f"{gpu['compute_capability']}")
    print(f"presets: {', '.join(presets.names())}")
    print(f"datasets: {', '.join(data.names())}, or an .npz file or a folder of images")
    return 0
