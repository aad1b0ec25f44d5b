"""The step seam: what steps a GAN (eager, CUDA graph, data parallel, one wrapping another) is
handed to the training loop, and every callback works the same under each.

The CUDA graph runs on the CPU emulation of the cupy backend (``cuda_emulator``): replayed
graphs through ``fit`` must equal eager steps through ``fit`` bit for bit, also across a
checkpoint and resume, a stop and a divergence; ``fastgan train --graph`` runs on it too.
``fastgan train`` takes the scheduled step where it is asked for, and by default with the
numba backend on several threads.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import fastgan
from fastgan import GAN, TrainingDiverged
from fastgan.backends.cupy_backend import CupyBackend
from fastgan.cli import main as cli
from fastgan.gan.cuda_graph import GraphedStep
from fastgan.gan.scheduled import ScheduledStep
from fastgan.nn.layers import PatchMatrixLayer
from fastgan.training.loop import Callback
from fastgan.training.monitors import Checkpoints

DATA = fastgan.data.ring(n=96, seed=2)          # 6 steps of batch 16 an epoch
SMALL = {"data_dim": 2, "g_hidden": (8,), "d_hidden": (8, 8), "batch_size": 16}


@pytest.fixture
def emulated(emulator_library):
    """A factory of cupy backends on the CPU emulation of the CUDA kernels."""
    from support import cuda_emulator

    return lambda: CupyBackend(device=cuda_emulator.EmulatedDevice(emulator_library))


def _gan(backend, preset: str = "numpy-adam", **options) -> GAN:
    return GAN.from_preset(preset, backend=backend, seed=5, **SMALL, **options)


class Trace(Callback):
    """Every step's parameters and every log record, in order."""

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.records: list[dict] = []

    def on_step_end(self, loop) -> None:
        self.params.append(loop.gan.backend.to_numpy(loop.gan.generator.params.data).copy())

    def on_log(self, loop, record) -> None:
        self.records.append({k: v for k, v in record.items() if k != "steps_per_s"})


def _state(gan: GAN) -> dict[str, np.ndarray]:
    from fastgan.training import checkpoint

    return {name: gan.backend.to_numpy(array).copy()
            for name, array in checkpoint.state_arrays(gan).items()}


def _assert_same(found: GAN, expected: GAN) -> None:
    for name, array in _state(expected).items():
        np.testing.assert_array_equal(_state(found)[name], array, err_msg=name)
    assert (found.steps, found.epoch, found.data_order.batch) == \
        (expected.steps, expected.epoch, expected.data_order.batch)
    assert found.g_optimizer.steps == expected.g_optimizer.steps
    assert found.d_optimizer.steps == expected.d_optimizer.steps
    for name, stream in expected.random_streams().items():
        assert found.random_streams()[name].get_state() == stream.get_state(), name


@pytest.mark.parametrize(("preset", "options"), [
    ("numpy-adam", {}),                          # Adam with a step decay after epoch 1
    ("pytorch-vanilla", {"ema_decay": 0.9, "k": 2}),   # dropout, an average of G, k = 2
])
def test_graphed_fit_equals_eager_fit_bit_for_bit(emulated, preset, options):
    eager, graphed = _gan(emulated(), preset, **options), _gan(emulated(), preset, **options)
    eager_trace, graphed_trace = Trace(), Trace()
    eager.fit(DATA, steps=14, log_every=4, callbacks=[eager_trace])
    history = graphed.fit(DATA, steps=14, log_every=4, callbacks=[graphed_trace], graph=True)
    assert history.outcome == "completed" and graphed.epoch >= 1
    assert len(graphed.graphed()._graphs) == 1
    _assert_same(graphed, eager)
    assert graphed_trace.records == eager_trace.records
    for expected, found in zip(eager_trace.params, graphed_trace.params, strict=True):
        np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(graphed.sample(8, seed=1), eager.sample(8, seed=1))


def test_a_resumed_graphed_run_equals_an_uninterrupted_one(emulated, tmp_path):
    straight = _gan(emulated(), "pytorch-vanilla", ema_decay=0.9)
    straight.fit(DATA, steps=16, graph=True)
    first = _gan(emulated(), "pytorch-vanilla", ema_decay=0.9)
    first.fit(DATA, steps=7, graph=True, callbacks=[Checkpoints(tmp_path / "c.npz", 0)])
    resumed = fastgan.load(tmp_path / "c.npz", backend=emulated())
    resumed.fit(DATA, steps=9, graph=True)
    _assert_same(resumed, straight)


def test_stop_and_divergence_under_the_graph(emulated):
    class StopAt(Callback):
        def on_step_end(self, loop) -> None:
            if loop.gan.steps == 5:
                loop.request_stop()

    gan = _gan(emulated())
    assert gan.fit(DATA, steps=50, graph=True, callbacks=[StopAt()]).outcome == "stopped"
    assert gan.steps == 5

    class Poison(Callback):
        """A NaN in D's weights, written in place as a graph's arrays must be."""

        def on_step_end(self, loop) -> None:
            if loop.gan.steps == 3:
                params = loop.gan.discriminator.params.data
                host = loop.gan.backend.to_numpy(params).copy()
                host[0] = np.nan
                loop.gan.backend.copy(host, params)

    with pytest.raises(TrainingDiverged, match="discriminator"):
        _gan(emulated()).fit(DATA, steps=20, log_every=4, graph=True, callbacks=[Poison()])


def test_the_graph_is_refused_where_it_cannot_run():
    with pytest.raises(fastgan.ConfigError, match="needs the cupy backend"):
        _gan("numpy").fit(DATA, steps=1, graph=True)


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py: pip install -e '.[mpi]'")
def test_data_parallel_wraps_the_graphed_step(emulated):
    """``DataParallel(GraphedStep(gan))`` is the composition: its all-reduce is the graphed
    step's gradient hook, recorded in the graph. One rank, with an all-reduce that halves
    (the mean of this rank and a rank with zero gradients), equals eager steps that halve."""
    from mpi4py import MPI

    from fastgan.distributed import DataParallel
    from fastgan.distributed.allreduce import NcclAllreduce

    class HalvingNccl(NcclAllreduce):
        """Stands in for NCCL on the emulation: the "mean" is half the buffer, one kernel."""

        def __init__(self, backend) -> None:
            self.backend, self._zeros = backend, {}

        def mean(self, buffer) -> None:
            zeros = self._zeros.setdefault(buffer.size,
                                           self.backend.zeros(buffer.shape, buffer.dtype))
            self.backend.ema_update(buffer, zeros, 0.5)

    graphed_gan, eager_gan = _gan(emulated()), _gan(emulated())
    parallel = DataParallel(GraphedStep(graphed_gan), MPI.COMM_SELF,
                            allreduce=HalvingNccl(graphed_gan.backend))
    assert parallel.inner.gan is graphed_gan
    parallel.fit(DATA, steps=9, log_every=3)
    halving = HalvingNccl(eager_gan.backend)

    class HalvingStep:
        """An eager stepper with the same hook: the GAN's step with ``gradient_hook``."""

        def step(self, batch) -> None:
            eager_gan.step(batch, gradient_hook=halving.mean)

        def last_stats(self):
            return eager_gan.last_stats()

        def save(self, path, *, extra=None):
            return eager_gan.save(path, extra=extra)

    from fastgan.training import loop

    loop.fit(eager_gan, DATA, steps=9, log_every=3, stepper=HalvingStep())
    _assert_same(graphed_gan, eager_gan)
    assert not np.array_equal(_state(_gan(emulated()))["generator.params"],
                              _state(graphed_gan)["generator.params"])


def test_fastgan_train_graph_runs_on_the_emulation_and_resumes(emulated, tmp_path,
                                                                monkeypatch):
    from fastgan import backends

    monkeypatch.setitem(backends._instances, "cupy", emulated())
    common = ["--backend", "cupy", "--data", "ring", "--preset", "tiny", "--g-hidden", "8",
              "--d-hidden", "8", "--batch-size", "32", "--log-every", "5", "--no-progress"]
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    assert cli.main(["train", *common, "--no-graph", "--steps", "20", "--out",
                     str(straight)]) == 0
    assert cli.main(["train", *common, "--graph", "--steps", "8", "--out", str(parted)]) == 0
    assert cli.main(["train", "--resume", str(parted), "--steps", "20"]) == 0
    config = json.loads((parted / "config.json").read_text())
    assert config["config"]["graph"] is True and config["backend"] == "cupy"
    eager = fastgan.load(straight / "checkpoint.npz", backend=emulated())
    _assert_same(fastgan.load(parted / "checkpoint.npz", backend=emulated()), eager)
    assert (parted / "samples" / "final.png").exists()
    assert json.loads((straight / "config.json").read_text())["config"]["graph"] is False


def test_the_graph_is_on_by_default_where_the_step_can_be_captured(emulated, monkeypatch):
    from fastgan import backends
    from fastgan.runs.folder import Run, TrainConfig

    monkeypatch.setitem(backends._instances, "cupy", emulated())
    settings = {"data": "ring", "preset": "tiny", "steps": 1}
    assert Run.start(TrainConfig(backend="cupy", **settings)).uses_graph()
    assert not Run.start(TrainConfig(backend="cupy", graph=False, **settings)).uses_graph()
    assert not Run.start(TrainConfig(backend="numpy", **settings)).uses_graph()


def test_fastgan_train_graph_where_it_cannot_run_is_an_error_before_the_folder(tmp_path,
                                                                              capsys):
    run = tmp_path / "run"
    status = cli.main(["train", "--graph", "--backend", "numpy", "--data", "ring", "--steps",
                       "2", "--out", str(run)])
    assert status == 1 and not run.exists()
    assert "--graph: CUDA-graph replay needs the cupy backend" in capsys.readouterr().err



# ---------------------------------------------------------------- the scheduled step
def test_the_schedule_is_on_by_default_with_numba_on_several_threads(emulated, monkeypatch):
    from fastgan import backends
    from fastgan.runs.folder import Run, TrainConfig

    monkeypatch.setitem(backends._instances, "cupy", emulated())
    monkeypatch.setenv("FASTGAN_NUM_THREADS", "2")
    settings = {"data": "ring", "preset": "tiny", "steps": 1}
    assert Run.start(TrainConfig(backend="numba", **settings)).uses_schedule()
    assert not Run.start(TrainConfig(backend="numba", threads=1, **settings)).uses_schedule()
    assert not Run.start(TrainConfig(backend="numba", schedule=False, **settings)).uses_schedule()
    assert Run.start(TrainConfig(backend="numpy", schedule=True, **settings)).uses_schedule()
    for backend in ("numpy", "cupy"):
        assert not Run.start(TrainConfig(backend=backend, **settings)).uses_schedule()
    stepper = Run.start(TrainConfig(backend="numba", threads=3, **settings)).stepper()
    assert isinstance(stepper, ScheduledStep) and stepper.threads == 3


def test_fastgan_train_schedule_trains_a_convolution_on_lanes_and_resumes(tmp_path, monkeypatch):
    """fast-dcgan on two threads, its convolutions on lanes: a run stopped after 4 steps and
    resumed to 10 ends where a run of 10 steps does, bit for bit (the lanes and their sums
    are the same every step); ``--no-schedule`` trains the plain step."""
    common = ["--backend", "numba", "--threads", "2", "--data", "digits", "--image-size", "8",
              "--preset", "fast-dcgan", "--g-filters", "4", "2", "--d-filters", "2", "4",
              "--batch-size", "16", "--log-every", "2", "--checkpoint-every", "0",
              "--no-progress"]
    straight, parted, plain = tmp_path / "straight", tmp_path / "parted", tmp_path / "plain"
    lanes_made: list[int] = []
    each_slice = PatchMatrixLayer._each_slice

    def counting(layer, ws, batch, work, weight_grad=None):
        each_slice(layer, ws, batch, work, weight_grad)
        lanes_made.append(len(ws.lanes))

    monkeypatch.setattr(PatchMatrixLayer, "_each_slice", counting)
    assert cli.main(["train", *common, "--schedule", "--steps", "10", "--out",
                     str(straight)]) == 0
    assert max(lanes_made) == 2
    assert cli.main(["train", *common, "--steps", "4", "--out", str(parted)]) == 0
    assert cli.main(["train", "--resume", str(parted), "--steps", "10"]) == 0
    assert json.loads((parted / "config.json").read_text())["config"]["schedule"] is None
    _assert_same(fastgan.load(parted / "checkpoint.npz"), fastgan.load(straight / "checkpoint.npz"))
    lanes_made.clear()
    assert cli.main(["train", *common, "--no-schedule", "--steps", "2", "--out", str(plain)]) == 0
    assert max(lanes_made) == 1


def test_fastgan_train_schedule_on_a_device_is_an_error_before_the_folder(emulated, tmp_path,
                                                                          monkeypatch, capsys):
    from fastgan import backends

    monkeypatch.setitem(backends._instances, "cupy", emulated())
    run = tmp_path / "run"
    status = cli.main(["train", "--schedule", "--backend", "cupy", "--data", "ring", "--steps",
                       "2", "--out", str(run)])
    assert status == 1 and not run.exists()
    assert "--schedule: a scheduled step runs host GEMMs" in capsys.readouterr().err
