"""The user's own data: ``.npz`` files and folders of images, scaled to [-1, 1].

An ``.npz`` file holds an array ``x`` and optionally integer labels ``y``; an image folder's
files are read as 8-bit greyscale, without labels. :func:`~fastgan.data.load` describes the
values and shapes each accepts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fastgan.errors import DataError

from .dataset import SourceArrays, scale_uint8
from .images import pillow, resize_image

_IMAGE_SUFFIXES = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
)
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def npz(path: Path) -> SourceArrays:
    """The arrays ``x`` (scaled, colour made greyscale) and ``y`` of the .npz file at ``path``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise DataError(f"{path}: no array named 'x' (found: {', '.join(archive.files)})")
            x, y = archive["x"], archive["y"] if "y" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read this .npz file: {error}") from error
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"{path}: x must hold at least one sample per row, got shape {x.shape}")
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise DataError(
            f"{path}: y must hold one integer label per sample, shape ({len(x)},); "
            f"got {y.dtype} of shape {y.shape}"
        )
    x = _scale_to_unit(x, path)
    if x.ndim == 2:
        return x, y, None
    if x.ndim == 4 and x.shape[3] in (1, 3):
        x = x[..., 0] if x.shape[3] == 1 else np.clip(x @ _LUMA_WEIGHTS, -1, 1)
    if x.ndim != 3:
        raise DataError(
            f"{path}: x must be (N, F) rows or (N, H, W), (N, H, W, 1) or (N, H, W, 3) images; "
            f"got shape {x.shape}"
        )
    return x, y, (x.shape[1], x.shape[2])


def image_folder(folder: Path, size: tuple[int, int] | None) -> SourceArrays:
    """The images directly in ``folder``, in name order, each resized to ``size`` if given."""
    image_module = pillow()
    files = sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file()
    )
    if not files:
        raise DataError(
            f"{folder}: no image files directly in this folder "
            f"(suffixes read: {', '.join(sorted(_IMAGE_SUFFIXES))})"
        )
    images = []
    for path in files:
        try:
            with image_module.open(path) as image:
                grey = np.asarray(image.convert("L"))
        except (OSError, ValueError, image_module.DecompressionBombError) as error:
            raise DataError(f"{path}: cannot read this image: {error}") from error
        scaled = scale_uint8(grey)
        images.append(scaled if size is None else resize_image(scaled, size))
    for path, image in zip(files, images, strict=True):
        if image.shape != images[0].shape:
            raise DataError(
                f"{folder}: images differ in size: {files[0].name} is {images[0].shape} and "
                f"{path.name} is {image.shape} (height, width); pass image_size to resize them"
            )
    return np.stack(images), None, images[0].shape


def _scale_to_unit(x: np.ndarray, path: Path) -> np.ndarray:
    """Scale user data to float32 in [-1, 1]: integers 0..255, floats in [0, 1] or [-1, 1]."""
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: integer x must lie in 0..255, found {x.min()}..{x.max()}")
        return scale_uint8(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x must hold integers or floats, found {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: x holds NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low >= 0 and high <= 1:
        return 2 * x - 1
    if low >= -1 and high <= 1:
        return x
    raise DataError(
        f"{path}: float x spans [{low}, {high}]; scale it to [0, 1] or [-1, 1], "
        "or store integers 0..255"
    )
