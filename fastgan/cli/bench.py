"""``fastgan bench``: time every backend's training step beside PyTorch and the step's floor,
print the tables, write the figures as JSON (and the scaling plot)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..benchmarking.bench import (
    BACKENDS,
    DEFAULT_REPEATS,
    PEERS,
    Settings,
    format_table,
    format_windows,
    run,
)
from ..fileio import write_atomically

SCALING_KEYS = {"batch": "batch", "width": "width x", "threads": "threads"}
"""The first column's heading in each scaling table."""


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan bench``."""
    parser = subparsers.add_parser(
        "bench", help="training-step speed per backend, beside PyTorch, against the floor",
        description="Time one training step per backend and PyTorch peer, interleaved after "
                    "warm-up with one thread count for all, beside the step's floor (its GEMMs "
                    "alone plus the optimizers' memory traffic), measured in the same run.")
    arg = parser.add_argument
    arg("--backend", action="append", metavar="NAMES",
        help=f"backends to time, repeatable or comma-separated (default: every usable one of "
             f"{', '.join(BACKENDS)})")
    arg("--preset", action="append", metavar="NAMES",
        help="presets, repeatable or comma-separated (default pytorch-vanilla)")
    arg("--batch", type=int, nargs="+", metavar="B", help="batch sizes (default: the preset's)")
    arg("--dtype", default="float32", choices=("float32", "float64"))
    arg("--peers", choices=tuple(PEERS), default="eager",
        help="peers: none, eager (PyTorch), compile (torch.compile), jax (jax.jit; needs jax "
             "and optax) or all (default eager)")
    arg("--schedule", action="store_true",
        help="also time numba's scheduled step: independent GEMMs side by side on --threads "
             "threads, BLAS on one thread per call ('numba scheduled')")
    arg("--repeats", type=int, help=f"timed repetitions (default {DEFAULT_REPEATS})")
    arg("--threads", type=int,
        help="threads for BLAS, Numba and torch alike (default: physical cores)")
    arg("--scaling", action="store_true",
        help="also time steps/s over batch sizes, widths and thread counts (1, 2, 4, ... "
             "physical cores) for the first preset, and plot it (--plot)")
    arg("--windows", type=float, metavar="SECONDS",
        help="alternating-window mode: each contender and the floor's GEMMs run back to back "
             "for SECONDS in turn, --repeats rounds; prints every round's pair and the "
             "contender's %% of that round's floor")
    arg("--plot", type=Path, default=Path("bench_scaling.png"),
        help="PNG of the scaling curves (default bench_scaling.png)")
    arg("--json", type=Path, metavar="PATH", help="write every figure to this JSON file")
    arg("--quick", action="store_true",
        help="a smoke run well under a minute: the tiny preset, batch 64, 5 repetitions, "
             "no torch.compile, no scaling")
    parser.set_defaults(run=command)


def _names(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Repeatable, comma-separated option values as one tuple (None when absent)."""
    if not values:
        return None
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def settings_from(args: argparse.Namespace) -> Settings:
    """The benchmark's :class:`~fastgan.benchmarking.bench.Settings` from the options;
    ``--quick`` sets sizes and peers, which the options given still override."""
    given = {"backends": _names(args.backend), "presets": _names(args.preset),
             "batches": None if args.batch is None else tuple(args.batch),
             "repeats": args.repeats, "threads": args.threads, "window": args.windows}
    changes: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    changes["dtype"], changes["peers"] = args.dtype, args.peers
    changes["schedule"] = args.schedule
    if args.quick:
        changes.pop("presets", None)
        changes.pop("batches", None)
        return Settings.quick(**changes)
    return Settings(**changes, scaling=args.scaling)


def command(args: argparse.Namespace) -> int:
    """``fastgan bench``: measure, print the tables, write the JSON (and the scaling plot)."""
    settings = settings_from(args)
    report = run(settings, plot=args.plot,
                 notify=lambda line: print(f"fastgan bench: {line}", file=sys.stderr,
                                           flush=True))
    found = report["machine"]
    gemm = found["gemm"] or {"library": "no BLAS found", "version": "", "kernel": None}
    mode = (f"{settings.repeats} rounds of alternating {settings.window:g} s windows"
            if settings.window else f"{settings.repeats} interleaved repetitions")
    print(f"\nfastgan bench on {found['cpu']}, {settings.threads} threads, {mode} after "
          f"{settings.warmup} warm-up; GEMMs by {gemm['library']} {gemm['version']} "
          f"(kernel {gemm['kernel'] or '-'}); load average {found['load_average']}")
    for result in report.get("windows", []):
        print(f"\n{result['preset']} batch {result['batch']} {result['dtype']}:")
        print(format_windows(result))
    if "results" in report:
        print(format_table(report["results"]))
    for axis, results in report.get("scaling", {}).items():
        first = results[0]
        print(f"\nscaling over {axis} ({first['preset']}"
              f"{'' if axis == 'batch' else ', batch ' + str(first['batch'])}):")
        print(format_table(results, key=SCALING_KEYS[axis]))
    print(f"load average after: {found['load_average_after']}")
    if settings.scaling and report.get("scaling_plot") is None:
        print("fastgan bench: no scaling plot (matplotlib is not installed)", file=sys.stderr)
    if args.json is not None:
        text = json.dumps(report, indent=1, allow_nan=False)
        write_atomically(args.json, lambda file: file.write(text.encode()))
        print(f"fastgan bench: figures written to {args.json}", file=sys.stderr)
    return 0
