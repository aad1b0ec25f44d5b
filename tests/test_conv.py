"""The spatial layers do what their Keras namesakes do: forward results against direct,
loop-written definitions (their gradients are proven in test_gradients.py), the seed-003
preset's shapes and parameter counts, and clear errors for networks that do not fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import tolerances

from fastgan import GAN, MLP, ConfigError, data, load
from fastgan.backends.base import ConvGeometry
from fastgan.gan import presets
from fastgan.nn.specs import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    Reshape,
    UpSampling2D,
    output_shapes,
)
from fastgan.training import serialization


def _direct_conv(images: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                 stride: int) -> np.ndarray:
    """TensorFlow's "same" convolution written out: ``images`` (n, H, W, C), ``kernel``
    (k, k, C, F); out = ceil(in / stride), padding split with the odd pixel bottom/right."""
    n, height, width, _ = images.shape
    size = kernel.shape[0]
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    top = max((out_h - 1) * stride + size - height, 0) // 2
    left = max((out_w - 1) * stride + size - width, 0) // 2
    out = np.tile(bias, (n, out_h, out_w, 1)).astype(float)
    for ho in range(out_h):
        for wo in range(out_w):
            for dy in range(size):
                for dx in range(size):
                    h, w = ho * stride + dy - top, wo * stride + dx - left
                    if 0 <= h < height and 0 <= w < width:
                        out[:, ho, wo] += images[:, h, w] @ kernel[dy, dx]
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


def test_slicing_the_batch_for_im2col_changes_nothing(backend, monkeypatch):
    """Per-sample slices (patches gathered again in backward, dW summed over slices) give the
    whole batch's results, to rounding."""
    results = []
    for limit in (None, 1):
        monkeypatch.setattr(type(backend), "im2col_bytes", limit)
        net = MLP([Reshape((5, 4, 2)), Conv2D(3, stride=2, activation="tanh"), Flatten(),
                   Dense(2)], in_features=40, backend=backend, dtype="float64", seed=6)
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


@pytest.mark.parametrize("layers,in_features,message", [
    ([Conv2D(2)], 12, "put Reshape"),
    ([Reshape((2, 3, 2)), Dense(2)], 12, "put Flatten"),
    ([Reshape((2, 3, 3)), Flatten(), Dense(1)], 12, "needs 18 values"),
    ([Dense(4), UpSampling2D()], 3, "put Reshape"),
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
