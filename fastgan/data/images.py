"""Image resizing with Pillow, which is imported on first use (only image data needs it)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from fastgan.errors import DataError


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (N, H, W) float images in [-1, 1] to (N, height, width), bilinear."""
    if x.shape[1:] == size:
        return x
    return np.stack([resize_image(image, size) for image in x])


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one float image in [-1, 1] to (height, width), bilinear; the result stays in range."""
    image_module = pillow()
    height, width = size
    picture = image_module.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    resized = np.asarray(picture.resize((width, height), image_module.Resampling.BILINEAR))
    return np.clip(resized, -1, 1).astype(np.float32)


def pillow() -> ModuleType:
    """The PIL.Image module, imported on first use."""
    try:
        from PIL import Image
    except ImportError as error:
        raise DataError("reading or resizing images needs Pillow: pip install pillow") from error
    return Image
