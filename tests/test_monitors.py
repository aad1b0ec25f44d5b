"""The run's record keepers: diversity and the collapse warning, the metrics file,
checkpoints that only ever hold a good state, and the optional TensorBoard writer."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import fastgan
from fastgan import GAN, ConfigError, TrainingDiverged
from fastgan.training import checkpoint, monitors
from fastgan.training.loop import Callback, TrainingLoop

RING = fastgan.data.ring(n=256, seed=0).x


def test_diversity_is_the_mean_distance_between_different_rows():
    assert monitors.diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    assert monitors.diversity(square) == pytest.approx((8 * 1 + 4 * np.sqrt(2)) / 12)
    assert monitors.diversity(np.ones((10, 3))) == pytest.approx(0.0, abs=1e-6)


def test_collapse_warns_when_diversity_falls_and_again_only_after_recovering(tmp_path):
    gan = GAN.from_preset("tiny", data_dim=2, batch_size=16)
    loop = TrainingLoop(gan, RING)
    warnings = []
    grids = monitors.SampleGrids(tmp_path, gan.draw_sample_noise(64), RING[:64], None,
                                 warn=warnings.append)
    weights = gan.generator.params.data.copy()
    last = gan.generator.layers[-1]

    def picture(collapsed: bool) -> None:
        gan.generator.params.data[:] = weights
        if collapsed:
            last.W[:] = 0.0                        # every sample becomes tanh(bias): one point
        gan.epoch += 1
        grids.on_epoch_end(loop, {})

    picture(collapsed=True)                        # never diverse yet: no warning
    assert warnings == []
    picture(collapsed=False)
    picture(collapsed=True)
    picture(collapsed=True)
    assert [w["epoch"] for w in warnings] == [3]   # once per fall
    assert warnings[0]["kind"] == "collapse" and warnings[0]["diversity"] < 0.01
    assert "may be collapsing" in warnings[0]["message"]
    picture(collapsed=False)
    picture(collapsed=True)
    assert [w["epoch"] for w in warnings] == [3, 6]
    assert sorted(p.name for p in tmp_path.iterdir())[:2] == ["epoch_0001.png", "epoch_0002.png"]


def test_metrics_file_survives_a_damaged_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = monitors.MetricsLog(path)
    log.write({"event": "log", "step": 1})
    with open(path, "a") as file:
        file.write('{"event": "log", "st')           # a crash in the middle of a line
    assert monitors.read_records(path) == [{"event": "log", "step": 1}]
    assert monitors.read_records(tmp_path / "none.jsonl") == []


def test_checkpoints_every_n_steps_and_at_the_end(tmp_path):
    saved_steps = []

    class Watch(Callback):
        def on_step_end(self, loop):
            path = tmp_path / "c.npz"
            if path.exists():
                saved_steps.append(checkpoint.read_metadata(path)["progress"]["steps"])

    gan = GAN.from_preset("tiny", data_dim=2, batch_size=16)
    gan.fit(RING, steps=7, callbacks=[monitors.Checkpoints(tmp_path / "c.npz", 3), Watch()])
    assert sorted(set(saved_steps)) == [3, 6]
    assert checkpoint.read_metadata(tmp_path / "c.npz")["progress"]["steps"] == 7


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_checkpoints_never_hold_a_diverged_state(tmp_path):
    class Poison(Callback):
        def on_step_end(self, loop):
            if loop.gan.steps == 5:
                loop.gan.generator.params.data[0] = np.inf

    gan = GAN.from_preset("tiny", data_dim=2, batch_size=16)
    keeper = monitors.Checkpoints(tmp_path / "c.npz", 2)
    with pytest.raises(TrainingDiverged, match="generator's parameters"):
        gan.fit(RING, steps=20, log_every=100, callbacks=[Poison(), keeper])
    assert keeper.saved_step == 4
    restored = fastgan.load(tmp_path / "c.npz")
    assert restored.steps == 4 and np.isfinite(restored.generator.params.data).all()


def test_metrics_log_records_every_event_and_draws_loss_curves(tmp_path):
    gan = GAN.from_preset("tiny", data_dim=2, batch_size=16)
    log = monitors.MetricsLog(tmp_path / "m.jsonl", tmp_path / "curves.png", title="t")
    gan.fit(RING, epochs=2, log_every=10, callbacks=[log])
    events = [(r["event"], r["step"]) for r in monitors.read_records(tmp_path / "m.jsonl")]
    assert events == [("log", 10), ("epoch", 16), ("log", 20), ("log", 30), ("epoch", 32),
                      ("log", 32), ("end", 32)]
    assert (tmp_path / "curves.png").stat().st_size > 0
    first = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert set(first) == {"event", "step", "epoch", "d_loss", "g_loss", "d_real", "d_fake",
                          "g_lr", "d_lr", "steps_per_s"}


@pytest.mark.skipif(importlib.util.find_spec("tensorboardX") is not None,
                    reason="tensorboardX is installed")
def test_tensorboard_without_tensorboardx_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"pip install 'fastgan\[tensorboard\]'"):
        monitors.TensorBoardLog(tmp_path)


def test_tensorboard_logs_scalars_and_sample_grids(tmp_path):
    pytest.importorskip("tensorboardX", reason="tensorboardX is not installed (extra "
                                               "'tensorboard')")
    digits = fastgan.data.load("digits")
    gan = GAN.from_preset("tiny", data_dim=64)
    grids = monitors.SampleGrids(tmp_path / "samples", gan.draw_sample_noise(16), digits.x[:16],
                                 digits.image_shape)
    board = monitors.TensorBoardLog(tmp_path / "tb", grids)
    gan.fit(digits, epochs=2, log_every=5, callbacks=[grids, board])
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
