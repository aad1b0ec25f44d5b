"""The PyTorch peer: same architecture and parameter counts as fastgan, same training rule."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from support.learning_runs import torch_blob_run
from support.small_presets import (
    SMALL_DCGAN,
    small_config,
    transposed_config,
    transposed_discriminator,
)

from fastgan import GAN, MLP, Conv2D, ConvTranspose2D, Reshape
from fastgan.errors import BackendUnavailable, ConfigError, FastganError
from fastgan.gan import presets

torch = pytest.importorskip("torch")
F = torch.nn.functional
TorchGAN = pytest.importorskip("fastgan.benchmarking.torch_peer").TorchGAN
set_threads = pytest.importorskip("fastgan.benchmarking.torch_peer").set_threads

def small(name: str, **overrides) -> TorchGAN:
    """A small version of preset ``name`` (see support.small_presets)."""
    return TorchGAN(small_config(name, **overrides), seed=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    set_threads(1)  # these networks are too small to gain from more


@pytest.mark.parametrize(("name", "g_count", "d_count"), [
    ("numpy-mlp", 114_064, 100_609),
    ("keras-mlp", 1_495_568, 533_505),
    ("numpy-adam", 572_584, 100_609),
    ("pytorch-vanilla", 1_486_352, 1_460_225),
])
def test_parameter_counts_match_fastgan(name, g_count, d_count):
    peer = TorchGAN(presets.get(name))
    assert peer.parameter_counts() == {"generator": g_count, "discriminator": d_count}


@pytest.mark.parametrize("channels_last", [False, True])
def test_keras_dcgan_peer_has_the_seeds_layers_and_counts(channels_last):
    peer = TorchGAN(presets.get("keras-dcgan", data_dim=1024), channels_last=channels_last)
    assert peer.parameter_counts() == {"generator": 1_434_753, "discriminator": 386_049}
    kinds = [type(m).__name__ for m in peer.generator]
    assert kinds == ["Linear", "LeakyReLU", "Unflatten"] + ["Upsample", "Conv2d", "BatchNorm2d",
                                                            "LeakyReLU"] * 2 \
        + ["Conv2d", "Tanh", "Flatten"]
    pad, conv = peer.discriminator[3:5]     # "same" pads a stride-2 3x3 below and right
    assert (pad.padding, conv.stride, conv.padding, conv.out_channels) == (
        (0, 1, 0, 1), (2, 2), (0, 0), 128)
    limit = math.sqrt(6 / (9 * 64 + 9 * 128))               # glorot over the receptive field
    assert limit * 0.9 < conv.weight.abs().max() <= limit
    tiny = TorchGAN(presets.get("keras-dcgan", **SMALL_DCGAN), channels_last=channels_last)
    tiny.step(tiny.make_batch())
    assert all(math.isfinite(v) for v in tiny.stats().values())


@pytest.mark.parametrize("kernel,stride", [(4, 2), (3, 2), (1, 2), (2, 2), (5, 2), (3, 1),
                                           (4, 1)])
@pytest.mark.parametrize(("spec_type", "image"), [(ConvTranspose2D, (3, 2, 3)),
                                                  (Conv2D, (6, 5, 3)), (Conv2D, (7, 4, 3))])
def test_convolution_peers_compute_fastgans_map_exactly(spec_type, image, kernel, stride):
    """``nn.Conv2d`` and ``nn.ConvTranspose2d`` with the padding (symmetric or a ZeroPad2d
    first), output padding and crop that ``conv2d`` and ``conv_transpose`` pick, holding
    fastgan's weights, give fastgan's output to float64 rounding for each padding case (even,
    odd and cropped, on odd and even sides)."""
    from fastgan.benchmarking.torch_peer import build_mlp

    filters, n, features = 2, 4, math.prod(image)
    specs = [Reshape(image), spec_type(filters, kernel=kernel, stride=stride,
                                       activation="tanh", init="torch_default")]
    net = MLP(specs, in_features=features, backend="numpy", dtype="float64", seed=3)
    layer = net.layers[1]
    out = spec_type.output_shape(specs[1], image)
    peer = build_mlp(specs, features).double()
    conv = next(m for m in peer if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d))
    with torch.no_grad():       # fastgan's (k, k, a, b) patch matrix is torch's (b, a, k, k)
        conv.weight.copy_(torch.from_numpy(
            layer.W.reshape(kernel, kernel, -1, layer.W.shape[1]).transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(layer.b.copy()))

    def channels_first(rows: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        return rows.reshape(n, *shape).transpose(0, 3, 1, 2).reshape(n, -1)

    x = np.random.default_rng(4).standard_normal((n, features))
    expected = channels_first(net.forward(x), out)
    with torch.no_grad():
        got = peer(torch.from_numpy(channels_first(x, image))).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_a_transposed_convolution_gan_peer_counts_and_steps():
    """A GAN with transposed convolutions in G and first in D: fastgan's parameter counts, the
    crop after the kernel-3 layers, and finite training steps."""
    config = transposed_config(discriminator=transposed_discriminator(8, (4, 4, 6)))
    peer = TorchGAN(config, seed=3)
    gan = GAN(config)
    assert peer.parameter_counts() == {"generator": gan.generator.n_params,
                                       "discriminator": gan.discriminator.n_params}
    kinds = [type(m).__name__ for m in peer.generator]
    assert kinds[3:] == ["ConvTranspose2d", "BatchNorm2d", "LeakyReLU", "ConvTranspose2d",
                         "Crop", "Tanh", "Flatten"]
    for _ in range(2):
        peer.step(peer.make_batch())
    assert all(math.isfinite(v) for v in peer.stats().values())


def test_layers_optimizers_and_init_follow_the_preset():
    peer = TorchGAN(presets.get("keras-mlp"))
    kinds = [type(m).__name__ for m in peer.generator]
    assert kinds == ["Linear", "LeakyReLU"] * 3 + ["BatchNorm1d", "Linear", "Tanh"]
    bn = peer.generator[6]
    assert bn.momentum == pytest.approx(0.2) and bn.eps == 1e-3
    first = peer.generator[0]
    limit = math.sqrt(6 / (128 + 256))
    assert first.weight.abs().max() <= limit and first.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(first.bias) == 0
    assert peer.g_optimizer.defaults["betas"] == (0.5, 0.999)

    vanilla = TorchGAN(presets.get("pytorch-vanilla"))
    assert [type(m).__name__ for m in vanilla.discriminator][:3] == ["Linear", "LeakyReLU",
                                                                      "Dropout"]
    assert vanilla.discriminator[1].negative_slope == 0.2

    he = TorchGAN(presets.get("numpy-mlp"))
    w = he.discriminator[0].weight  # (128, 784): fan_in 784
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert isinstance(he.d_optimizer, torch.optim.SGD)
    assert he.d_optimizer.defaults["lr"] == 1e-3


@pytest.mark.parametrize("name", [name for name in presets.names()   # the peers train no labels
                                  if not presets.get(name).conditional])
def test_generator_step_leaves_discriminator_untouched(name):
    peer = small(name)
    real = peer.make_batch()
    peer.step(real)  # D now has gradients and optimizer state
    d_params = [p.detach().clone() for p in peer.discriminator.parameters()]
    d_grads = [p.grad.clone() for p in peer.discriminator.parameters()]
    g_params = [p.detach().clone() for p in peer.generator.parameters()]

    peer.generator_step(peer.targets(peer.preset.batch_size))

    for p, before, grad in zip(peer.discriminator.parameters(), d_params, d_grads, strict=True):
        assert torch.equal(p, before)
        assert torch.equal(p.grad, grad), "the G step computed D weight gradients"
        assert p.requires_grad
    assert any(not torch.equal(p, b) for p, b in zip(peer.generator.parameters(), g_params,
                                                     strict=True))


@pytest.mark.parametrize(("name", "overrides"), [
    ("numpy-mlp", {}),
    ("keras-mlp", {"k": 2, "label_smoothing": 0.1}),
    ("numpy-adam", {"g_loss": "minimax"}),
    ("pytorch-vanilla", {}),
    ("tiny", {"k": 3}),
])
def test_steps_update_both_networks_and_give_finite_stats(name, overrides):
    peer = small(name, **overrides)
    g_before = [p.detach().clone() for p in peer.generator.parameters()]
    d_before = [p.detach().clone() for p in peer.discriminator.parameters()]
    real = peer.make_batch(np.random.default_rng(0).uniform(-1, 1, (peer.preset.k * 8, 12)))
    assert real.shape == (peer.preset.k * 8, 12) and real.dtype == torch.float32
    for _ in range(3):
        peer.step(real)
    stats = peer.stats()
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(math.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1
    for net, before in ((peer.generator, g_before), (peer.discriminator, d_before)):
        assert all(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


@pytest.mark.parametrize(("g_loss", "smoothing"), [("non_saturating", 0.0), ("minimax", 0.2)])
def test_losses_are_fastgans_formulas(g_loss, smoothing):
    """Replay one step's noise on copies of the networks and recompute both losses by hand,
    with BCE(l, t) = softplus(l) - t l: ``L_D = mean BCE(l_real, 1 - s) + mean BCE(l_fake, 0)``,
    ``L_G = mean BCE(l, 1)`` (non-saturating) or ``-mean BCE(l, 0)`` (minimax)."""
    peer = small("tiny", g_loss=g_loss, label_smoothing=smoothing)
    batch, latent = 8, peer.preset.latent_dim
    real = peer.make_batch()
    generator, discriminator = copy.deepcopy(peer.generator), copy.deepcopy(peer.discriminator)
    torch.manual_seed(11)
    peer.step(real)
    stats = peer.stats()

    def bce(logits, target):
        return (F.softplus(logits) - target * logits).mean().item()

    torch.manual_seed(11)
    with torch.no_grad():
        logits = discriminator(torch.cat([real, generator(torch.randn(batch, latent))]))
        expected_d = bce(logits[:batch], 1 - smoothing) + bce(logits[batch:], 0.0)
    assert stats["d_loss"] == pytest.approx(expected_d, rel=1e-5)
    assert stats["d_real"] == pytest.approx(torch.sigmoid(logits[:batch]).mean().item(), rel=1e-5)

    # The G step used the *updated* D, the pre-step G and fresh noise drawn after the D step's.
    with torch.no_grad():
        g_logits = peer.discriminator(generator(torch.randn(batch, latent)))
    expected_g = bce(g_logits, 1.0) if g_loss == "non_saturating" else -bce(g_logits, 0.0)
    assert stats["g_loss"] == pytest.approx(expected_g, rel=1e-5)


def test_each_d_step_takes_its_own_real_rows_in_one_pass_with_the_fakes():
    peer = small("pytorch-vanilla", k=3)
    inputs = []
    peer.discriminator.register_forward_pre_hook(lambda _, args: inputs.append(args[0].clone()))
    real = peer.make_batch()
    peer.step(real)
    assert [x.shape[0] for x in inputs] == [16, 16, 16, 8]  # three D passes of 2B, the G pass
    for i, x in enumerate(inputs[:3]):
        assert torch.equal(x[:8], real[8 * i:8 * (i + 1)])
    assert not torch.equal(inputs[1][8:], inputs[0][8:])  # fresh fakes every D step
    assert not torch.equal(inputs[2][8:], inputs[1][8:])


def test_samples_come_from_the_debiased_average_in_evaluation_mode():
    """With ema_decay the peer averages G's weights after each G step as fastgan does
    (starting at zero, read as average / (1 - decay^t)); sample() runs G on that average with
    batch norm's running statistics, then leaves G's own weights and training mode as they
    were. Before any step it samples from the weights themselves."""
    peer = TorchGAN(small_config("fast-dcgan", ema_decay=0.5), seed=3)
    noise = torch.randn(5, peer.preset.latent_dim)
    peer.generator.eval()
    with torch.no_grad():
        untrained = peer.generator(noise)
    peer.generator.train()
    torch.testing.assert_close(peer.sample(noise), untrained, rtol=0, atol=0)
    average = [torch.zeros_like(p) for p in peer.generator.parameters()]
    real = peer.make_batch()
    for _ in range(3):
        peer.step(real)
        average = [0.5 * a + 0.5 * p.detach() for a, p in zip(average, peer.generator.parameters(),
                                                               strict=True)]
    weights = [p.detach().clone() for p in peer.generator.parameters()]
    expected_net = copy.deepcopy(peer.generator).eval()
    with torch.no_grad():
        for p, a in zip(expected_net.parameters(), average, strict=True):
            p.copy_(a / (1 - 0.5 ** 3))
        expected = expected_net(noise)
    torch.testing.assert_close(peer.sample(noise), expected, rtol=1e-6, atol=1e-6)
    assert peer.generator.training
    assert all(torch.equal(p, w) for p, w in zip(peer.generator.parameters(), weights,
                                                 strict=True))


def test_uniform_noise_for_uniform_presets():
    peer = small("numpy-adam")
    z = peer._noise(1000)
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.9 and z.max() > 0.9


def test_tiny_preset_learns_a_2d_blob():
    """200 steps on a 2-D Gaussian blob (std 0.05) pull the generated mean onto it, and D ends
    near the equilibrium D(x) = D(G(z)) = 1/2, where it can no longer tell real from fake.

    Measured over seeds 0-11 (tests/support/learning_stats.py torch-blob): the mean ends 0.015-
    0.087 from the centre (median 0.038), and |D - 1/2| <= 0.071. Untrained, it starts
    0.18-1.52 away (0.91 for seed 0, the negative control). Rule: within 0.15 (3 std of the
    blob) and |D - 1/2| < 0.15.
    """
    start, end, stats = torch_blob_run(seed=0)
    assert start > 0.15, f"the untrained generator is already on the blob: {start}"
    assert end < 0.15, f"generated mean {end:.3f} from the centre"
    assert abs(stats["d_real"] - 0.5) < 0.15 and abs(stats["d_fake"] - 0.5) < 0.15, stats


def test_same_seed_same_training():
    runs = []
    for _ in range(2):
        peer = small("pytorch-vanilla")
        real = peer.make_batch()
        peer.step(real)
        runs.append((peer.stats(), [p.detach().clone() for p in peer.generator.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


@pytest.mark.parametrize("dtype", ["float64", np.float64, torch.float64])
def test_float64_peer(dtype):
    peer = TorchGAN(presets.get("tiny", data_dim=3, batch_size=4), dtype=dtype)
    real = peer.make_batch()
    assert real.dtype == torch.float64
    peer.step(real)
    assert all(p.dtype == torch.float64 for p in peer.generator.parameters())
    assert math.isfinite(peer.stats()["d_loss"])


def test_bad_input_is_a_clear_error():
    peer = small("tiny", k=2)
    with pytest.raises(ConfigError, match="k\\*B rows of 12 features"):
        peer.step(torch.zeros(7, 12))
    with pytest.raises(ConfigError, match="k\\*B rows"):
        peer.step(torch.zeros(16, 11))
    with pytest.raises(FastganError, match="no training step"):
        small("tiny").stats()
    with pytest.raises(ConfigError, match="float32 or float64"):
        TorchGAN(presets.get("tiny"), dtype="float16")
    with pytest.raises(ConfigError, match="float32 or float64"):
        TorchGAN(presets.get("tiny"), dtype="no-such-type")
    with pytest.raises(ConfigError, match="bad torch device"):
        TorchGAN(presets.get("tiny"), device="abacus")
    with pytest.raises(ConfigError, match="thread count"):
        set_threads(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        TorchGAN(presets.get("tiny"), device="cuda")


@pytest.mark.slow
def test_compiled_step_trains():
    """torch.compile's first call compiles (tens of seconds on 2 cores, cold cache)."""
    peer = TorchGAN(presets.get("tiny", data_dim=2, batch_size=16), compile=True)
    before = [p.detach().clone() for p in peer.discriminator.parameters()]
    real = peer.make_batch()
    for _ in range(3):
        peer.step(real)
    assert all(math.isfinite(v) for v in peer.stats().values())
    assert all(not torch.equal(p, b) for p, b in zip(peer.discriminator.parameters(), before,
                                                     strict=True))
