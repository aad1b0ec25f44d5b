"""GAN.fit: epochs of full batches, random batches, logging, schedules, callbacks, stopping,
divergence, and the EMA of generator weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import tolerances

from fastgan import GAN, Callback, ConfigError, TrainingDiverged, data


def numbered_rows(n: int) -> np.ndarray:
    """n rows of 2 features whose first feature identifies the row: i -> -1 + 2 i / n."""
    ids = -1 + 2 * np.arange(n) / n
    return np.stack([ids, -ids], axis=1).astype(np.float32)


def row_ids(batch: np.ndarray, n: int) -> np.ndarray:
    return np.rint((batch[:, 0] + 1) * n / 2).astype(int)


class Recorder(Callback):
    """Keeps what each hook saw."""

    def __init__(self, n: int | None = None) -> None:
        self.n, self.events, self.batches = n, [], []

    def on_train_begin(self, loop):
        self.events.append(("begin", loop.gan.steps))

    def on_step_end(self, loop):
        if self.n is not None:
            self.batches.append(row_ids(loop.gan.backend.to_numpy(loop.batch), self.n))

    def on_log(self, loop, record):
        self.events.append(("log", record["step"]))

    def on_epoch_end(self, loop, record):
        self.events.append(("epoch", record["epoch"], record["step"]))

    def on_train_end(self, loop):
        self.events.append(("end", loop.outcome))


def tiny(**kwargs) -> GAN:
    return GAN.from_preset("tiny", data_dim=2, batch_size=8, **kwargs)


def test_epochs_are_shuffled_full_batches_of_every_sample(backend):
    n = 48                                        # 6 steps of 8 per epoch
    recorder = Recorder(n)
    gan = tiny(backend=backend)
    history = gan.fit(numbered_rows(n), epochs=3, callbacks=[recorder], log_every=4)
    assert gan.steps == 18 and gan.epoch == 3 and gan.data_order.batch == 0
    epochs = [np.concatenate(recorder.batches[i * 6:(i + 1) * 6]) for i in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(n))   # each sample exactly once per epoch
    assert not np.array_equal(epochs[0], epochs[1])
    assert [e for e in recorder.events if e[0] == "epoch"] == [("epoch", 1, 6), ("epoch", 2, 12),
                                                                ("epoch", 3, 18)]
    assert [r["step"] for r in history.logs] == [4, 8, 12, 16, 18]   # and the last step
    assert recorder.events[0] == ("begin", 0) and recorder.events[-1] == ("end", "completed")
    assert history.outcome == "completed" and len(history.series("d_loss")) == 5


def test_an_incomplete_last_batch_is_left_out():
    gan = tiny()
    gan.fit(numbered_rows(20), epochs=2)          # 2 full batches of 8 per epoch; 4 left out
    assert gan.steps == 4 and gan.epoch == 2


def test_random_sampling_draws_with_replacement():
    n = 48
    recorder = Recorder(n)
    tiny().fit(numbered_rows(n), steps=12, sampling="random", callbacks=[recorder])
    drawn = np.concatenate(recorder.batches)
    assert len(np.unique(drawn)) < len(drawn)    # 96 draws from 48 rows repeat some
    assert drawn.min() >= 0 and drawn.max() < n


@pytest.mark.parametrize("sampling", ["epoch", "random"])
def test_fit_in_pieces_equals_fit_in_one_go(sampling):
    rows = data.ring(n=200, seed=3).x
    whole, pieces = tiny(seed=4), tiny(seed=4)
    whole.fit(rows, steps=60, sampling=sampling)
    for steps in (7, 25, 28):                     # 25 steps per epoch: pieces cross epochs
        pieces.fit(rows, steps=steps, sampling=sampling)
    assert (pieces.steps, pieces.epoch) == (whole.steps, whole.epoch) == (60, 2)
    for network in ("generator", "discriminator"):
        np.testing.assert_array_equal(getattr(pieces, network).params.data,
                                      getattr(whole, network).params.data)


def test_epochs_from_mid_epoch_finish_the_current_one():
    gan = tiny()
    rows = numbered_rows(48)
    gan.fit(rows, steps=4)
    gan.fit(rows, epochs=2)
    assert gan.steps == 12 and gan.epoch == 2


def test_epoch_drives_the_learning_rate_schedule():
    gan = GAN.from_preset("numpy-adam", data_dim=2, batch_size=8, g_hidden=(8,), d_hidden=(8,))
    history = gan.fit(numbered_rows(32), epochs=2, log_every=1)      # 4 steps per epoch
    rates = [(r["step"], r["g_lr"], r["d_lr"]) for r in history.logs]
    lr = gan.g_optimizer.config.lr
    assert rates[2] == (3, lr, lr)                                      # still epoch 0
    assert rates[5] == (6, pytest.approx(lr * 0.01), pytest.approx(lr * 0.01))


def test_a_callback_can_stop_training_after_the_current_step():
    class StopAtFive(Callback):
        def on_step_end(self, loop):
            if loop.gan.steps == 5:
                loop.request_stop()

    gan = tiny()
    history = gan.fit(numbered_rows(48), steps=100, callbacks=[StopAtFive()], log_every=50)
    assert gan.steps == 5 and history.outcome == "stopped"
    assert history.logs[-1]["step"] == 5           # the last step is logged and checked


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_nan_stops_training_naming_step_and_network(network):
    class Poison(Callback):
        def on_step_end(self, loop):
            if loop.gan.steps == 3:
                getattr(loop.gan, network).params.data[:] = np.nan

    recorder = Recorder()
    with pytest.raises(TrainingDiverged, match=rf"step 3\b.*the {network}'s parameters"):
        tiny().fit(numbered_rows(48), steps=20, log_every=5,
                   callbacks=[Poison(), _Checker(), recorder])
    assert recorder.events[-1] == ("end", "diverged")


class _Checker(Callback):
    """Checks the state after every step, as a checkpointer does before saving."""

    def on_step_end(self, loop):
        loop.checked_stats()


def test_divergence_from_a_huge_learning_rate_is_caught_at_log_time():
    gan = GAN.from_preset("numpy-mlp", data_dim=2, batch_size=8, lr=1e12)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"found at step 2\b"):
        gan.fit(numbered_rows(48), steps=20, log_every=2)


def test_ema_averages_generator_weights_and_sampling_uses_them(backend):
    """The average starts at zero and is bias-corrected: after steps giving weights w1, w2 at
    decay 0.5 it is (0.25 w1 + 0.5 w2) / (1 - 0.5^2) = (w1 + 2 w2) / 3; the initial weights
    take no part, and before any step sampling uses the weights themselves."""
    gan = tiny(backend=backend, ema_decay=0.5)
    rows = numbered_rows(48)
    noise = np.random.default_rng(0).standard_normal((16, gan.latent_dim))
    untrained = gan.sample(16, noise=noise)
    ema, gan.ema = gan.ema, None
    np.testing.assert_array_equal(gan.sample(16, noise=noise), untrained)
    gan.ema = ema
    weights = []
    for _ in range(2):
        gan.fit(rows, steps=1)
        weights.append(backend.to_numpy(gan.generator.params.data).copy())
    w1, w2 = weights
    np.testing.assert_allclose(backend.to_numpy(gan.ema.average), 0.25 * w1 + 0.5 * w2,
                               **tolerances.kernel(gan.dtype))
    averaged = gan.sample(16, noise=noise)
    np.testing.assert_array_equal(backend.to_numpy(gan.generator.params.data), w2)  # restored
    gan.ema = None
    latest = gan.sample(16, noise=noise)
    gan.generator.params.data[:] = backend.asarray((w1 + 2 * w2) / 3, gan.dtype)
    np.testing.assert_allclose(gan.sample(16, noise=noise), averaged,
                               **tolerances.kernel(gan.dtype))
    assert not np.allclose(averaged, latest, **tolerances.kernel(gan.dtype))


def test_bad_fit_arguments_are_config_errors():
    gan = tiny()
    rows = numbered_rows(48)
    with pytest.raises(ConfigError, match="exactly one"):
        gan.fit(rows, epochs=1, steps=1)
    with pytest.raises(ConfigError, match="exactly one"):
        gan.fit(rows)
    with pytest.raises(ConfigError, match="rows of 2 features"):
        gan.fit(np.zeros((48, 3)), steps=1)
    with pytest.raises(ConfigError, match="fewer than one step"):
        gan.fit(rows[:5], steps=1)
    with pytest.raises(ConfigError, match="sampling"):
        gan.fit(rows, steps=1, sampling="shuffle")
    with pytest.raises(ConfigError, match="log_every"):
        gan.fit(rows, steps=1, log_every=0)
    with pytest.raises(ConfigError, match="EMA decay"):
        tiny(ema_decay=1.0)


def test_fit_accepts_a_dataset_and_logs_finite_statistics():
    digits = data.load("digits")
    gan = GAN.from_preset("numpy-mlp", data_dim=digits.n_features, g_hidden=(16,),
                          d_hidden=(16,))
    history = gan.fit(digits, epochs=1, log_every=10)
    assert gan.steps == len(digits) // 64
    assert all(math.isfinite(v) for r in history.logs for k, v in r.items()
               if k in ("d_loss", "g_loss", "d_real", "d_fake"))
