"""Sample grids, GIFs and plots: layout, pixel values, files on disk, atomic writes."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from fastgan import fileio, viz
from fastgan.errors import ConfigError


def test_a_known_tile_lands_at_its_place_with_exact_grey_levels():
    images = np.full((5, 2, 3), -1.0)
    images[4] = [[1.0, -1.0, 0.0], [1.0, 1.0, 1.0]]  # fifth tile: row 1, column 1 of a 3-wide grid
    grid = viz.image_grid(images, (2, 3), padding=1)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2)  # two rows, three columns, padding between
    np.testing.assert_array_equal(grid[3:5, 4:7], [[255, 0, 128], [255, 255, 255]])
    np.testing.assert_array_equal(grid[0:2, 0:3], 0)  # first tile, all -1: black
    assert (grid[2, :] == viz.BACKGROUND).all() and (grid[:, 3] == viz.BACKGROUND).all()
    np.testing.assert_array_equal(grid[3:5, 8:11], viz.BACKGROUND)  # sixth cell has no image


def test_flat_and_shaped_images_give_the_same_grid():
    images = np.random.default_rng(0).uniform(-1, 1, size=(7, 4, 5))
    flat = viz.image_grid(images.reshape(7, 20), (4, 5), ncols=2)
    np.testing.assert_array_equal(flat, viz.image_grid(images, (4, 5), ncols=2))
    assert flat.shape == (4 * 4 + 3 * 2, 2 * 5 + 2)


def test_values_outside_the_range_are_clipped_and_nan_is_black():
    grid = viz.image_grid(np.array([[-3.0, 7.0, np.nan, 0.5]]), (1, 4))
    np.testing.assert_array_equal(grid, [[0, 255, 0, 191]])


def test_scale_enlarges_tiles_by_nearest_neighbour_and_keeps_padding():
    images = np.array([[[-1.0, 1.0]], [[1.0, -1.0]]])
    grid = viz.image_grid(images, (1, 2), ncols=2, padding=1, scale=3)
    assert grid.shape == (3, 2 * 6 + 1)
    np.testing.assert_array_equal(grid[:, :6], np.repeat([[0, 0, 0, 255, 255, 255]], 3, axis=0))
    np.testing.assert_array_equal(grid[:, 6], viz.BACKGROUND)


@pytest.mark.parametrize(
    ("images", "image_shape", "options", "message"),
    [
        (np.zeros((4, 2)), None, {}, "not images"),
        (np.zeros((4, 63)), (8, 8), {}, r"shape \(4, 63\) do not fit image_shape \(8, 8\)"),
        (np.zeros((4, 8, 7)), (8, 8), {}, "do not fit"),
        (np.zeros((0, 64)), (8, 8), {}, "N >= 1"),
        (np.zeros((4, 64)), (8, -8), {}, "two positive integers"),
        (np.zeros((4, 64)), (8, 8), {"scale": 0}, "scale must be an integer >= 1"),
        (np.zeros((4, 64)), (8, 8), {"ncols": 1.5}, "ncols"),
    ],
)
def test_image_grid_rejects_bad_input(images, image_shape, options, message):
    with pytest.raises(ConfigError, match=message):
        viz.image_grid(images, image_shape, **options)


def test_save_grid_round_trips_through_pillow(tmp_path):
    images = np.random.default_rng(1).uniform(-1, 1, size=(9, 64))
    path = viz.save_grid(tmp_path / "samples" / "epoch_001.png", images, (8, 8), scale=4)
    assert path == tmp_path / "samples" / "epoch_001.png"
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "L"
        pixels = np.asarray(picture)
    np.testing.assert_array_equal(pixels, viz.image_grid(images, (8, 8), scale=4))
    assert [p.name for p in path.parent.iterdir()] == ["epoch_001.png"]  # no temporary left


def test_save_grid_insists_on_a_png_path(tmp_path):
    with pytest.raises(ConfigError, match=r"ending in \.png"):
        viz.save_grid(tmp_path / "grid.jpg", np.zeros((1, 4)), (2, 2))


def test_save_gif_holds_every_frame_from_files_or_arrays(tmp_path):
    grids = [viz.image_grid(np.full((4, 16), level), (4, 4)) for level in (-1.0, -0.5, 0.5, 1.0)]
    frame_paths = [tmp_path / f"epoch_{i}.png" for i in range(len(grids))]
    for frame_path, grid in zip(frame_paths, grids, strict=True):
        Image.fromarray(grid).save(frame_path)
    for frames in (frame_paths, grids):
        path = viz.save_gif(tmp_path / "training.gif", frames, duration_ms=100)
        with Image.open(path) as gif:
            assert gif.format == "GIF"
            assert gif.n_frames == 4
            assert gif.info["loop"] == 0
            gif.seek(3)
            assert gif.info["duration"] == 100
            np.testing.assert_array_equal(np.asarray(gif.convert("L")), grids[3])


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "at least one frame"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)], "same size"),
        ([np.zeros((4, 4))], "uint8"),
        (["no/such/frame.png"], "cannot read GIF frame"),
    ],
)
def test_save_gif_rejects_bad_frames(tmp_path, frames, message):
    with pytest.raises(ConfigError, match=message):
        viz.save_gif(tmp_path / "training.gif", frames)
    assert not (tmp_path / "training.gif").exists()


@pytest.mark.parametrize("writer", ["grid", "gif"])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, monkeypatch, writer
):
    path = tmp_path / f"out.{'png' if writer == 'grid' else 'gif'}"
    path.write_bytes(b"the previous picture")

    def write_half_then_fail(self, file, *args, **kwargs):
        file.write(b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        if writer == "grid":
            viz.save_grid(path, np.zeros((1, 4)), (2, 2))
        else:
            viz.save_gif(path, [np.zeros((2, 2), np.uint8)])
    assert path.read_bytes() == b"the previous picture"
    assert list(tmp_path.iterdir()) == [path]


def test_a_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "replace", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        viz.save_grid(tmp_path / "grid.png", np.zeros((1, 4)), (2, 2))
    assert list(tmp_path.iterdir()) == []


def _raise_interrupt(*args):
    raise KeyboardInterrupt


# --- plots (matplotlib) ----------------------------------------------------------------------


def history(n):
    steps = np.arange(n)
    return {
        "d_loss": 1.4 - 0.3 * np.tanh(steps / 20),
        "g_loss": 0.7 + 0.5 * np.tanh(steps / 30),
        "d_real": 0.5 + 0.2 * np.tanh(steps / 25),
        "d_fake": 0.5 - 0.2 * np.tanh(steps / 25),
        "steps_per_s": np.full(n, 100.0),  # other keys are ignored
    }


@pytest.mark.parametrize("with_probabilities", [True, False])
def test_save_loss_curves_writes_a_png(tmp_path, with_probabilities):
    pytest.importorskip("matplotlib")
    curves = history(100)
    if not with_probabilities:
        del curves["d_real"], curves["d_fake"]
    path = viz.save_loss_curves(
        tmp_path / "losses.png", curves, steps=np.arange(100) * 50, title="digits, numpy"
    )
    assert path == tmp_path / "losses.png"
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == (800, 600 if with_probabilities else 400)
        assert len(np.unique(np.asarray(picture.convert("L")))) > 10  # something was drawn
    assert list(tmp_path.iterdir()) == [path]


def test_scatter_2d_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(2)
    path = viz.scatter_2d(
        tmp_path / "points.png", rng.normal(size=(300, 2)), rng.normal(size=(200, 2))
    )
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (600, 600)


@pytest.mark.parametrize(
    ("curves", "steps", "message"),
    [
        ({"loss": [1.0]}, None, "needs 'd_loss'"),
        ({"d_loss": [1.0, 2.0], "g_loss": [1.0]}, None, "equal length"),
        ({"d_loss": []}, None, "non-empty"),
        ({"d_loss": [1.0, 2.0]}, [0, 1, 2], "steps has shape"),
    ],
)
def test_save_loss_curves_rejects_bad_history(tmp_path, curves, steps, message):
    with pytest.raises(ConfigError, match=message):
        viz.save_loss_curves(tmp_path / "losses.png", curves, steps=steps)


def test_scatter_2d_rejects_points_that_are_not_2d(tmp_path):
    with pytest.raises(ConfigError, match=r"generated points of shape \(N, 2\)"):
        viz.scatter_2d(tmp_path / "points.png", np.zeros((5, 2)), np.zeros((5, 3)))


def test_without_matplotlib_plots_are_skipped_with_one_warning(tmp_path, monkeypatch):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import` fail
    monkeypatch.setattr(viz, "_warned_no_matplotlib", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert viz.save_loss_curves(tmp_path / "losses.png", history(10)) is None
        assert viz.scatter_2d(tmp_path / "points.png", np.zeros((3, 2)), np.zeros((3, 2))) is None
        assert viz.save_metric_curves(tmp_path / "fd.png", {"a": ([1.0], [2.0])}) is None
    assert len(caught) == 1
    assert "matplotlib is not installed" in str(caught[0].message)
    assert "pip install" in str(caught[0].message)
    assert list(tmp_path.iterdir()) == []


def test_save_metric_curves_draws_every_curve_and_highlights_one(tmp_path):
    pytest.importorskip("matplotlib")
    curves = {f"trial-{i}": (np.arange(5) * 10.0, 50.0 / (np.arange(5) + 1 + i)) for i in range(6)}
    path = viz.save_metric_curves(tmp_path / "curves.png", curves, highlight="trial-5",
                                  ylabel="frechet_distance")
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (800, 500)
        red = np.asarray(picture.convert("RGB")).astype(int)
        assert ((red[..., 0] > 180) & (red[..., 1] < 80)).sum() > 100     # the highlighted line
    with pytest.raises(ConfigError, match="not among the curves"):
        viz.save_metric_curves(tmp_path / "x.png", curves, highlight="trial-9")
    with pytest.raises(ConfigError, match="equal length"):
        viz.save_metric_curves(tmp_path / "x.png", {"a": ([1.0, 2.0], [1.0])})


def test_contact_sheet_places_each_picture_under_its_label(tmp_path):
    pictures = []
    for level, size in ((0, (10, 6)), (255, (4, 8))):
        path = tmp_path / f"{level}.png"
        Image.new("L", size, level).save(path)
        pictures.append(path)
    sheet = viz.contact_sheet(pictures, ["black", "white"], ncols=2, padding=3)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    caption = sheet.shape[0] - 3 * 2 - 8                        # one row: cells of height 8+caption
    cell_w = 10
    assert sheet.shape[1] == 2 * cell_w + 3 * 3
    np.testing.assert_array_equal(sheet[3 + caption:3 + caption + 6, 3:13], 0)
    np.testing.assert_array_equal(sheet[3 + caption:3 + caption + 8, 16:20], 255)
    assert (sheet[3:3 + caption, 3:13] < 128).any()               # the label is drawn above
    path = viz.save_contact_sheet(tmp_path / "sheet.png", pictures, ["black", "white"])
    with Image.open(path) as picture:
        assert picture.format == "PNG"
    with pytest.raises(ConfigError, match="one label per picture"):
        viz.contact_sheet(pictures, ["only one"])
