"""The counter-based Philox stream: the NumPy reference against Random123's known answers, and
every backend that draws it (NumPy with ``rng="philox"``, Numba by default, CuPy on the GPU and
on the CPU emulation of its CUDA source) against the reference, number for number."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastgan
from fastgan import GAN
from fastgan.backends import philox
from fastgan.backends.base import PhiloxRng
from fastgan.backends.numba_backend import NumbaBackend
from fastgan.backends.numpy_backend import NumpyBackend
from fastgan.errors import ConfigError
from fastgan.training import checkpoint

MASK32 = 0xFFFFFFFF
SIZES = [1, 3, 4, 5, 21, 1001]         # whole blocks of four, tails of 1-3, one partial block


def philox4x32_10(counter, key):
    """Philox4x32-10 in plain Python integers, written from the paper."""
    c, (k0, k1) = list(counter), key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & MASK32, (p0 >> 32) ^ c[3] ^ k1, p0 & MASK32]
        k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
    return c


KNOWN_ANSWERS = [   # Random123's kat_vectors for philox4x32_10: (counter, key) -> words
    ([0, 0, 0, 0], (0, 0), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK32] * 4, (MASK32, MASK32), [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], (0xA4093822, 0x299F31D0),
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize(("counter", "key", "words"), KNOWN_ANSWERS)
def test_python_and_numpy_philox_match_random123_known_answers(counter, key, words):
    assert philox4x32_10(counter, key) == words
    # the reference takes counter (block, draw) as two 64-bit halves and a 64-bit key
    block = np.array([counter[0] | counter[1] << 32], dtype=np.uint64)
    draw, key64 = counter[2] | counter[3] << 32, key[0] | key[1] << 32
    assert [int(w[0]) for w in philox.blocks(block, draw, key64)] == words


@pytest.fixture(scope="module")
def emulated_cuda(request):
    from support.cuda_emulator import EmulatedDevice

    from fastgan.backends.cupy_backend import CupyBackend

    return CupyBackend(device=EmulatedDevice(request.getfixturevalue("emulator_library")))


@pytest.fixture(params=["numpy", "numba", "cupy-emulated",
                        pytest.param("cupy", marks=pytest.mark.gpu)])
def drawing(request):
    """A backend drawing the Philox stream: numpy on request, the others by default."""
    if request.param == "numpy":
        return NumpyBackend(rng="philox")
    if request.param == "cupy-emulated":
        return request.getfixturevalue("emulated_cuda")
    reason = fastgan.available_backends()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param} unavailable: {reason}")
    return fastgan.get_backend(request.param)


def _draw(backend, seed, shape, dtype, kind, *args):
    rng = backend.rng(seed)
    assert isinstance(rng, PhiloxRng)
    out = backend.empty(shape, dtype)
    getattr(rng, kind)(out, *args)
    return backend.to_numpy(out), rng


@pytest.mark.parametrize("size", SIZES)
def test_element_i_of_draw_d_is_word_i_mod_4_of_block_i_div_4(drawing, size):
    """float64 uniforms in [0, 1) are word / 2^32 exactly: read the words back."""
    rng = drawing.rng(1234)
    out = drawing.zeros((size,), "float64")
    key = (rng.key & MASK32, rng.key >> 32)
    for draw in range(2):
        rng.uniform(out, 0.0, 1.0)
        words = (drawing.to_numpy(out) * 2.0**32).astype(np.uint64)
        expected = [philox4x32_10([i // 4, 0, draw, 0], key)[i % 4] for i in range(size)]
        np.testing.assert_array_equal(words, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3,), (7, 3), (100, 257)])
def test_every_backend_draws_the_reference_numbers(drawing, dtype, shape):
    """Uniforms and dropout masks bit for bit; normals to libm's last bits."""
    for kind, args in (("uniform", (-1.0, 3.0)), ("dropout_mask", (0.3,)), ("normal", ())):
        drawn, rng = _draw(drawing, 9, shape, dtype, kind, *args)
        expected = np.empty(shape, dtype)
        a, b = {"uniform": args, "dropout_mask": (0.3, 1 / 0.7), "normal": (0.0, 0.0)}[kind]
        code = {"uniform": philox.RNG_UNIFORM, "dropout_mask": philox.RNG_DROPOUT,
                "normal": philox.RNG_NORMAL}[kind]
        philox.fill(expected, rng.key, 0, code, a, b)
        if kind == "normal":
            np.testing.assert_allclose(drawn, expected, rtol=1e-5, atol=1e-5, err_msg=kind)
        else:
            np.testing.assert_array_equal(drawn, expected, err_msg=kind)
        assert rng.get_state()["draws"] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_distributions(drawing, dtype):
    z, _ = _draw(drawing, 7, (200, 201), dtype, "normal")
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02 and np.isfinite(z).all()
    u, _ = _draw(drawing, 7, (200, 201), dtype, "uniform", -1.0, 3.0)
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.03
    mask, _ = _draw(drawing, 7, (200, 201), dtype, "dropout_mask", 0.3)
    np.testing.assert_array_equal(np.unique(mask), np.array([0, 1 / 0.7], dtype))
    assert abs((mask == 0).mean() - 0.3) < 0.01


def test_state_seed_and_shape_independence(drawing):
    rng = drawing.rng(5)
    state = rng.get_state()
    first, again, longer = (drawing.empty((4, 5), "float32") for _ in range(3))
    rng.normal(first)
    rng.set_state(state)
    rng.normal(again)
    np.testing.assert_array_equal(drawing.to_numpy(first), drawing.to_numpy(again))
    assert rng.get_state() == {**state, "draws": state["draws"] + 1}
    rng.set_state(state)
    wide = drawing.empty((40, 50), "float32")
    rng.normal(wide)                        # another shape, the same first 20 numbers
    np.testing.assert_array_equal(drawing.to_numpy(wide).ravel()[:20],
                                  drawing.to_numpy(first).ravel())
    other = drawing.rng(6)
    other.normal(longer)
    assert not np.array_equal(drawing.to_numpy(longer), drawing.to_numpy(first))
    with pytest.raises(ConfigError, match="PCG64"):
        rng.set_state(np.random.PCG64(0).state)


def test_the_reference_fills_a_transposed_array_in_c_order():
    strided = np.zeros((4, 8), np.float64).T             # no flat view of it exists
    contiguous = np.empty((8, 4), np.float64)
    for out in (strided, contiguous):
        philox.fill(out, 77, 0, philox.RNG_UNIFORM, 0.0, 1.0)
    np.testing.assert_array_equal(strided, contiguous)
    assert (strided > 0).all()


def test_numba_refuses_a_strided_output():
    backend = fastgan.get_backend("numba")
    out = np.empty((8, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        backend.rng(0).normal(out)


def test_numba_pcg64_draws_the_numpy_backends_numbers():
    reference, numba = fastgan.get_backend("numpy").rng(3), NumbaBackend(rng="pcg64").rng(3)
    for kind, args in (("normal", ()), ("uniform", ()), ("dropout_mask", (0.25,))):
        expected, drawn = np.empty((6, 4), np.float32), np.empty((6, 4), np.float32)
        getattr(reference, kind)(expected, *args)
        getattr(numba, kind)(drawn, *args)
        np.testing.assert_array_equal(drawn, expected, err_msg=kind)


def test_backends_check_the_stream_name():
    assert fastgan.get_backend("numpy").rng_stream == "pcg64"
    assert fastgan.get_backend("numba").rng_stream == "philox"
    for backend_class in (NumpyBackend, NumbaBackend):
        with pytest.raises(ConfigError, match="rng must be one of 'pcg64', 'philox'"):
            backend_class(rng="mt19937")


def test_training_on_numba_equals_numpy_drawing_philox():
    """The whole step with dropout (pytorch-vanilla) on both backends drawing one stream."""
    results = []
    for backend in (NumpyBackend(rng="philox"), fastgan.get_backend("numba")):
        gan = GAN.from_preset("pytorch-vanilla", data_dim=12, g_hidden=(16,), d_hidden=(16, 8),
                              backend=backend, dtype="float64", batch_size=8, seed=2)
        real = np.random.default_rng(0).uniform(-1, 1, (gan.k * 8, 12))
        for _ in range(3):
            gan.step(gan.backend.asarray(real, "float64"))
        results.append(gan.sample(5))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10, atol=1e-12)


def test_a_pcg64_checkpoint_resumes_on_philox_with_a_warning(tmp_path):
    """A numba checkpoint written before numba drew Philox (PCG64 states): training continues,
    each stream restarting from its seed, and says so."""
    old = GAN.from_preset("tiny", data_dim=2, backend=NumbaBackend(rng="pcg64"))
    old.fit(np.random.default_rng(0).uniform(-1, 1, (256, 2)), steps=2)
    old.save(tmp_path / "old.ckpt")
    gan = GAN.from_preset("tiny", data_dim=2, backend="numba")
    with pytest.warns(UserWarning, match="comes from PCG64 and this numba backend draws "
                                         "philox4x32-10"):
        checkpoint.restore(gan, tmp_path / "old.ckpt")
    assert gan.steps == 2


def test_a_philox_checkpoint_continues_its_streams_on_another_backend(tmp_path):
    """numba and numpy(rng="philox") draw one stream: a checkpoint moves between them and
    continues it (no warning)."""
    data = np.random.default_rng(0).uniform(-1, 1, (256, 2))
    numba_gan = GAN.from_preset("tiny", data_dim=2, backend="numba", dtype="float64")
    numba_gan.fit(data, steps=2)
    numba_gan.save(tmp_path / "numba.ckpt")
    numpy_gan = GAN.from_preset("tiny", data_dim=2, backend=NumpyBackend(rng="philox"),
                                dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint.restore(numpy_gan, tmp_path / "numba.ckpt")
    assert numpy_gan.noise_rng.get_state() == numba_gan.noise_rng.get_state()
