"""``fastgan train``: start or resume a run folder and train it to its end; Ctrl-C or SIGTERM
stops after the step in progress and saves. The folder's lock is held from before the folder is
read or written until the command ends, so a second command on the same folder is refused.

Started by an MPI launcher as several processes (``mpiexec -n 4 fastgan train ...``), every
process trains the one model on its share of every batch (:mod:`fastgan.distributed`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from ..errors import FastganError, TrainingDiverged
from ..gan.config import LOSSES
from ..gan.presets import NORMS, UPSAMPLINGS
from ..training.loop import Callback, TrainingLoop
from .common import EXIT_DIVERGED, EXIT_ERROR, fail
from .signals import Interrupted, StopSignals, exit_status, signal_name


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
    arg("--g-filters", type=int, nargs="+", metavar="C",
        help="the generator's channel counts, one per layer before its image, e.g. "
             "--g-filters 64 32 (fast-dcgan: their number sets G's depth; keras-dcgan: three)")
    arg("--d-filters", type=int, nargs="+", metavar="C",
        help="the discriminator's channel counts, one per convolution (fast-dcgan: two or "
             "more; keras-dcgan: three)")
    arg("--kernel", type=int, metavar="K", help="every convolution's window, K x K (fast-dcgan)")
    arg("--upsample", choices=UPSAMPLINGS,
        help="how G doubles its image: a stride-2 transposed convolution, or nearest "
             "upsampling and a convolution (fast-dcgan)")
    arg("--norm", choices=NORMS, help="G's normalisation: batch norm or none (fast-dcgan)")
    arg("--alpha", type=float, metavar="SLOPE", help="every LeakyReLU's slope (fast-dcgan)")
    arg("--batch-size", type=int, help="samples per batch (default: the preset's)")
    arg("--lr", type=float, help="learning rate of both networks (default: the preset's)")
    arg("--g-lr", type=float, help="the generator's learning rate")
    arg("--d-lr", type=float, help="the discriminator's learning rate")
    arg("--beta1", type=float, help="Adam's beta1 for both networks (default: the preset's)")
    arg("--k", type=int, help="discriminator steps per generator step (default: the preset's)")
    arg("--label-smoothing", type=float, metavar="S", help="real labels are 1-S (e.g. 0.1)")
    arg("--loss", metavar="NAME",
        help=f"the GAN loss pair: {', '.join(LOSSES)} (default: the preset's, "
             "non_saturating)")
    arg("--spectral-norm", action="store_true", default=None,
        help="divide each Dense and (transposed) convolution weight of the discriminator "
             "by its largest singular value "
             "(one power iteration per step)")
    arg("--r1-gamma", type=float, metavar="GAMMA",
        help="add the R1 penalty GAMMA/2 mean |grad D(x)|^2 on real images to D's loss "
             "(e.g. 10; default 0: none)")
    arg("--r1-every", type=int, metavar="N",
        help="lazy R1: apply the penalty every N discriminator steps, scaled by N (default 1)")
    arg("--conditional", action="store_true", default=None,
        help="a class-conditional GAN: one-hot labels beside G's noise and D's input (the "
             "data must have labels: digits, mnist, fashion-mnist, an .npz with y; with "
             "--classes, class i is the i-th kept label); sample grids show a class per row")
    arg("--projection", action=argparse.BooleanOptionalAction, default=None,
        help="with --conditional: the projection discriminator (a learned class embedding "
             "projected onto D's last features) instead of labels beside D's input "
             "(default: the preset's; fast-cgan's is the projection, --no-projection "
             "concatenates the labels)")
    arg("--ema", type=float, metavar="DECAY",
        help="sample from an exponential moving average of G's weights (e.g. 0.999; "
             "default: the preset's, none but fast-mlp's)")
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
    arg("--graph", action=argparse.BooleanOptionalAction, default=None,
        help="replay each step as one CUDA graph (default: on with the cupy backend where "
             "the step can be captured; --no-graph for eager steps)")
    arg("--schedule", action=argparse.BooleanOptionalAction, default=None,
        help="take each step's independent GEMMs, and a convolution's slices of the batch, "
             "side by side on the threads, BLAS on one thread per call (default: on with the "
             "numba backend on more than one thread; --no-schedule for BLAS's own threads)")
    arg("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan train``: start or resume a run, and train it to its end (on every process
    together when an MPI launcher started several: :func:`parallel_command`)."""
    from ..distributed.launch import is_parallel
    from ..runs.folder import TrainConfig, new_folder, prepare
    from ..runs.lock import locked

    settings = {key: tuple(value) if isinstance(value, list) else value
                for key, value in vars(args).items()
                if key in TrainConfig.__dataclass_fields__ and value is not None}
    if is_parallel():
        return parallel_command(args, settings)
    check_folders(args)
    config = None if args.resume is not None else TrainConfig(**settings)
    folder = args.resume or args.out or new_folder(config)
    stopper = StopOnInterrupt()
    with stopper.installed(), locked(folder):
        if config is None:
            run = prepare(resume=folder, changes=settings)
        else:
            run = prepare(config, folder)
        if run.remaining_steps == 0:
            print(complete_message(run), file=sys.stderr)
            return 0
        print(start_message(run), file=sys.stderr)
        history = run.train(progress=not args.no_progress, callbacks=[stopper])
    print(end_message(run, history.outcome, stopper.signals.received), file=sys.stderr)
    return stopper.exit_status(history.outcome)


def parallel_command(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """``fastgan train`` on every rank of an MPI launch together; returns this rank's exit
    status. Rank 0 alone writes the run folder and prints; the others print nothing unless
    they fail on their own. An error found on any rank before training (bad settings, ranks
    that disagree, too few GPUs, a batch the ranks cannot share) is printed once, by rank 0,
    and every rank exits with 1; a divergence ends every rank with 3; Ctrl-C stops every rank
    at the same step, rank 0 saves, and every rank exits with 130. A failure on one rank alone
    ends every rank at once (``MPI_Abort``)."""
    from ..distributed.launch import detect
    from ..distributed.mpi import AgreedError, failing_fast, world

    launch = detect()
    primary = launch is None or launch.rank in (0, None)
    try:
        check_folders(args)             # the same on every rank: no rank waits for another
        comm = world()
    except FastganError:
        if primary:
            raise
        return EXIT_ERROR
    primary = comm.rank == 0
    if not primary:
        warnings.simplefilter("ignore")  # rank 0 shows the warnings every rank would
    try:
        with failing_fast(comm, agreed=(AgreedError, TrainingDiverged)):
            return train_parallel(args, settings, comm)
    except TrainingDiverged:
        if primary:
            raise
        return EXIT_DIVERGED
    except AgreedError:
        if primary:
            raise
        return EXIT_ERROR


def train_parallel(args: argparse.Namespace, settings: dict[str, Any], comm: Any) -> int:
    """Open the run on every rank, train it to its end; returns the exit status. Rank 0 holds
    the folder's lock from before it opens the run (where the folder is named) to the end."""
    from ..distributed.mpi import agree
    from ..distributed.runs import open_run
    from ..runs.folder import TrainConfig
    from ..runs.lock import locked

    primary = comm.rank == 0
    folder = args.resume or args.out
    with ExitStack() as held:
        agree(comm, lambda: held.enter_context(locked(folder))
              if primary and folder is not None else None)
        if args.resume is not None:
            run, trainer = open_run(comm, resume=args.resume, changes=settings)
        else:
            run, trainer = open_run(comm, config=TrainConfig(**settings), folder=args.out)
        if run.remaining_steps == 0:
            if primary:
                print(complete_message(run), file=sys.stderr)
            return 0
        if primary:
            print(start_message(run), file=sys.stderr)
        stopper = StopOnInterrupt("stopping every process at the next log point" if primary
                                  else None)
        with stopper.installed():
            history = run.train(progress=primary and not args.no_progress,
                                callbacks=[stopper], trainer=trainer)
    if primary:
        print(end_message(run, history.outcome, stopper.signals.received), file=sys.stderr)
    return stopper.exit_status(history.outcome)


def check_folders(args: argparse.Namespace) -> None:
    """``--out`` and ``--resume`` exclude each other."""
    if args.resume is not None and args.out is not None:
        fail("--out and --resume cannot go together: a resumed run stays in its folder")


def complete_message(run: Any) -> str:
    """What ``fastgan train`` says of a run that has no step left."""
    return (f"fastgan: {run.folder} is complete at step {run.gan.steps}; give a larger "
            "--epochs or --steps to train it further")


def start_message(run: Any) -> str:
    """What ``fastgan train`` says as training starts."""
    processes = "" if run.world_size == 1 else (
        f" on {run.world_size} processes (batch {run.gan.batch_size} = {run.world_size} x "
        f"{run.gan.batch_size // run.world_size})")
    over = " (it had no checkpoint yet: from the start)" if run.started_over else ""
    return (f"fastgan: {run.gan!r} on {run.dataset.name} ({len(run.dataset)} samples)"
            f"{processes}, step {run.gan.steps} -> {run.total_steps}; run folder {run.folder}"
            f"{over}")


def end_message(run: Any, outcome: str, signum: int | None = None) -> str:
    """What ``fastgan train`` says when training ended with ``outcome`` (stopped by signal
    ``signum``)."""
    if outcome == "stopped":
        by = "interrupted" if signum is None else f"stopped by {signal_name(signum)}"
        return (f"fastgan: {by}; checkpoint at step {run.gan.steps} saved in "
                f"{run.checkpoint_path}; continue with: fastgan train --resume {run.folder}")
    return f"fastgan: done at step {run.gan.steps}; see {run.folder}"


class StopOnInterrupt(Callback):
    """While installed, the first SIGINT (Ctrl-C) or SIGTERM (preemption) asks training to
    stop after the current step (then the run saves a checkpoint) and prints ``notice``
    (None: nothing); a second one interrupts at once. ``signals.received`` is the signal that
    stopped training."""

    def __init__(self, notice: str | None = "stopping after this step") -> None:
        self.loop: TrainingLoop | None = None
        self.notice = notice
        self.signals = StopSignals(self._stop)

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Remember the loop to stop."""
        self.loop = loop

    def _stop(self, signum: int) -> None:
        if self.loop is None:                    # no step yet: nothing to finish
            raise Interrupted(signum)
        self.loop.request_stop()
        if self.notice is not None:
            print(f"\nfastgan: {signal_name(signum)}: {self.notice} (again to quit at once)",
                  file=sys.stderr, flush=True)

    def installed(self) -> AbstractContextManager[StopSignals]:
        """Handle SIGINT and SIGTERM within the block (the previous handlers come back)."""
        return self.signals.installed()

    def exit_status(self, outcome: str) -> int:
        """0 for a run that ended, 128 + the signal's number for one a signal stopped."""
        if outcome != "stopped" or self.signals.received is None:
            return 0
        return exit_status(self.signals.received)
