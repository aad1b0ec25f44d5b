"""``fastgan evaluate``: score a trained GAN's samples against real data, and print the report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan evaluate``."""
    parser = subparsers.add_parser(
        "evaluate", help="score a trained GAN's samples against real data",
        description="Score samples of a trained GAN with the dataset's evaluation classifier "
                    "(trained once and cached beside the data): Fréchet distance on its "
                    "features, Inception-Score analogue, classes covered, class KL, "
                    "precision/recall, density/coverage; each beside its real-vs-real value "
                    "(test split vs train split, same sample size).")
    parser.add_argument("checkpoint", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("-n", type=int, default=10000,
                        help="samples per set (default 10000; fewer if a split is smaller)")
    parser.add_argument("--data", help="dataset to score against (default: the one the run "
                                       "trained on, as its checkpoint records)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the latent vectors and real samples drawn (default 0)")
    parser.add_argument("--backend", help="backend to sample on (default: the checkpoint's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan evaluate``: print the evaluation of a checkpoint or run folder."""
    from ..evaluation.metrics import Evaluator, format_report
    from ..gan.loading import load
    from ..training import checkpoint

    gan = load(args.checkpoint, backend=args.backend)
    extra = checkpoint.read_metadata(args.checkpoint).get("extra") or {}
    name = args.data or extra.get("data")
    if name is None:
        raise ConfigError(f"{args.checkpoint} does not record its dataset; name it with --data")
    classes = extra.get("classes") if args.data is None else None
    image_shape = extra.get("image_shape") if args.data is None else None
    evaluator = Evaluator.for_dataset(
        name, n=args.n, classes=classes, seed=args.seed,
        image_size=None if image_shape is None else tuple(image_shape),
        notify=lambda message: print(f"fastgan: {message}", file=sys.stderr))
    result = evaluator.evaluate(gan)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
