"""Finite-difference proofs of every hand-derived backward, on every backend that runs here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.gradcheck import check_gradient, slot_names
from support.lanes import convolution_lanes
from support.small_presets import transposed_config

from fastgan import GAN, MLP, BatchNorm, Dense, Dropout
from fastgan.backends.base import (
    ACTIVATION_CODES,
    HINGE,
    IDENTITY,
    LINEAR,
    SQUARED,
    ConvGeometry,
)
from fastgan.nn.layers import ConvTranspose2DLayer
from fastgan.nn.losses import D_LOSSES, G_LOSSES, discriminator_loss, generator_loss
from fastgan.nn.specs import (
    Activation,
    Conv2D,
    ConvTranspose2D,
    Flatten,
    Reshape,
    UpSampling2D,
)


def _random_input(backend, rows: int, cols: int, seed: int = 1):
    return backend.asarray(np.random.default_rng(seed).standard_normal((rows, cols)), "float64")


def _upstream(net: MLP, rows: int, seed: int = 2) -> np.ndarray:
    """Random weights w: the test loss is sum(w * net(x)), so dL/dy = w."""
    return np.random.default_rng(seed).standard_normal((rows, net.out_features))


def _weighted_sum_loss(net: MLP, x, weights: np.ndarray, rng_state: dict | None = None):
    backend = net.backend

    def loss() -> float:
        if rng_state is not None:
            net.dropout_rng.set_state(rng_state)          # the same dropout mask every time
        return float((backend.to_numpy(net.forward(x, training=True)) * weights).sum())

    return loss


def _analytic(net: MLP, x, weights: np.ndarray, rng_state: dict | None = None):
    """Run forward + backward once; return (param grads copy, input grad copy)."""
    backend = net.backend
    if rng_state is not None:
        net.dropout_rng.set_state(rng_state)
    net.forward(x, training=True)
    dx = net.backward(backend.asarray(weights.copy(), "float64"), input_grad=True)  # overwritten
    return backend.asarray(backend.to_numpy(net.params.grad).copy()), backend.to_numpy(dx).copy()


def _check_net(net: MLP, x, rows: int, dropout: bool = False) -> None:
    backend = net.backend
    weights = _upstream(net, rows)
    state = net.dropout_rng.get_state() if dropout else None
    grad, dx = _analytic(net, x, weights, state)
    loss = _weighted_sum_loss(net, x, weights, state)
    check_gradient(loss, net.params.data, grad, backend, names=slot_names(net.params))
    check_gradient(loss, x, backend.asarray(dx), backend)


@pytest.mark.parametrize("activation", list(ACTIVATION_CODES))
def test_dense_with_each_activation(backend, activation):
    net = MLP([Dense(5, activation, alpha=0.1)], in_features=4, backend=backend,
              dtype="float64", seed=3)
    x = _random_input(backend, 6, 4)
    dense = net.layers[0]
    pre = backend.to_numpy(x) @ backend.to_numpy(dense.W) + backend.to_numpy(dense.b)
    assert np.abs(pre).min() > 1e-3, "input too close to an activation kink: pick another seed"
    _check_net(net, x, 6)


def test_stacked_dense_layers(backend):
    net = MLP([Dense(7, "leaky_relu", alpha=0.2, init="torch_default"),
               Dense(6, "tanh", init="glorot_uniform"), Dense(3, "sigmoid")],
              in_features=5, backend=backend, dtype="float64", seed=4)
    _check_net(net, _random_input(backend, 8, 5), 8)


def test_dropout_with_fixed_mask(backend):
    net = MLP([Dense(9, "tanh"), Dropout(0.4), Dense(2)], in_features=4, backend=backend,
              dtype="float64", seed=5)
    _check_net(net, _random_input(backend, 7, 4), 7, dropout=True)


def test_spectral_dense_with_u_frozen(backend):
    """Through W / (v^T W u) with u and v fixed (forward never moves them), every parameter
    and the input; a few power iterations first make sigma a real estimate."""
    net = MLP([Dense(7, "leaky_relu", alpha=0.2), Dense(6, "tanh"), Dense(3)], in_features=5,
              backend=backend, dtype="float64", seed=4, spectral_norm=True)
    for _ in range(3):
        net.power_iteration()
    _check_net(net, _random_input(backend, 8, 5), 8)


def test_batchnorm_training_mode(backend):
    """w.r.t. the input, gamma and beta (gamma/beta moved off 1/0 so every term matters)."""
    net = MLP([Dense(6, "tanh"), BatchNorm(momentum=0.8, eps=1e-3), Dense(3, "tanh")],
              in_features=4, backend=backend, dtype="float64", seed=6)
    host = backend.to_numpy(net.params.data).copy()
    for name in ("1.batchnorm.gamma", "1.batchnorm.beta"):
        slot = net.params.slots[name]
        host[slot.offset: slot.offset + slot.size] += np.linspace(-0.5, 0.5, slot.size)
    backend.copy(host, net.params.data)
    _check_net(net, _random_input(backend, 10, 4), 10)


@pytest.mark.parametrize("target,scale", [(1.0, 0.25), (0.9, 0.25), (0.0, -0.25)])
def test_bce_with_logits(backend, target, scale):
    logits = backend.asarray(np.random.default_rng(7).standard_normal((4, 1)) * 3, "float64")
    grad = backend.zeros((4, 1), "float64")
    stats = backend.zeros((2,), "float64")

    def loss() -> float:
        backend.bce_with_logits(logits, target, scale, grad, stats)
        return float(backend.to_numpy(stats)[0])

    loss()
    analytic = backend.asarray(backend.to_numpy(grad).copy())
    check_gradient(loss, logits, analytic, backend)


def test_bce_is_stable_for_large_logits(backend):
    logits = backend.asarray(np.array([[-800.0], [800.0]]), "float64")
    grad, stats = backend.zeros((2, 1), "float64"), backend.zeros((2,), "float64")
    backend.bce_with_logits(logits, 1.0, 0.5, grad, stats)
    assert np.isclose(backend.to_numpy(stats)[0], 400.0)       # softplus(800)/2, no overflow
    np.testing.assert_allclose(backend.to_numpy(grad).ravel(), [-0.5, 0.0])


# Logits 0.4 or more from the hinge's kinks at +-1, so central differences never straddle one.
SCORE_LOGITS = np.array([[-2.5], [-0.4], [0.3], [1.7], [0.6], [-1.4]])


@pytest.mark.parametrize("kind,target,scale", [
    (HINGE, 1.0, 1 / 6), (HINGE, -1.0, 1 / 6), (SQUARED, 1.0, 1 / 6), (SQUARED, 0.9, 1 / 6),
    (SQUARED, 0.0, 1 / 6), (LINEAR, 0.0, -1 / 6)], ids=["hinge-real", "hinge-fake",
                                                         "squares-1", "squares-0.9",
                                                         "squares-0", "linear"])
def test_score_loss(backend, kind, target, scale):
    logits = backend.asarray(SCORE_LOGITS, "float64")
    grad = backend.zeros((6, 1), "float64")
    stats = backend.zeros((2,), "float64")

    def loss() -> float:
        backend.score_loss(logits, kind, target, scale, grad, stats)
        return float(backend.to_numpy(stats)[0])

    loss()
    analytic = backend.asarray(backend.to_numpy(grad).copy())
    check_gradient(loss, logits, analytic, backend)


def test_score_loss_values(backend):
    """The loss values and D's mean probability, against the formulas written out."""
    logits = backend.asarray(SCORE_LOGITS, "float64")
    grad, stats = backend.zeros((6, 1), "float64"), backend.zeros((2,), "float64")
    values = SCORE_LOGITS.ravel()
    expected = {(HINGE, 1.0): np.maximum(0, 1 - values), (HINGE, -1.0): np.maximum(0, 1 + values),
                (SQUARED, 0.9): (values - 0.9) ** 2 / 2, (LINEAR, 0.0): values}
    probability = (1 / (1 + np.exp(-values))).mean()
    for (kind, target), losses in expected.items():
        backend.score_loss(logits, kind, target, 0.5, grad, stats)
        np.testing.assert_allclose(backend.to_numpy(stats), [0.5 * losses.sum(), probability])


def _tiny_gan(backend, g_loss: str = "non_saturating", smoothing: float = 0.0,
              d_loss: str = "bce", spectral_norm: bool = False, **conditional) -> GAN:
    from fastgan import Adam, GANConfig
    config = GANConfig(
        latent_dim=3,
        generator=(Dense(6, "leaky_relu", alpha=0.2), BatchNorm(), Dense(5, "tanh")),
        discriminator=(Dense(7, "leaky_relu", alpha=0.2), Dropout(0.3), Dense(4, "tanh"),
                       Dense(1)),
        g_optimizer=Adam(), d_optimizer=Adam(), d_loss=d_loss, g_loss=g_loss,
        label_smoothing=smoothing, spectral_norm=spectral_norm, **conditional)
    return GAN(config, backend=backend, dtype="float64", seed=10)


CONDITIONAL = {"concatenated": {"conditional": True, "num_classes": 3},
               "projection": {"conditional": True, "num_classes": 3, "projection": True}}


def labelled_real_rows(gan: GAN, rows: int = 6) -> np.ndarray:
    """``rows`` real samples of the tiny GAN with one-hot labels of every class after them."""
    x = np.random.default_rng(11).uniform(-1, 1, (rows, gan.data_dim))
    return np.concatenate([x, np.eye(gan.num_classes)[np.arange(rows) % gan.num_classes]], 1)


def check_conditional_gan(backend, **options) -> None:
    """d L_D / d theta_D (with the class embedding under projection) and d L_G / d theta_G
    through D, of a conditional tiny GAN on ``backend``."""
    gan = _tiny_gan(backend, **options)
    gan.discriminator.power_iteration()
    check_discriminator_loss_gradient(gan, labelled_real_rows(gan))
    check_generator_loss_gradient(gan, batch=6)


def _frozen_randomness(gan: GAN):
    """Restore noise and dropout streams before each evaluation: the loss is then a fixed
    function of the parameters."""
    states = (gan.noise_rng.get_state(), gan.generator.dropout_rng.get_state(),
              gan.discriminator.dropout_rng.get_state())

    def restore() -> None:
        gan.noise_rng.set_state(states[0])
        gan.generator.dropout_rng.set_state(states[1])
        gan.discriminator.dropout_rng.set_state(states[2])

    return restore


def check_discriminator_loss_gradient(gan: GAN, real: np.ndarray) -> None:
    """FD check of d L_D / d theta_D (real and fake halves, dropout frozen) on ``real``."""
    backend, ws = gan.backend, gan.workspace(len(real))
    restore = _frozen_randomness(gan)

    def loss() -> float:
        restore()
        gan.discriminator_gradients(real, ws)
        stats = backend.to_numpy(gan.stats)
        return float(stats[0] + stats[2])

    loss()
    D = gan.discriminator
    analytic = backend.asarray(backend.to_numpy(D.params.grad).copy())
    check_gradient(loss, D.params.data, analytic, backend, names=slot_names(D.params))


def check_generator_loss_gradient(gan: GAN, batch: int) -> None:
    """FD check of d L_G / d theta_G through D, for ``batch`` fresh latent vectors."""
    backend, ws = gan.backend, gan.workspace(batch)
    restore = _frozen_randomness(gan)

    def loss() -> float:
        restore()
        gan.generator_gradients(ws)
        return float(backend.to_numpy(gan.stats)[4])

    loss()
    G = gan.generator
    analytic = backend.asarray(backend.to_numpy(G.params.grad).copy())
    check_gradient(loss, G.params.data, analytic, backend, names=slot_names(G.params))


@pytest.mark.parametrize("d_loss,smoothing", [(d_loss, 0.0) for d_loss in D_LOSSES]
                         + [("bce", 0.1), ("least_squares", 0.1)])
def test_discriminator_loss_end_to_end(backend, d_loss, smoothing):
    """d L_D / d theta_D for every D parameter, through dropout, real and fake halves."""
    gan = _tiny_gan(backend, smoothing=smoothing, d_loss=d_loss)
    real = np.random.default_rng(11).uniform(-1, 1, (6, 5))
    check_discriminator_loss_gradient(gan, real)


@pytest.mark.parametrize("g_loss", G_LOSSES)
def test_generator_loss_through_discriminator(backend, g_loss):
    """d L_G / d theta_G for every G parameter: the cross-network path through D."""
    gan = _tiny_gan(backend, g_loss=g_loss)
    check_generator_loss_gradient(gan, batch=6)


def test_spectrally_normalised_discriminator_end_to_end(backend):
    """d L_D / d theta_D and d L_G / d theta_G through a D whose Dense layers are all
    spectrally normalised (u frozen: the step's power iteration is not part of the loss)."""
    gan = _tiny_gan(backend, d_loss="hinge", g_loss="hinge", spectral_norm=True)
    gan.discriminator.power_iteration()
    check_discriminator_loss_gradient(gan, np.random.default_rng(11).uniform(-1, 1, (6, 5)))
    check_generator_loss_gradient(gan, batch=6)


@pytest.mark.parametrize("labels", list(CONDITIONAL))
def test_conditional_gan_end_to_end(backend, labels):
    """Every D parameter (the projection's class embedding included) and every G parameter
    (the label rows of G's first weight included) of a conditional GAN."""
    check_conditional_gan(backend, **CONDITIONAL[labels])


def test_projection_with_spectral_norm_and_hinge(backend):
    """The projection layer around a spectrally normalised last layer, hinge losses."""
    check_conditional_gan(backend, d_loss="hinge", g_loss="hinge", spectral_norm=True,
                          **CONDITIONAL["projection"])


def test_checker_catches_a_dropped_projection_term(backend, monkeypatch):
    """A projection backward that forgets ``dh += G E``: the G-loss check must fail."""
    from fastgan.nn.projection import ProjectionLayer
    original = ProjectionLayer.backward

    def forgetful(self, dy, input_grad, param_grads):
        self.E, saved = self.backend.zeros(self.E.shape, self.dtype), self.E
        try:
            return original(self, dy, input_grad, param_grads)
        finally:
            self.E = saved

    monkeypatch.setattr(ProjectionLayer, "backward", forgetful)
    gan = _tiny_gan(backend, **CONDITIONAL["projection"])
    with pytest.raises(AssertionError, match="relative error"):
        check_generator_loss_gradient(gan, batch=6)


def test_loss_functions_fill_stats(backend):
    logits = backend.asarray(np.array([[2.0], [-1.0], [0.5], [-3.0]]), "float64")
    grad, stats = backend.zeros((4, 1), "float64"), backend.zeros((6,), "float64")
    discriminator_loss(backend, "bce", logits, grad, stats[0:4])
    generator_loss(backend, "non_saturating", logits[2:], grad[2:], stats[4:6])
    s = backend.to_numpy(stats)
    sig = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5, -3.0])))
    np.testing.assert_allclose(s[1], sig[:2].mean())
    np.testing.assert_allclose(s[3], sig[2:].mean())
    np.testing.assert_allclose(s[0], -np.log(sig[:2]).mean())
    np.testing.assert_allclose(s[2], -np.log(1 - sig[2:]).mean())
    np.testing.assert_allclose(s[4], -np.log(sig[2:]).mean())


def test_checker_catches_a_planted_wrong_gradient(backend, monkeypatch):
    """Drop the factor (1 - y^2) of tanh's derivative: the checker must fail."""
    net = MLP([Dense(5, "tanh")], in_features=4, backend=backend, dtype="float64", seed=12)
    x = _random_input(backend, 6, 4)
    weights = _upstream(net, 6)
    original = type(backend).act_backward

    def wrong(self, dy, y, act, alpha, dbias=None):
        return original(self, dy, y, 0, alpha, dbias)     # as if the activation were identity

    monkeypatch.setattr(type(backend), "act_backward", wrong)
    grad, _ = _analytic(net, x, weights)
    with pytest.raises(AssertionError, match="relative error"):
        check_gradient(_weighted_sum_loss(net, x, weights), net.params.data, grad, backend,
                       names=slot_names(net.params))


# ------------------------------------------------------------------ spatial layers (seed 003)
def _perturb_batchnorm(net: MLP) -> None:
    """Move every gamma/beta off 1/0 so that each term of the backward matters."""
    host = net.backend.to_numpy(net.params.data).copy()
    for name, slot in net.params.slots.items():
        if name.endswith((".gamma", ".beta")):
            host[slot.offset: slot.offset + slot.size] += np.linspace(-0.5, 0.5, slot.size)
    net.backend.copy(host, net.params.data)


@pytest.fixture(params=["whole-batch", "per-sample"])
def im2col_slices(request, backend, monkeypatch):
    """Convolutions gather the whole batch's patches at once, or one sample at a time."""
    limit = None if request.param == "whole-batch" else 1
    monkeypatch.setattr(type(backend), "im2col_bytes", limit)
    return request.param


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("image", [(5, 7, 3), (6, 4, 3)], ids=["5x7", "6x4"])
def test_conv2d(backend, image, stride, im2col_slices):
    """Odd and even sides: stride 2 on an even side pads only the bottom/right."""
    net = MLP([Reshape(image), Conv2D(2, stride=stride, activation="leaky_relu", alpha=0.2,
                                      init="torch_default")],
              in_features=int(np.prod(image)), backend=backend, dtype="float64", seed=13)
    _check_net(net, _random_input(backend, 3, int(np.prod(image))), 3)


def test_conv2d_kernel_1_and_4(backend):
    net = MLP([Reshape((4, 5, 2)), Conv2D(3, kernel=1, activation="tanh"),
               Conv2D(2, kernel=4, stride=2, init="he_normal")],
              in_features=40, backend=backend, dtype="float64", seed=14)
    _check_net(net, _random_input(backend, 2, 40), 2)


def test_upsampling2d(backend):
    net = MLP([Reshape((2, 3, 2)), UpSampling2D(), Conv2D(2, activation="tanh")],
              in_features=12, backend=backend, dtype="float64", seed=15)
    _check_net(net, _random_input(backend, 3, 12), 3)


TRANSPOSED_CASES = {"k4-s2": (4, 2), "k3-s2": (3, 2), "k1-s2": (1, 2), "k3-s1": (3, 1)}
"""(kernel, stride) of ConvTranspose2D: the padding of the "same" convolution it is the adjoint
of split evenly (k 4), unevenly (k 3: none above, one below), absent with output rows that
convolution never reads (k 1), and stride 1."""


def check_conv_transpose(backend, kernel: int, stride: int) -> None:
    """d/d(input) and d/d(every parameter) of one ConvTranspose2D (LeakyReLU, a bias drawn
    away from 0) on 3 x 2 x 3 images."""
    net = MLP([Reshape((3, 2, 3)), ConvTranspose2D(2, kernel=kernel, stride=stride,
                                                   activation="leaky_relu", alpha=0.2,
                                                   init="torch_default")],
              in_features=18, backend=backend, dtype="float64", seed=22)
    _check_net(net, _random_input(backend, 3, 18), 3)


def check_transposed_stack(backend, spectral_norm: bool = False) -> None:
    """A transposed convolution (tanh) feeding a strided Conv2D and a Dense layer, with every
    weight spectrally normalised (u frozen) when ``spectral_norm``."""
    net = MLP([Reshape((3, 2, 2)), ConvTranspose2D(3, activation="tanh"),
               Conv2D(2, stride=2, activation="leaky_relu", alpha=0.2), Flatten(), Dense(2)],
              in_features=12, backend=backend, dtype="float64", seed=23,
              spectral_norm=spectral_norm)
    for _ in range(3):
        net.power_iteration()
    _check_net(net, _random_input(backend, 3, 12), 3)


def check_transposed_gan(backend) -> None:
    """d L_D / d theta_D and d L_G / d theta_G (through D) of keras-dcgan's small D with a
    generator of two transposed convolutions and batch norm (gamma and beta moved)."""
    gan = GAN(transposed_config(latent_dim=5), backend=backend, dtype="float64", seed=19)
    _perturb_batchnorm(gan.generator)
    check_discriminator_loss_gradient(gan, np.random.default_rng(20).uniform(-1, 1, (3, 64)))
    check_generator_loss_gradient(gan, batch=3)


@pytest.mark.parametrize("kernel,stride", list(TRANSPOSED_CASES.values()),
                         ids=list(TRANSPOSED_CASES))
def test_conv_transpose2d(backend, kernel, stride, im2col_slices):
    check_conv_transpose(backend, kernel, stride)


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "spectral-norm"])
def test_conv_transpose2d_before_a_convolution(backend, spectral_norm, im2col_slices):
    check_transposed_stack(backend, spectral_norm)


def test_transposed_generator_gan_end_to_end(backend, im2col_slices):
    check_transposed_gan(backend)


class _PaddedTheOtherWay(ConvGeometry):
    """A geometry whose odd padding pixel goes above/left instead of below/right."""

    @property
    def pad_top(self) -> int:
        total = max((self.out_height - 1) * self.stride + self.kernel - self.height, 0)
        return total - super().pad_top

    @property
    def pad_left(self) -> int:
        total = max((self.out_width - 1) * self.stride + self.kernel - self.width, 0)
        return total - super().pad_left


PLANTED_CONV_TRANSPOSE_BUGS = {
    "forgotten-activation-derivative": ("act", lambda layer: IDENTITY),
    "dz-gathered-with-the-padding-flipped": (
        "geometry", lambda layer: _PaddedTheOtherWay(*dataclasses.astuple(layer.geometry))),
}
"""Wrong backwards of ConvTranspose2D: (the layer attribute its backward reads wrong, what
it reads instead): tanh's derivative dropped, or dcols = im2col(dz) taken at windows shifted
by the uneven padding (the transpose of a neighbouring map)."""


@pytest.mark.parametrize("bug", list(PLANTED_CONV_TRANSPOSE_BUGS))
def test_checker_catches_a_planted_conv_transpose_bug(backend, monkeypatch, bug):
    """The layer passes the check, then fails it with the bug planted in its backward."""
    net = MLP([Reshape((3, 2, 3)), ConvTranspose2D(2, kernel=3, activation="tanh",
                                                   init="torch_default")],
              in_features=18, backend=backend, dtype="float64", seed=24)
    x = _random_input(backend, 3, 18)
    _check_net(net, x, 3)
    name, wrong = PLANTED_CONV_TRANSPOSE_BUGS[bug]
    original = ConvTranspose2DLayer.backward

    def planted(self, dy, input_grad, param_grads):
        saved = getattr(self, name)
        setattr(self, name, wrong(self))
        try:
            return original(self, dy, input_grad, param_grads)
        finally:
            setattr(self, name, saved)

    monkeypatch.setattr(ConvTranspose2DLayer, "backward", planted)
    with pytest.raises(AssertionError, match="relative error"):
        _check_net(net, x, 3)


def test_spectral_conv2d_with_u_frozen(backend, im2col_slices):
    """Through convolutions whose (k^2 C, filters) weights are divided by sigma (u, v fixed),
    every parameter and the input."""
    net = MLP([Reshape((5, 4, 2)), Conv2D(3, activation="leaky_relu", alpha=0.2),
               Conv2D(2, stride=2, activation="tanh"), Flatten(), Dense(2)],
              in_features=40, backend=backend, dtype="float64", seed=21, spectral_norm=True)
    for _ in range(3):
        net.power_iteration()
    _check_net(net, _random_input(backend, 3, 40), 3)


def test_batchnorm2d_training_mode(backend):
    """Per-channel batch norm: w.r.t. the input, gamma and beta."""
    net = MLP([Reshape((3, 4, 2)), Conv2D(3), BatchNorm(momentum=0.8, eps=1e-3),
               Activation("tanh"), Flatten(), Dense(2)],
              in_features=24, backend=backend, dtype="float64", seed=16)
    _perturb_batchnorm(net)
    _check_net(net, _random_input(backend, 4, 24), 4)


@pytest.mark.parametrize("activation", list(ACTIVATION_CODES))
def test_activation_layer(backend, activation):
    net = MLP([Dense(5, init="glorot_uniform"), Activation(activation, alpha=0.1), Dense(2)],
              in_features=4, backend=backend, dtype="float64", seed=17)
    _check_net(net, _random_input(backend, 6, 4), 6)


def test_reshape_flatten_round_trip(backend):
    """The views move nothing: with them the network computes what it computes without."""
    x = _random_input(backend, 5, 4)
    with_views = MLP([Dense(12, "tanh"), Reshape((2, 3, 2)), Flatten(), Dense(2)],
                     in_features=4, backend=backend, dtype="float64", seed=18)
    plain = MLP([Dense(12, "tanh"), Dense(2)], in_features=4, backend=backend,
                dtype="float64", seed=18)
    np.testing.assert_array_equal(backend.to_numpy(with_views.forward(x)),
                                  backend.to_numpy(plain.forward(x)))
    _check_net(with_views, x, 5)


def _tiny_dcgan(backend, **options) -> GAN:
    """keras-dcgan with tiny channel counts on 8 x 8 images (``options``: GANConfig fields)."""
    gan = GAN.from_preset("keras-dcgan", backend=backend, dtype="float64", seed=19, data_dim=64,
                          latent_dim=5, g_filters=(4, 3, 2), d_filters=(2, 3, 4), **options)
    _perturb_batchnorm(gan.generator)
    return gan


def test_dcgan_discriminator_loss_end_to_end(backend, im2col_slices):
    gan = _tiny_dcgan(backend)
    real = np.random.default_rng(20).uniform(-1, 1, (3, 64))
    check_discriminator_loss_gradient(gan, real)


def test_dcgan_generator_loss_through_discriminator(backend, im2col_slices):
    gan = _tiny_dcgan(backend)
    check_generator_loss_gradient(gan, batch=3)


FAST_DCGAN_CASES = {"transposed-batch-k4": ("transposed", "batch", 4),
                    "nearest-none-k3": ("nearest", "none", 3)}
"""fast-dcgan's ways of doubling the image, normalisations and kernels, as gradient cases."""


def check_fast_dcgan(backend, upsample: str, norm: str, kernel: int) -> None:
    """d L_D / d theta_D and d L_G / d theta_G of a tiny fast-dcgan on 8 x 8 images, three G
    widths deep (a stride-1 convolution before the two that double the image); D three
    convolutions deep."""
    gan = GAN.from_preset("fast-dcgan", backend=backend, dtype="float64", seed=21, data_dim=64,
                          latent_dim=5, g_filters=(4, 3, 2), d_filters=(2, 3, 3), kernel=kernel,
                          upsample=upsample, norm=norm, alpha=0.3)
    _perturb_batchnorm(gan.generator)
    check_discriminator_loss_gradient(gan, np.random.default_rng(22).uniform(-1, 1, (3, 64)))
    check_generator_loss_gradient(gan, batch=3)


@pytest.mark.parametrize(("upsample", "norm", "kernel"), list(FAST_DCGAN_CASES.values()),
                         ids=list(FAST_DCGAN_CASES))
def test_fast_dcgan_end_to_end(backend, upsample, norm, kernel):
    check_fast_dcgan(backend, upsample, norm, kernel)


@pytest.mark.parametrize("lanes", [2, 3])
def test_fast_dcgan_on_lanes(backend, monkeypatch, lanes):
    """The same check with every convolution's batch shared among ``lanes`` threads one sample
    per slice: a lane sums several slices' weight gradients into its own, which the layer
    adds up."""
    with convolution_lanes(backend, monkeypatch, lanes):
        check_fast_dcgan(backend, *FAST_DCGAN_CASES["transposed-batch-k4"])


def test_spectrally_normalised_dcgan_end_to_end(backend):
    """d L_D / d theta_D and d L_G / d theta_G through keras-dcgan's D with its convolutions
    and its Dense logit spectrally normalised (u frozen)."""
    gan = _tiny_dcgan(backend, spectral_norm=True)
    gan.discriminator.power_iteration()
    check_discriminator_loss_gradient(gan, np.random.default_rng(20).uniform(-1, 1, (3, 64)))
    check_generator_loss_gradient(gan, batch=3)


def check_conditional_dcgan(backend, labels: str) -> None:
    """keras-dcgan conditional: labels beside G's noise (its first layer is Dense), and D
    reads them as constant channels of every pixel (label maps) or through the projection on
    its flattened convolution features; both losses end to end."""
    gan = _tiny_dcgan(backend, **CONDITIONAL[labels])
    check_discriminator_loss_gradient(gan, labelled_real_rows(gan, rows=3))
    check_generator_loss_gradient(gan, batch=3)


@pytest.mark.parametrize("labels", list(CONDITIONAL), ids=["label-maps", "projection"])
def test_conditional_dcgan(backend, labels):
    check_conditional_dcgan(backend, labels)
