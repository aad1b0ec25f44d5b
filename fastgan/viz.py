"""Pictures of a run: sample grids, the training GIF, loss curves and 2-D scatter plots.

Every file is written atomically: into a temporary file in the destination folder, flushed to
disk, then renamed over the destination with ``os.replace``. A failure half-way leaves either the
previous file or nothing, never a truncated picture.

Pillow draws the grids and the GIF. matplotlib draws the plots; it is imported only when a plot
is asked for, and where it cannot be imported (an install without dependencies) the plotting
functions return ``None`` and warn once per process. They draw on a bare ``Figure`` with the
Agg canvas, so they never touch pyplot's global state or the user's interactive backend.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fastgan.errors import ConfigError
from fastgan.fileio import write_atomically

__all__ = ["contact_sheet", "image_grid", "save_contact_sheet", "save_gif", "save_grid",
           "save_loss_curves", "save_metric_curves", "scatter_2d"]

BACKGROUND = 128
"""Grey level of the padding and of empty cells: mid-grey, so both black and white tile edges
stay visible (a black background would merge with MNIST's black borders)."""

LOSS_KEYS = ("d_loss", "g_loss")
"""History keys drawn on the loss panel of :func:`save_loss_curves`."""

PROBABILITY_KEYS = ("d_real", "d_fake")
"""History keys, D(x) and D(G(z)), drawn on the optional second panel."""

_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}

_warned_no_matplotlib = False


def image_grid(
    images: np.ndarray,
    image_shape: tuple[int, int] | None,
    *,
    ncols: int | None = None,
    padding: int = 2,
    scale: int = 1,
) -> np.ndarray:
    """Tile images with values in [-1, 1] into one uint8 greyscale picture.

    ``images`` is (N, H*W) or (N, H, W). Values map linearly from [-1, 1] to [0, 255] (-1 is
    black, 1 is white); values outside are clipped and NaN is drawn black. Tiles fill rows of
    ``ncols`` (default ``ceil(sqrt(N))``) left to right, top to bottom. Each tile is first
    enlarged ``scale`` times (nearest neighbour, so 8x8 digits stay crisp), then ``padding``
    output pixels of mid-grey (:data:`BACKGROUND`) separate neighbouring tiles; there is no
    frame around the outside. Cells of the last row left without an image are mid-grey.
    """
    tiles = _as_tiles(images, image_shape)
    n_images = tiles.shape[0]
    ncols = math.ceil(math.sqrt(n_images)) if ncols is None else ncols
    _require_int("ncols", ncols, minimum=1)
    _require_int("padding", padding, minimum=0)
    _require_int("scale", scale, minimum=1)
    nrows = math.ceil(n_images / ncols)

    grey = np.rint((np.clip(np.nan_to_num(tiles, nan=-1.0), -1.0, 1.0) + 1.0) * 127.5)
    grey = grey.astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)
    tile_h, tile_w = grey.shape[1:]
    grid = np.full(
        (nrows * tile_h + (nrows - 1) * padding, ncols * tile_w + (ncols - 1) * padding),
        BACKGROUND,
        dtype=np.uint8,
    )
    for index, tile in enumerate(grey):
        top = (index // ncols) * (tile_h + padding)
        left = (index % ncols) * (tile_w + padding)
        grid[top : top + tile_h, left : left + tile_w] = tile
    return grid


def save_grid(
    path: str | os.PathLike[str],
    images: np.ndarray,
    image_shape: tuple[int, int] | None,
    **grid_options: Any,
) -> Path:
    """Write :func:`image_grid` of ``images`` as a greyscale PNG at ``path`` (atomically).

    ``grid_options`` are passed on to :func:`image_grid` (ncols, padding, scale).
    """
    path = _require_suffix(path, ".png")
    picture = Image.fromarray(image_grid(images, image_shape, **grid_options))
    return write_atomically(path, lambda file: picture.save(file, format="PNG"))


def save_gif(
    path: str | os.PathLike[str],
    frames: Sequence[str | os.PathLike[str]] | Sequence[np.ndarray],
    *,
    duration_ms: int = 200,
    loop: int = 0,
) -> Path:
    """Write an animated GIF of ``frames`` (image files or uint8 arrays) at ``path`` (atomically).

    Typical use: the per-epoch sample grids of a run, in order. All frames must have the same
    size. ``duration_ms`` is the time each frame is shown (GIF stores hundredths of a second);
    ``loop`` is the number of repeats, 0 meaning forever. Pillow merges consecutive identical
    frames into one longer frame, so the file can hold fewer frames than it was given.
    """
    path = _require_suffix(path, ".gif")
    _require_int("duration_ms", duration_ms, minimum=1)
    _require_int("loop", loop, minimum=0)
    if len(frames) == 0:
        raise ConfigError("save_gif needs at least one frame; it was given none")
    pictures = [_as_picture(frame) for frame in frames]
    sizes = {picture.size for picture in pictures}
    if len(sizes) > 1:
        raise ConfigError(
            f"GIF frames must all have the same size (width, height); got {sorted(sizes)}"
        )
    first, *rest = pictures
    return write_atomically(
        path,
        lambda file: first.save(
            file, format="GIF", save_all=True, append_images=rest, duration=duration_ms, loop=loop
        ),
    )


def save_loss_curves(
    path: str | os.PathLike[str],
    history: Mapping[str, Sequence[float]],
    *,
    steps: Sequence[int] | None = None,
    title: str | None = None,
) -> Path | None:
    """Plot a run's losses (and D(x), D(G(z)) when present) into a PNG at ``path`` (atomically).

    ``history`` maps names to one value per logged step: ``d_loss`` and ``g_loss`` go on the
    first panel; ``d_real`` and ``d_fake``, when present, on a second panel over [0, 1]. Other
    keys are ignored. ``steps`` gives the x positions (default 0, 1, 2, ...). Returns the path,
    or ``None`` (after warning once) if matplotlib is not installed.
    """
    path = _require_suffix(path, ".png")
    loss_keys = [key for key in LOSS_KEYS if key in history]
    probability_keys = [key for key in PROBABILITY_KEYS if key in history]
    if not loss_keys:
        raise ConfigError(
            f"save_loss_curves needs 'd_loss' and/or 'g_loss' in history; it has {sorted(history)}"
        )
    curves = {
        key: np.asarray(history[key], dtype=np.float64) for key in loss_keys + probability_keys
    }
    lengths = {key: curve.shape for key, curve in curves.items()}
    if len(set(lengths.values())) > 1 or next(iter(lengths.values())) == (0,):
        raise ConfigError(
            f"history curves must be 1-D, non-empty and of equal length; got {lengths}"
        )
    (n_points,) = next(iter(lengths.values()))
    x = np.arange(n_points) if steps is None else np.asarray(steps)
    if x.shape != (n_points,):
        raise ConfigError(f"steps has shape {x.shape} but the history has {n_points} points")

    figure = _new_figure(figsize=(8, 6 if probability_keys else 4))
    if figure is None:
        return None
    panels = figure.subplots(1 + bool(probability_keys), 1, sharex=True, squeeze=False)[:, 0]
    for key in loss_keys:
        panels[0].plot(x, curves[key], label=_LABELS[key], linewidth=1)
    panels[0].set_ylabel("loss")
    for key in probability_keys:
        panels[1].plot(x, curves[key], label=_LABELS[key], linewidth=1)
    if probability_keys:
        panels[1].set_ylabel("discriminator output")
        panels[1].set_ylim(0.0, 1.0)
    for panel in panels:
        panel.legend(loc="upper right")
        panel.grid(alpha=0.3)
    panels[-1].set_xlabel("step")
    if title is not None:
        panels[0].set_title(title)
    return _save_figure(path, figure)


def scatter_2d(path: str | os.PathLike[str], real: np.ndarray, fake: np.ndarray) -> Path | None:
    """Scatter real and generated 2-D points on one set of axes into a PNG (atomically).

    Returns the path, or ``None`` (after warning once) if matplotlib is not installed.
    """
    path = _require_suffix(path, ".png")
    points = {"real": np.asarray(real), "generated": np.asarray(fake)}
    for name, array in points.items():
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise ConfigError(f"scatter_2d needs {name} points of shape (N, 2); got {array.shape}")
    figure = _new_figure(figsize=(6, 6))
    if figure is None:
        return None
    axes = figure.subplots()
    for name, array in points.items():
        axes.scatter(array[:, 0], array[:, 1], s=4, alpha=0.5, label=name)
    axes.set_aspect("equal", adjustable="datalim")
    axes.legend(loc="upper right", markerscale=3)
    axes.grid(alpha=0.3)
    return _save_figure(path, figure)


def save_metric_curves(
    path: str | os.PathLike[str],
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    highlight: str | None = None,
    xlabel: str = "seconds",
    ylabel: str = "metric",
    title: str | None = None,
) -> Path | None:
    """Plot one line per named curve, ``name -> (x values, y values)``, into a PNG (atomically).

    The curve named ``highlight`` (e.g. a sweep's best trial) is drawn thick, on top and in the
    legend; the others thin and faint, so that many trials stay readable. Returns the path, or
    ``None`` (after warning once) if matplotlib is not installed.
    """
    path = _require_suffix(path, ".png")
    lines = {name: (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
             for name, (x, y) in curves.items()}
    for name, (x, y) in lines.items():
        if x.ndim != 1 or x.shape != y.shape:
            raise ConfigError(f"curve {name!r} needs x and y of one equal length; got "
                              f"{x.shape} and {y.shape}")
    if highlight is not None and highlight not in lines:
        raise ConfigError(f"the curve to highlight, {highlight!r}, is not among the curves")
    figure = _new_figure(figsize=(8, 5))
    if figure is None:
        return None
    axes = figure.subplots()
    for name, (x, y) in lines.items():
        if name != highlight:
            axes.plot(x, y, color="tab:blue", alpha=0.35, linewidth=1, marker=".", markersize=3)
    if highlight is not None:
        x, y = lines[highlight]
        axes.plot(x, y, color="tab:red", linewidth=2.5, marker="o", markersize=4,
                  label=f"best: {highlight}")
        axes.legend(loc="best")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if title is not None:
        axes.set_title(title)
    return _save_figure(path, figure)


def contact_sheet(
    pictures: Sequence[str | os.PathLike[str]],
    labels: Sequence[str],
    *,
    ncols: int | None = None,
    padding: int = 6,
) -> np.ndarray:
    """Tile picture files, each under its one-line label, into one RGB uint8 array.

    Pictures of different sizes are placed in cells of the largest size, top-left; the layout
    is :func:`image_grid`'s (``ncols`` default ``ceil(sqrt(N))``) on a white background.
    """
    from PIL import ImageDraw, ImageFont

    if len(pictures) != len(labels) or not pictures:
        raise ConfigError(f"a contact sheet needs one label per picture and at least one "
                          f"picture; got {len(pictures)} pictures and {len(labels)} labels")
    ncols = math.ceil(math.sqrt(len(pictures))) if ncols is None else ncols
    _require_int("ncols", ncols, minimum=1)
    _require_int("padding", padding, minimum=0)
    images = [_as_picture(picture).convert("RGB") for picture in pictures]
    font = ImageFont.load_default()
    caption = max(font.getbbox(label)[3] for label in labels) + 4
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images) + caption
    nrows = math.ceil(len(images) / ncols)
    sheet = Image.new("RGB", (ncols * cell_w + (ncols + 1) * padding,
                              nrows * cell_h + (nrows + 1) * padding), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        left = padding + (index % ncols) * (cell_w + padding)
        top = padding + (index // ncols) * (cell_h + padding)
        draw.text((left, top), label, fill="black", font=font)
        sheet.paste(image, (left, top + caption))
    return np.asarray(sheet)


def save_contact_sheet(
    path: str | os.PathLike[str],
    pictures: Sequence[str | os.PathLike[str]],
    labels: Sequence[str],
    **sheet_options: Any,
) -> Path:
    """Write :func:`contact_sheet` of ``pictures`` and ``labels`` as a PNG at ``path``
    (atomically); ``sheet_options`` (ncols, padding) are passed on."""
    path = _require_suffix(path, ".png")
    picture = Image.fromarray(contact_sheet(pictures, labels, **sheet_options))
    return write_atomically(path, lambda file: picture.save(file, format="PNG"))


def _as_tiles(images: np.ndarray, image_shape: tuple[int, int] | None) -> np.ndarray:
    """Check ``images`` against ``image_shape`` and return them as an (N, H, W) float array."""
    if image_shape is None:
        raise ConfigError(
            "image_grid needs an image shape (height, width), and this data has none: it is not "
            "images. Plot 2-D data with scatter_2d instead."
        )
    if not (
        isinstance(image_shape, tuple | list)
        and len(image_shape) == 2
        and all(isinstance(s, int | np.integer) and s > 0 for s in image_shape)
    ):
        raise ConfigError(
            f"image_shape must be two positive integers (height, width); got {image_shape!r}"
        )
    height, width = (int(s) for s in image_shape)
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == height * width:
        array = array.reshape(-1, height, width)
    if array.ndim != 3 or array.shape[1:] != (height, width) or array.shape[0] == 0:
        raise ConfigError(
            f"images of shape {np.shape(images)} do not fit image_shape {(height, width)}: "
            f"expected (N, {height * width}) or (N, {height}, {width}) with N >= 1"
        )
    return array


def _as_picture(frame: str | os.PathLike[str] | np.ndarray) -> Image.Image:
    """Load one GIF frame: read an image file, or wrap a 2-D (grey) or (H, W, 3) uint8 array."""
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8 or not (
            frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)
        ):
            raise ConfigError(
                "array GIF frames must be uint8 of shape (H, W) or (H, W, 3), such as image_grid "
                f"returns; got {frame.dtype} {frame.shape}"
            )
        return Image.fromarray(frame)
    try:
        with Image.open(frame) as picture:
            return picture.copy()
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read GIF frame {os.fspath(frame)!r}: {error}") from error


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _require_suffix(path: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ConfigError(
            f"this writes {suffix[1:].upper()} files; give a path ending in {suffix}, not {path}"
        )
    return path


def _new_figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure on an Agg canvas, or None (warning once) if matplotlib is missing."""
    global _warned_no_matplotlib
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned_no_matplotlib:
            _warned_no_matplotlib = True
            warnings.warn(
                "matplotlib is not installed, so fastgan draws no plots (loss curves, scatter "
                "plots); install it with: pip install matplotlib",
                stacklevel=3,
            )
        return None
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(path: Path, figure: Any) -> Path:
    return write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=100))
