"""The scheduled step: independent GEMMs side by side on a small pool, BLAS on one thread.

Run whole, each GEMM is the serial step's own BLAS call, so the scheduled step equals the
serial step bit for bit when BLAS runs one thread in both (numpy and numba backends, several
steps, also through ``fit``); a GEMM cut into blocks may round differently, and its gradients
are compared within a bound from the GEMM's error analysis.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from support.small_presets import SMALL_FAST_DCGAN

import fastgan
from fastgan import GAN
from fastgan.backends.scheduled import GemmSchedule, blocks, product_flops
from fastgan.backends.side_by_side import SideBySide
from fastgan.errors import ConfigError
from fastgan.gan.scheduled import ScheduledStep
from fastgan.threads import blas_threads, set_blas_threads
from fastgan.training.loop import fit

HOST_BACKENDS = ["numpy", "numba"]
SMALL = {"g_hidden": (32, 48), "d_hidden": (40, 24), "batch_size": 12}


@pytest.fixture(autouse=True)
def blas_on_one_thread():
    """BLAS on one thread for the test (every GEMM the same call in both steps), as it was
    afterwards."""
    before = blas_threads()
    set_blas_threads(1)
    yield
    set_blas_threads(max(before, 1))


@pytest.fixture(params=HOST_BACKENDS)
def host_backend(request: pytest.FixtureRequest) -> str:
    reason = fastgan.available_backends()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param} unavailable: {reason}")
    return request.param


def _gan(backend: str, dtype: str = "float32", preset: str = "pytorch-vanilla",
         **options) -> GAN:
    return GAN.from_preset(preset, backend=backend, dtype=dtype, seed=3, data_dim=20,
                           **{**SMALL, **options})


def _real(gan: GAN, seed: int = 0) -> np.ndarray:
    rows = gan.k * gan.batch_size
    return np.random.default_rng(seed).uniform(-1, 1, (rows, gan.data_dim)).astype(gan.dtype)


def _state(gan: GAN) -> list[np.ndarray]:
    return [gan.backend.to_numpy(a).copy() for a in
            (gan.generator.params.data, gan.discriminator.params.data, gan.stats)]


# ---------------------------------------------------------------- the pool
def test_pool_runs_every_job_at_the_same_time():
    pool = SideBySide(3)
    barrier = threading.Barrier(3, timeout=10)     # passes only if all three run at once
    seen: list[str] = []
    pool.run([(lambda name: (barrier.wait(), seen.append(name)), (name,))
              for name in "abc"])
    assert sorted(seen) == ["a", "b", "c"]


def test_pool_hands_back_a_workers_exception_and_keeps_working():
    pool = SideBySide(2)

    def fail() -> None:
        raise ValueError("planted")

    with pytest.raises(ValueError, match="planted"):
        pool.run([(int, ()), (fail, ())])
    out = np.zeros(2)
    pool.run([(out.__setitem__, (0, 1.0)), (out.__setitem__, (1, 2.0))])
    assert out.tolist() == [1.0, 2.0]


def test_closing_the_pool_or_dropping_it_ends_its_threads():
    pool = SideBySide(3)
    threads = [worker.thread for worker in pool._workers]
    assert all(thread.is_alive() for thread in threads)
    pool.close()
    assert not any(thread.is_alive() for thread in threads)
    with pytest.raises(ConfigError, match="closed"):
        pool.run([(int, ())])
    dropped = SideBySide(2)
    [thread] = [worker.thread for worker in dropped._workers]
    del dropped
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_pool_refuses_more_jobs_than_threads_and_a_bad_count():
    with pytest.raises(ConfigError, match="3 jobs for a pool of 2"):
        SideBySide(2).run([(int, ())] * 3)
    with pytest.raises(ConfigError, match="positive number of threads"):
        SideBySide(0)


# ---------------------------------------------------------------- cutting one GEMM
@pytest.mark.parametrize(("shape", "trans_a", "trans_b"), [
    ((7, 5, 9), False, False), ((9, 5, 3), True, False), ((4, 6, 11), False, True)])
@pytest.mark.parametrize("parts", [1, 2, 3, 16])
def test_blocks_make_the_whole_product(shape, trans_a, trans_b, parts):
    m, k, n = shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    out = np.full((m, n), np.nan)
    jobs = blocks((a, b, out, trans_a, trans_b), parts)
    assert len(jobs) == min(parts, max(m, n))
    for function, args in jobs:
        function(*args)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)
    assert product_flops((a, b, out, trans_a, trans_b)) == 2 * m * n * k


def test_schedule_shares_threads_and_cuts_only_large_products():
    backend = fastgan.get_backend("numpy")
    rng = np.random.default_rng(2)
    small = (rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), np.empty((4, 5)),
             False, False)
    large = (rng.standard_normal((40, 30)), rng.standard_normal((30, 50)), np.empty((40, 50)),
             False, False)
    schedule = GemmSchedule(4, split_min_flops=product_flops(large))
    schedule.run(backend, [small, large])
    for a, b, out, _, _ in (small, large):
        np.testing.assert_allclose(out, a @ b, rtol=1e-13)
    assert schedule._cut(large) and not schedule._cut(small)
    assert not GemmSchedule(2, split_min_flops=None)._cut(large)
    with pytest.raises(ConfigError, match="split_min_flops"):
        GemmSchedule(2, split_min_flops=-1)


def test_flat_passes_are_cut_into_one_slice_per_thread():
    """Each slice runs on its own thread, the slices tile the buffers in order, and a pass too
    small to cut runs whole on the calling thread."""
    seen: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def kernel(first, second, scalar):
        with lock:
            seen.append((threading.get_ident(), int(first[0]), first.size))
        np.testing.assert_array_equal(second, first * 2)
        first += scalar

    buffer = np.arange(10.0)
    schedule = GemmSchedule(3, split_min_elements=3)
    schedule.run_flat(kernel, (buffer, buffer * 2), (0.5,))
    np.testing.assert_array_equal(buffer, np.arange(10.0) + 0.5)
    assert sorted((first, size) for _, first, size in seen) == [(0, 3), (3, 3), (6, 4)]
    assert len({thread for thread, _, _ in seen}) == 3
    seen.clear()
    GemmSchedule(3, split_min_elements=6).run_flat(kernel, (np.arange(10.0), np.arange(10.0) * 2),
                                                   (0.0,))
    assert [(thread, size) for thread, _, size in seen] == [(threading.get_ident(), 10)]
    with pytest.raises(ConfigError, match="split_min_elements"):
        GemmSchedule(2, split_min_elements=0)


# ---------------------------------------------------------------- the step
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("preset", "options"), [("pytorch-vanilla", {"ema_decay": 0.9}),
                                                 ("numpy-adam", {}), ("numpy-mlp", {})])
def test_whole_gemms_equal_the_serial_step_bit_for_bit(host_backend, preset, options, threads):
    """Every optimizer pass (Adam, SGD, the weight average) cut among the threads too
    (``split_min_elements=1``): an elementwise pass computes each element as a whole one."""
    serial, scheduled = (_gan(host_backend, preset=preset, **options) for _ in range(2))
    _assert_equal_steps(serial, ScheduledStep(scheduled, threads, split_min_flops=None,
                                              split_min_elements=1), 4)


def _assert_equal_steps(serial: GAN, stepper: ScheduledStep, steps: int) -> None:
    """``steps`` steps of each on the same batches leave the same state, bit for bit."""
    for step in range(steps):
        real = _real(serial, step)
        serial.step(real)
        stepper.step(real)
        for found, expected in zip(_state(stepper.gan), _state(serial), strict=True):
            np.testing.assert_array_equal(found, expected, err_msg=f"step {step}")


def test_cut_gemms_give_the_serial_gradients_within_rounding(host_backend, dtype):
    """Every GEMM cut (threshold 0) among 3 threads. An element of a product is a sum of k
    terms, which any order computes within k eps sum|a_i b_i| of the exact value; the two
    orders differ by at most twice that. The gradients (a chain of such products) are held to
    a bound of that order: 64 eps times the buffer's largest magnitude."""
    serial, scheduled = _gan(host_backend, dtype), _gan(host_backend, dtype)
    grads: dict[str, list[np.ndarray]] = {"serial": [], "scheduled": []}

    def keep(name):
        return lambda grad: grads[name].append(serial.backend.to_numpy(grad).copy())

    serial.step(_real(serial), gradient_hook=keep("serial"))
    ScheduledStep(scheduled, 3, split_min_flops=0).step(_real(serial),
                                                        gradient_hook=keep("scheduled"))
    eps = np.finfo(dtype).eps
    for found, expected in zip(grads["scheduled"], grads["serial"], strict=True):
        np.testing.assert_allclose(found, expected, rtol=0,
                                   atol=64 * eps * np.abs(expected).max())


def _fast_dcgan(backend: str, dtype: str = "float32") -> GAN:
    return GAN.from_preset("fast-dcgan", backend=backend, dtype=dtype, seed=3,
                           **{**SMALL_FAST_DCGAN, "batch_size": 10})


@pytest.mark.parametrize("threads", [2, 3])
def test_convolution_lanes_give_the_serial_gradients_within_rounding(host_backend, dtype,
                                                                     monkeypatch, threads):
    """Each convolution's batch shared among the threads in slices of a few samples (several
    per lane): the lanes' weight gradients are sums over other subsets of the rows, added up
    at the end, so each element is the serial sum in another order (the bound of the cut
    GEMMs above)."""
    monkeypatch.setattr(type(fastgan.get_backend(host_backend)), "im2col_bytes", 3 * 8 * 8 * 16)
    serial, scheduled = _fast_dcgan(host_backend, dtype), _fast_dcgan(host_backend, dtype)
    grads: dict[str, list[np.ndarray]] = {"serial": [], "scheduled": []}

    def keep(name):
        return lambda grad: grads[name].append(serial.backend.to_numpy(grad).copy())

    real = _real(serial)
    serial.step(real, gradient_hook=keep("serial"))
    ScheduledStep(scheduled, threads).step(real, gradient_hook=keep("scheduled"))
    first_convolution = scheduled.discriminator.layers[1]
    assert len(first_convolution.workspace(2 * scheduled.batch_size).lanes) == threads
    eps = np.finfo(dtype).eps
    for found, expected in zip(grads["scheduled"], grads["serial"], strict=True):
        assert not np.array_equal(found, np.zeros_like(found))
        np.testing.assert_allclose(found, expected, rtol=0,
                                   atol=64 * eps * np.abs(expected).max())


def test_a_schedule_that_never_cuts_keeps_convolutions_whole(host_backend):
    """``split_min_flops=None``: one lane, every convolution as in the serial step, so the
    scheduled fast-dcgan step equals the serial one bit for bit."""
    serial, scheduled = _fast_dcgan(host_backend), _fast_dcgan(host_backend)
    stepper = ScheduledStep(scheduled, 2, split_min_flops=None)
    assert stepper.schedule.lanes == 1 and GemmSchedule(2).lanes == 2
    _assert_equal_steps(serial, stepper, 3)


def test_a_scheduled_fit_equals_an_eager_fit(host_backend):
    """Through the step seam: the loop takes the scheduled step as it takes the GAN."""
    data = np.random.default_rng(4).uniform(-1, 1, (48, 20))
    eager, scheduled = _gan(host_backend), _gan(host_backend)
    fit(eager, data, steps=6, log_every=3)
    history = fit(scheduled, data, steps=6, log_every=3,
                  stepper=ScheduledStep(scheduled, 2, split_min_flops=None))
    assert len(history.logs) == 2
    for found, expected in zip(_state(scheduled), _state(eager), strict=True):
        np.testing.assert_array_equal(found, expected)


def test_the_step_sets_blas_back_to_one_thread(host_backend):
    stepper = ScheduledStep(_gan(host_backend), 2)
    assert blas_threads() == 1
    set_blas_threads(2)
    stepper.step(_real(stepper.gan))
    assert blas_threads() == 1
    assert stepper.threads == 2
    assert stepper.gan.backend.gemm_schedule is None      # the schedule is the step's alone


def test_a_device_backend_is_refused():
    gan = SimpleNamespace(backend=SimpleNamespace(xp=object(), name="cupy"))
    with pytest.raises(ConfigError, match="numpy or numba backend"):
        ScheduledStep(gan, 2)
