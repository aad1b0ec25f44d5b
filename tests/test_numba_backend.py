"""The Numba backend's own promises: no allocation per step, one thread knob, a clear error
when numba is missing, compiled kernels cached on disk, and a float32 tanh within bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.small_presets import transposed_discriminator, transposed_generator

import fastgan
from fastgan import GAN, BackendUnavailable, ConfigError, backends, threads
from fastgan.backends.base import TANH
from fastgan.gan.scheduled import ScheduledStep
from fastgan.threads import blas_threads, set_blas_threads

pytest.importorskip("numba", reason="the numba backend needs numba")
from numba.core.runtime import _nrt_python, rtsys

from fastgan.backends import numba_backend, numba_kernels

ROOT = Path(__file__).resolve().parents[1]

# Python objects a step may create and drop (array views, bound methods) stay far below this;
# one array temporary of the smallest layer below (16 x 8 float32) is 512 bytes, of the
# largest 16 x 64 x 4 = 4 KiB, and the NumPy reference peaks at tens of KiB.
STEP_PEAK_BYTES = 4096


def _small_gan(preset: str, backend: str, **options: Any) -> tuple[GAN, np.ndarray]:
    gan = GAN.from_preset(preset, backend=backend, dtype="float32", data_dim=64, batch_size=16,
                          g_hidden=(32, 64), d_hidden=(64, 32), **options)
    real = np.random.default_rng(0).uniform(-1, 1, (16 * gan.k, 64)).astype(np.float32)
    return gan, real


def _step_memory(gan: GAN, real: np.ndarray, steps: int = 10) -> tuple[int, int]:
    """(net traced growth, peak above the start) over ``steps`` steps after a warm-up."""
    for _ in range(3):
        gan.step(real)
    tracemalloc.start()
    try:
        gan.step(real)
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(steps):
            gan.step(real)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start


def assert_steps_allocate_nothing(gan: GAN, real: np.ndarray) -> None:
    """After a first step (which sizes every workspace), ten more create no array: traced
    memory does not grow, no step peaks above the bound, Numba's runtime counters stay still."""
    gan.step(real)
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        growth, peak = _step_memory(gan, real)
        after = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    assert growth < 256, f"traced memory grew by {growth} bytes over 10 steps"
    assert peak < STEP_PEAK_BYTES, f"a step allocated {peak} bytes at its peak"
    assert after == before, f"Numba runtime allocations during steps: {before} -> {after}"


@pytest.mark.parametrize("preset", ["pytorch-vanilla", "keras-mlp", "numpy-adam"])
def test_steady_state_step_allocates_nothing(preset):
    """Dropout, batch norm, Adam, SGD and the generator's weight average: no array is created
    inside GAN.step, and Numba's runtime allocates nothing at all (its counters stay still)."""
    gan, real = _small_gan(preset, "numba", ema_decay=0.99)
    assert_steps_allocate_nothing(gan, real)


@pytest.mark.parametrize("loss", ["hinge", "least_squares"])
def test_steady_state_step_with_stabilisers_allocates_nothing(loss):
    """The hinge and least-squares losses and spectral normalisation (power iteration,
    W / sigma and its backward): no array is created inside GAN.step either."""
    gan, real = _small_gan("pytorch-vanilla", "numba", d_loss=loss, g_loss=loss,
                           spectral_norm=True)
    assert_steps_allocate_nothing(gan, real)


def test_steady_state_step_with_the_r1_penalty_allocates_nothing():
    """The R1 penalty's passes (a forward and backward over the real rows, the tangent pass)
    through dropout and spectral normalisation, every D step: no array is created either."""
    gan, real = _small_gan("pytorch-vanilla", "numba", r1_gamma=10.0, spectral_norm=True)
    assert_steps_allocate_nothing(gan, real)


@pytest.mark.parametrize("projection", [False, True], ids=["concatenated", "projection"])
def test_steady_state_conditional_step_allocates_nothing(projection):
    """Fake labels drawn and written one-hot beside G's noise and D's input, real rows split
    into samples and labels, the projection's class term and its gradient: no array is
    created inside GAN.step."""
    gan, real = _small_gan("pytorch-vanilla", "numba", conditional=True, num_classes=4,
                           projection=projection, spectral_norm=projection)
    labels = np.eye(4, dtype=np.float32)[np.arange(len(real)) % 4]
    assert_steps_allocate_nothing(gan, np.concatenate([real, labels], axis=1))


def test_steady_state_label_maps_step_allocates_nothing():
    """A conditional DCGAN whose D reads the labels as channels of every pixel: real rows and
    fakes laid out as label maps, the image channels of D's input gradient taken back: no
    array is created inside GAN.step."""
    gan = GAN.from_preset("keras-dcgan", backend="numba", dtype="float32", data_dim=256,
                          batch_size=4, latent_dim=8, g_filters=(16, 8, 8),
                          d_filters=(8, 8, 16), conditional=True, num_classes=3)
    real = np.random.default_rng(0).uniform(-1, 1, (4, 256)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    assert_steps_allocate_nothing(gan, np.concatenate([real, labels], axis=1))


@pytest.mark.parametrize("options", [{}, {"spectral_norm": True, "r1_gamma": 1.0}],
                         ids=["plain", "spectral-norm-r1"])
def test_steady_state_dcgan_step_allocates_nothing(monkeypatch, options):
    """Convolutions, upsampling and per-channel batch norm, the batch gathered one sample at
    a time (so dW accumulates over slices), and D's convolutions spectrally normalised with
    the R1 penalty through them: no array is created inside GAN.step."""
    monkeypatch.setattr(numba_backend.NumbaBackend, "im2col_bytes", 1)
    # wide enough that any per-slice temporary (a padded image, a dW product) > the bound
    gan = GAN.from_preset("keras-dcgan", backend="numba", dtype="float32", data_dim=256,
                          batch_size=4, latent_dim=8, g_filters=(32, 16, 16),
                          d_filters=(16, 16, 32), **options)
    real = np.random.default_rng(0).uniform(-1, 1, (4, 256)).astype(np.float32)
    gan.step(real)
    assert gan.generator.layers[3]._workspaces[4].chunk == 1
    assert_steps_allocate_nothing(gan, real)


@pytest.mark.parametrize("options", [
    {}, {"discriminator": transposed_discriminator(16, (16, 16, 32)), "spectral_norm": True,
         "r1_gamma": 1.0}], ids=["generator", "discriminator-spectral-norm-r1"])
def test_steady_state_transposed_convolution_step_allocates_nothing(monkeypatch, options):
    """Transposed convolutions in G (GEMM, scatter-add, bias + activation; backward gather,
    dW and dx) and, with spectral normalisation and the R1 pass, first in D, the batch taken
    one sample at a time: no array is created inside GAN.step."""
    monkeypatch.setattr(numba_backend.NumbaBackend, "im2col_bytes", 1)
    gan = GAN.from_preset("keras-dcgan", backend="numba", dtype="float32", data_dim=256,
                          batch_size=4, latent_dim=8, d_filters=(16, 16, 32),
                          generator=transposed_generator(16, (32, 32)), **options)
    real = np.random.default_rng(0).uniform(-1, 1, (4, 256)).astype(np.float32)
    gan.step(real)
    assert gan.generator.layers[2]._workspaces[4].chunk == 1
    assert_steps_allocate_nothing(gan, real)


def test_steady_state_scheduled_step_allocates_nothing():
    """numba's scheduled step, every GEMM and optimizer pass cut among two threads or run
    beside another: its pool hands the jobs over through locks made with it, and the blocks
    and slices are views, so no array (and no thread, lock or future) is created inside a
    step either."""
    gan, real = _small_gan("pytorch-vanilla", "numba", ema_decay=0.99)
    before = blas_threads()
    try:
        assert_steps_allocate_nothing(
            ScheduledStep(gan, 2, split_min_flops=0, split_min_elements=1), real)
    finally:
        set_blas_threads(max(before, 1))


def test_steady_state_scheduled_convolutions_allocate_nothing(monkeypatch):
    """Convolutions on two lanes, one sample per slice, D spectrally normalised with the R1
    pass through it: each lane's im2col matrix, weight gradient and accumulation scratch are
    made in the first step, and no array is created inside a later one."""
    monkeypatch.setattr(numba_backend.NumbaBackend, "im2col_bytes", 1)
    gan = GAN.from_preset("keras-dcgan", backend="numba", dtype="float32", data_dim=256,
                          batch_size=4, latent_dim=8, g_filters=(32, 16, 16),
                          d_filters=(16, 16, 32), spectral_norm=True, r1_gamma=1.0)
    real = np.random.default_rng(0).uniform(-1, 1, (4, 256)).astype(np.float32)
    before = blas_threads()
    try:
        stepper = ScheduledStep(gan, 2)
        stepper.step(real)
        assert len(gan.discriminator.layers[1]._workspaces[8].lanes) == 2
        assert_steps_allocate_nothing(stepper, real)
    finally:
        set_blas_threads(max(before, 1))


def test_the_allocation_probe_sees_array_temporaries():
    """The same probe on the NumPy reference (which makes temporaries) reports them: the
    check above can fail."""
    gan, real = _small_gan("pytorch-vanilla", "numpy")
    _, peak = _step_memory(gan, real, steps=2)
    assert peak > STEP_PEAK_BYTES


# ------------------------------------------------------------------ threads
@pytest.fixture
def restore_threads():
    """Put the thread counts back after a test that changes them."""
    before = threads.get_num_threads()
    yield
    threads.set_num_threads(before["numba"])


def test_set_num_threads_sets_blas_and_numba_together(restore_threads):
    assert threads.set_num_threads(1) == 1
    assert threads.get_num_threads() == {"numba": 1, "blas": 1}
    many = max(2, threads.physical_cores())
    threads.set_num_threads(many)
    counts = threads.get_num_threads()
    assert counts["blas"] == many
    assert counts["numba"] == min(many, numba_backend.numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4"])
def test_bad_thread_counts_are_config_errors(bad):
    with pytest.raises(ConfigError, match="positive integer"):
        threads.set_num_threads(bad)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.default_num_threads() == 3
    monkeypatch.setenv(threads.THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=threads.THREADS_ENV):
        threads.default_num_threads()
    monkeypatch.delenv(threads.THREADS_ENV)
    assert threads.default_num_threads() == threads.physical_cores()


def test_physical_cores_is_a_sane_count():
    assert 1 <= threads.physical_cores() <= (os.cpu_count() or 1)


def test_cpu_list_parsing():
    assert threads._cpu_list("0-2,8\n") == [0, 1, 2, 8]
    assert threads._cpu_list("5") == [5]


def test_the_backend_applies_the_environment_knob(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "_in_force", None)    # as in a fresh process
    monkeypatch.setenv(threads.THREADS_ENV, "1")
    numba_backend.NumbaBackend()
    assert threads.get_num_threads() == {"numba": 1, "blas": 1}


def test_a_count_set_before_the_backend_is_kept(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "_in_force", None)
    threads.set_num_threads(1)
    numba_backend.NumbaBackend()                  # the default (physical cores) must not win
    assert threads.get_num_threads() == {"numba": 1, "blas": 1}


def test_a_count_set_before_numba_is_imported_reaches_numba():
    code = ("import sys; from fastgan import threads; threads.set_num_threads(1); "
            "assert 'numba' not in sys.modules; import fastgan; fastgan.get_backend('numba'); "
            "print(threads.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "NUMBA_NUM_THREADS": "2"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'numba': 1, 'blas': 1}"    # numba's own default is 2


# ------------------------------------------------------------------ numba missing
def test_missing_numba_is_a_clear_backend_unavailable(monkeypatch):
    """Simulate an environment without numba: the registry must say why and what to do."""
    monkeypatch.setitem(sys.modules, "numba", None)          # `import numba` now fails
    for name in ("numba_backend", "numba_kernels"):              # forget the loaded modules
        monkeypatch.delitem(sys.modules, f"fastgan.backends.{name}", raising=False)
        monkeypatch.delattr(backends, name, raising=False)
    monkeypatch.setattr(backends, "_instances", {})
    reason = fastgan.available_backends()["numba"]
    assert reason is not None and "numba" in reason and "pip install" in reason
    with pytest.raises(BackendUnavailable, match=r"'numba' cannot run here.*pip install") as err:
        fastgan.get_backend("numba")
    assert "Usable here: numpy" in str(err.value)
    assert fastgan.get_backend("auto").name != "numba"


# ------------------------------------------------------------------ compilation cache
_COMPILE_PROBE = """
import json, time
start = time.perf_counter()
import numpy as np
from fastgan import GAN
from fastgan.backends import numba_kernels
gan = GAN.from_preset("keras-mlp", backend="numba", dtype="float32", data_dim=8, latent_dim=4,
                      g_hidden=(8, 8), d_hidden=(8,), batch_size=4)
gan.step(np.zeros((4, 8), np.float32))
kernels = [k for k in vars(numba_kernels).values() if hasattr(k, "stats")]
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
}))
"""


def _probe(cache_dir: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernels_compile_once_and_load_from_the_disk_cache(tmp_path):
    """A fresh process compiles and writes the cache; the next one only loads it."""
    cold = _probe(tmp_path)
    assert cold["misses"] > 0 and cold["hits"] == 0
    assert any(tmp_path.rglob("*.nbi")), "no cache index was written"
    warm = _probe(tmp_path)
    assert warm["misses"] == 0 and warm["hits"] == cold["misses"]


# ------------------------------------------------------------------ float32 tanh
def test_float32_tanh_stays_within_its_stated_error():
    x = np.linspace(-12, 12, 400_001, dtype=np.float32)
    x = np.concatenate([x, np.float32([0.0, 1e-30, 3.9e-4, 4.1e-4, np.inf, -np.inf, np.nan])])
    y = x.reshape(1, -1).copy()
    numba_kernels.bias_act(y, np.zeros(x.size, np.float32), TANH, np.float32(0))
    exact = np.tanh(x.astype(np.float64))
    error = np.abs(y[0].astype(np.float64) - exact)
    assert np.nanmax(error) <= numba_kernels.TANH32_MAX_ERROR
    assert np.isnan(y[0, -1]) and y[0, -3] == 1.0 and y[0, -2] == -1.0
