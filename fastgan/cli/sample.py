"""``fastgan sample``: samples of a checkpoint into a PNG grid or an .npy array."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CheckpointError
from .common import fail

if TYPE_CHECKING:
    from ..training.checkpoint import Stored


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan sample``."""
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
    parser.add_argument("--label", type=int, metavar="LABEL",
                        help="a conditional GAN's class to draw, as the data labels it (e.g. "
                             "3 for the digit 3); default: every class, a grid row each")
    parser.add_argument("--backend", help="backend to sample on (default: the checkpoint's)")
    parser.add_argument("--ncols", type=int, help="grid columns (default: a square)")
    parser.add_argument("--scale", type=int, default=None,
                        help="enlarge each image this many times (default: about 56 pixels)")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan sample``: samples from a checkpoint into a PNG grid or an .npy file."""
    from .. import viz
    from ..fileio import write_atomically
    from ..gan.loading import load
    from ..training import checkpoint

    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".npy"):
        fail(f"the output must end in .png or .npy, not {args.output.name!r}")
    if args.n < 1:
        fail(f"-n must be at least 1, got {args.n}")
    stored = checkpoint.read(args.checkpoint)
    gan = load(stored, backend=args.backend)
    labels, ncols = _labels(args, gan.num_classes, stored)
    samples = gan.sample(args.n, seed=args.seed, labels=labels)
    if suffix == ".npy":
        write_atomically(args.output, lambda file: np.save(file, samples))
    else:
        image_shape = _image_shape(stored, gan.data_dim)
        scale = args.scale or max(1, round(56 / max(image_shape)))
        viz.save_grid(args.output, samples, image_shape, ncols=args.ncols or ncols,
                      scale=scale)
    print(f"fastgan: {args.n} samples written to {args.output}", file=sys.stderr)
    return 0


def _labels(args: argparse.Namespace, num_classes: int,
            stored: Stored) -> tuple[np.ndarray | None, int | None]:
    """The classes of the samples and the grid's width: ``--label``'s class n times, or
    every class in turn, a row of ceil(n / C) each; (None, None) for an unconditional GAN."""
    from ..gan.conditioning import class_names

    if not num_classes:
        if args.label is not None:
            fail("--label is for conditional GANs; this checkpoint's GAN is unconditional")
        return None, None
    names = class_names(stored.metadata["extra"].get("classes"), num_classes)
    if args.label is None:
        per_class = math.ceil(args.n / num_classes)
        return np.arange(args.n) // per_class, per_class
    if args.label not in names:
        fail(f"label {args.label} is not one of this GAN's classes "
             f"({', '.join(map(str, names))})")
    return np.full(args.n, names.index(args.label)), None


def _image_shape(stored: Stored, features: int) -> tuple[int, int]:
    """The image shape the checkpoint ``stored`` records (a CheckpointError where it is not
    two sides that make the model's ``features``), else a square one if the features make
    one."""
    recorded = stored.metadata["extra"].get("image_shape")
    if recorded is not None:
        whole = (isinstance(recorded, list) and len(recorded) == 2
                 and all(type(side) is int and side > 0 for side in recorded)
                 and recorded[0] * recorded[1] == features)
        if not whole:
            raise CheckpointError(f"{stored.path}: the image shape it records, {recorded!r}, "
                                  f"is damaged (the model makes {features} features)")
        return recorded[0], recorded[1]
    side = math.isqrt(features)
    if side * side != features:
        fail(f"this model makes samples of {features} features, not images; write "
                     "them to an .npy file instead")
    return side, side
