"""Every optimized backend against the NumPy reference: kernel by kernel, then step by step.

Kernels run on fresh random inputs in both dtypes, within tolerances.KERNEL (float64 to
rounding, float32 within ``rtol 1e-5``; tests/support/tolerances.py says why). Whole training steps
run from the same seed, so both backends start from the same weights and draw the same noise
and dropout masks (the host PCG64 stream).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import tolerances
from support.small_presets import transposed_discriminator, transposed_generator

import fastgan
from fastgan import GAN, SGD
from fastgan.backends.base import (
    ACTIVATION_CODES,
    HINGE,
    LINEAR,
    SIGMOID,
    SQUARED,
    TANH,
    ConvGeometry,
)


@pytest.fixture
def reference():
    """The NumPy backend: the specification."""
    return fastgan.get_backend("numpy")


class Pair:
    """The same host inputs on the reference and on the backend under test."""

    def __init__(self, backend, reference, dtype: str, seed: int = 0) -> None:
        self.backend, self.reference, self.dtype = backend, reference, np.dtype(dtype)
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(self.dtype)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(self.dtype)

    def both(self, *hosts: np.ndarray | None) -> tuple[list, list]:
        """Fresh copies of ``hosts`` for the reference and for the backend."""
        ref = [None if h is None else self.reference.asarray(h.copy()) for h in hosts]
        fast = [None if h is None else self.backend.asarray(h.copy()) for h in hosts]
        return ref, fast

    def assert_close(self, ref_arrays, fast_arrays) -> None:
        for expected, actual in zip(ref_arrays, fast_arrays, strict=True):
            if expected is None:
                continue
            actual = self.backend.to_numpy(actual)
            assert actual.dtype == self.dtype
            np.testing.assert_allclose(actual, self.reference.to_numpy(expected),
                                       **tolerances.kernel(self.dtype))


@pytest.fixture
def pair(fast_backend, reference, dtype):
    return Pair(fast_backend, reference, dtype)


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("inner", [9, 1])             # 1: an outer product
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_gemm(pair, trans_a, trans_b, inner, accumulate):
    a = pair.normal(*((inner, 7) if trans_a else (7, inner)))
    b = pair.normal(*((5, inner) if trans_b else (inner, 5)))
    (ra, rb, rout), (fa, fb, fout) = pair.both(a, b, pair.normal(7, 5))
    for _ in range(2):                      # twice: the second accumulation reuses scratch
        pair.reference.gemm(ra, rb, rout, trans_a, trans_b, accumulate)
        pair.backend.gemm(fa, fb, fout, trans_a, trans_b, accumulate)
    pair.assert_close([rout], [fout])


@pytest.mark.parametrize("activation", list(ACTIVATION_CODES))
def test_bias_act(pair, activation):
    act = ACTIVATION_CODES[activation]
    y = pair.normal(33, 70, scale=4.0)        # reaches tanh's saturated tails
    y[0, :3] = [np.nan, np.inf, -np.inf]      # NaN stays NaN; infinities saturate
    (ry, rb), (fy, fb) = pair.both(y, pair.normal(70))
    pair.reference.bias_act(ry, rb, act, 0.15)
    pair.backend.bias_act(fy, fb, act, 0.15)
    pair.assert_close([ry], [fy])


@pytest.mark.parametrize("with_bias_grad", [True, False])
@pytest.mark.parametrize("activation", list(ACTIVATION_CODES))
def test_act_backward(pair, activation, with_bias_grad):
    act = ACTIVATION_CODES[activation]
    y = pair.normal(40, 33, scale=2.0)
    if act in (TANH, SIGMOID):                    # a valid output of the activation
        pair.reference.bias_act(y, np.zeros(33, pair.dtype), act, 0.0)
    dbias = np.zeros(33, pair.dtype) if with_bias_grad else None
    (rdy, ry, rdb), (fdy, fy, fdb) = pair.both(pair.normal(40, 33), y, dbias)
    pair.reference.act_backward(rdy, ry, act, 0.3, rdb)
    pair.backend.act_backward(fdy, fy, act, 0.3, fdb)
    pair.assert_close([rdy, rdb], [fdy, fdb])


@pytest.mark.parametrize("target,scale", [(1.0, 1 / 24), (0.9, 1 / 24), (0.0, -1 / 24)])
def test_bce_with_logits(pair, target, scale):
    logits = pair.normal(24, 1, scale=5.0)
    logits[:2, 0] = [-90.0, 90.0]                 # exp overflows in float32: stable form
    zeros = np.zeros_like(logits), np.zeros(2, pair.dtype)
    (rl, rg, rs), (fl, fg, fs) = pair.both(logits, *zeros)
    with np.errstate(over="ignore"):                # the reference's exp(90) in float32
        pair.reference.bce_with_logits(rl, target, scale, rg, rs)
    pair.backend.bce_with_logits(fl, target, scale, fg, fs)
    pair.assert_close([rg, rs], [fg, fs])


SCORE_CASES = [(HINGE, 1.0), (HINGE, -1.0), (SQUARED, 1.0), (SQUARED, 0.0), (LINEAR, 0.0)]
"""(kind, target) of every use of ``score_loss`` by the hinge and least-squares losses."""


@pytest.mark.parametrize("kind,target", SCORE_CASES)
def test_score_loss(pair, kind, target):
    logits = pair.normal(24, 1, scale=2.0)
    logits[:3, 0] = [-1.0, 1.0, 0.0]              # the hinge's kinks and the sigmoid's branch
    zeros = np.zeros_like(logits), np.zeros(2, pair.dtype)
    (rl, rg, rs), (fl, fg, fs) = pair.both(logits, *zeros)
    pair.reference.score_loss(rl, kind, target, 1 / 24, rg, rs)
    pair.backend.score_loss(fl, kind, target, 1 / 24, fg, fs)
    pair.assert_close([rg, rs], [fg, fs])


def test_spectral_norm_kernels(pair):
    """A power iteration, W / sigma and the backward through it, as the reference does them."""
    w, u = pair.normal(37, 29), pair.normal(29)
    zeros = np.zeros(37, pair.dtype), np.zeros(1, pair.dtype), np.zeros((37, 29), pair.dtype)
    (rw, ru, rv, rs, rb, rg), (fw, fu, fv, fs, fb, fg) = pair.both(w, u, *zeros,
                                                                   pair.normal(37, 29))
    for backend, (w_, u_, v_, s_, b_, g_) in ((pair.reference, (rw, ru, rv, rs, rb, rg)),
                                               (pair.backend, (fw, fu, fv, fs, fb, fg))):
        backend.power_iteration(w_, u_, v_)
        backend.spectral_weight(w_, u_, v_, s_, b_)
        backend.spectral_backward(g_, b_, u_, v_, s_)
    pair.assert_close([ru, rv, rs, rb, rg], [fu, fv, fs, fb, fg])


def test_random_streams_match_the_reference(pair):
    """Noise and dropout masks for a seed are the reference's, value for value."""
    out = {}
    for name, backend in (("ref", pair.reference), ("fast", pair.backend)):
        rng = backend.rng(42)
        arrays = [backend.empty((16, 30), pair.dtype) for _ in range(3)]
        rng.normal(arrays[0])
        rng.uniform(arrays[1], -1.0, 1.0)
        rng.dropout_mask(arrays[2], 0.3)
        out[name] = [backend.to_numpy(a) for a in arrays]
    for expected, actual in zip(out["ref"], out["fast"], strict=True):
        np.testing.assert_array_equal(actual, expected)
    mask = out["fast"][2]
    assert set(np.unique(mask).tolist()) == {0.0, float(pair.dtype.type(1 / 0.7))}


def test_multiply(pair):
    (ra, rb, rout), (fa, fb, fout) = pair.both(pair.normal(12, 20), pair.normal(12, 20),
                                               np.zeros((12, 20), pair.dtype))
    pair.reference.multiply(ra, rb, rout)
    pair.backend.multiply(fa, fb, fout)
    pair.assert_close([rout], [fout])


def test_copy_columns(pair):
    """Sample columns written into, and label columns read out of, wider matrices."""
    src, out = pair.normal(6, 9), pair.normal(6, 13)
    (rsrc, rout), (fsrc, fout) = pair.both(src, out)
    for start, into, width in ((0, 0, 9), (4, 9, 4), (2, 5, 3)):
        pair.reference.copy_columns(rsrc, start, rout, into, width)
        pair.backend.copy_columns(fsrc, start, fout, into, width)
    pair.assert_close([rout], [fout])


def test_label_maps_and_image_channels(pair):
    """Rows [x | y] of 6 pixels of 2 channels and 3 labels as 6 pixels of 2 + 3 channels, and
    back to the image channels."""
    rows, maps = pair.normal(4, 12 + 3), pair.normal(4, 6 * 5)
    (rrows, rmaps, rback), (frows, fmaps, fback) = pair.both(rows, maps, pair.normal(4, 12))
    for backend, (x, out, back) in ((pair.reference, (rrows, rmaps, rback)),
                                    (pair.backend, (frows, fmaps, fback))):
        backend.label_maps(x, x, 12, out, 2, 3)
        backend.image_channels(out, back, 2, 3)
    pair.assert_close([rmaps, rback], [fmaps, fback])
    pixels = pair.reference.to_numpy(rmaps).reshape(4, 6, 5)
    np.testing.assert_array_equal(pixels[:, :, 2:], np.broadcast_to(rows[:, None, 12:], (4, 6, 3)))
    np.testing.assert_array_equal(pair.reference.to_numpy(rback), rows[:, :12])


def test_one_hot(pair):
    """Codes U[0, C), the edge C itself (a draw rounded up) included, as one-hot blocks."""
    codes = np.concatenate([pair.uniform(9, high=4.0), np.array([4.0, 0.0, 3.999], pair.dtype)])
    (rcodes, rout), (fcodes, fout) = pair.both(codes, pair.normal(12, 7))
    pair.reference.one_hot(rcodes, rout, 2, 4)
    pair.backend.one_hot(fcodes, fout, 2, 4)
    pair.assert_close([rout], [fout])
    expected = np.eye(4)[np.minimum(np.floor(codes), 3).astype(int)]
    np.testing.assert_array_equal(pair.reference.to_numpy(rout)[:, 2:6], expected)


def test_batchnorm_train_and_eval(pair):
    x = pair.normal(30, 17, scale=3.0) + 2.0
    gamma, beta = pair.normal(17), pair.normal(17)
    empty = [np.zeros((30, 17), pair.dtype), np.zeros((30, 17), pair.dtype),
             np.zeros(17, pair.dtype)]
    running = [pair.normal(17), pair.uniform(17, low=0.5, high=2.0)]
    ref, fast = pair.both(x, gamma, beta, *empty, *running)
    pair.reference.batchnorm_train(*ref, momentum=0.8, eps=1e-3)
    pair.backend.batchnorm_train(*fast, momentum=0.8, eps=1e-3)
    pair.assert_close(ref, fast)           # y, xhat, invstd and the running statistics

    (rx, rg, rb, rm, rv, ry), (fx, fg, fb, fm, fv, fy) = pair.both(
        x, gamma, beta, *running, np.zeros((30, 17), pair.dtype))
    pair.reference.batchnorm_eval(rx, rg, rb, ry, rm, rv, 1e-3)
    pair.backend.batchnorm_eval(fx, fg, fb, fy, fm, fv, 1e-3)
    pair.assert_close([ry], [fy])


@pytest.mark.parametrize("input_grad", [True, False])
def test_batchnorm_backward(pair, input_grad):
    xhat = pair.normal(30, 17)
    xhat -= xhat.mean(axis=0)
    xhat /= np.sqrt((xhat**2).mean(axis=0))
    dx = np.zeros((30, 17), pair.dtype) if input_grad else None
    ref, fast = pair.both(pair.normal(30, 17), xhat, pair.normal(17),
                          pair.uniform(17, low=0.5, high=2.0), np.zeros(17, pair.dtype),
                          np.zeros(17, pair.dtype), dx)
    pair.reference.batchnorm_backward(*ref)
    pair.backend.batchnorm_backward(*fast)
    pair.assert_close(ref, fast)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_update(pair, momentum):
    ref, fast = pair.both(pair.normal(1000), pair.normal(1000), pair.normal(1000))
    for _ in range(3):
        pair.reference.sgd_update(*ref, lr=0.05, momentum=momentum)
        pair.backend.sgd_update(*fast, lr=0.05, momentum=momentum)
    pair.assert_close(ref, fast)


def test_adam_update(pair):
    ref, fast = pair.both(pair.normal(1000), pair.normal(1000, scale=1e-2),
                          np.zeros(1000, pair.dtype), np.zeros(1000, pair.dtype))
    for step in range(1, 4):
        pair.reference.adam_update(*ref, lr=1e-3, beta1=0.5, beta2=0.999, eps=1e-8, step=step)
        pair.backend.adam_update(*fast, lr=1e-3, beta1=0.5, beta2=0.999, eps=1e-8, step=step)
    pair.assert_close(ref, fast)


def test_ema_update(pair):
    ref, fast = pair.both(pair.normal(1000), pair.normal(1000))
    for _ in range(3):
        pair.reference.ema_update(*ref, decay=0.99)
        pair.backend.ema_update(*fast, decay=0.99)
    pair.assert_close(ref, fast)


GEOMETRIES = [ConvGeometry(5, 7, 3, 3, 1), ConvGeometry(5, 7, 3, 3, 2), ConvGeometry(6, 4, 2, 3, 2),
              ConvGeometry(4, 6, 2, 4, 1), ConvGeometry(3, 3, 5, 1, 1),
              ConvGeometry(28, 28, 1, 4, 2), ConvGeometry(9, 8, 2, 5, 2)]
"""Windows wholly inside the image and over its edges, every padding; the last two: the
one-channel layers of fast-dcgan, and an odd kernel of stride 2 over an odd and an even side."""


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_and_col2im(pair, geometry):
    g, n = geometry, 3
    rows = n * g.out_height * g.out_width
    x, cols = pair.normal(n, g.height * g.width * g.channels), pair.normal(rows, g.patch_size)
    (rx, rcols, rdx), (fx, fcols, fdx) = pair.both(x, np.full((rows, g.patch_size), np.nan,
                                                              pair.dtype), np.full_like(x, np.nan))
    pair.reference.im2col(rx, g, rcols)
    pair.backend.im2col(fx, g, fcols)
    (rc,), (fc,) = pair.both(cols)
    pair.reference.col2im(rc, g, rdx)
    pair.backend.col2im(fc, g, fdx)
    pair.assert_close([rcols, rdx], [fcols, fdx])


def test_upsample2x_and_backward(pair):
    shape = (3, 5, 4)
    x, dy = pair.normal(2, 60), pair.normal(2, 240)
    (rx, ry, rdy, rdx), (fx, fy, fdy, fdx) = pair.both(x, np.zeros((2, 240), pair.dtype), dy,
                                                       np.zeros((2, 60), pair.dtype))
    pair.reference.upsample2x(rx, shape, ry)
    pair.backend.upsample2x(fx, shape, fy)
    pair.reference.upsample2x_backward(rdy, shape, rdx)
    pair.backend.upsample2x_backward(fdy, shape, fdx)
    pair.assert_close([ry, rdx], [fy, fdx])


# ------------------------------------------------------------------ whole training steps
# After N steps, the fast backend's parameters must differ from the reference's by a small
# fraction of how far training moved them: ||p_fast - p_ref|| <= params ||p_ref - p_start||;
# losses, D outputs and batch-norm running statistics agree within ``stats`` (absolute and
# relative): tolerances.STEPS, which says why its values are safe.

SMALL = {  # small widths keep the 20-step runs fast; each preset keeps its layer kinds
    "numpy-mlp": {"g_hidden": (32,), "d_hidden": (32,)},
    "keras-mlp": {"latent_dim": 16, "g_hidden": (32, 48, 64), "d_hidden": (48, 32)},
    "numpy-adam": {"g_hidden": (32, 48), "d_hidden": (32,)},
    "pytorch-vanilla": {"g_hidden": (32, 48, 64), "d_hidden": (64, 48, 32)},
    "tiny": {},
}


def _train(backend, preset: str, dtype: str, steps: int, data_dim: int, **overrides):
    gan = GAN.from_preset(preset, backend=backend, dtype=dtype, seed=3, data_dim=data_dim,
                          **overrides)
    start = [backend.to_numpy(net.params.data).copy() for net in (gan.generator,
                                                                  gan.discriminator)]
    data = np.random.default_rng(4).uniform(-1, 1, (steps, gan.k * gan.batch_size, data_dim))
    if gan.num_classes:                   # each row's one-hot label after its features
        labels = np.random.default_rng(5).integers(0, gan.num_classes, data.shape[:2])
        data = np.concatenate([data, np.eye(gan.num_classes)[labels]], axis=2)
    history = [gan.train_step(batch) for batch in data]
    end = [backend.to_numpy(net.params.data).copy() for net in (gan.generator,
                                                                gan.discriminator)]
    buffers = {n: backend.to_numpy(a).copy() for n, a in gan.generator.buffers().items()}
    return start, end, history, buffers


def _assert_same_training(fast_backend, reference, preset, dtype, steps, data_dim, **kw):
    start, ref_end, ref_history, ref_buffers = _train(reference, preset, dtype, steps,
                                                      data_dim, **kw)
    fast_start, fast_end, fast_history, fast_buffers = _train(fast_backend, preset, dtype,
                                                              steps, data_dim, **kw)
    for a, b in zip(start, fast_start, strict=True):
        np.testing.assert_array_equal(a, b)                    # same initial weights
    tol = tolerances.steps(dtype)
    for name, first, ref, fast in zip(("generator", "discriminator"), start, ref_end, fast_end,
                                      strict=True):
        moved = np.linalg.norm(ref.astype(float) - first)
        gap = np.linalg.norm(fast.astype(float) - ref)
        assert moved > 0
        assert gap <= tol["params"] * moved, f"{name}: |fast - ref| = {gap:.3g}, moved {moved:.3g}"
    for ref_stats, fast_stats in zip(ref_history, fast_history, strict=True):
        for key, value in ref_stats.items():
            assert fast_stats[key] == pytest.approx(value, rel=tol["stats"], abs=tol["stats"])
    for name, value in ref_buffers.items():
        np.testing.assert_allclose(fast_buffers[name], value, rtol=tol["stats"],
                                   atol=tol["stats"])


@pytest.mark.parametrize("preset", list(SMALL))
def test_twenty_steps_of_each_preset(fast_backend, reference, preset, dtype):
    _assert_same_training(fast_backend, reference, preset, dtype, steps=20, data_dim=24,
                          batch_size=16, **SMALL[preset])


# In float64 (as the full-size steps below): in float32 the least-squares run drifted past the
# step tolerance under OPENBLAS_CORETYPE=Haswell (|fast - ref| 2.8e-4 after G moved 0.19):
# Adam turns rounding noise in near-zero gradient entries into full +-lr steps. The float32
# score_loss kernel itself is compared at its shapes by the kernel tests.
@pytest.mark.parametrize("loss", ["hinge", "least_squares"])
def test_twenty_steps_of_each_loss(fast_backend, reference, loss):
    _assert_same_training(fast_backend, reference, "pytorch-vanilla", "float64", steps=20,
                          data_dim=24, batch_size=16, d_loss=loss, g_loss=loss,
                          **SMALL["pytorch-vanilla"])


def test_twenty_steps_with_spectral_norm(fast_backend, reference, dtype):
    _assert_same_training(fast_backend, reference, "pytorch-vanilla", dtype, steps=20,
                          data_dim=24, batch_size=16, spectral_norm=True,
                          **SMALL["pytorch-vanilla"])


def test_twenty_steps_with_the_r1_penalty(fast_backend, reference, dtype):
    """A lazy R1 penalty (every 2nd D step) through dropout and spectral normalisation."""
    _assert_same_training(fast_backend, reference, "pytorch-vanilla", dtype, steps=20,
                          data_dim=24, batch_size=16, r1_gamma=1.0, r1_every=2,
                          spectral_norm=True, **SMALL["pytorch-vanilla"])


@pytest.mark.parametrize("projection", [False, True], ids=["concatenated", "projection"])
def test_twenty_steps_of_a_conditional_gan(fast_backend, reference, dtype, projection):
    """Labels beside G's noise and D's input, or through D's projection, with spectral norm
    under the projection: the fake labels come from the noise stream on every backend."""
    _assert_same_training(fast_backend, reference, "pytorch-vanilla", dtype, steps=20,
                          data_dim=24, batch_size=16, conditional=True, num_classes=5,
                          projection=projection, spectral_norm=projection,
                          **SMALL["pytorch-vanilla"])


# keras-dcgan's generator has convolutions followed by batch norm, whose biases have a true
# gradient of exactly 0 (the norm subtracts the mean): what a backend computes there is
# rounding noise, and Adam turns noise of either sign into a full +-lr step. SGD keeps the
# noise at its size, so these runs compare the steps themselves.
DCGAN_SGD = {"g_optimizer": SGD(0.01, momentum=0.5), "d_optimizer": SGD(0.01, momentum=0.5)}


@pytest.mark.parametrize("options", [{}, {"spectral_norm": True},
                                     {"conditional": True, "num_classes": 3}],
                         ids=["plain", "spectral-norm", "label-maps"])
def test_five_steps_of_a_small_dcgan(fast_backend, reference, dtype, options):
    """keras-dcgan's layers (conv, upsampling, per-channel batch norm) with few channels; with
    D's convolutions spectrally normalised; conditional, its D reading the labels as
    channels."""
    _assert_same_training(fast_backend, reference, "keras-dcgan", dtype, steps=5, data_dim=64,
                          batch_size=8, latent_dim=8, g_filters=(8, 6, 4), d_filters=(4, 6, 8),
                          **DCGAN_SGD, **options)


@pytest.mark.parametrize("options", [
    {}, {"discriminator": transposed_discriminator(8, (4, 4, 6)), "spectral_norm": True,
         "r1_gamma": 1.0}], ids=["generator", "discriminator-spectral-norm-r1"])
def test_five_steps_with_transposed_convolutions(fast_backend, reference, dtype, options):
    """A generator of transposed convolutions (and batch norm) against keras-dcgan's small D;
    then a D whose first layer is one too, spectrally normalised, with the R1 penalty through
    it (its weight gradients and second-order pass)."""
    _assert_same_training(fast_backend, reference, "keras-dcgan", dtype, steps=5, data_dim=64,
                          batch_size=8, latent_dim=8, d_filters=(4, 6, 8),
                          generator=transposed_generator(8, (8, 6)), **DCGAN_SGD, **options)


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_five_steps_of_a_small_fast_dcgan(fast_backend, reference, dtype, upsample):
    """fast-dcgan's layers (its batch norm after Dense and after each hidden convolution, a
    stride-1 convolution at the smallest size) with few channels, each way of doubling."""
    _assert_same_training(fast_backend, reference, "fast-dcgan", dtype, steps=5, data_dim=64,
                          batch_size=8, latent_dim=8, g_filters=(8, 6, 4), d_filters=(4, 6, 6),
                          upsample=upsample, **DCGAN_SGD)


# The full-size whole steps run in float64 (see tolerances.STEPS, "kinks"): with 10^5 to 10^6
# pre-activations a step, some land within float32 rounding of a (Leaky)ReLU's kink, and the
# two backends then take different derivatives there. Their float32 kernels are compared one
# by one at these shapes by the kernel tests above.
def test_full_size_keras_dcgan_step(fast_backend, reference):
    """The benchmark's DCGAN (32 x 32 x 1, every channel count) at batch 8: one step."""
    _assert_same_training(fast_backend, reference, "keras-dcgan", "float64", steps=1,
                          data_dim=1024, batch_size=8, **DCGAN_SGD)


def test_full_size_pytorch_vanilla(fast_backend, reference):
    """The benchmark's shape (784 features, batch 100, 2.9M parameters), a few steps."""
    _assert_same_training(fast_backend, reference, "pytorch-vanilla", "float64", steps=3,
                          data_dim=784)
