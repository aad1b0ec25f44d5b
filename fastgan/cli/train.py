"""``fastgan train``: start or resume a run folder and train it to its end; Ctrl-C saves."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..training.loop import Callback, TrainingLoop
from .common import EXIT_INTERRUPTED, fail


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan train``."""
    from ..runs.folder import DEFAULT_STEPS, MAX_PICTURES, TrainConfig

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
    arg("--beta1", type=float, help="Adam's beta1 for both networks (default: the preset's)")
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
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan train``: start or resume a run, and train it to its end."""
    from ..runs.folder import Run, TrainConfig

    settings = {key: tuple(value) if isinstance(value, list) else value
                for key, value in vars(args).items()
                if key in TrainConfig.__dataclass_fields__ and value is not None}
    if args.resume is not None:
        if args.out is not None:
            fail("--out and --resume cannot go together: a resumed run stays in its folder")
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
