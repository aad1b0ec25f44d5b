"""The IDX file format (MNIST's): a strict parser that checks every header field."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from fastgan.errors import DataError

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file into a native-endian array, checking every header field.

    The header is two zero bytes, a data-type code, the number of dimensions, then each
    dimension as a big-endian uint32; the payload must hold exactly the declared elements.
    """
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: not an IDX file: the magic number must start with two zero bytes, "
            f"found {bytes(data[:2]).hex()}"
        )
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DataError(f"{source}: unknown IDX data type code 0x{data[2]:02X} (known: {known})")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{source}: the IDX header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated: the header declares {ndim} dimensions "
            f"({header_size} header bytes) but the file has {len(data)} bytes"
        )
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    declared = math.prod(shape) * dtype.itemsize
    payload = len(data) - header_size
    if payload < declared:
        raise DataError(
            f"{source}: truncated: the header declares {dtype.name} data of shape {shape} "
            f"({declared} bytes) but only {payload} bytes follow it"
        )
    if payload > declared:
        raise DataError(
            f"{source}: {payload - declared} trailing bytes after the {declared} bytes of "
            f"{dtype.name} data of shape {shape} that the header declares"
        )
    try:
        array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    except ValueError as error:
        raise DataError(f"{source}: shape {shape} cannot be held as an array: {error}") from error
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (recognised by its magic bytes)."""
    data = read_bytes(Path(path))
    return parse_idx(gunzip_if_gzip(data, str(path)), source=str(path))


def gunzip_if_gzip(data: bytes, source: str) -> bytes:
    """*data* decompressed if it starts with gzip's magic bytes, else *data* itself."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{source}: corrupt or truncated gzip data: {error}") from error


def read_bytes(path: Path) -> bytes:
    """The bytes of the file at *path*; a :class:`~fastgan.errors.DataError` if unreadable."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from error
