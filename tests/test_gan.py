"""Training-step rules: D untouched by the G step, determinism, dtypes, k D steps."""

from __future__ import annotations

import numpy as np
import pytest
from support import tolerances

from fastgan import GAN


def _real(rows: int, features: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (rows, features))


def test_generator_step_leaves_discriminator_bit_identical(backend, dtype):
    gan = GAN.from_preset("pytorch-vanilla", data_dim=16, g_hidden=(8,), d_hidden=(8, 8),
                          backend=backend, dtype=dtype)
    after_d_step = []
    d_step = gan.d_optimizer.step

    def record(epoch: int = 0) -> None:
        d_step(epoch)
        after_d_step.append(backend.to_numpy(gan.discriminator.params.data).copy())

    gan.d_optimizer.step = record
    before_g = backend.to_numpy(gan.generator.params.data).copy()
    gan.train_step(_real(10, 16))
    np.testing.assert_array_equal(backend.to_numpy(gan.discriminator.params.data), after_d_step[-1])
    assert not np.array_equal(backend.to_numpy(gan.generator.params.data), before_g)


def test_train_step_is_deterministic_for_a_seed(backend, dtype):
    def run(seed: int):
        gan = GAN.from_preset("keras-mlp", data_dim=12, latent_dim=4, g_hidden=(8, 8),
                              d_hidden=(8,), backend=backend, dtype=dtype, seed=seed)
        history = [gan.train_step(_real(2 * 6, 12, s)) for s in range(3)]
        return history, backend.to_numpy(gan.generator.params.data), gan.sample(4)

    first, second, other = run(5), run(5), run(6)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[0] != other[0]


def test_dtypes_propagate(backend, dtype):
    gan = GAN.from_preset("tiny", data_dim=3, backend=backend, dtype=dtype)
    gan.train_step(_real(8, 3))
    assert gan.generator.params.data.dtype == np.dtype(dtype)
    assert gan.sample(2).dtype == np.dtype(dtype)


def test_k_discriminator_steps_per_generator_step(backend):
    gan = GAN.from_preset("tiny", data_dim=3, k=3, backend=backend)
    stats = gan.train_step(_real(3 * 4, 3))
    assert gan.d_optimizer.steps == 3 and gan.g_optimizer.steps == 1
    assert all(np.isfinite(v) for v in stats.values())
    gan.train_step(_real(12, 3).reshape(3, 4, 3))         # (k, B, features) works too
    assert gan.d_optimizer.steps == 6


def test_stats_are_probabilities_and_losses(backend):
    gan = GAN.from_preset("numpy-mlp", data_dim=16, backend=backend)
    stats = gan.train_step(_real(8, 16))
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1
    expected_d = -np.log(stats["d_real"]) - np.log(1 - stats["d_fake"])
    assert stats["d_loss"] > 0 and stats["g_loss"] > 0
    # Jensen: mean(-log p) >= -log(mean p), so the loss is at least the bound from the means
    assert stats["d_loss"] >= expected_d - 1e-6


def test_sample_uses_evaluation_mode_and_fixed_noise(backend):
    gan = GAN.from_preset("keras-mlp", data_dim=12, latent_dim=4, g_hidden=(8,), d_hidden=(8,),
                          backend=backend)
    gan.train_step(_real(12, 12))
    noise = np.random.default_rng(3).standard_normal((300, 4))   # more than one chunk
    first, again = gan.sample(300, noise=noise), gan.sample(300, noise=noise)
    np.testing.assert_array_equal(first, again)                  # eval mode: no batch statistics
    # a row does not depend on its batch-mates (BLAS may round differently per batch size)
    np.testing.assert_allclose(gan.sample(1, noise=noise[:1])[0], first[0],
                               **tolerances.kernel(gan.dtype))
    assert np.all(np.abs(first) <= 1)


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_noise_kinds(noise):
    gan = GAN.from_preset("tiny", data_dim=2, noise=noise)
    z = gan.draw_sample_noise(2000)
    if noise == "uniform":
        assert z.min() >= -1 and z.max() <= 1 and abs(z.std() - 1 / np.sqrt(3)) < 0.02
    else:
        assert abs(z.std() - 1) < 0.02
