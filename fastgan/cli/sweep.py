"""``fastgan sweep``: many runs over a hyper-parameter grid or random ranges, with seeds, on
Dask or in this process; re-running the same command continues the sweep."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from .common import fail
from .signals import Interrupted, StopSignals, exit_status, signal_name

FILE_KEYS = ("preset", "data", "backend", "dtype", "seeds", "budget", "eval_every", "eval_n",
             "metric", "halving", "min_budget", "workers", "scheduler", "threads", "out",
             "samples", "search_seed")
"""Options a --config file may set (by the option's name with underscores), beside its
[grid], [random] and [[points]] tables."""


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan sweep``."""
    parser = subparsers.add_parser(
        "sweep", help="train many runs over hyper-parameters and seeds, and rank them",
        description="Train one run per setting and seed (each an ordinary run folder in "
                    "OUT/trial-NNN) under a time or step budget, score them with fastgan "
                    "evaluate's metrics, and write OUT/results.jsonl, OUT/summary.md (settings "
                    "ranked, mean ± spread over seeds) and pictures. Trials run on a local Dask "
                    "cluster (pip install 'fastgan[sweep]'), an existing scheduler, or one at a "
                    "time in this process (--workers 1). Re-running the same command skips "
                    "finished trials; Ctrl-C keeps every finished result.")
    arg = parser.add_argument
    arg("--config", type=Path, metavar="FILE.toml",
        help="read options from a TOML file: keys named like the options (eval_every = "
             "\"60s\"), a [grid] table (lr = [1e-4, 2e-4]; tuples as lists: g_filters = "
             "[[64, 32], [32, 16]]), a [random] table "
             "(lr = \"1e-4:1e-3:log\") and [[points]] tables (whole settings, e.g. an "
             "earlier sweep's best); options on the command line win")
    arg("--preset", help="the preset every trial starts from (default tiny)")
    arg("--data", help="the dataset (default digits)")
    arg("--backend", help="numpy, numba, cupy or auto (default auto)")
    arg("--dtype", help="float32 or float64 (default float32)")
    arg("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
        help="try each value (repeat for more names: every combination is a setting); a "
             "single value fixes a setting; tuples with spaces, e.g. \"g_filters=64 32,32 16\"; "
             "none for the preset's value (but norm=none is no normalisation)")
    arg("--random", action="append", default=[], metavar="NAME=LOW:HIGH[:log]",
        help="draw NAME uniformly (log-uniformly with :log) in [LOW, HIGH]; needs --samples")
    arg("--samples", type=int, metavar="N", help="random draws (each with every grid point)")
    arg("--search-seed", type=int, metavar="SEED", help="seed of the random draws (default 0)")
    arg("--seeds", type=int, metavar="N", help="seeds per setting: 0 .. N-1 (default 1)")
    arg("--budget", metavar="AMOUNT",
        help="training per trial: seconds as 300s, 5m, 1.5h (evaluations not counted), or a "
             "step count as 2000 (required)")
    arg("--eval-every", metavar="AMOUNT",
        help="also evaluate every AMOUNT of training, e.g. 60s or 1000 (default: only where "
             "a trial stops)")
    arg("--eval-n", type=int, metavar="N", help="samples per evaluation (default 5000)")
    arg("--metric", help="rank by this metric of fastgan evaluate (default frechet_distance; "
                         "lower is better for frechet_distance and class_kl, higher for the "
                         "rest)")
    arg("--halving", type=int, metavar="ETA",
        help="successive halving: trials are scored at rungs of budget/ETA^k and only the "
             "best 1/ETA of the settings continue, resumed from their checkpoints")
    arg("--min-budget", metavar="AMOUNT", help="with --halving, no rung below this budget")
    arg("--workers", type=int, metavar="N",
        help="trials at once on a local Dask cluster, each single-threaded (default: the "
             "physical cores; 1 runs them one at a time in this process, without Dask)")
    arg("--scheduler", metavar="ADDRESS",
        help="use the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead of starting a "
             "cluster; OUT must be on a file system its workers share")
    arg("--threads", type=int, help="BLAS/Numba threads per trial (default 1)")
    arg("--out", type=Path, metavar="SWEEP_DIR", help="the sweep folder (required)")
    arg("--retry-failed", action="store_true", help="train failed or diverged trials again")
    arg("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan sweep``: plan, check and run the sweep; print where its report is."""
    from ..runs.folder import TrainConfig
    from ..sweep import Space, run
    from ..sweep.space import coerce, parse_grid, parse_random

    options, grid, ranges, points = (_read_file(args.config) if args.config
                                     else ({}, {}, {}, []))
    options.update({key: value for key in FILE_KEYS
                    if (value := getattr(args, key, None)) is not None})
    for text in args.grid:
        name, values = parse_grid(text)
        grid[name] = values
    for text in args.random:
        name, spec = parse_random(text)
        ranges[name] = spec
    for required in ("budget", "out"):
        if options.get(required) is None:
            fail(f"give --{required} (or {required} in a --config file)")
    base = TrainConfig(**{key: coerce(key, options[key])
                          for key in ("preset", "data", "backend", "dtype") if key in options},
                       threads=options.get("threads", 1))
    space = Space(grid=grid, random=ranges, samples=options.get("samples", 0),
                  seed=options.get("search_seed", 0), points=points)
    out = Path(options["out"])

    def note(message: str) -> None:
        print(f"fastgan: {message}", file=sys.stderr)

    def stop(signum: int) -> None:
        raise Interrupted(signum)

    try:
        with StopSignals(stop).installed():
            results = run(space, out, budget=options["budget"], base=base,
                          seeds=options.get("seeds", 1), metric=options.get("metric"),
                          eval_every=options.get("eval_every"),
                          eval_n=options.get("eval_n", 5000),
                          halving_eta=options.get("halving"),
                          min_budget=options.get("min_budget"), workers=options.get("workers"),
                          scheduler=options.get("scheduler"), retry_failed=args.retry_failed,
                          progress=not args.no_progress, notify=note, command=sys.argv)
    except Interrupted as exc:
        note(f"stopped by {signal_name(exc.signum)}; every finished trial is kept in {out}; "
             "re-run the same command to continue")
        return exit_status(exc.signum)
    failed = sum(row["status"] != "completed" for row in results)
    note(f"sweep done: {len(results)} trials ended ({failed} failed or diverged); see "
         f"{out / 'summary.md'}")
    return 0


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, Any],
                                    list[dict[str, Any]]]:
    """The options, grid, random ranges and points of a --config TOML file."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        fail(f"cannot read the sweep file {path}: {exc}")
    grid, ranges = table.pop("grid", {}), table.pop("random", {})
    points = table.pop("points", [])
    unknown = sorted(set(table) - set(FILE_KEYS))
    if unknown:
        fail(f"{path}: unknown keys {', '.join(unknown)}; a sweep file takes "
             f"{', '.join(FILE_KEYS)}, [grid], [random] and [[points]]")
    if not (isinstance(grid, dict) and isinstance(ranges, dict) and isinstance(points, list)
            and all(isinstance(point, dict) for point in points)):
        fail(f"{path}: [grid] and [random] must be tables, [[points]] an array of tables")
    return (table, grid, {name: _range(path, name, spec) for name, spec in ranges.items()},
            points)


def _range(path: Path, name: str, spec: Any) -> Any:
    """A [random] entry: "LOW:HIGH[:log]" or {low = .., high = .., log = true}."""
    from ..sweep.space import Range

    if isinstance(spec, str):
        return Range.parse(spec)
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
        return Range(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)))
    fail(f'{path}: random.{name} must be "LOW:HIGH[:log]" or {{low = .., high = .., log = '
         "true}")
