"""Checkpoints: a GAN's whole training state in one pickle-free ``.npz`` file.

The file holds arrays only — both networks' flat parameters, the optimizers' state buffers,
batch-norm running statistics, the weight average when EMA is on — plus one more array: the
UTF-8 bytes of a JSON document (key ``metadata.json``) with everything else: the format
version, the fastgan version, backend and dtype, the GAN's configuration (``model``: its
``GANConfig`` as JSON: layer specs, optimizers and schedules, noise, k, losses, batch size,
the preset it came from), the step and epoch counters, every random stream's state
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
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._version import __version__
from ..backends import names as backend_names
from ..backends.base import DTYPES, generator_of
from ..errors import CheckpointError
from ..fileio import write_atomically
from ..nn.ema import WeightAverage
from ..nn.mlp import MLP
from ..nn.optim import BoundOptimizer
from .loop import Trainable
from .serialization import Absent, misfits


class Checkpointable(Trainable, Protocol):
    """What a checkpoint stores of a GAN, beyond what the loop uses (:class:`Trainable`):
    its configuration, every state array and every random stream. ``fastgan.GAN`` is one."""

    config: Any                 # a GANConfig: ``to_json()`` gives its JSON form
    generator: MLP
    discriminator: MLP
    g_optimizer: BoundOptimizer
    d_optimizer: BoundOptimizer
    stats: Any
    ema: WeightAverage | None

    def random_streams(self) -> dict[str, Any]:
        """Each random stream (``get_state``/``set_state``) by its checkpoint name."""


FORMAT = "fastgan-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "metadata.json"
CHECKPOINT_NAME = "checkpoint.npz"
"""The file name :func:`read` looks for when given a folder (a run directory)."""
METADATA_FIELDS = {"backend": str, "dtype": str, "model": dict, "preset": dict | Absent,
                   "progress": dict, "rng": dict, "extra": dict}
"""The metadata's entries beside the format's, and their types (``preset``: only in files
written before ``model`` held the whole configuration)."""
DATA_PARALLEL = "data_parallel"
"""The entry of ``extra`` where a data-parallel trainer records its number of processes
(``world_size``) and every rank's random streams (``rank_streams``)."""


class ModelMismatch(CheckpointError):
    """A checkpoint holds the state of another model than the one it is restored into."""


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
        "model": gan.config.to_json(),
        "progress": progress(gan),
        "rng": {name: stream.get_state() for name, stream in gan.random_streams().items()},
        "extra": dict(extra or {}),
    }
    arrays = {name: gan.backend.to_numpy(array) for name, array in state_arrays(gan).items()}
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    return write_atomically(path, lambda file: np.savez(file, **arrays))


def progress(gan: Checkpointable) -> dict[str, Any]:
    """Where training stands, as JSON values: the step, epoch and optimizer counters, the
    position in the data, and whether the average of G's weights is bias-corrected."""
    return {"steps": gan.steps, "epoch": gan.epoch,
            "g_optimizer_steps": gan.g_optimizer.steps,
            "d_optimizer_steps": gan.d_optimizer.steps,
            "data_order": gan.data_order.get_state(),
            "ema_debiased": None if gan.ema is None else gan.ema.debiased}


def set_progress(gan: Checkpointable, values: Mapping[str, Any]) -> None:
    """Put ``gan`` where :func:`progress` said training stood (KeyError, TypeError or
    ValueError for a damaged record). A checkpoint without ``ema_debiased`` was written
    when the average started at the weights (read as it is)."""
    gan.steps, gan.epoch = int(values["steps"]), int(values["epoch"])
    gan.g_optimizer.steps = int(values["g_optimizer_steps"])
    gan.d_optimizer.steps = int(values["d_optimizer_steps"])
    gan.data_order.set_state(values["data_order"])
    if gan.ema is not None:
        gan.ema.debiased = bool(values.get("ema_debiased", False))


def config_record(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of the stored GAN's configuration (``GANConfig.to_json``), also from a
    checkpoint written before there was one (its ``model`` and ``preset`` records)."""
    model = dict(metadata.get("model") or {})
    if "name" in model:
        return model
    preset = metadata.get("preset") or {}          # format 1 before GANConfig
    for legacy in ("data_dim", "ema_debiased"):
        model.pop(legacy, None)
    return {**model, "name": preset.get("name", "custom"), "source": preset.get("source", "")}


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


# ---------------------------------------------------------------- reading
def restore(gan: Checkpointable, source: str | os.PathLike[str] | Stored) -> None:
    """Load a checkpoint (a path, or what :func:`read` returned) into ``gan``, which must have
    the same architecture."""
    stored = source if isinstance(source, Stored) else read(source)
    expected, found = gan.config.to_json(), config_record(stored.metadata)
    for key in ("latent_dim", "generator", "discriminator"):
        if expected[key] != found.get(key):
            raise ModelMismatch(
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
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            SyntaxError, tokenize.TokenError) as exc:  # numpy reads array headers as literals
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
    wrong = misfits(metadata, METADATA_FIELDS)
    wrong += [key for key, known in (("backend", backend_names()), ("dtype", DTYPES))
              if key not in wrong and metadata[key] not in known]
    if wrong:
        raise CheckpointError(f"{path}: the checkpoint's metadata is damaged (its "
                              f"{', '.join(wrong)} missing, of another type or unknown)")
    return Stored(path, metadata, arrays)


def _restore(gan: Checkpointable, stored: Stored) -> None:
    """Copy the stored arrays, counters and random states into ``gan``."""
    path, meta, arrays = stored.path, stored.metadata, stored.arrays
    targets = state_arrays(gan)
    missing, unexpected = sorted(set(targets) - set(arrays)), sorted(set(arrays) - set(targets))
    if missing or unexpected:
        raise ModelMismatch(f"{path} does not fit this model: arrays missing "
                            f"{missing or 'none'}, unexpected {unexpected or 'none'}")
    for name, target in targets.items():
        if arrays[name].shape != tuple(target.shape):
            raise ModelMismatch(f"{path} does not fit this model: {name} has shape "
                                f"{arrays[name].shape}, the model's {tuple(target.shape)}")
    for name, target in targets.items():
        gan.backend.copy(arrays[name].astype(gan.dtype, copy=False), target)
    try:
        legacy_debiased = (meta.get("model") or {}).get("ema_debiased", False)
        set_progress(gan, {"ema_debiased": legacy_debiased, **meta["progress"]})
        rng_states = meta["rng"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's progress record is damaged "
                              f"({exc!r})") from None
    same_backend = meta.get("backend") == gan.backend.name
    for name, stream in gan.random_streams().items():
        saved = rng_states.get(name) if isinstance(rng_states, dict) else None
        written_by, drawn_by = generator_of(saved), generator_of(stream.get_state())
        if written_by is not None and written_by != drawn_by:
            reason = f"comes from {written_by} and this {gan.backend.name} backend draws {drawn_by}"
        else:
            try:
                stream.set_state(saved)
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
    if key in ("generator", "discriminator") and isinstance(value, list) and all(
            isinstance(layer, dict) for layer in value):
        layers = " > ".join(f"{layer.get('type')}({layer['units']})" if "units" in layer
                            else str(layer.get("type")) for layer in value)
        return f"{key} is {layers}"
    return f"{key} is {value}"
