"""The ``fastgan`` command (also ``python -m fastgan``): train, sample, export, info, evaluate,
bench, sweep.

Exit status: 0 done, 1 a clear error (printed as one ``fastgan: error: ...`` line, never a
traceback), 2 a bad command line, 3 training diverged, 130 interrupted (Ctrl-C).

Each subcommand is a module of this package with ``add_parser(subparsers)``, which adds its
parser and sets ``run=command`` as a default, ``command(args) -> int`` returning the exit
status. Command modules import heavy dependencies inside ``command``, not at their top, so
that every ``fastgan`` command stays quick to start.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import FastganError, TrainingDiverged
from ..fileio import OUT_OF_ROOM
from . import bench, evaluate, export, info, sample, sweep, train
from .common import EXIT_DIVERGED, EXIT_ERROR, EXIT_INTERRUPTED, Parser
from .signals import Interrupted, exit_status, signal_name

COMMANDS = (train, sample, export, info, evaluate, bench, sweep)
"""The subcommand modules, in the order ``fastgan --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``fastgan`` parser with every subcommand of :data:`COMMANDS`."""
    parser = Parser(prog="fastgan", description="MLP GANs with hand-derived gradients on "
                                                "NumPy, Numba and CuPy backends.")
    parser.add_argument("--version", action="version", version=f"fastgan {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True,
                                       parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"fastgan: warning: {message}", file=sys.stderr)


def os_error_message(exc: OSError) -> str:
    """What went wrong and the file it concerns, in one line; a write that found no room reads
    "no space left for FILE: the disk is full (No space left on device)"."""
    if exc.errno in OUT_OF_ROOM:
        where = f" for {exc.filename}" if exc.filename else ""
        return f"no space left{where}: {OUT_OF_ROOM[exc.errno]} ({exc.strerror})"
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastgan`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.run(args)
    except TrainingDiverged as exc:
        print(f"fastgan: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except FastganError as exc:
        print(f"fastgan: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"fastgan: error: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Interrupted as exc:
        print(f"\nfastgan: stopped by {signal_name(exc.signum)}", file=sys.stderr)
        return exit_status(exc.signum)
    except KeyboardInterrupt:
        print("\nfastgan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
