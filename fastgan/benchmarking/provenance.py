"""Where a benchmark's figures come from: the command that made them, the code (its git
commit), the machine and the date.

Every result file a benchmark writes starts with :func:`provenance`, so that a figure can be
traced back and measured again; ``tests/test_benchmark_results.py`` checks that each JSON file
in ``benchmarks/results/`` has :data:`FIELDS` (files measured before they were recorded are
listed in ``benchmarks/results/LEGACY.md``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIELDS = ("command", "commit", "machine", "date")
"""The keys :func:`provenance` gives, at the top level of every result's JSON."""

SOURCE = Path(__file__).resolve().parents[2]
"""The folder fastgan is imported from: its git checkout, when it is one."""


def machine() -> dict[str, Any]:
    """The CPU model, logical CPUs, the GEMM library the floor and the CPU backends call
    (:func:`fastgan.environment.gemm_library`), the GPU (:func:`fastgan.environment.gpu`),
    package versions and the load average now."""
    from ..environment import gemm_library, gpu, versions

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": model, "logical_cpus": os.cpu_count(), "load_average": load,
            "gemm": gemm_library(), "gpu": gpu(),
            "versions": {k: v for k, v in versions().items() if v is not None}}


def commit() -> dict[str, Any]:
    """The git commit fastgan is imported from (``id``, None outside a git checkout) and
    whether its tracked files differ from it (``dirty``)."""
    if not (SOURCE / ".git").exists():
        return {"id": None, "dirty": None}
    try:
        head = _git("rev-parse", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return {"id": None, "dirty": None}
    return {"id": head, "dirty": bool(changes)}


def _git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", str(SOURCE), *arguments], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def provenance(command: Sequence[str] | None = None) -> dict[str, Any]:
    """``command`` (default: this process's ``sys.argv``), ``commit`` (:func:`commit`),
    ``machine`` (:func:`machine`) and ``date`` (local time, ISO 8601 with its UTC offset)."""
    return {"command": list(sys.argv if command is None else command), "commit": commit(),
            "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
