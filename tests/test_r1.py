"""The R1 penalty's second-order gradient against finite differences of the penalty's value,
per layer and end to end, on every backend that runs here; its lazy schedule; its refusals."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from support.gradcheck import check_gradient, slot_names
from support.lanes import convolution_lanes

from fastgan import GAN, MLP, Adam, BatchNorm, Dense, Dropout, GANConfig
from fastgan.benchmarking.peer_rule import check_trainable
from fastgan.errors import ConfigError
from fastgan.nn.layers import DropoutLayer
from fastgan.nn.penalty import R1Penalty
from fastgan.nn.specs import Activation, Conv2D, ConvTranspose2D, Flatten, Reshape

GAMMA, EVERY = 3.0, 2


def _penalty_and_gradient(net: MLP, x, penalty: R1Penalty):
    """(the penalty's value as a function of the parameters, its analytic gradient), with the
    dropout masks of the first evaluation every time."""
    backend, state = net.backend, net.dropout_rng.get_state()

    def value() -> float:
        net.dropout_rng.set_state(state)
        penalty.accumulate(x)
        return penalty.value(x.shape[0])

    backend.copy(np.zeros(net.n_params), net.params.grad)
    value()
    net.finish_param_grads()
    return value, backend.asarray(backend.to_numpy(net.params.grad).copy())


def check_penalty(net: MLP, rows: int = 6) -> None:
    """d(every P)/d(theta) by central differences of every P, every parameter of ``net``."""
    backend = net.backend
    x = backend.asarray(np.random.default_rng(1).standard_normal((rows, net.in_features)),
                        "float64")
    value, grad = _penalty_and_gradient(net, x, R1Penalty(net, GAMMA, EVERY))
    assert np.abs(backend.to_numpy(grad)).max() > 1e-3, "a gradient of zero proves nothing"
    check_gradient(value, net.params.data, grad, backend, names=slot_names(net.params))


def _net(backend, layers, in_features: int = 5, seed: int = 3, **options) -> MLP:
    return MLP(layers, in_features=in_features, backend=backend, dtype="float64", seed=seed,
               **options)


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "identity"])
def test_through_dense_layers(backend, activation):
    check_penalty(_net(backend, [Dense(7, activation, alpha=0.2), Dense(6, activation,
                                                                        alpha=0.2), Dense(1)]))


def test_through_dropout_with_fixed_masks(backend):
    check_penalty(_net(backend, [Dense(8, "leaky_relu", alpha=0.2), Dropout(0.4),
                                 Dense(1)]))


def test_through_an_activation_layer(backend):
    check_penalty(_net(backend, [Dense(7), Activation("leaky_relu", alpha=0.1), Dense(1)]))


def test_through_spectrally_normalised_layers_with_u_frozen(backend):
    net = _net(backend, [Dense(7, "leaky_relu", alpha=0.2), Dropout(0.3),
                         Dense(6, "leaky_relu", alpha=0.2), Dense(1)], spectral_norm=True)
    for _ in range(3):
        net.power_iteration()
    check_penalty(net)


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "spectral-norm"])
def test_through_convolutions(backend, spectral_norm):
    net = _net(backend, [Reshape((4, 5, 2)), Conv2D(3, activation="leaky_relu", alpha=0.2),
                         Conv2D(2, stride=2, activation="leaky_relu", alpha=0.2), Flatten(),
                         Dense(1)], in_features=40, spectral_norm=spectral_norm)
    net.power_iteration()
    check_penalty(net, rows=3)


def transposed_penalty_net(backend, spectral_norm: bool = False) -> MLP:
    """A discriminator whose first layer is a transposed convolution (kernel 3: the uneven
    padding) before a strided Conv2D, LeakyReLU throughout, spectrally normalised when asked
    (a few power iterations first)."""
    net = _net(backend, [Reshape((3, 2, 2)), ConvTranspose2D(3, kernel=3, activation="leaky_relu",
                                                             alpha=0.2, init="torch_default"),
                         Conv2D(2, stride=2, activation="leaky_relu", alpha=0.2), Flatten(),
                         Dense(1)], in_features=12, spectral_norm=spectral_norm)
    for _ in range(3):
        net.power_iteration()
    return net


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "spectral-norm"])
def test_through_transposed_convolutions(backend, spectral_norm):
    check_penalty(transposed_penalty_net(backend, spectral_norm), rows=3)


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "spectral-norm"])
@pytest.mark.parametrize("lanes", [1, 2])
def test_through_convolutions_on_lanes(backend, monkeypatch, lanes, spectral_norm):
    """A transposed and a strided convolution with their batch one sample per slice, on one
    lane or two: each slice adds its part of dP/dW to its lane's sum (which spectral
    normalisation then takes through W / sigma)."""
    with convolution_lanes(backend, monkeypatch, lanes):
        check_penalty(transposed_penalty_net(backend, spectral_norm), rows=3)


def test_the_checker_catches_a_forgotten_dropout_mask(backend, monkeypatch):
    """A tangent that skips dropout's mask (``r`` passed on as it came) must fail."""
    net = _net(backend, [Dense(8, "leaky_relu", alpha=0.2), Dropout(0.4), Dense(1)])
    x = backend.asarray(np.random.default_rng(1).standard_normal((6, 5)), "float64")
    monkeypatch.setattr(DropoutLayer, "tangent", lambda self, r, output: r)
    value, grad = _penalty_and_gradient(net, x, R1Penalty(net, GAMMA, EVERY))
    with pytest.raises(AssertionError, match="relative error"):
        check_gradient(value, net.params.data, grad, backend, names=slot_names(net.params))


def r1_config(**options) -> GANConfig:
    """A small GAN whose D has dropout and LeakyReLU, with the R1 penalty."""
    settings = {"discriminator": (Dense(7, "leaky_relu", alpha=0.2), Dropout(0.3),
                                  Dense(4, "leaky_relu", alpha=0.2), Dense(1)),
                "d_loss": "hinge", "r1_gamma": GAMMA, "r1_every": EVERY, **options}
    return GANConfig(latent_dim=3,
                     generator=(Dense(6, "leaky_relu", alpha=0.2), BatchNorm(), Dense(5, "tanh")),
                     g_optimizer=Adam(), d_optimizer=Adam(), **settings)


def check_discriminator_step(gan: GAN) -> None:
    """d(L_D + every P)/d(theta_D) for every D parameter, through the GAN's D step on six
    real rows (noise and dropout streams restored before each evaluation)."""
    backend, D = gan.backend, gan.discriminator
    real = np.random.default_rng(11).uniform(-1, 1, (6, gan.data_dim))
    ws, streams = gan.workspace(6), gan.random_streams()
    states = {name: streams[name].get_state() for name in ("noise", "discriminator_dropout",
                                                           "generator_dropout")}

    def loss() -> float:
        for name, state in states.items():
            streams[name].set_state(state)
        gan.discriminator_gradients(real, ws)
        stats = backend.to_numpy(gan.stats)
        return float(stats[0] + stats[2]) + gan.r1.value(6)

    loss()
    analytic = backend.asarray(backend.to_numpy(D.params.grad).copy())
    check_gradient(loss, D.params.data, analytic, backend, names=slot_names(D.params))


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "spectral-norm"])
def test_discriminator_loss_with_the_penalty_end_to_end(backend, spectral_norm):
    gan = GAN(r1_config(spectral_norm=spectral_norm), backend=backend, dtype="float64", seed=10)
    gan.discriminator.power_iteration()
    check_discriminator_step(gan)


@pytest.mark.parametrize("lanes", [0, 1, 2], ids=["whole-batch", "one-lane", "two-lanes"])
def test_convolutional_discriminator_with_the_penalty_end_to_end(backend, monkeypatch, lanes):
    """keras-dcgan's D (three LeakyReLU convolutions, a Dense logit) on 8 x 8 images; its
    batch whole, or one sample per slice on one lane or two (the penalty's pass adds each
    slice's part to D's gradient, already holding the loss's)."""
    gan = GAN.from_preset("keras-dcgan", backend=backend, dtype="float64", seed=19, data_dim=64,
                          latent_dim=5, g_filters=(4, 3, 2), d_filters=(2, 3, 4),
                          r1_gamma=GAMMA, r1_every=EVERY)
    with convolution_lanes(backend, monkeypatch, lanes) if lanes else contextlib.nullcontext():
        check_discriminator_step(gan)


def _d_gradient(gan: GAN, real: np.ndarray, d_step: int) -> np.ndarray:
    """D's gradient in a D step whose count of earlier D updates is ``d_step``."""
    gan.d_optimizer.steps = d_step
    gan.discriminator_gradients(real, gan.workspace(len(real)))
    return gan.backend.to_numpy(gan.discriminator.params.grad).copy()


def test_a_lazy_penalty_acts_every_n_d_steps_scaled_by_n():
    """r1_every=3: D steps 0, 3, 6 carry the penalty at 3 gamma, the others none at all."""
    real = np.random.default_rng(5).uniform(-1, 1, (8, 5))
    lazy, scaled, none = (GAN(r1_config(r1_gamma=gamma, r1_every=every), dtype="float64",
                              seed=2)
                          for gamma, every in ((GAMMA, 3), (3 * GAMMA, 1), (0.0, 1)))
    for d_step in range(7):
        expected = scaled if d_step % 3 == 0 else none
        for gan in (lazy, expected):
            gan.discriminator.dropout_rng.set_state(none.discriminator.dropout_rng.get_state())
            gan.noise_rng.set_state(none.noise_rng.get_state())
        np.testing.assert_allclose(_d_gradient(lazy, real, d_step),
                                   _d_gradient(expected, real, d_step), rtol=1e-12, atol=1e-15)
    assert not np.allclose(_d_gradient(scaled, real, 1), _d_gradient(none, real, 1))


def test_training_counts_the_lazy_schedule_in_d_steps(monkeypatch):
    """k=2, r1_every=3, three steps: D steps 0..5, of which 0 and 3 carry the penalty."""
    applied = []
    original = R1Penalty.accumulate

    def counted(self, real):
        applied.append(gan.d_optimizer.steps)
        original(self, real)

    monkeypatch.setattr(R1Penalty, "accumulate", counted)
    gan = GAN(r1_config(r1_every=3, k=2, batch_size=4), seed=1)
    for _ in range(3):
        gan.step(np.random.default_rng(0).uniform(-1, 1, (8, 5)))
    assert applied == [0, 3]


def test_without_gamma_there_is_no_penalty_pass(monkeypatch):
    monkeypatch.setattr(R1Penalty, "accumulate", lambda self, real: pytest.fail("R1 ran"))
    gan = GAN(r1_config(r1_gamma=0.0), seed=1)
    gan.step(np.random.default_rng(0).uniform(-1, 1, (64, 5)))
    assert gan.r1 is None


@pytest.mark.parametrize(("options", "message"), [
    ({"r1_gamma": -1.0}, "r1_gamma must be a number >= 0"),
    ({"r1_gamma": float("nan")}, "r1_gamma must be a number >= 0"),
    ({"r1_gamma": "10"}, "r1_gamma must be a number >= 0"),
    ({"r1_every": 0}, "r1_every .* must be an integer >= 1"),
    ({"r1_every": 1.5}, "r1_every .* must be an integer >= 1"),
    ({"discriminator": (Dense(7, "leaky_relu"), BatchNorm(), Dense(1))},
     r"layer 1 \(BatchNorm\) mixes the samples of a batch: remove BatchNorm"),
    ({"discriminator": (Dense(7, "tanh"), Dense(1))}, "layer 0 of the discriminator uses tanh"),
    ({"discriminator": (Dense(7), Activation("sigmoid"), Dense(1))}, "uses sigmoid"),
])
def test_bad_settings_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        r1_config(**options)


def test_batch_norm_in_d_is_fine_without_the_penalty():
    config = r1_config(r1_gamma=0.0, discriminator=(Dense(7), BatchNorm(), Dense(1)))
    assert config.r1_gamma == 0.0


def test_the_peers_refuse_the_penalty():
    with pytest.raises(ConfigError, match="the PyTorch peer has no R1 penalty"):
        check_trainable(r1_config(d_loss="bce"), "PyTorch")
