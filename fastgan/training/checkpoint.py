"""Checkpoints: a GAN's whole training state in one pickle-free ``.npz`` file.

The file holds arrays only — both networks' flat parameters, the optimizers' state buffers,
batch-norm running statistics, the weight average when EMA is on — plus one more array: the
UTF-8 bytes of a JSON document (key ``metadata.json``) with everything else: the format
version, the fastgan version, backend and dtype, the architecture (layer specs, optimizer
configurations and schedules, noise, k, losses, batch size; the preset name and overrides
when the GAN came from a preset), the step and epoch counters, every random stream's state
(noise, sampling, each network's dropout masks, the data order of ``fit``) and an ``extra``
dictionary for the caller.

A checkpoint restores training exactly: on the same backend, continuing from it gives the
same parameters, bit for bit, as never having stopped. Files are written atomically (see
:mod:`fastgan.fileio`) and read with ``allow_pickle=False``; anything wrong with a file — not
a checkpoint, truncated, corrupt, another format version, another architecture — raises
:class:`~fastgan.errors.CheckpointError` saying so.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._version import __version__
from ..backends.base import generator_of
from ..errors import CheckpointError
from ..fileio import write_atomically
from ..nn.ema import WeightAverage
from ..nn.mlp import MLP
from . import serialization
from .loop import Trainable


class Checkpointable(Trainable, Protocol):
    """What a checkpoint stores of a GAN, beyond what the loop uses (:class:`Trainable`):
    the architecture, every state array and every random stream. ``fastgan.GAN`` is one."""

    generator: MLP
    discriminator: MLP
    latent_dim: int
    noise: str
    g_loss: str
    label_smoothing: float
    stats: Any
    ema: WeightAverage | None
    noise_rng: Any
    sample_rng: np.random.Generator
    preset: Any
    preset_overrides: dict[str, Any]

FORMAT = "fastgan-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "metadata.json"
CHECKPOINT_NAME = "checkpoint.npz"
"""The file name :func:`read` looks for when given a folder (a run directory)."""
DATA_PARALLEL = "data_parallel"
"""The entry of ``extra`` where a data-parallel trainer records its number of processes
(``world_size``) and every rank's random streams (``rank_streams``)."""


@dataclass(frozen=True)
class Stored:
    """A checkpoint file's contents: its path, metadata and host arrays."""

    path: Path
    metadata: dict[str, Any]
    arrays: dict[str, np.ndarray]


# ---------------------------------------------------------------- writing
def save(gan: Checkpointable, path: str | os.PathLike[str], *,
         extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``gan``'s complete training state to ``path`` (atomically); returns the path.

    ``extra`` is stored as it is (JSON values) and read back with :func:`read_metadata`.
    """
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastgan_version": __version__,
        "backend": gan.backend.name,
        "dtype": gan.dtype.name,
        "model": model_description(gan),
        "preset": None if gan.preset is None else {
            "name": gan.preset.name, "source": gan.preset.source,
            "overrides": serialization.encode(gan.preset_overrides)},
        "progress": progress(gan),
        "rng": {name: get_state() for name, (get_state, _) in random_streams(gan).items()},
        "extra": dict(extra or {}),
    }
    arrays = {name: gan.backend.to_numpy(array) for name, array in state_arrays(gan).items()}
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    return write_atomically(path, lambda file: np.savez(file, **arrays))


def progress(gan: Trainable) -> dict[str, Any]:
    """Where training stands, as JSON values: the step, epoch and optimizer counters and the
    position in the data."""
    return {"steps": gan.steps, "epoch": gan.epoch,
            "g_optimizer_steps": gan.g_optimizer.steps,
            "d_optimizer_steps": gan.d_optimizer.steps,
            "data_order": gan.data_order.get_state()}


def set_progress(gan: Trainable, values: Mapping[str, Any]) -> None:
    """Put ``gan`` where :func:`progress` said training stood (KeyError, TypeError or
    ValueError for a damaged record)."""
    gan.steps, gan.epoch = int(values["steps"]), int(values["epoch"])
    gan.g_optimizer.steps = int(values["g_optimizer_steps"])
    gan.d_optimizer.steps = int(values["d_optimizer_steps"])
    gan.data_order.set_state(values["data_order"])


def model_description(gan: Checkpointable) -> dict[str, Any]:
    """Everything that fixes the model's shape and training rule, as JSON values (layer
    specs, optimizer configurations, noise, k, losses, batch size, EMA decay)."""
    return {
        "latent_dim": gan.latent_dim, "data_dim": gan.data_dim,
        "generator": serialization.encode(gan.generator.specs),
        "discriminator": serialization.encode(gan.discriminator.specs),
        "g_optimizer": serialization.encode(gan.g_optimizer.config),
        "d_optimizer": serialization.encode(gan.d_optimizer.config),
        "noise": gan.noise, "k": gan.k, "g_loss": gan.g_loss,
        "label_smoothing": gan.label_smoothing, "batch_size": gan.batch_size,
        "ema_decay": None if gan.ema is None else gan.ema.decay,
        "ema_debiased": None if gan.ema is None else gan.ema.debiased,
    }


def state_arrays(gan: Checkpointable) -> dict[str, Any]:
    """Every array of training state, by its name in the file (device arrays)."""
    arrays = {"generator.params": gan.generator.params.data,
              "discriminator.params": gan.discriminator.params.data,
              "stats": gan.stats}
    for network_name, network in (("generator", gan.generator),
                                  ("discriminator", gan.discriminator)):
        for name, buffer in network.buffers().items():
            arrays[f"{network_name}.buffer.{name}"] = buffer
    for optimizer_name, optimizer in (("g_optimizer", gan.g_optimizer),
                                      ("d_optimizer", gan.d_optimizer)):
        for name, state in optimizer.state.items():
            arrays[f"{optimizer_name}.{name}"] = state
    if gan.ema is not None:
        arrays["generator.ema"] = gan.ema.average
    return arrays


def random_streams(gan: Checkpointable) -> dict[str, tuple[Any, Any]]:
    """Each random stream's (get_state, set_state) pair, by name."""
    def numpy_stream(generator: np.random.Generator) -> tuple[Any, Any]:
        bit_generator = generator.bit_generator
        return (lambda: bit_generator.state,
                lambda state: setattr(bit_generator, "state", state))

    return {
        "noise": (gan.noise_rng.get_state, gan.noise_rng.set_state),
        "sample": numpy_stream(gan.sample_rng),
        "generator_dropout": (gan.generator.dropout_rng.get_state,
                              gan.generator.dropout_rng.set_state),
        "discriminator_dropout": (gan.discriminator.dropout_rng.get_state,
                                  gan.discriminator.dropout_rng.set_state),
    }


# ---------------------------------------------------------------- reading
def restore(gan: Checkpointable, source: str | os.PathLike[str] | Stored) -> None:
    """Load a checkpoint (a path, or what :func:`read` returned) into ``gan``, which must have
    the same architecture."""
    stored = source if isinstance(source, Stored) else read(source)
    expected, found = model_description(gan), stored.metadata.get("model") or {}
    for key in ("latent_dim", "data_dim", "generator", "discriminator"):
        if expected[key] != found.get(key):
            raise CheckpointError(
                f"{stored.path} holds another architecture: its {_describe(key, found.get(key))}"
                f" but this model's {_describe(key, expected[key])}")
    _restore(gan, stored)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path`` (``["extra"]`` holds the caller's)."""
    return read(path).metadata


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or ``path/checkpoint.npz`` when ``path`` is a folder."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def read(path: str | os.PathLike[str]) -> Stored:
    """The checkpoint at ``path`` (a file, or a run folder holding one), checked: a fastgan
    checkpoint of this format version, readable and whole."""
    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a single .npy array, not a fastgan checkpoint")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"{path} cannot be read as a checkpoint (truncated or "
                              f"corrupt?): {exc}") from None
    if METADATA_KEY not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a fastgan checkpoint "
                              "(it has no metadata)")
    try:
        metadata = json.loads(arrays.pop(METADATA_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's metadata is damaged ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fastgan checkpoint")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is checkpoint format version {metadata.get('format_version')} (written by "
            f"fastgan {metadata.get('fastgan_version')}); this fastgan reads version "
            f"{FORMAT_VERSION} only")
    return Stored(path, metadata, arrays)


def _restore(gan: Checkpointable, stored: Stored) -> None:
    """Copy the stored arrays, counters and random states into ``gan``."""
    path, meta, arrays = stored.path, stored.metadata, stored.arrays
    targets = state_arrays(gan)
    missing, unexpected = sorted(set(targets) - set(arrays)), sorted(set(arrays) - set(targets))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: arrays missing "
                              f"{missing or 'none'}, unexpected {unexpected or 'none'}")
    for name, target in targets.items():
        if arrays[name].shape != tuple(target.shape):
            raise CheckpointError(f"{path} does not fit this model: {name} has shape "
                                  f"{arrays[name].shape}, the model's {tuple(target.shape)}")
    for name, target in targets.items():
        gan.backend.copy(arrays[name].astype(gan.dtype, copy=False), target)
    if gan.ema is not None:       # absent: written when the average started at the weights
        gan.ema.debiased = bool((meta.get("model") or {}).get("ema_debiased", False))
    try:
        set_progress(gan, meta["progress"])
        rng_states = meta["rng"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's progress record is damaged "
                              f"({exc!r})") from None
    same_backend = meta.get("backend") == gan.backend.name
    for name, (get_state, set_state) in random_streams(gan).items():
        saved = rng_states.get(name) if isinstance(rng_states, dict) else None
        written_by, drawn_by = generator_of(saved), generator_of(get_state())
        if written_by is not None and written_by != drawn_by:
            reason = f"comes from {written_by} and this {gan.backend.name} backend draws {drawn_by}"
        else:
            try:
                set_state(saved)
                continue
            except (KeyError, TypeError, ValueError) as exc:
                if same_backend:
                    raise CheckpointError(f"{path}: the state of random stream {name!r} is "
                                          f"damaged ({exc!r})") from None
                reason = f"does not fit the {gan.backend.name} backend"
        warnings.warn(f"random stream {name!r} of a {meta.get('backend')} checkpoint {reason}; "
                      "it restarts from its seed", stacklevel=3)


def same_processes(metadata: Mapping[str, Any], processes: int) -> bool:
    """Whether the checkpoint was written by ``processes`` processes (1 unless a data-parallel
    trainer wrote it); when not, a warning says that training continues but its random
    streams differ from an uninterrupted run's."""
    record = (metadata.get("extra") or {}).get(DATA_PARALLEL) or {}
    written_by = int(record.get("world_size", 1))
    if written_by != processes:
        warnings.warn(f"the checkpoint was written by {written_by} process(es) and training "
                      f"continues on {processes}: the parameters and the data order continue, "
                      "but the noise and dropout streams differ from an uninterrupted run",
                      stacklevel=3)
    return written_by == processes


def _describe(key: str, value: Any) -> str:
    """A short phrase for an architecture field, e.g. "generator is Dense(128) > Dense(2)"."""
    if key in ("generator", "discriminator") and isinstance(value, list):
        layers = " > ".join(f"{layer.get('type')}({layer['units']})" if "units" in layer
                            else str(layer.get("type")) for layer in value)
        return f"{key} is {layers}"
    return f"{key} is {value}"
