"""The ``fastgan`` command (also ``python -m fastgan``): train, sample, info, and more.

Exit status: 0 done, 1 a clear error (printed as one ``fastgan: error: ...`` line, never a
traceback), 2 a bad command line, 3 training diverged, 130 interrupted (Ctrl-C).

Other modules add subcommands: each module named in :data:`COMMAND_MODULES` defines
``add_parser(subparsers)``, which adds its parser with ``subparsers.add_parser(...)`` and
sets ``run=function`` as a default, ``function(args) -> int`` returning the exit status. A
module that does not exist yet is skipped. Import heavy dependencies inside ``function``,
not at the top of the module, so that every ``fastgan`` command stays quick to start.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .errors import ConfigError, FastganError, TrainingDiverged
from .training import Callback, TrainingLoop

COMMAND_MODULES = ("fastgan.bench", "fastgan.metrics")
"""Modules that add their own subcommand through ``add_parser(subparsers)``."""

EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (plus where to get help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------- train
def _add_train(subparsers: Any) -> None:
    from .run import DEFAULT_STEPS, MAX_PICTURES, TrainConfig

    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train", help="train a GAN and keep the run in a folder",
        description="Train a GAN. Every run writes a folder (--out) with config.json, "
                    "metrics.jsonl, sample grids per epoch, a GIF, loss curves and a "
                    "checkpoint; Ctrl-C stops after the current step and saves it, and "
                    "--resume continues it exactly.")
    arg = parser.add_argument
    arg("--preset", help=f"architecture and hyper-parameters (default {defaults.preset}; "
                         "see fastgan info)")
    arg("--data", help=f"digits, mnist, fashion-mnist, ring, an .npz file or a folder of "
                       f"images (default {defaults.data})")
    arg("--classes", type=int, nargs="+", metavar="LABEL",
        help="keep only these labels (e.g. --classes 3)")
    arg("--image-size", type=int, metavar="PIXELS", help="resize images to PIXELS x PIXELS")
    arg("--pad", type=int, metavar="PIXELS",
        help="add PIXELS black pixels on every side of each image (MNIST with --pad 2 is "
             "32x32, the size of keras-dcgan's seed)")
    arg("--backend", help=f"numpy, numba, cupy or auto (default {defaults.backend})")
    arg("--dtype", help=f"float32 or float64 (default {defaults.dtype})")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train until this many epochs in all")
    length.add_argument("--steps", type=int, help="train until this many steps in all "
                                                  f"(default {DEFAULT_STEPS})")
    arg("--latent-dim", type=int, help="size of the generator's noise input (default: the "
                                       "preset's)")
    arg("--g-hidden", type=int, nargs="+", metavar="UNITS",
        help="the generator's hidden layer widths, e.g. --g-hidden 200 560")
    arg("--d-hidden", type=int, nargs="+", metavar="UNITS",
        help="the discriminator's hidden layer widths")
    arg("--batch-size", type=int, help="samples per batch (default: the preset's)")
    arg("--lr", type=float, help="learning rate of both networks (default: the preset's)")
    arg("--g-lr", type=float, help="the generator's learning rate")
    arg("--d-lr", type=float, help="the discriminator's learning rate")
    arg("--k", type=int, help="discriminator steps per generator step (default: the preset's)")
    arg("--label-smoothing", type=float, metavar="S", help="real labels are 1-S (e.g. 0.1)")
    arg("--ema", type=float, metavar="DECAY",
        help="sample from an exponential moving average of G's weights (e.g. 0.999)")
    arg("--seed", type=int, help=f"random seed (default {defaults.seed})")
    arg("--sampling", choices=("epoch", "random"),
        help="shuffled epochs of full batches, or random batches with replacement "
             f"(default {defaults.sampling})")
    arg("--out", type=Path, metavar="RUN_DIR",
        help="the run folder to create (default runs/<time>-<preset>)")
    arg("--resume", type=Path, metavar="RUN_DIR",
        help="continue this run from its last checkpoint, with its own settings")
    arg("--log-every", type=int, metavar="STEPS",
        help=f"read losses back and log them every STEPS steps (default {defaults.log_every})")
    arg("--checkpoint-every", type=int, metavar="STEPS",
        help=f"save a checkpoint every STEPS steps, 0 for only at the end "
             f"(default {defaults.checkpoint_every})")
    arg("--sample-every", type=int, metavar="EPOCHS",
        help="draw the fixed-noise samples every EPOCHS epochs (default: often enough for "
             f"{MAX_PICTURES} pictures)")
    arg("--threads", type=int, help="limit the BLAS/OpenMP threads (on a busy machine 1 can "
                                    "be much faster for small models)")
    arg("--eval-every", type=int, metavar="EPOCHS",
        help="score samples every EPOCHS epochs with fastgan evaluate's metrics, into "
             "metrics.jsonl and the progress output (default 0: never; digits, mnist, "
             "fashion-mnist)")
    arg("--eval-n", type=int, metavar="N",
        help=f"samples per evaluation (default {defaults.eval_n})")
    arg("--tensorboard", action="store_true", default=None,
        help="also log to RUN_DIR/tensorboard (needs tensorboardX)")
    arg("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=train_command)


def train_command(args: argparse.Namespace) -> int:
    """``fastgan train``: start or resume a run, and train it to its end."""
    from .run import Run, TrainConfig

    settings = {key: tuple(value) if isinstance(value, list) else value
                for key, value in vars(args).items()
                if key in TrainConfig.__dataclass_fields__ and value is not None}
    if args.resume is not None:
        if args.out is not None:
            _fail("--out and --resume cannot go together: a resumed run stays in its folder")
        run = Run.resume(args.resume, settings)
    else:
        run = Run.start(TrainConfig(**settings), args.out)
    if run.remaining_steps == 0:
        print(f"fastgan: {run.folder} is complete at step {run.gan.steps}; give a larger "
              "--epochs or --steps to train it further", file=sys.stderr)
        return 0
    print(f"fastgan: {run.gan!r} on {run.dataset.name} ({len(run.dataset)} samples), "
          f"step {run.gan.steps} -> {run.total_steps}; run folder {run.folder}",
          file=sys.stderr)
    stopper = StopOnInterrupt()
    with stopper.installed():
        history = run.train(progress=not args.no_progress, callbacks=[stopper])
    if history.outcome == "stopped":
        print(f"fastgan: interrupted; checkpoint at step {run.gan.steps} saved in "
              f"{run.checkpoint_path}; continue with: fastgan train --resume {run.folder}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"fastgan: done at step {run.gan.steps}; see {run.folder}", file=sys.stderr)
    return 0


class StopOnInterrupt(Callback):
    """While installed, the first Ctrl-C (SIGINT) asks training to stop after the current
    step (then the run saves a checkpoint); a second one interrupts at once."""

    def __init__(self) -> None:
        self.loop: TrainingLoop | None = None
        self.interrupted = False

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Remember the loop to stop."""
        self.loop = loop

    def handle(self, signum: int, frame: Any) -> None:
        """The SIGINT handler."""
        if self.interrupted or self.loop is None:
            raise KeyboardInterrupt
        self.interrupted = True
        self.loop.request_stop()
        print("\nfastgan: stopping after this step (Ctrl-C again to quit at once)",
              file=sys.stderr, flush=True)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT within the block; the previous handler comes back after it."""
        previous = signal.signal(signal.SIGINT, self.handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------- sample
def _add_sample(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sample", help="draw samples from a checkpoint into a PNG grid or an .npy array",
        description="Draw samples from a trained GAN. CHECKPOINT is a checkpoint file or a "
                    "run folder. A .png output is a grid of images; .npy holds the raw "
                    "(n, features) float32 samples in [-1, 1].")
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    parser.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("-o", "--output", type=Path, default=Path("samples.png"),
                        help="output file, .png or .npy (default samples.png)")
    parser.add_argument("--seed", type=int,
                        help="seed of the noise (default: the checkpoint's sampling stream)")
    parser.add_argument("--backend", help="backend to sample on (default: the checkpoint's)")
    parser.add_argument("--ncols", type=int, help="grid columns (default: a square)")
    parser.add_argument("--scale", type=int, default=None,
                        help="enlarge each image this many times (default: about 56 pixels)")
    parser.set_defaults(run=sample_command)


def sample_command(args: argparse.Namespace) -> int:
    """``fastgan sample``: samples from a checkpoint into a PNG grid or an .npy file."""
    from . import checkpoint, viz
    from .fileio import write_atomically

    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".npy"):
        _fail(f"the output must end in .png or .npy, not {args.output.name!r}")
    if args.n < 1:
        _fail(f"-n must be at least 1, got {args.n}")
    gan = checkpoint.load(args.checkpoint, backend=args.backend)
    if args.seed is not None:
        gan.sample_rng = np.random.default_rng(args.seed)
    samples = gan.sample(args.n)
    if suffix == ".npy":
        write_atomically(args.output, lambda file: np.save(file, samples))
    else:
        image_shape = _image_shape(checkpoint.read_metadata(args.checkpoint), gan.data_dim)
        scale = args.scale or max(1, round(56 / max(image_shape)))
        viz.save_grid(args.output, samples, image_shape, ncols=args.ncols, scale=scale)
    print(f"fastgan: {args.n} samples written to {args.output}", file=sys.stderr)
    return 0


def _image_shape(metadata: dict[str, Any], features: int) -> tuple[int, int]:
    """The checkpoint's recorded image shape, else a square one if the features make one."""
    recorded = metadata.get("extra", {}).get("image_shape")
    if recorded:
        return int(recorded[0]), int(recorded[1])
    side = math.isqrt(features)
    if side * side != features:
        _fail(f"this model makes samples of {features} features, not images; write "
                     "them to an .npy file instead")
    return side, side


# ---------------------------------------------------------------------- info
def _add_info(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info", help="versions, usable backends, threads and GPU",
        description="What fastgan finds on this machine.")
    parser.set_defaults(run=info_command)


def info_command(args: argparse.Namespace) -> int:
    """``fastgan info``: versions, backends (and why not), threads, GPU, presets, datasets."""
    from . import data, environment, presets

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
    gpu = environment.gpu()
    if gpu["device"] is None:
        print(f"GPU: none usable ({gpu['reason']})")
    else:
        print(f"GPU: {gpu['device']}, {gpu['memory_gib']} GiB, compute capability "
              f"{gpu['compute_capability']}")
    print(f"presets: {', '.join(presets.names())}")
    print(f"datasets: {', '.join(data.names())}, or an .npz file or a folder of images")
    return 0


# ---------------------------------------------------------------------- main
def _fail(message: str) -> NoReturn:
    """Stop the command with a clear error message."""
    raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``fastgan`` parser with every subcommand, including those of COMMAND_MODULES."""
    from . import __version__

    parser = _Parser(prog="fastgan", description="MLP GANs with hand-derived gradients on "
                                                 "NumPy, Numba and CuPy backends.")
    parser.add_argument("--version", action="version", version=f"fastgan {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True,
                                       parser_class=_Parser)
    _add_train(subparsers)
    _add_sample(subparsers)
    _add_info(subparsers)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        add_parser = getattr(module, "add_parser", None)
        if add_parser is not None:
            add_parser(subparsers)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"fastgan: warning: {message}", file=sys.stderr)


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
        where = f": {exc.filename}" if exc.filename else ""
        print(f"fastgan: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nfastgan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
