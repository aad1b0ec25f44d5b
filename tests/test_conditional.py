"""Conditional GANs: labels through the library (config, step, sampling, checkpoints) and the
command line (train, sample, resume, one-line errors). Gradients are proven in
test_gradients.py and step parity across backends in test_parity.py and
test_cupy_backend.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli import TINY_DIGITS, assert_resume_is_bit_for_bit, fastgan_command

import fastgan
from fastgan import GAN, ConfigError, Conv2D, Dense, Flatten, Reshape
from fastgan.data.dataset import make_dataset
from fastgan.gan import presets
from fastgan.gan.conditioning import labelled_rows

SMALL = {"data_dim": 6, "latent_dim": 4, "g_hidden": (16,), "d_hidden": (16,), "batch_size": 8}


def small(projection: bool = False, **options) -> GAN:
    return GAN.from_preset("tiny", seed=5, conditional=True, num_classes=3,
                           projection=projection, **{**SMALL, **options})


def labelled(n: int = 48, classes: int = 3, seed: int = 0):
    """``n`` rows of 6 features whose class shifts their mean, labels 0..classes-1 in turn."""
    y = np.arange(n) % classes
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, (n, 6)) + 0.3 * (y[:, None] - 1)
    return make_dataset("labelled", x, y, None)


# ------------------------------------------------------------------ the library
def test_labels_widen_the_first_layers_and_the_real_rows():
    concatenated, projected = small(), small(projection=True)
    assert concatenated.generator.in_features == 4 + 3
    assert concatenated.discriminator.in_features == 6 + 3
    assert projected.discriminator.in_features == 6          # the label enters at the end
    assert "projection.embedding" in projected.discriminator.params.slots
    assert projected.discriminator.params.slots["projection.embedding"].size == 3 * 16
    assert concatenated.row_features == projected.row_features == 6 + 3
    assert (GAN.from_preset("tiny", **SMALL).row_features == 6)


def test_labelled_rows_carry_one_hot_labels_after_the_samples():
    data = labelled(6)
    rows = labelled_rows(data.x, data.y, 3)
    np.testing.assert_array_equal(rows[:, :6], data.x)
    np.testing.assert_array_equal(rows[:, 6:], np.eye(3)[[0, 1, 2, 0, 1, 2]])


@pytest.mark.parametrize("projection", [False, True], ids=["concatenated", "projection"])
def test_fit_sample_save_and_resume_exactly(tmp_path, projection):
    """Training reads labelled rows; a checkpoint keeps the settings, and a resumed GAN trains
    on as an uninterrupted one does (the fake labels come from the saved noise stream)."""
    straight, first = small(projection), small(projection)
    straight.fit(labelled(), steps=12)
    first.fit(labelled(), steps=5)
    resumed = fastgan.load(first.save(tmp_path / "c.npz"))
    assert resumed.config == first.config and resumed.num_classes == 3
    resumed.fit(labelled(), steps=7)
    for net in ("generator", "discriminator"):
        np.testing.assert_array_equal(getattr(resumed, net).params.data,
                                      getattr(straight, net).params.data, err_msg=net)
    assert resumed.sample(9, seed=1, labels=[2] * 9).shape == (9, 6)


def test_sample_labels_default_to_the_classes_in_turn_and_fix_the_class():
    gan = small()
    gan.fit(labelled(), steps=3)
    noise = np.random.default_rng(2).standard_normal((6, 4))
    default = gan.sample(6, noise=noise)
    np.testing.assert_array_equal(default, gan.sample(6, noise=noise, labels=[0, 1, 2, 0, 1, 2]))
    assert not np.array_equal(default, gan.sample(6, noise=noise, labels=[1] * 6))


@pytest.mark.parametrize(("labels", "message"), [
    ([0, 3], "label 3 is outside the classes 0..2"),
    ([-1, 0], "label -1 is outside"),
    ([0.5, 1.0], "integer classes"),
    ([0], "2 samples asked for, but 1 labels"),
])
def test_bad_sample_labels_are_clear_errors(labels, message):
    with pytest.raises(ConfigError, match=message):
        small().sample(2, labels=labels)


def test_labels_on_an_unconditional_gan_and_data_without_labels_are_errors():
    with pytest.raises(ConfigError, match="this GAN is unconditional"):
        GAN.from_preset("tiny", **SMALL).sample(2, labels=[0, 1])
    with pytest.raises(ConfigError, match="this data has no labels"):
        small().fit(np.zeros((48, 6)), steps=1)
    with pytest.raises(ConfigError, match="label 3 is outside"):
        small().fit(labelled(classes=4), steps=1)
    with pytest.raises(ConfigError, match="label maps"):
        GAN(small().config.replace(discriminator=(Reshape((2, 3, 1)), Conv2D(2), Flatten(),
                                                  Dense(1))))


def test_a_convolutional_discriminator_reads_label_maps():
    """keras-dcgan's D reads 8 x 8 images with the label as 3 more channels: its Reshape is
    widened by the preset, and each pixel of D's input holds the image's value, then y."""
    gan = GAN.from_preset("keras-dcgan", data_dim=64, latent_dim=4, g_filters=(4, 4, 4),
                          d_filters=(4, 4, 4), conditional=True, num_classes=3, batch_size=4)
    assert gan.config.discriminator[0] == Reshape((8, 8, 4))
    assert gan.discriminator.in_features == 64 * 4 and gan.config.label_map_shape == (64, 1)
    x, y = np.random.default_rng(1).uniform(-1, 1, (4, 64)), np.array([2, 0, 1, 2])
    gan.step(np.concatenate([x, np.eye(3)[y]], axis=1))
    maps = gan.workspace(4).d_input[:4].reshape(4, 64, 4)
    np.testing.assert_allclose(maps[:, :, 0], x, rtol=1e-6)
    np.testing.assert_array_equal(maps[:, :, 1:], np.broadcast_to(np.eye(3)[y][:, None],
                                                                 (4, 64, 3)))


@pytest.mark.parametrize("projection", [False, True], ids=["concatenated", "projection"])
def test_the_generator_learns_to_follow_its_labels(projection):
    """On data whose class moves its mean, samples asked of class c come out nearest class
    c's mean: the worst class's share over 600 samples, median over three seeds (measured
    0.82-1.0 over eight seeds at 800 steps; a generator ignoring its labels scores ~1/3)."""
    y = np.arange(480) % 3
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (480, 6)) + 0.5 * (y[:, None] - 1)
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    labels = np.arange(600) % 3
    scores = []
    for seed in range(3):
        gan = GAN.from_preset("tiny", seed=seed, conditional=True, num_classes=3, lr=2e-3,
                              projection=projection, **{**SMALL, "batch_size": 32})
        gan.fit(make_dataset("classes", x, y, None), steps=800)
        samples = gan.sample(600, labels=labels, seed=seed)
        nearest = np.argmin(((samples[:, None] - means[None]) ** 2).sum(axis=2), axis=1)
        scores.append(min((nearest[labels == c] == c).mean() for c in range(3)))
    assert np.median(scores) > 0.75, scores


# ------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """tiny on digits 3, 5 and 7, conditional, 2 epochs."""
    cwd = tmp_path_factory.mktemp("conditional")
    result = fastgan_command(*TINY_DIGITS, "--conditional", "--classes", "7", "3", "5",
                             "--epochs", "2", "--threads", "1", "--out", "run", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def test_train_conditional_draws_one_class_per_row(conditional_run):
    model = json.loads((conditional_run / "config.json").read_text())["model"]
    assert model["conditional"] and model["num_classes"] == 3 and not model["projection"]
    assert np.load(conditional_run / "fixed_noise.npy").shape[0] == 3 * 8
    grid = Image.open(conditional_run / "samples" / "final.png")
    assert grid.width > 2 * grid.height                     # 3 rows of 8


def test_sample_a_label_of_the_data(conditional_run, tmp_path):
    """--label names the data's label (the run kept 3, 5 and 7: classes 0, 1 and 2)."""
    result = fastgan_command("sample", conditional_run, "--label", "5", "-n", "8", "-o",
                             "five.npy", "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    gan = fastgan.load(conditional_run)
    expected = gan.sample(8, seed=3, labels=[1] * 8)
    np.testing.assert_allclose(np.load(tmp_path / "five.npy"), expected, rtol=1e-6)
    result = fastgan_command("sample", conditional_run, "-n", "7", "-o", "all.png",
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_resume_a_conditional_run_exactly(tmp_path):
    common = (*TINY_DIGITS, "--conditional", "--projection", "--checkpoint-every", "0",
              "--threads", "1")
    assert_resume_is_bit_for_bit(common, 8, 16, tmp_path)


@pytest.mark.parametrize(("args", "expected"), [
    (("train", "--data", "unlabelled.npz", "--conditional", "--out", "new"),
     "--conditional needs labelled data, and unlabelled.npz has no labels"),
    (("train", "--projection", "--out", "new"), "add --conditional"),
    (("sample", "RUN", "--label", "4"), "label 4 is not one of this GAN's classes (3, 5, 7)"),
    (("sample", "PLAIN", "--label", "4"), "this checkpoint's GAN is unconditional"),
])
def test_conditional_errors_are_one_clear_line(tmp_path, conditional_run, args, expected):
    np.savez(tmp_path / "unlabelled.npz", x=np.zeros((64, 4), np.float32))
    GAN.from_preset("tiny", **SMALL).save(tmp_path / "plain.npz")
    places = {"RUN": str(conditional_run), "PLAIN": "plain.npz"}
    result = fastgan_command(*(places.get(a, a) for a in args), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("fastgan: error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "new").exists()


def test_the_fast_cgan_preset_is_fast_mlp_with_labels():
    """fast-cgan: fast-mlp's networks and training settings, conditional on 10 classes with
    the projection discriminator."""
    cgan, mlp = presets.get("fast-cgan"), presets.get("fast-mlp")
    assert cgan.conditional and cgan.num_classes == 10 and cgan.projection
    assert cgan.replace(name=mlp.name, source=mlp.source, conditional=False,
                        num_classes=0, projection=False) == mlp


def test_train_fast_cgan_takes_its_classes_from_the_data(tmp_path):
    """A conditional preset needs no --conditional; --classes sets its number of classes."""
    result = fastgan_command("train", "--preset", "fast-cgan", "--data", "digits", "--classes",
                             "1", "4", "--steps", "2", "--g-hidden", "16", "--d-hidden", "16",
                             "--no-progress", "--threads", "1", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert model["name"] == "fast-cgan" and model["conditional"] and model["num_classes"] == 2
    assert model["projection"]                          # the preset's discriminator
    result = fastgan_command("train", "--preset", "fast-cgan", "--data", "digits", "--classes",
                             "1", "4", "--steps", "1", "--g-hidden", "16", "--d-hidden", "16",
                             "--no-projection", "--no-progress", "--threads", "1", "--out",
                             "concatenated", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "concatenated" / "config.json").read_text())["model"]
    assert config["conditional"] and not config["projection"]
