"""JSON form of the frozen configuration records: layer specs, optimizers and schedules.

``encode`` turns a record into plain JSON values (``{"type": "Dense", "units": 256, ...}``,
tuples as lists); ``decode`` turns them back, rebuilding exactly the records that were
encoded (lists come back as tuples, the form every record here uses). Checkpoints and run
configurations store models this way, so nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ConfigError
from ..nn.optim import SGD, Adam, Constant, InverseTimeDecay, StepDecay
from ..nn.specs import SPEC_TYPES

T = TypeVar("T")

RECORD_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    *SPEC_TYPES, SGD, Adam, Constant, InverseTimeDecay, StepDecay)}


def encode(value: Any) -> Any:
    """``value`` as JSON-compatible data: records become dicts tagged with their type."""
    if dataclasses.is_dataclass(value) and type(value).__name__ in RECORD_TYPES:
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(f"cannot store {value!r} ({type(value).__name__}) as JSON")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`: tagged dicts become records, lists become tuples."""
    if isinstance(value, list):
        return tuple(decode(item) for item in value)
    if isinstance(value, dict):
        fields = {key: decode(item) for key, item in value.items() if key != "type"}
        if "type" not in value:
            return fields
        record_type = RECORD_TYPES.get(value["type"])
        if record_type is None:
            raise ConfigError(f"unknown record type {value['type']!r} in stored configuration")
        try:
            return record_type(**fields)
        except TypeError as exc:
            raise ConfigError(f"stored {value['type']} record does not fit: {exc}") from None
    return value


class Absent:
    """In a type hint for :func:`misfits`, a value that may be missing (``int | Absent``)."""


def is_json_of(value: Any, hint: Any) -> bool:
    """Whether ``value``, read back from JSON, stores a value of type ``hint``: a union of
    types, a tuple (stored as a list), a float (a whole number is one too) or a plain type;
    a bool is no number."""
    if isinstance(hint, types.UnionType):
        return any(is_json_of(value, option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, list) and all(is_json_of(v, item) for v in value)
    if isinstance(value, bool) and hint in (int, float):
        return False
    return isinstance(value, int | float) if hint is float else isinstance(value, hint)


def misfits(values: Mapping[str, Any], hints: Mapping[str, Any]) -> list[str]:
    """The names in ``hints`` whose value in ``values`` (read back from JSON) is not of the
    type hinted (see :func:`is_json_of`); a missing value is an :class:`Absent`."""
    return [name for name, hint in hints.items()
            if not is_json_of(values[name] if name in values else Absent(), hint)]


def encode_fields(record: Any) -> dict[str, Any]:
    """Every field of the dataclass ``record`` as JSON values, by name (see :func:`encode`)."""
    return {field.name: encode(getattr(record, field.name))
            for field in dataclasses.fields(record)}


def decode_fields(record_type: type[T], values: Mapping[str, Any], what: str) -> T:
    """The ``record_type`` whose fields :func:`encode_fields` gave as ``values``; ConfigError
    names an unknown field, or a missing one, of ``what`` (e.g. "GAN settings")."""
    known = {field.name for field in dataclasses.fields(record_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(unknown)}")
    try:
        return record_type(**{key: decode(value) for key, value in values.items()})
    except TypeError as exc:
        raise ConfigError(f"the {what} are incomplete: {exc}") from None

