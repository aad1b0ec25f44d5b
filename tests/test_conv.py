"""The spatial layers do what their Keras namesakes do: forward results against direct,
loop-written definitions (their gradients are proven in test_gradients.py), the seed-003
preset's shapes and parameter counts, and clear errors for networks that do not fit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from support import tolerances
from support.small_presets import (
    TRANSPOSED_GENERATOR,
    transposed_config,
    transposed_discriminator,
)

from fastgan import GAN, MLP, ConfigError, data, load
from fastgan.backends.base import ConvGeometry
from fastgan.gan import presets
from fastgan.nn.specs import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    Reshape,
    UpSampling2D,
    output_shapes,
)
from fastgan.training import serialization


def _same_windows(height: int, width: int, size: int, stride: int):
    """TensorFlow's "same" windows over an (H, W) image: ``((ho, wo), (dy, dx), (h, w))`` for
    every output pixel, kernel offset and the input pixel it reads (padding left out); out =
    ceil(in / stride), the padding split with the odd pixel bottom/right."""
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    top = max((out_h - 1) * stride + size - height, 0) // 2
    left = max((out_w - 1) * stride + size - width, 0) // 2
    for ho, wo, dy, dx in itertools.product(range(out_h), range(out_w), range(size),
                                            range(size)):
        h, w = ho * stride + dy - top, wo * stride + dx - left
        if 0 <= h < height and 0 <= w < width:
            yield (ho, wo), (dy, dx), (h, w)


def _direct_conv(images: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                 stride: int) -> np.ndarray:
    """TensorFlow's "same" convolution written out: ``images`` (n, H, W, C), ``kernel``
    (k, k, C, F); each output pixel sums its window's pixels times the kernel."""
    n, height, width, _ = images.shape
    size = kernel.shape[0]
    out = np.tile(bias, (n, -(-height // stride), -(-width // stride), 1)).astype(float)
    for output, offset, pixel in _same_windows(height, width, size, stride):
        out[:, output[0], output[1]] += images[:, pixel[0], pixel[1]] @ kernel[offset]
    return out


@pytest.mark.parametrize("image,kernel,stride", [((5, 7, 3), 3, 1), ((5, 7, 3), 3, 2),
                                                 ((6, 4, 2), 3, 2), ((4, 6, 2), 4, 1)])
def test_conv2d_is_tensorflow_same_convolution(backend, image, kernel, stride):
    net = MLP([Reshape(image), Conv2D(3, kernel=kernel, stride=stride, init="torch_default")],
              in_features=math.prod(image), backend=backend, dtype="float64", seed=1)
    x = np.random.default_rng(2).standard_normal((4, math.prod(image)))
    conv = net.layers[1]
    expected = _direct_conv(x.reshape(4, *image),
                            backend.to_numpy(conv.W).reshape(kernel, kernel, image[2], 3),
                            backend.to_numpy(conv.b), stride)
    out = backend.to_numpy(net.forward(backend.asarray(x)))
    assert net.out_shape == expected.shape[1:]
    np.testing.assert_allclose(out, expected.reshape(4, -1), **tolerances.kernel("float64"))


def direct_conv_transpose(images: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                          stride: int) -> np.ndarray:
    """Keras' ``Conv2DTranspose(padding="same")`` written out: ``images`` (n, H, W, C),
    ``kernel`` (k, k, F, C); out (n, sH, sW, F). Each window of the "same" convolution of
    (sH, sW) images, whose output pixel is an input pixel (h, w) here, gets ``kernel[dy, dx]
    @`` that pixel's C values at its offset (dy, dx)."""
    n, height, width, _ = images.shape
    size = kernel.shape[0]
    out = np.tile(bias, (n, stride * height, stride * width, 1)).astype(float)
    for pixel, offset, target in _same_windows(stride * height, stride * width, size, stride):
        out[:, target[0], target[1]] += images[:, pixel[0], pixel[1]] @ kernel[offset].T
    return out


TRANSPOSED_SHAPES = [((3, 2, 3), 4, 2), ((3, 2, 3), 3, 2), ((3, 2, 3), 1, 2), ((2, 3, 2), 5, 2),
                     ((3, 4, 3), 3, 1), ((3, 4, 3), 4, 1)]
"""(input image, kernel, stride): the "same" padding of the adjoint convolution even, odd (one
more below), absent with rows it never reads (k 1), at stride 2 and 1."""


@pytest.mark.parametrize("image,kernel,stride", TRANSPOSED_SHAPES)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend, image, kernel, stride):
    """<conv(u), x> = <u, convT(x)> for every (sH, sW, F) image u and (H, W, C) image x: the
    transposed convolution with zero bias and no activation is the transpose of the linear
    map of Conv2D(C, kernel, stride) ("same") with the same (k^2 F, C) weight matrix."""
    filters, n = 2, 4
    big = (stride * image[0], stride * image[1], filters)
    transposed = MLP([Reshape(image), ConvTranspose2D(filters, kernel=kernel, stride=stride)],
                     in_features=math.prod(image), backend=backend, dtype="float64", seed=8)
    conv = MLP([Reshape(big), Conv2D(image[2], kernel=kernel, stride=stride)],
               in_features=math.prod(big), backend=backend, dtype="float64", seed=9)
    assert conv.out_shape == image and transposed.out_shape == big
    assert not backend.to_numpy(transposed.layers[1].b).any()      # glorot: zero bias
    backend.copy(transposed.layers[1].W, conv.layers[1].W)
    rng = np.random.default_rng(10)
    x, u = rng.standard_normal((n, math.prod(image))), rng.standard_normal((n, math.prod(big)))
    conv_u = backend.to_numpy(conv.forward(backend.asarray(u)))
    transposed_x = backend.to_numpy(transposed.forward(backend.asarray(x)))
    assert np.sum(conv_u * x) == pytest.approx(np.sum(u * transposed_x), rel=1e-10)
    assert np.sum(u * transposed_x) != pytest.approx(0.0, abs=1e-3)   # not a vacuous 0 = 0
    if kernel > 1:     # the identity can fail: not with the kernel turned by 180 degrees
        flipped = backend.to_numpy(transposed.layers[1].W).reshape(kernel, kernel, filters, -1)
        backend.copy(np.ascontiguousarray(flipped[::-1, ::-1]).reshape(-1, image[2]),
                     conv.layers[1].W)
        conv_u = backend.to_numpy(conv.forward(backend.asarray(u)))
        assert np.sum(conv_u * x) != pytest.approx(np.sum(u * transposed_x), rel=1e-3)


@pytest.mark.parametrize("image,kernel,stride", TRANSPOSED_SHAPES)
def test_conv_transpose2d_is_kerass_conv2d_transpose(backend, image, kernel, stride):
    """The forward, bias included, against Keras' definition written out
    (:func:`direct_conv_transpose`)."""
    net = MLP([Reshape(image), ConvTranspose2D(3, kernel=kernel, stride=stride,
                                               init="torch_default")],
              in_features=math.prod(image), backend=backend, dtype="float64", seed=1)
    layer = net.layers[1]
    x = np.random.default_rng(2).standard_normal((4, math.prod(image)))
    expected = direct_conv_transpose(
        x.reshape(4, *image), backend.to_numpy(layer.W).reshape(kernel, kernel, 3, image[2]),
        backend.to_numpy(layer.b), stride)
    assert net.out_shape == expected.shape[1:]
    np.testing.assert_allclose(backend.to_numpy(net.forward(backend.asarray(x))),
                               expected.reshape(4, -1), **tolerances.kernel("float64"))


def test_conv_transpose2d_init_counts_kerass_fans():
    """Keras reads a Conv2DTranspose kernel (k, k, filters, C) as (.., in, out): fan in
    k^2 filters, fan out k^2 C (PyTorch's (C, filters, k, k) weight gives the same)."""
    def weights(init: str):
        net = MLP([Reshape((4, 4, 8)), ConvTranspose2D(16, kernel=4, init=init)],
                  in_features=128, dtype="float64", seed=0)
        layer = net.layers[1]
        assert layer.W.shape == (4 * 4 * 16, 8) and layer.b.shape == (16,)
        return layer.W, layer.b

    he, _ = weights("he_normal")
    assert he.std() == pytest.approx(math.sqrt(2 / (16 * 16)), rel=0.05)
    glorot, bias = weights("glorot_uniform")
    limit = math.sqrt(6 / (16 * 16 + 16 * 8))
    assert 0.98 * limit < np.abs(glorot).max() <= limit and not bias.any()
    torch_w, torch_b = weights("torch_default")
    assert 0.98 / 16 < np.abs(torch_w).max() <= 1 / 16 and 0 < np.abs(torch_b).max() <= 1 / 16


def test_conv_transpose2d_output_shape():
    assert ConvTranspose2D(5).output_shape((7, 3, 2)) == (14, 6, 5)
    assert ConvTranspose2D(5, stride=1).output_shape((7, 3, 2)) == (7, 3, 5)


def test_transposed_generator_checkpoint_round_trip(tmp_path):
    """Specs survive JSON; a GAN whose generator is made of transposed convolutions is
    saved and loaded with its weights (flat buffers) and samples the same."""
    stored = serialization.encode(TRANSPOSED_GENERATOR)
    assert serialization.decode(stored) == TRANSPOSED_GENERATOR
    gan = GAN(transposed_config(batch_size=4), seed=1)
    gan.train_step(np.random.default_rng(0).uniform(-1, 1, (4, 64)))
    noise = gan.draw_sample_noise(3)
    restored = load(gan.save(tmp_path / "transposed.npz"))
    assert restored.generator.specs == TRANSPOSED_GENERATOR
    np.testing.assert_array_equal(restored.sample(3, noise), gan.sample(3, noise))


def test_a_conditional_gan_gives_a_transposed_discriminator_label_maps():
    """A discriminator whose convolutions are transposed reads the one-hot label as channels
    of every pixel, as a convolutional one does, and trains."""
    first, *rest = transposed_discriminator(8, (4, 4, 6))
    config = transposed_config(discriminator=(Reshape((8, 8, 1 + 3)), *rest),
                               conditional=True, num_classes=3)
    assert first == Reshape((8, 8, 1))
    assert config.label_maps and config.discriminator_inputs == 64 * (1 + 3)
    gan = GAN(config, seed=0)
    rng = np.random.default_rng(1)
    real = np.concatenate([rng.uniform(-1, 1, (8, 64)), np.eye(3)[np.arange(8) % 3]], axis=1)
    for _ in range(2):
        stats = gan.train_step(real)
    assert all(math.isfinite(value) for value in stats.values())


@pytest.mark.parametrize("layer", [Conv2D(3, stride=2, activation="tanh"),
                                   ConvTranspose2D(3, kernel=3, activation="tanh")],
                         ids=["conv2d", "conv-transpose2d"])
def test_slicing_the_batch_for_im2col_changes_nothing(backend, monkeypatch, layer):
    """Per-sample slices (patches gathered again in backward, dW summed over slices) give the
    whole batch's results, to rounding."""
    results = []
    for limit in (None, 1):
        monkeypatch.setattr(type(backend), "im2col_bytes", limit)
        net = MLP([Reshape((5, 4, 2)), layer, Flatten(), Dense(2)], in_features=40,
                  backend=backend, dtype="float64", seed=6)
        x = backend.asarray(np.random.default_rng(7).standard_normal((5, 40)))
        y = backend.to_numpy(net.forward(x)).copy()
        dx = net.backward(backend.asarray(np.ones((5, 2))), input_grad=True)
        results.append((y, backend.to_numpy(dx).copy(), backend.to_numpy(net.params.grad).copy()))
        assert net.layers[1]._workspaces[5].chunk == (5 if limit is None else 1)
    for whole, sliced in zip(*results, strict=True):
        np.testing.assert_allclose(sliced, whole, **tolerances.kernel("float64"))


def test_discriminator_step_makes_no_input_gradient_for_its_images():
    """D starts with a Reshape: the walk back stops at its first convolution."""
    gan = GAN.from_preset("keras-dcgan", data_dim=64, latent_dim=4, g_filters=(4, 3, 2),
                          d_filters=(2, 3, 4), batch_size=4)
    gan.discriminator_gradients(np.zeros((4, 64)), gan.workspace(4))
    assert gan.discriminator.layers[1]._workspaces[8].dx is None


def test_geometry_pads_the_odd_pixel_bottom_right():
    even = ConvGeometry(32, 32, 1, 3, 2)    # 16 windows span rows 0..32: pad 0 above, 1 below
    assert (even.out_height, even.pad_top, even.pad_left) == (16, 0, 0)
    same = ConvGeometry(5, 7, 3, 3, 1)
    assert (same.out_height, same.out_width, same.pad_top, same.pad_left) == (5, 7, 1, 1)
    assert ConvGeometry(6, 6, 1, 4, 1).pad_top == 1   # pad 3: one above, two below


def test_upsampling2d_repeats_each_pixel(backend):
    net = MLP([Reshape((2, 3, 2)), UpSampling2D(), Flatten(), Dense(1)], in_features=12,
              backend=backend, dtype="float64")
    x = np.arange(24.0).reshape(2, 12)
    up = backend.to_numpy(net.layers[1].forward(backend.asarray(x), training=True))
    expected = x.reshape(2, 2, 3, 2).repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(up, expected.reshape(2, -1))


def test_batchnorm_after_a_spatial_layer_normalises_each_channel(backend):
    net = MLP([Reshape((3, 4, 2)), Conv2D(2), BatchNorm(momentum=0.8, eps=1e-3)],
              in_features=24, backend=backend, dtype="float64", seed=3)
    x = backend.asarray(np.random.default_rng(4).standard_normal((5, 24)) * 3 + 1)
    conv_out = backend.to_numpy(net.layers[1].forward(x, training=True)).reshape(-1, 2)
    out = backend.to_numpy(net.forward(x)).reshape(-1, 2)       # (5 * 3 * 4, channels)
    mean, var = conv_out.mean(axis=0), conv_out.var(axis=0)
    np.testing.assert_allclose(out, (conv_out - mean) / np.sqrt(var + 1e-3),
                               **tolerances.kernel("float64"))
    norm = net.layers[2]
    assert norm.gamma.shape == (2,) and norm.running_mean.shape == (2,)
    np.testing.assert_allclose(backend.to_numpy(norm.running_mean), 0.2 * mean,
                               **tolerances.kernel("float64"))
    np.testing.assert_allclose(backend.to_numpy(norm.running_var), 0.8 + 0.2 * var)
    evaluated = backend.to_numpy(net.forward(x, training=False)).reshape(-1, 2)
    np.testing.assert_allclose(evaluated, (conv_out - 0.2 * mean) / np.sqrt(0.8 + 0.2 * var
                                                                             + 1e-3))


def test_activation_layer_applies_its_function(backend):
    net = MLP([Dense(3), Activation("leaky_relu", alpha=0.2)], in_features=2, backend=backend,
              dtype="float64", seed=5)
    x = backend.asarray(np.array([[1.0, -2.0], [-0.5, 0.25]]))
    dense_out = backend.to_numpy(net.layers[0].forward(x, training=True)).copy()
    out = backend.to_numpy(net.forward(x))
    np.testing.assert_allclose(out, np.where(dense_out > 0, dense_out, 0.2 * dense_out))


def test_keras_dcgan_has_the_seeds_shapes_and_parameter_counts():
    """Keras' model.summary() for seed 003 at 32 x 32 x 1: G 1,434,753, D 386,049 trainable."""
    preset = presets.get("keras-dcgan", data_dim=1024)
    g_shapes = output_shapes(preset.generator, preset.latent_dim)
    assert g_shapes[1] == (8, 8, 256) and g_shapes[-1] == (32, 32, 1)
    assert output_shapes(preset.discriminator, 1024)[-3] == (8, 8, 256)
    gan = GAN.from_preset("keras-dcgan", data_dim=1024)
    assert gan.latent_dim == 64 and gan.data_dim == 1024 and gan.batch_size == 64
    assert gan.generator.n_params == 1_434_753
    assert gan.discriminator.n_params == 386_049
    assert (gan.g_optimizer.config.lr, gan.g_optimizer.config.beta1,
            gan.g_optimizer.config.beta2) == (1e-4, 0.5, 0.9)
    assert presets.get("keras-dcgan", 1024, k=3).k == 3


def test_keras_dcgan_rejects_data_that_is_not_a_square_image():
    with pytest.raises(ConfigError, match="divisible by 4"):
        presets.get("keras-dcgan", data_dim=30 * 30)
    with pytest.raises(ConfigError, match="g_filters"):
        presets.get("keras-dcgan", data_dim=1024, g_filters=(8, 8))


def _kinds(layers) -> list[str]:
    return [type(spec).__name__ for spec in layers]


def test_fast_dcgan_is_a_native_28_by_28_dcgan_with_counted_parameters():
    """fast-dcgan at 28 x 28 x 1: G Dense -> 7x7x32 (flat batch norm), two stride-2
    transposed convolutions (14x14x16, then the image); D two stride-2 convolutions and a
    logit. Counts by hand: G 100*1568+1568 + 2*1568 (BN) + 16*16*32+16 + 2*16 + 16*16+1;
    D 16*16+16 + 16*16*32+32 + 1568+1."""
    preset = presets.get("fast-dcgan")
    assert _kinds(preset.generator) == ["Dense", "BatchNorm", "Activation", "Reshape",
                                        "ConvTranspose2D", "BatchNorm", "Activation",
                                        "ConvTranspose2D"]
    g_shapes = output_shapes(preset.generator, preset.latent_dim)
    assert (g_shapes[3], g_shapes[4], g_shapes[-1]) == ((7, 7, 32), (14, 14, 16), (28, 28, 1))
    assert preset.generator[-1].activation == "tanh"
    assert [spec.stride for spec in preset.discriminator if isinstance(spec, Conv2D)] == [2, 2]
    assert output_shapes(preset.discriminator, 784)[2] == (7, 7, 32)
    gan = GAN.from_preset("fast-dcgan")
    assert (gan.generator.n_params, gan.discriminator.n_params) == (170_001, 10_065)
    assert (gan.batch_size, gan.g_optimizer.config.lr, gan.g_optimizer.config.beta1,
            gan.config.ema_decay) == (64, 1e-3, 0.5, 0.995)


def test_fast_dcgan_architecture_arguments():
    """Depth follows the filter tuples (the last two G blocks double the image, the first two
    D convolutions halve it); upsample, norm, kernel and alpha reach every layer they name."""
    deep = presets.get("fast-dcgan", g_filters=(16, 8, 4), d_filters=(4, 8, 8), kernel=3,
                       upsample="nearest", norm="none", alpha=0.1)
    assert _kinds(deep.generator) == ["Dense", "Activation", "Reshape", "Conv2D", "Activation",
                                      "UpSampling2D", "Conv2D", "Activation", "UpSampling2D",
                                      "Conv2D"]
    assert output_shapes(deep.generator, deep.latent_dim)[4] == (7, 7, 8)
    convolutions = [spec for spec in (*deep.generator, *deep.discriminator)
                    if isinstance(spec, Conv2D | ConvTranspose2D)]
    assert {spec.kernel for spec in convolutions} == {3}
    assert [spec.stride for spec in deep.discriminator if isinstance(spec, Conv2D)] == [2, 2, 1]
    slopes = {spec.alpha for spec in deep.generator if isinstance(spec, Activation)}
    slopes |= {spec.alpha for spec in deep.discriminator
               if getattr(spec, "activation", "") == "leaky_relu"}
    assert slopes == {0.1}
    assert output_shapes(presets.get("fast-dcgan", data_dim=1024).generator, 100)[-1] == (
        32, 32, 1)


@pytest.mark.parametrize("overrides,message", [
    ({"data_dim": 30 * 30}, "divisible by 4"),
    ({"g_filters": ()}, "g_filters must be at least 1"),
    ({"d_filters": (8,)}, "d_filters must be at least 2"),
    ({"upsample": "bilinear"}, "upsample must be one of transposed, nearest"),
    ({"norm": "layer"}, "norm must be one of batch, none"),
    ({"kernel": 0}, "kernel must be a positive integer"),
    ({"alpha": 1.5}, "alpha must be in"),
])
def test_fast_dcgan_bad_arguments_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        presets.get("fast-dcgan", **overrides)


@pytest.mark.parametrize("layers,in_features,message", [
    ([Conv2D(2)], 12, "put Reshape"),
    ([Reshape((2, 3, 2)), Dense(2)], 12, "put Flatten"),
    ([Reshape((2, 3, 3)), Flatten(), Dense(1)], 12, "needs 18 values"),
    ([Dense(4), UpSampling2D()], 3, "put Reshape"),
    ([Dense(4), ConvTranspose2D(2)], 3, "put Reshape"),
    ([Reshape((1, 2, 2)), ConvTranspose2D(2), Dense(1)], 4, "put Flatten"),
])
def test_networks_that_do_not_fit_are_clear_errors(layers, in_features, message):
    with pytest.raises(ConfigError, match=message):
        MLP(layers, in_features=in_features)


@pytest.mark.parametrize("bad", [lambda: Conv2D(0), lambda: Conv2D(4, stride=3),
                                 lambda: Conv2D(4, activation="gelu"), lambda: Reshape((4, 4)),
                                 lambda: Reshape((4, 0, 1)), lambda: Activation("swish")])
def test_bad_specs_are_clear_errors(bad):
    with pytest.raises(ConfigError):
        bad()


@pytest.mark.parametrize("bad,message", [
    (lambda: ConvTranspose2D(0), "ConvTranspose2D filters must be a positive integer, got 0"),
    (lambda: ConvTranspose2D(2, kernel=2.5), "ConvTranspose2D kernel must be a positive"),
    (lambda: ConvTranspose2D(2, stride=3), "ConvTranspose2D stride must be 1 or 2, got 3"),
    (lambda: ConvTranspose2D(2, stride=True), "ConvTranspose2D stride must be 1 or 2"),
    (lambda: ConvTranspose2D(2, activation="gelu"), "unknown activation 'gelu'"),
    (lambda: ConvTranspose2D(2, alpha=1.5), "alpha must be in"),
    (lambda: ConvTranspose2D(2, init="lecun"), "unknown init 'lecun'"),
])
def test_bad_conv_transpose_specs_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        bad()
    assert "\n" not in str(info.value)


def test_spatial_specs_survive_json():
    specs = presets.get("keras-dcgan", 1024).generator
    assert serialization.decode(serialization.encode(specs)) == specs


def test_keras_dcgan_checkpoint_round_trip(tmp_path):
    gan = GAN.from_preset("keras-dcgan", data_dim=64, seed=1, latent_dim=4, g_filters=(4, 3, 2),
                          d_filters=(2, 3, 4), batch_size=4)
    gan.train_step(np.random.default_rng(0).uniform(-1, 1, (4, 64)))
    noise = gan.draw_sample_noise(3)
    restored = load(gan.save(tmp_path / "dcgan.npz"))
    assert restored.generator.specs == gan.generator.specs
    np.testing.assert_array_equal(restored.sample(3, noise), gan.sample(3, noise))


def test_pad_frames_images_in_black():
    plain, padded = data.load("digits", n=5), data.load("digits", n=5, pad=2)
    assert padded.image_shape == (12, 12)
    frames = padded.x.reshape(5, 12, 12)
    np.testing.assert_array_equal(frames[:, 2:10, 2:10].reshape(5, 64), plain.x)
    border = np.ones((12, 12), bool)
    border[2:10, 2:10] = False
    assert (frames[:, border] == -1).all()
    with pytest.raises(ConfigError, match="pad"):
        data.load("ring", pad=1)
    with pytest.raises(ConfigError, match="pad"):
        data.load("digits", pad=-1)
