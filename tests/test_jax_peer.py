"""The JAX peer: fastgan's architectures and training rule, written as a JAX user would."""

from __future__ import annotations

import numpy as np
import pytest
from support.small_presets import SMALL_CONVOLUTIONAL, transposed_config

from fastgan.errors import ConfigError, FastganError
from fastgan.gan import presets
from fastgan.gan.model import GAN
from fastgan.nn.specs import Dense

jax = pytest.importorskip("jax")
JaxGAN = pytest.importorskip("fastgan.benchmarking.jax_peer").JaxGAN

DENSE_PRESETS = [name for name in presets.names()     # the peers train no labels
                 if name not in SMALL_CONVOLUTIONAL and not presets.get(name).conditional]


def fastgan_counts(config) -> dict[str, int]:
    """Trainable parameters of fastgan's own networks for ``config``."""
    gan = GAN(config, backend="numpy")
    return {"generator": gan.generator.n_params, "discriminator": gan.discriminator.n_params}


@pytest.mark.parametrize("name", DENSE_PRESETS)
def test_every_dense_preset_has_fastgans_parameter_counts(name):
    config = presets.get(name)
    assert JaxGAN(config).parameter_counts() == fastgan_counts(config)


def dense_forward(layers, params, x: np.ndarray) -> np.ndarray:
    """A network of Dense layers, in NumPy (float64), from the peer's parameters."""
    for spec, p in zip(layers, params, strict=True):
        x = x @ np.asarray(p["w"], np.float64) + np.asarray(p["b"], np.float64)
        if spec.activation == "relu":
            x = np.maximum(x, 0)
        elif spec.activation == "leaky_relu":
            x = np.where(x > 0, x, spec.alpha * x)
        elif spec.activation == "tanh":
            x = np.tanh(x)
    return x


def bce_with_logits(logits: np.ndarray, target: float) -> float:
    """Mean binary cross-entropy of sigmoid(``logits``) against ``target``."""
    return float(np.mean(np.logaddexp(0, logits) - target * logits))


def test_the_first_d_loss_is_the_bce_of_fastgans_rule_recomputed_in_numpy():
    config = presets.get("tiny", data_dim=12, label_smoothing=0.1)
    assert all(isinstance(spec, Dense) for spec in (*config.generator, *config.discriminator))
    peer = JaxGAN(config, seed=5)
    g_params, d_params = jax.device_get((peer.state["g"], peer.state["d"]))
    _, noise_key, _, _ = jax.random.split(peer.state["key"], 4)     # as the step splits it
    z = np.asarray(jax.random.normal(noise_key, (config.batch_size, config.latent_dim)))
    real = peer.make_batch()
    fake = dense_forward(config.generator, g_params, z)
    logits = dense_forward(config.discriminator, d_params,
                           np.concatenate([np.asarray(real, np.float64), fake]))
    expected = (bce_with_logits(logits[:config.batch_size], 0.9)
                + bce_with_logits(logits[config.batch_size:], 0.0))
    peer.step(real)
    assert peer.stats()["d_loss"] == pytest.approx(expected, rel=1e-4)
    moved = jax.device_get(peer.state["d"])
    assert not np.allclose(moved[-1]["w"], d_params[-1]["w"])     # D's optimizer stepped


def test_it_learns_a_blob():
    config = presets.get("tiny", data_dim=2)
    peer = JaxGAN(config, seed=0)
    centre = np.array([0.5, -0.4])
    rng = np.random.default_rng(0)

    def distance_to_centre() -> float:
        z = rng.standard_normal((2000, config.latent_dim))
        fakes = dense_forward(config.generator, jax.device_get(peer.state["g"]), z)
        return float(np.linalg.norm(fakes.mean(0) - centre))

    start = distance_to_centre()
    for _ in range(200):
        peer.step(peer.make_batch(centre + 0.05 * rng.standard_normal((config.batch_size, 2))))
    assert start > 0.15, f"the untrained generator is already on the blob: {start}"
    assert distance_to_centre() < 0.15
    stats = peer.stats()
    assert abs(stats["d_real"] - 0.5) < 0.15 and abs(stats["d_fake"] - 0.5) < 0.15, stats


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="dense networks only"):
        JaxGAN(presets.get("keras-dcgan"))
    with pytest.raises(ConfigError, match="dense networks only"):      # images: refused at
        JaxGAN(transposed_config())                                      # the first Reshape
    with pytest.raises(ConfigError, match="the JAX peer trains the BCE losses, not hinge"):
        JaxGAN(presets.get("tiny", d_loss="hinge", g_loss="hinge"))
    with pytest.raises(ConfigError, match="the JAX peer has no spectral normalisation"):
        JaxGAN(presets.get("tiny", spectral_norm=True))
    with pytest.raises(ConfigError, match="the JAX peer has no R1 penalty"):
        JaxGAN(presets.get("tiny", r1_gamma=10.0))
    with pytest.raises(ConfigError, match="the JAX peer trains unconditional GANs"):
        JaxGAN(presets.get("tiny", conditional=True, num_classes=3))
    with pytest.raises(ConfigError, match="float32 only"):
        JaxGAN(presets.get("tiny"), dtype="float64")
    peer = JaxGAN(presets.get("tiny"))
    with pytest.raises(FastganError, match="no training step"):
        peer.stats()
    with pytest.raises(ConfigError, match="real batch must have"):
        peer.step(peer.make_batch()[:3])
