"""The public API: backend selection, presets and their parameter counts, MLP validation."""

from __future__ import annotations

import numpy as np
import pytest

import fastgan
from fastgan import GAN, MLP, BackendUnavailable, ConfigError, Dense, Dropout, Flatten, Reshape
from fastgan import backends as registry
from fastgan.gan import presets

PARAMETER_COUNTS = {   # (generator, discriminator) trainable parameters for 28x28 images
    "numpy-mlp": (114_064, 100_609),
    "keras-mlp": (1_495_568, 533_505),
    "numpy-adam": (572_584, 100_609),
    "pytorch-vanilla": (1_486_352, 1_460_225),
    "fast-mlp": (1_486_352, 1_460_225),           # pytorch-vanilla's architecture
    "fast-cgan": (1_488_912, 1_462_785),  # + 10 one-hot inputs to G, D's 10 x 256 embedding
}


@pytest.mark.parametrize("name", list(PARAMETER_COUNTS))
def test_preset_parameter_counts(name):
    gan = GAN.from_preset(name)
    assert (gan.generator.n_params, gan.discriminator.n_params) == PARAMETER_COUNTS[name]


def test_preset_names_and_image_size_follow_the_data():
    assert set(presets.names()) == {*PARAMETER_COUNTS, "keras-dcgan", "fast-dcgan",
                                   "tiny"}                            # the DCGANs: test_conv
    gan = GAN.from_preset("numpy-mlp", data_dim=64)            # 8x8 digits
    assert gan.data_dim == 64 and gan.discriminator.in_features == 64


def test_preset_overrides():
    gan = GAN.from_preset("numpy-adam", latent_dim=350, g_hidden=(420, 640), batch_size=32, k=2)
    assert gan.latent_dim == 350 and gan.k == 2 and gan.batch_size == 32
    assert [layer.out_features for layer in gan.generator.layers] == [420, 640, 784]
    with pytest.raises(ConfigError, match=r"'tiny' does not take dropout \(its own settings: "
                                          r"latent_dim, g_hidden, d_hidden, lr;"):
        GAN.from_preset("tiny", dropout=0.5)
    with pytest.raises(ConfigError, match=r"'fast-cgan' does not take kernel .* g_lr, d_lr"):
        GAN.from_preset("fast-cgan", kernel=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        GAN.from_preset("dcgan-9000")
    with pytest.raises(ConfigError, match="g_loss"):
        GAN.from_preset("tiny", g_loss="wasserstein")


def test_a_preset_can_sample_from_an_average_of_g_and_override_it():
    tuned = presets.get("fast-mlp")
    assert tuned.ema_decay is not None and GAN.from_preset("fast-mlp").ema.decay == tuned.ema_decay
    assert GAN.from_preset("fast-mlp", ema_decay=0.9).ema.decay == 0.9
    assert GAN.from_preset("pytorch-vanilla").ema is None
    both = presets.get("fast-mlp", lr=1e-3)
    assert both.g_optimizer.lr == both.d_optimizer.lr == 1e-3
    with pytest.raises(ConfigError, match="EMA decay"):
        GAN.from_preset("fast-mlp", ema_decay=1.5)


def test_available_backends_reports_reasons():
    report = fastgan.available_backends()
    assert set(report) == {"numpy", "numba", "cupy"}
    assert report["numpy"] is None
    assert all(reason is None or (isinstance(reason, str) and reason) for reason in report.values())


def test_unavailable_backend_names_reason_and_alternatives(monkeypatch):
    monkeypatch.setattr(registry, "_MODULES", {**registry._MODULES,
                                               "cupy": "fastgan.backends.no_such_module"})
    monkeypatch.setattr(registry, "_instances", {})
    with pytest.raises(BackendUnavailable, match=r"cupy.*cannot.*Usable here: numpy"):
        fastgan.get_backend("cupy")


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backend"):
        fastgan.get_backend("tpu")


def test_auto_picks_the_first_usable_in_order():
    usable = fastgan.available_backends()
    expected = next(n for n in ("cupy", "numba", "numpy") if usable[n] is None)
    assert fastgan.get_backend("auto").name == expected


def test_use_backend_sets_the_default_inside_the_block():
    assert fastgan.get_backend().name == "numpy"
    with fastgan.use_backend("numpy") as backend:
        assert fastgan.get_backend() is backend
        assert MLP([Dense(2)], in_features=3).backend is backend
    assert fastgan.get_backend().name == "numpy"


def test_import_does_not_import_cupy_or_numba():
    import subprocess
    import sys
    code = "import fastgan, sys; print('cupy' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_custom_architecture():
    config = fastgan.GANConfig(
        latent_dim=3, generator=(Dense(16, "relu"), Dense(4, "tanh")),
        discriminator=(Dense(16, "leaky_relu", alpha=0.2), Dropout(0.2), Dense(1)),
        g_optimizer=fastgan.Adam(1e-3), d_optimizer=fastgan.SGD(1e-2, momentum=0.5))
    gan = GAN(config, seed=1)
    assert gan.data_dim == config.data_dim == 4
    stats = gan.train_step(np.zeros((8, 4), np.float32))
    assert set(stats) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    samples = gan.sample(5)
    assert samples.shape == (5, 4) and np.all(np.abs(samples) <= 1)


@pytest.mark.parametrize("bad", [
    lambda: MLP([], in_features=3),
    lambda: MLP([Dense(2)], in_features=0),
    lambda: MLP([Dense(2)], in_features=3, dtype="float16"),
    lambda: MLP(["dense"], in_features=3),
    lambda: Dense(0),
    lambda: Dense(3, "swish"),
    lambda: Dropout(1.0),
])
def test_bad_architectures_are_clear_errors(bad):
    with pytest.raises(ConfigError):
        bad()


def test_mismatched_networks_are_rejected():
    def config(discriminator):
        return fastgan.GANConfig(latent_dim=2, generator=(Dense(5),),
                                 discriminator=discriminator, g_optimizer=fastgan.Adam(),
                                 d_optimizer=fastgan.Adam())

    with pytest.raises(ConfigError, match="cannot read the generator's 5 features"):
        config((Reshape((2, 2, 1)), Flatten(), Dense(1)))
    with pytest.raises(ConfigError, match="one unit"):
        config((Dense(2),))
    with pytest.raises(ConfigError, match="built from a GANConfig"):
        GAN(MLP([Dense(5)], in_features=2))


def test_bad_batches_are_clear_errors():
    gan = GAN.from_preset("tiny", data_dim=2, k=2)
    with pytest.raises(ConfigError, match="k\\*B rows"):
        gan.train_step(np.zeros((5, 2)))           # 5 rows do not split into k=2 batches
    with pytest.raises(ConfigError, match="k\\*B rows"):
        gan.train_step(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="noise must have shape"):
        gan.sample(3, noise=np.zeros((3, 5)))


PUBLIC_NAMES = (   # what users import from the package root; the layout may move code, not these
    "GAN", "GANConfig", "MLP", "SGD", "Adam", "Constant", "InverseTimeDecay", "StepDecay",
    "Activation", "BatchNorm", "Conv2D", "ConvTranspose2D", "Dense", "Dropout", "Flatten",
    "Reshape", "UpSampling2D",
    "Callback", "History", "BackendUnavailable", "CheckpointError", "ConfigError", "DataError",
    "FastganError", "TrainingDiverged", "available_backends", "get_backend", "use_backend",
    "evaluate", "export", "load", "data", "distributed", "presets", "__version__",
)


def test_every_public_name_is_still_importable_from_the_package_root():
    assert set(fastgan.__all__) == set(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        assert getattr(fastgan, name) is not None, name
    assert callable(fastgan.data.load) and callable(fastgan.presets.get)
    assert all(callable(getattr(GAN, method)) for method in ("fit", "save", "from_preset"))
