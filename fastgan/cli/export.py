"""``fastgan export``: a trained network written for another runtime (ONNX, PyTorch, NPZ)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..export import FORMATS, NETWORKS, export


def add_parser(subparsers: Any) -> None:
    """Add ``fastgan export``."""
    parser = subparsers.add_parser(
        "export", help="write a trained generator (or discriminator) as ONNX, PyTorch, NPZ or a "
                       "web page",
        description="Write one network of a trained GAN for another runtime. RUN is a run "
                    "folder or a checkpoint file. onnx: an ONNX model (input z, output image "
                    "in [-1, 1]); torch: a state_dict for the PyTorch peer's architecture "
                    "(fastgan.benchmarking.torch_peer.build_mlp); npz: plain arrays with a JSON "
                    "description of the layers; web: a folder with a page that draws the "
                    "generator's samples (serve it: python -m http.server -d FOLDER).")
    parser.add_argument("source", type=Path, metavar="RUN")
    parser.add_argument("--format", choices=FORMATS, default="onnx",
                        help="what to write (default onnx)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the file (web: the folder) to write")
    parser.add_argument("--network", choices=NETWORKS, default="generator",
                        help="which network (default generator)")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                        help="the generator's average of weights where the run keeps one "
                             "(default), or its training weights (--no-ema)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.set_defaults(run=command)


def command(args: argparse.Namespace) -> int:
    """``fastgan export``: load the run's checkpoint, write the network."""
    from ..gan.loading import load

    gan = load(args.source)
    export(gan, args.output, format=args.format, network=args.network, ema=args.ema,
           force=args.force)
    print(f"fastgan: the {args.network} written to {args.output} ({args.format})",
          file=sys.stderr)
    return 0
