"""``fastgan.export``: one network of a GAN written to a file in one of :data:`FORMATS`."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import ConfigError
from ..fileio import write_atomically, write_folder_atomically
from ..gan.model import GAN
from .walk import NETWORKS, walk

FORMATS = ("onnx", "torch", "npz", "web")
"""The formats :func:`export` writes: an ONNX model, a PyTorch ``state_dict`` for the PyTorch
peer's architecture, plain arrays with a JSON description of the layers, and a folder with a
web page that draws the generator's samples (see :mod:`fastgan.export.web`)."""


def export(gan: GAN, path: str | os.PathLike[str], *, format: str = "onnx",
           network: str = "generator", ema: bool = True, force: bool = False) -> Path:
    """Write ``network`` ("generator" or "discriminator") of ``gan`` to ``path`` in
    ``format`` (one of :data:`FORMATS`; "web" writes a folder); returns the path.

    ``ema`` picks the generator's average of weights where the GAN keeps one (what
    :meth:`fastgan.GAN.sample` draws from), else its training weights. An existing ``path``
    is refused unless ``force``. The file is written atomically: on any error nothing is left.
    Raises ConfigError for a format or network that does not exist, a network the format
    cannot hold, a conditional GAN, or a missing optional dependency (the message names the
    extra to install).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
    path = Path(path)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; choose another output, or pass --force "
                          "(force=True) to replace it")
    if gan.num_classes:
        raise ConfigError("exporting a conditional GAN is not built yet (its networks read "
                          "one-hot labels beside their inputs); draw its samples with "
                          "fastgan sample --label")
    writer = importlib.import_module(f".{format}", __package__)
    exported = walk(gan, network, ema=ema)
    if format == "web":
        writer.image_shape(exported)   # refuses a network the page cannot draw, before anything
        return write_folder_atomically(path, lambda folder: writer.write(exported, folder))
    return write_atomically(path, lambda file: writer.write(exported, file))
