"""GANConfig: the one list of a GAN's settings survives every place that stores it, and a
checkpoint and a run folder written before it existed still load and resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fastgan
from fastgan import (
    GAN,
    SGD,
    Adam,
    BatchNorm,
    ConfigError,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GANConfig,
    Reshape,
)
from fastgan.cli import main as cli
from fastgan.data.dataset import make_dataset
from fastgan.gan.config import loss_fields
from fastgan.nn.optim import StepDecay
from fastgan.nn.specs import Activation, ConvolutionSpec, UpSampling2D
from fastgan.runs.folder import CONFIG, Run, TrainConfig, gan_config, prepare
from fastgan.training import checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
PRE_SEAMS_RUN = FIXTURES / "pre-seams-run"
"""A run folder (without its pictures) written by fastgan before GANConfig (commit 4cc8b3e):
``fastgan train --preset pytorch-vanilla --latent-dim 4 --g-hidden 8 8 --d-hidden 8 8
--batch-size 32 --data ring.npz --steps 20 --log-every 10 --ema 0.9 --backend numpy``."""

EVERY_FIELD = {
    "latent_dim": 3,
    "generator": (Dense(6, "leaky_relu", alpha=0.1), BatchNorm(momentum=0.8), Dense(4, "tanh")),
    "discriminator": (Dense(5, "relu"), Dropout(0.25), Dense(1)),
    "g_optimizer": SGD(0.02, momentum=0.5, schedule=StepDecay(0.5, milestones=(3,))),
    "d_optimizer": Adam(3e-4, beta1=0.4),
    "batch_size": 12,
    "noise": "uniform",
    "k": 2,
    "d_loss": "least_squares",
    "g_loss": "minimax",
    "label_smoothing": 0.1,
    "ema_decay": 0.95,
    "spectral_norm": True,
    "r1_gamma": 2.0,
    "r1_every": 2,
    "name": "every-field",
    "source": "a config whose every field differs from its default",
}
CONDITIONAL_FIELDS = {"conditional": True, "num_classes": 3, "projection": True,
                      "r1_gamma": 0.0, "r1_every": 1}
"""The conditional settings: R1 is refused with labels, so they are set in a second config."""
EVERY_CONFIG = (EVERY_FIELD, {**EVERY_FIELD, **CONDITIONAL_FIELDS})
"""Between them a value for every field of GANConfig other than its default: a field added
without a value here fails :func:`test_every_field_is_set_here`."""


def test_every_field_is_set_here():
    fields = dataclasses.fields(GANConfig)
    assert set(EVERY_FIELD) | set(CONDITIONAL_FIELDS) == {field.name for field in fields}
    for field in fields:
        assert any(config.get(field.name, field.default) != field.default
                   for config in EVERY_CONFIG), field.name


@pytest.mark.parametrize("every_field", EVERY_CONFIG, ids=["unconditional", "conditional"])
def test_every_field_survives_json_and_a_checkpoint(tmp_path, every_field):
    config = GANConfig(**every_field)
    assert GANConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    gan = GAN(config, seed=2)
    x, y = np.random.default_rng(0).uniform(-1, 1, (48, 4)), np.arange(48) % 3
    gan.fit(make_dataset("labelled", x, y, None), steps=2)
    loaded = fastgan.load(gan.save(tmp_path / "c.npz"))
    assert loaded.config == config
    assert loaded.ema.decay == config.ema_decay and loaded.k == 2 and loaded.batch_size == 12


def test_every_setting_of_a_run_survives_its_config_json(tmp_path):
    settings = TrainConfig(preset="numpy-adam", data="ring", latent_dim=5, g_hidden=(9,),
                           d_hidden=(7,), batch_size=16, g_lr=2e-4, beta1=0.6, k=2,
                           label_smoothing=0.05, loss="least_squares", spectral_norm=True,
                           r1_gamma=5.0, r1_every=4,
                           ema=0.99, steps=1)
    run = prepare(settings, tmp_path / "run")
    record = json.loads((tmp_path / "run" / CONFIG).read_text())
    assert GANConfig.from_json(record["model"]) == run.gan.config
    assert run.gan.config.g_optimizer.lr == 2e-4 and run.gan.config.d_optimizer.beta1 == 0.6
    assert run.gan.config.d_loss == run.gan.config.g_loss == "least_squares"
    assert run.gan.config.spectral_norm
    assert (run.gan.config.r1_gamma, run.gan.config.r1_every) == (5.0, 4)
    assert TrainConfig.from_json(record["config"]) == settings


def test_the_architecture_settings_reach_the_convolutional_presets_layers():
    """fast-dcgan on 8 x 8 digits: each architecture setting of a run shapes the GAN."""
    small = TrainConfig(preset="fast-dcgan", g_filters=(4, 2), d_filters=(2, 4))
    base = gan_config(small, 64)

    def convolutions(network) -> list[tuple[str, int]]:
        return [(type(layer).__name__, layer.filters) for layer in network
                if isinstance(layer, ConvolutionSpec)]

    assert [layer.units for layer in base.generator if isinstance(layer, Dense)] == [2 * 2 * 4]
    assert convolutions(base.generator) == [("ConvTranspose2D", 2), ("ConvTranspose2D", 1)]
    assert convolutions(base.discriminator) == [("Conv2D", 2), ("Conv2D", 4)]
    nearest = gan_config(dataclasses.replace(small, upsample="nearest"), 64).generator
    assert convolutions(nearest) == [("Conv2D", 2), ("Conv2D", 1)]
    assert sum(isinstance(layer, UpSampling2D) for layer in nearest) == 2
    unnormalised = gan_config(dataclasses.replace(small, norm="none"), 64).generator
    assert any(isinstance(layer, BatchNorm) for layer in base.generator)
    assert not any(isinstance(layer, BatchNorm) for layer in unnormalised)
    three = gan_config(dataclasses.replace(small, kernel=3), 64)
    assert {layer.kernel for layer in (*three.generator, *three.discriminator)
            if isinstance(layer, ConvolutionSpec)} == {3}
    steep = gan_config(dataclasses.replace(small, alpha=0.1), 64)
    leaky = [layer for layer in (*steep.generator, *steep.discriminator)
             if (isinstance(layer, Activation) and layer.name == "leaky_relu")
             or (isinstance(layer, ConvolutionSpec) and layer.activation == "leaky_relu")]
    assert len(leaky) == 4 and {layer.alpha for layer in leaky} == {0.1}
    deeper = gan_config(dataclasses.replace(small, g_filters=(4, 4, 2)), 64).generator
    assert convolutions(deeper) == [("Conv2D", 4), ("ConvTranspose2D", 2),
                                    ("ConvTranspose2D", 1)]
    keras = gan_config(TrainConfig(preset="keras-dcgan", g_filters=(8, 4, 2),
                                   d_filters=(2, 4, 8)), 64)
    assert convolutions(keras.discriminator) == [("Conv2D", 2), ("Conv2D", 4), ("Conv2D", 8)]


def test_a_run_from_before_the_architecture_settings_reads_them_as_the_presets():
    stored = {key: value for key, value in TrainConfig(preset="fast-dcgan").to_json().items()
              if key not in ("g_filters", "d_filters", "kernel", "upsample", "norm", "alpha")}
    config = TrainConfig.from_json(stored)
    assert config == TrainConfig(preset="fast-dcgan") and config.upsample is None
    assert gan_config(config, 64) == fastgan.presets.get("fast-dcgan", 64)


@pytest.mark.parametrize(("change", "message"), [
    ({"latent_dim": 0}, "latent_dim"),
    ({"noise": "cauchy"}, "noise must be"),
    ({"g_loss": "wasserstein"}, "g_loss must be"),
    ({"d_loss": "wasserstein"}, "d_loss must be"),
    ({"d_loss": "hinge", "label_smoothing": 0.1}, "no target to move in the hinge"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"k": 0}, "k \\(D steps"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"ema_decay": 1.0}, "EMA decay"),
    ({"spectral_norm": "yes"}, "spectral_norm must be true or false"),
    ({"r1_gamma": -0.5}, "r1_gamma must be a number >= 0"),
    ({"r1_every": 0}, "r1_every"),
    ({"discriminator": (Dense(5, "relu"), BatchNorm(), Dense(1)), "r1_gamma": 1.0},
     "remove BatchNorm"),
    ({"r1_gamma": 1.0}, "R1 penalty is derived for unconditional GANs"),
    ({"discriminator": (Dense(2),)}, "one unit"),
    ({"generator": ()}, "no layers"),
    ({"conditional": "yes"}, "conditional must be true or false"),
    ({"num_classes": 1}, "num_classes >= 2"),
    ({"conditional": False}, "settings of a conditional GAN"),
    ({"discriminator": (Dense(5, "relu"), Dense(1, "tanh"))}, "Dense layer with no activation"),
    ({"projection": False, "spectral_norm": False,
      "discriminator": (Reshape((2, 2, 1)), Conv2D(2), Flatten(), Dense(1))}, "label maps"),
])
def test_each_setting_is_checked(change, message):
    with pytest.raises(ConfigError, match=message):
        GANConfig(**{**EVERY_FIELD, **CONDITIONAL_FIELDS, **change})


def test_loss_pairs_name_both_losses_and_an_unknown_name_is_an_error():
    assert loss_fields("hinge") == {"d_loss": "hinge", "g_loss": "hinge"}
    assert loss_fields("minimax") == {"d_loss": "bce", "g_loss": "minimax"}
    with pytest.raises(ConfigError, match="unknown loss 'wasserstein'; choose one of "
                                          "non_saturating, minimax, hinge, least_squares"):
        loss_fields("wasserstein")


def test_stored_settings_that_do_not_fit_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown GAN settings colour"):
        GANConfig.from_json({**GANConfig(**EVERY_FIELD).to_json(), "colour": "red"})
    with pytest.raises(ConfigError, match="incomplete"):
        GANConfig.from_json({"latent_dim": 3})


def test_a_checkpoint_from_before_the_config_loads():
    gan = fastgan.load(PRE_SEAMS_RUN)
    expected = fastgan.presets.get("pytorch-vanilla", 2, latent_dim=4, g_hidden=(8, 8),
                                   d_hidden=(8, 8), batch_size=32, ema_decay=0.9)
    assert gan.config == expected
    assert gan.steps == 20 and gan.epoch == 1 and gan.ema.debiased
    stored = checkpoint.read(PRE_SEAMS_RUN)
    for name, array in checkpoint.state_arrays(gan).items():
        np.testing.assert_array_equal(gan.backend.to_numpy(array), stored.arrays[name])
    for name, stream in gan.random_streams().items():
        assert stream.get_state() == stored.metadata["rng"][name], name


def test_a_run_folder_from_before_the_config_resumes(tmp_path, monkeypatch):
    """``fastgan train --resume`` continues the old folder exactly as the library continues
    its checkpoint (both on this machine, so the same BLAS kernels)."""
    shutil.copytree(PRE_SEAMS_RUN, tmp_path / "run")
    shutil.copy(FIXTURES / "ring.npz", tmp_path / "ring.npz")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--resume", "run", "--steps", "40", "--no-progress"]) == 0
    continued = fastgan.load(PRE_SEAMS_RUN)
    continued.fit(fastgan.data.load("ring.npz"), steps=20, log_every=10)
    resumed = fastgan.load(tmp_path / "run")
    for name, array in checkpoint.state_arrays(continued).items():
        np.testing.assert_array_equal(checkpoint.state_arrays(resumed)[name], array, name)
    record = json.loads((tmp_path / "run" / CONFIG).read_text())
    assert GANConfig.from_json(record["model"]) == continued.config
    steps = [line["step"] for line in map(json.loads, (tmp_path / "run" / "metrics.jsonl")
                                          .read_text().splitlines()) if line["event"] == "log"]
    assert steps == [10, 20, 30, 40]
    assert Run.resume(tmp_path / "run").gan.config == continued.config
