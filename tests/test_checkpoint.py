"""Checkpoints: exact resume, a faithful round trip, atomic writes and clear errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastgan
from fastgan import GAN, SGD, Adam, BatchNorm, CheckpointError, Dense, Dropout, GANConfig
from fastgan.nn.optim import StepDecay
from fastgan.training import checkpoint

RING = fastgan.data.ring(n=256, seed=2).x


def small(preset: str, **overrides) -> GAN:
    """A small version of a preset on 2-D data (16 steps per epoch with batch 16)."""
    sizes = {"latent_dim": 4, "g_hidden": (16, 16), "d_hidden": (16, 16), "batch_size": 16}
    return GAN.from_preset(preset, data_dim=2, seed=7, **{**sizes, **overrides})


def state(gan: GAN) -> dict[str, np.ndarray]:
    """Every array of training state, on the host."""
    return {name: gan.backend.to_numpy(array).copy()
            for name, array in checkpoint.state_arrays(gan).items()}


def assert_same_state(a: GAN, b: GAN) -> None:
    first, second = state(a), state(b)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert (a.steps, a.epoch, a.data_order.batch) == (b.steps, b.epoch, b.data_order.batch)


CASES = {
    "sgd": ("numpy-mlp", {}),
    "adam-step-decay": ("numpy-adam", {}),
    "batchnorm": ("keras-mlp", {}),
    "dropout-ema": ("pytorch-vanilla", {"ema_decay": 0.9}),
    "k2-random": ("tiny", {"k": 2}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_bit_for_bit(tmp_path, case):
    preset, kwargs = CASES[case]
    sampling = "random" if case.endswith("random") else "epoch"
    straight = small(preset, **kwargs)
    straight.fit(RING, steps=40, sampling=sampling)          # crosses epochs 16 and 32
    first_half = small(preset, **kwargs)
    first_half.fit(RING, steps=20, sampling=sampling)        # stops mid-epoch
    first_half.save(tmp_path / "half.npz")
    resumed = fastgan.load(tmp_path / "half.npz")
    resumed.fit(RING, steps=20, sampling=sampling)
    assert_same_state(resumed, straight)
    noise = np.random.default_rng(1).standard_normal((32, resumed.latent_dim))
    np.testing.assert_array_equal(resumed.sample(32, noise=noise), straight.sample(32, noise=noise))
    np.testing.assert_array_equal(resumed.sample(8), straight.sample(8))   # sampling stream


def test_round_trip_keeps_the_config_and_training_rule(tmp_path):
    gan = small("numpy-adam", label_smoothing=0.1, k=2,
                g_optimizer=Adam(3e-4, beta1=0.5, schedule=StepDecay(0.1, milestones=(2, 5))))
    gan.fit(RING, steps=3)
    path = checkpoint.save(gan, tmp_path / "run.npz", extra={"note": [1, 2]})
    loaded = fastgan.load(path)
    assert loaded.config == gan.config and loaded.config.name == "numpy-adam"
    assert (loaded.k, loaded.config.label_smoothing, loaded.config.noise,
            loaded.batch_size) == (2, 0.1, "uniform", 16)
    assert loaded.g_optimizer.config == gan.g_optimizer.config
    assert loaded.g_optimizer.steps == 3 and loaded.d_optimizer.steps == 6
    assert_same_state(loaded, gan)
    assert checkpoint.read_metadata(path)["extra"] == {"note": [1, 2]}
    assert repr(loaded) == repr(gan)


def test_custom_gan_round_trip_and_dtype_override(tmp_path):
    config = GANConfig(latent_dim=3, generator=(Dense(8, "relu"), BatchNorm(), Dense(2, "tanh")),
                       discriminator=(Dense(8, "leaky_relu", alpha=0.2), Dropout(0.25),
                                      Dense(1)),
                       g_optimizer=SGD(0.01, momentum=0.9), d_optimizer=Adam(1e-3),
                       batch_size=8)
    gan = GAN(config, seed=1)
    gan.fit(RING, steps=5)
    gan.save(tmp_path / "custom.npz")
    loaded = fastgan.load(tmp_path / "custom.npz")
    assert loaded.config == config and loaded.config.name == "custom"
    assert_same_state(loaded, gan)
    wide = fastgan.load(tmp_path / "custom.npz", dtype="float64")
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide.generator.params.data,
                                  gan.generator.params.data.astype(np.float64))


def test_load_accepts_a_run_folder(tmp_path):
    gan = small("tiny")
    gan.save(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert_same_state(fastgan.load(tmp_path), gan)


def test_the_file_is_plain_arrays_readable_without_pickle(tmp_path):
    small("keras-mlp", ema_decay=0.99).save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        names = set(npz.files)
        assert all(npz[name].dtype != object for name in names)
        metadata = json.loads(npz["metadata.json"].tobytes())
    assert {"generator.params", "discriminator.params", "g_optimizer.m", "d_optimizer.v",
            "generator.ema", "generator.buffer.2.running_mean"} <= names
    assert metadata["format_version"] == checkpoint.FORMAT_VERSION
    assert metadata["model"]["name"] == "keras-mlp"
    assert set(metadata["rng"]) == {"noise", "sample", "generator_dropout",
                                    "discriminator_dropout"}
    assert metadata["progress"]["data_order"]["batch"] == 0


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    gan = small("tiny")
    gan.save(path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    gan.fit(RING, steps=1)
    with pytest.raises(OSError, match="disk full"):
        gan.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]     # no temporary file left


# ---------------------------------------------------------------- errors
@pytest.fixture
def saved(tmp_path) -> Path:
    gan = small("tiny")
    gan.fit(RING, steps=2)
    return gan.save(tmp_path / "c.npz")


def rewrite_metadata(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    metadata = json.loads(arrays["metadata.json"].tobytes())
    change(metadata)
    arrays["metadata.json"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        fastgan.load(tmp_path / "nothing.npz")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*checkpoint\.npz"):
        fastgan.load(tmp_path)                     # a folder without a checkpoint


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="cannot be read"):
        fastgan.load(tmp_path / "text.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a fastgan checkpoint"):
        fastgan.load(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match=r"single \.npy array"):
        fastgan.load(tmp_path / "array.npy")


def test_truncated_file(saved):
    content = saved.read_bytes()
    for cut in (len(content) // 2, len(content) - 10, 100):
        saved.write_bytes(content[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            fastgan.load(saved)


def test_corrupted_bytes_are_caught_by_the_zip_checksums(saved):
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("generator.params.npy")
    content = bytearray(saved.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.file_size // 2
    content[middle] ^= 0xFF
    saved.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        fastgan.load(saved)


def test_wrong_format_version(saved):
    rewrite_metadata(saved, lambda m: m.update(format_version=99, fastgan_version="9.0"))
    with pytest.raises(CheckpointError, match=r"format version 99 .*fastgan 9\.0.*version 1 only"):
        fastgan.load(saved)


def test_an_average_from_before_the_bias_correction_is_read_as_it_is(tmp_path):
    """A checkpoint without ``ema_debiased`` (written when the average started at the
    initial weights) samples from its average unscaled; a current one applies 1/(1-d^t)."""
    gan = small("tiny", ema_decay=0.9)
    gan.fit(RING, steps=3)
    path = gan.save(tmp_path / "c.npz")
    noise = np.random.default_rng(0).standard_normal((8, gan.latent_dim))
    assert fastgan.load(path).ema.debiased
    np.testing.assert_array_equal(fastgan.load(path).sample(8, noise=noise),
                                  gan.sample(8, noise=noise))
    rewrite_metadata(path, lambda m: m["progress"].pop("ema_debiased"))
    legacy = fastgan.load(path)
    assert not legacy.ema.debiased and legacy.ema.correction(legacy.steps) == 1.0
    legacy.ema, average = None, legacy.ema.average
    legacy.generator.params.data[:] = average
    unscaled = legacy.sample(8, noise=noise)
    np.testing.assert_array_equal(fastgan.load(path).sample(8, noise=noise), unscaled)
    assert gan.ema.correction(gan.steps) == pytest.approx(1 / (1 - 0.9**3))


def test_damaged_metadata(saved):
    rewrite_metadata(saved, lambda m: m["model"].pop("generator"))
    with pytest.raises(CheckpointError, match="model description is damaged"):
        fastgan.load(saved)


def test_another_architecture_is_refused(saved):
    other = small("tiny", g_hidden=(32,))
    with pytest.raises(CheckpointError, match=r"another architecture: its generator is "
                                              r"Dense\(16\) > Dense\(16\) > Dense\(2\)"):
        checkpoint.restore(other, saved)
    sgd = small("numpy-mlp", g_hidden=(16, 16), latent_dim=8)
    with pytest.raises(CheckpointError, match="latent_dim"):
        checkpoint.restore(sgd, saved)


def test_another_optimizer_is_refused(saved):
    gan = small("tiny", g_optimizer=SGD(0.1))
    with pytest.raises(CheckpointError, match=r"missing \['g_optimizer.velocity'\]"):
        checkpoint.restore(gan, saved)


def test_restore_into_a_matching_model(saved):
    gan = small("tiny")
    checkpoint.restore(gan, saved)
    assert gan.steps == 2
    assert_same_state(gan, fastgan.load(saved))


@pytest.mark.parametrize(("preset", "options", "normalised"), [
    ("tiny", {"data_dim": 8}, {"0.u", "0.v"}),
    ("keras-dcgan", {"data_dim": 64, "latent_dim": 4, "g_filters": (4, 3, 2),
                     "d_filters": (2, 3, 4)}, {"1.u", "1.v", "3.v", "5.u"})], ids=["dense", "conv"])
def test_spectral_norm_vectors_round_trip_and_resume_exactly(tmp_path, preset, options,
                                                             normalised):
    """u and v of every spectrally normalised layer (dense and convolution) are saved,
    restored, and a resumed GAN steps on exactly as the uninterrupted one."""
    data = np.random.default_rng(0).uniform(-1, 1, (64, options["data_dim"]))
    straight = GAN.from_preset(preset, spectral_norm=True, batch_size=16, backend="numpy",
                               seed=1, **options)
    straight.fit(data, steps=3)
    loaded = fastgan.load(straight.save(tmp_path / "sn.npz"))
    buffers = straight.discriminator.buffers()
    assert normalised <= set(buffers)
    for name, array in buffers.items():
        np.testing.assert_array_equal(loaded.discriminator.buffers()[name], array, err_msg=name)
    straight.fit(data, steps=5)
    loaded.fit(data, steps=5)
    np.testing.assert_array_equal(loaded.discriminator.params.data,
                                  straight.discriminator.params.data)
