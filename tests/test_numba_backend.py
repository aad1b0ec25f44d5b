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

import fastgan
from fastgan import GAN, BackendUnavailable, ConfigError, backends, threads
from fastgan.backends.base import SIGMOID, TANH

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


def test_parallel_kernels_allocate_nothing_either(monkeypatch, two_threads):
    """Every elementwise job split over the threads (threshold 1): still no allocation."""
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_ELEMENTS", 1)
    gan, real = _small_gan("pytorch-vanilla", "numba")
    assert_steps_allocate_nothing(gan, real)


def test_steady_state_dcgan_step_allocates_nothing(monkeypatch):
    """Convolutions, upsampling and per-channel batch norm, the batch gathered one sample at
    a time (so dW accumulates over slices): no array is created inside GAN.step."""
    monkeypatch.setattr(numba_backend.NumbaBackend, "im2col_bytes", 1)
    # wide enough that any per-slice temporary (a padded image, a dW product) > the bound
    gan = GAN.from_preset("keras-dcgan", backend="numba", dtype="float32", data_dim=256,
                          batch_size=4, latent_dim=8, g_filters=(32, 16, 16),
                          d_filters=(16, 16, 32))
    real = np.random.default_rng(0).uniform(-1, 1, (4, 256)).astype(np.float32)
    gan.step(real)
    assert gan.generator.layers[3]._workspaces[4].chunk == 1
    assert_steps_allocate_nothing(gan, real)


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


# ------------------------------------------------------------------ parallel kernels
SHAPES = [(33, 71), (1, 5), (7, 1), (4, 3), (200, 129)]   # odd sizes; more chunks than columns


def _activation_inputs(rng, shape, act, dtype):
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    if act in (TANH, SIGMOID):                               # a valid output of the activation
        numba_kernels.bias_act(y, np.zeros(shape[1], dtype), act, dtype(0))
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("chunks", [2, 3, 8])
def test_parallel_kernels_give_the_serial_kernels_bits(shape, chunks, dtype):
    """Every ``*_parallel`` kernel against its serial twin, bit for bit (column blocks keep
    each column's sum in row order), including blocks with no column at all."""
    rng = np.random.default_rng(sum(shape) + chunks)
    alpha = dtype(0.2)
    for act in range(5):
        y, bias = (rng.standard_normal(shape) * 3).astype(dtype), rng.standard_normal(
            shape[1]).astype(dtype)
        serial, parallel = y.copy(), y.copy()
        numba_kernels.bias_act(serial, bias, act, alpha)
        numba_kernels.bias_act_parallel(parallel, bias, act, alpha, chunks)
        np.testing.assert_array_equal(parallel, serial)

        out, dy = _activation_inputs(rng, shape, act, dtype), rng.standard_normal(shape).astype(
            dtype)
        for dbias in (np.full(shape[1], np.nan, dtype), None):
            pair = [(dy.copy(), None if dbias is None else dbias.copy()) for _ in range(2)]
            numba_kernels.act_backward(pair[0][0], out, act, alpha, pair[0][1])
            numba_kernels.act_backward_parallel(pair[1][0], out, act, alpha, pair[1][1], chunks)
            np.testing.assert_array_equal(pair[1][0], pair[0][0])
            if dbias is not None:
                np.testing.assert_array_equal(pair[1][1], pair[0][1])

    a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    out = np.full(shape, np.nan, dtype)
    numba_kernels.multiply_parallel(a, b, out, chunks)
    np.testing.assert_array_equal(out, a * b)

    flat = [rng.standard_normal(shape[0] * shape[1]).astype(dtype) for _ in range(3)]
    flat.append(np.abs(rng.standard_normal(flat[0].size)).astype(dtype))    # v >= 0
    scalars = tuple(dtype(x) for x in (0.5, 0.5, 0.999, 0.001, 2e-4, 0.03, 1e-8))
    serial, parallel = [x.copy() for x in flat], [x.copy() for x in flat]
    numba_kernels.adam_update(*serial, *scalars)
    numba_kernels.adam_update_parallel(*parallel, *scalars, chunks)
    for p, s in zip(parallel, serial, strict=True):
        np.testing.assert_array_equal(p, s)


@pytest.fixture
def two_threads(restore_threads):
    threads.set_num_threads(2)
    if threads.get_num_threads()["numba"] < 2:
        pytest.skip("Numba's pool has one thread here (NUMBA_NUM_THREADS=1)")


@pytest.mark.parametrize("size_below_threshold", [True, False])
def test_the_backend_splits_only_jobs_at_the_threshold_or_above(monkeypatch, two_threads,
                                                                 size_below_threshold):
    """Either side of PARALLEL_MIN_ELEMENTS: the serial or the parallel launcher runs, and
    either way the results are the NumPy reference's."""
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_ELEMENTS", 15 * 7)
    rows = 14 if size_below_threshold else 15                 # 98 or 105 values
    launched: list[str] = []
    for name in ("bias_act", "act_backward", "dropout_mask", "adam_update", "multiply"):
        for suffix in ("", "_parallel"):
            if hasattr(numba_kernels, name + suffix):
                real = getattr(numba_kernels, name + suffix)
                monkeypatch.setattr(numba_kernels, name + suffix,
                                    lambda *a, _real=real, _n=name + suffix:
                                    launched.append(_n) or _real(*a))
    fast, reference = fastgan.get_backend("numba"), fastgan.get_backend("numpy")
    rng = np.random.default_rng(1)
    y, bias, dy = (rng.standard_normal(s).astype(np.float32) for s in ((rows, 7), 7, (rows, 7)))
    results = {}
    for backend in (fast, reference):
        out, grad, dbias = y.copy(), dy.copy(), np.zeros(7, np.float32)
        backend.bias_act(out, bias, TANH, 0.0)
        backend.act_backward(grad, out, TANH, 0.0, dbias)
        product = np.empty_like(out)
        backend.multiply(out, grad, product)
        mask = np.empty_like(out)
        backend.rng(5).dropout_mask(mask, 0.3)
        params = [y.ravel().copy(), dy.ravel().copy(), np.zeros(y.size, np.float32),
                  np.zeros(y.size, np.float32)]
        backend.adam_update(*params, 1e-3, 0.5, 0.999, 1e-8, 3)
        results[backend.name] = [out, grad, dbias, product, mask, *params]
    for actual, expected in zip(results["numba"], results["numpy"], strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    expected = {"bias_act", "act_backward", "dropout_mask", "adam_update"}
    if size_below_threshold:
        assert set(launched) == expected              # multiply: NumPy's own loop
    else:
        assert set(launched) == {f"{name}_parallel" for name in expected} | {
            "multiply_parallel"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 13), (15, 7), (64, 33)])
@pytest.mark.parametrize("buffered", [False, True])
def test_split_dropout_masks_are_the_reference_stream(monkeypatch, two_threads, dtype, shape,
                                                      buffered):
    """A mask drawn in parts on two or three threads equals the NumPy reference's serial mask,
    and the generator ends in the reference's state (the next draws agree too), for float32
    with and without a buffered 32-bit half at the start, and for float64."""
    monkeypatch.setattr(numba_backend, "PARALLEL_MIN_ELEMENTS", 10)
    launched: list[int] = []
    real = numba_kernels.dropout_mask_parallel
    monkeypatch.setattr(numba_kernels, "dropout_mask_parallel",
                        lambda draw, states, *args: launched.append(len(states))
                        or real(draw, states, *args))
    for parts in (2, 3):
        monkeypatch.setattr(numba_backend, "chunks_for", lambda size, parts=parts: parts)
        streams = {}
        for backend in (fastgan.get_backend("numpy"), fastgan.get_backend("numba")):
            rng = backend.rng(11)
            if buffered:                              # an odd count of float32 draws before
                rng.generator.random(3, dtype=np.float32)
            masks = [backend.empty(shape, dtype) for _ in range(2)]
            for mask in masks:
                rng.dropout_mask(mask, 0.3)
            after = backend.empty((5,), dtype)
            rng.uniform(after)
            streams[backend.name] = [*masks, after, rng.get_state()]
        for actual, expected in zip(streams["numba"][:3], streams["numpy"][:3], strict=True):
            np.testing.assert_array_equal(actual, expected)
        assert streams["numba"][3] == streams["numpy"][3]
    assert launched == [2, 2, 3, 3]


def test_a_dropout_mask_must_be_contiguous():
    rng = fastgan.get_backend("numba").rng(0)
    with pytest.raises(ConfigError, match="C-contiguous"):
        rng.dropout_mask(np.zeros((8, 6), np.float32)[:, ::2], 0.5)
