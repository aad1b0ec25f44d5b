"""Export: every preset's networks written as ONNX, PyTorch and NPZ reproduce fastgan's own
outputs for the same inputs (1e-5 in float32), and bad input gets one-line errors with
nothing half-written."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from support.small_presets import TRANSPOSED_GENERATOR, small_config, transposed_discriminator
from test_conv import direct_conv_transpose

import fastgan
from fastgan import GAN, ConfigError, ConvTranspose2D, Dense, Reshape
from fastgan.cli.main import main
from fastgan.export.walk import walk
from fastgan.fileio import write_folder_atomically
from fastgan.gan import presets

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
"""float32: the exported graph sums in another order than fastgan's GEMMs (worst case seen
over the small presets here: about 1e-6 absolute, on a discriminator's logit)."""


def trained(name: str, **overrides) -> GAN:
    """A small preset after two training steps, so batch-norm statistics and the average of
    G's weights (set on every preset here) are not their initial values."""
    gan = GAN(small_config(name, ema_decay=0.9, **overrides), seed=5)
    rng = np.random.default_rng(0)
    for _ in range(2):
        gan.step(rng.uniform(-1, 1, (gan.k * gan.batch_size, gan.data_dim)).astype(np.float32))
    return gan


def inputs(gan: GAN, network: str, n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs of ``network`` and fastgan's own outputs for them: samples of fixed noise
    for the generator, the discriminator's logits of those samples for the discriminator."""
    z = gan.draw_sample_noise(n, seed=11).astype(np.float32)
    images = gan.sample(n, z)
    if network == "generator":
        return z, images
    return images, gan.backend.to_numpy(gan.discriminator.forward(images, training=False))


@pytest.fixture(scope="module", params=[name for name in presets.names()
                                        if not presets.get(name).conditional])  # refused
def preset_gan(request) -> GAN:
    return trained(request.param)


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_onnx_reproduces_each_preset(preset_gan, network, tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs fastgan[export]")
    runtime = pytest.importorskip("onnxruntime", reason="ONNX export needs fastgan[export]")
    path = fastgan.export(preset_gan, tmp_path / "net.onnx", network=network)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    session = runtime.InferenceSession(str(path))
    (graph_input,), (graph_output,) = session.get_inputs(), session.get_outputs()
    assert (graph_input.name, graph_output.name) == (
        ("z", "image") if network == "generator" else ("image", "logit"))
    assert graph_input.shape[0] == "batch"
    for n in (1, 7):   # the batch size is free
        x, expected = inputs(preset_gan, network, n)
        np.testing.assert_allclose(session.run(None, {graph_input.name: x})[0], expected,
                                   **TOLERANCE)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(metadata["out_shape"]) == list(walk(preset_gan, network).out_shape)


def test_torch_reproduces_each_preset(preset_gan):
    torch = pytest.importorskip("torch", reason="the PyTorch export needs fastgan[compare]")
    from fastgan.benchmarking.torch_peer import build_mlp
    from fastgan.export.torch import state_dict

    config = preset_gan.config
    for network, layers, in_features in (("generator", config.generator, config.latent_dim),
                                         ("discriminator", config.discriminator,
                                          config.data_dim)):
        peer = build_mlp(layers, in_features).eval()
        peer.load_state_dict(state_dict(walk(preset_gan, network)))
        x, expected = inputs(preset_gan, network)
        with torch.no_grad():
            got = peer(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected, **TOLERANCE)


def test_torch_file_loads_into_the_peer(tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch export needs fastgan[compare]")
    from fastgan.benchmarking.torch_peer import build_mlp

    gan = trained("keras-dcgan")
    path = fastgan.export(gan, tmp_path / "g.pt", format="torch")
    peer = build_mlp(gan.config.generator, gan.latent_dim).eval()
    peer.load_state_dict(torch.load(path, weights_only=True))
    z, expected = inputs(gan, "generator")
    with torch.no_grad():
        np.testing.assert_allclose(peer(torch.from_numpy(z)).numpy(), expected, **TOLERANCE)


TRANSPOSED = {
    "generator": {"generator": TRANSPOSED_GENERATOR},
    "output-padding": {"generator": (Dense(2 * 2 * 3), Reshape((2, 2, 3)),
                                     ConvTranspose2D(2, kernel=1, activation="relu"),
                                     ConvTranspose2D(1, kernel=2, activation="tanh"))},
    "discriminator": {"generator": TRANSPOSED_GENERATOR,
                      "discriminator": transposed_discriminator(8, (4, 4, 6))},
}
"""keras-dcgan's small GAN with transposed convolutions: in G, kernel 4 then 3 (padding even,
then uneven: ONNX pads (0, 0, 1, 1), torch crops a row); kernel 1 (an output padding) then 2
(no padding); first in D, kernel 3 at stride 1."""


def _transposed_network(case: str) -> tuple[GAN, str]:
    """The trained GAN of ``case`` and which of its networks holds the transposed layers."""
    return (trained("keras-dcgan", **TRANSPOSED[case]),
            "discriminator" if case == "discriminator" else "generator")


@pytest.mark.parametrize("case", list(TRANSPOSED))
def test_onnx_reproduces_transposed_convolutions(case, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs fastgan[export]")
    runtime = pytest.importorskip("onnxruntime", reason="ONNX export needs fastgan[export]")
    gan, network = _transposed_network(case)
    path = fastgan.export(gan, tmp_path / "net.onnx", network=network)
    session = runtime.InferenceSession(str(path))
    for n in (1, 7):
        x, expected = inputs(gan, network, n)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, expected, **TOLERANCE)


@pytest.mark.parametrize("case", ["generator", "output-padding"])
def test_torch_reproduces_transposed_convolutions(case):
    torch = pytest.importorskip("torch", reason="the PyTorch export needs fastgan[compare]")
    from fastgan.benchmarking.torch_peer import build_mlp
    from fastgan.export.torch import state_dict

    gan, _ = _transposed_network(case)
    peer = build_mlp(gan.config.generator, gan.latent_dim).eval()
    peer.load_state_dict(state_dict(walk(gan, "generator")))
    z, expected = inputs(gan, "generator")
    with torch.no_grad():
        np.testing.assert_allclose(peer(torch.from_numpy(z)).numpy(), expected, **TOLERANCE)


def test_npz_holds_a_transposed_convolution_in_kerass_layout(tmp_path):
    """The stored (kh, kw, filters, C) kernel and bias, run through Keras' definition written
    out, give the layer's own output."""
    gan, _ = _transposed_network("generator")
    path = fastgan.export(gan, tmp_path / "g.npz", format="npz", ema=False)
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    layers = json.loads(str(arrays["layers.json"]))["layers"]
    assert layers[2]["type"] == "ConvTranspose2D" and layers[2]["spec"]["kernel"] == 4
    assert arrays["2.weight"].shape == (4, 4, 4, 6) and arrays["2.bias"].shape == (4,)
    x = np.random.default_rng(3).standard_normal((3, 2 * 2 * 6)).astype(np.float32)
    layer = gan.generator.layers[2]
    expected = gan.backend.to_numpy(layer.forward(gan.backend.asarray(x), training=False))
    got = direct_conv_transpose(x.reshape(3, 2, 2, 6), arrays["2.weight"], arrays["2.bias"], 2)
    np.testing.assert_allclose(got.reshape(3, -1), expected, **TOLERANCE)


ACTIVATIONS = {"relu": lambda v, alpha: np.maximum(v, 0), "tanh": lambda v, alpha: np.tanh(v),
               "leaky_relu": lambda v, alpha: np.where(v > 0, v, alpha * v),
               "identity": lambda v, alpha: v}


def npz_forward(path, x: np.ndarray) -> np.ndarray:
    """An MLP exported as NPZ, run by a reader that knows only NumPy and the JSON layers."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    for index, layer in enumerate(json.loads(str(arrays["layers.json"]))["layers"]):
        if layer["type"] == "Dense":
            spec = layer["spec"]
            x = x @ arrays[f"{index}.weight"] + arrays[f"{index}.bias"]
            x = ACTIVATIONS[spec["activation"]](x, spec["alpha"])
        else:
            assert layer["type"] == "Dropout"   # the identity in inference
    return x


@pytest.mark.parametrize(("format", "preset"), [("onnx", "tiny"), ("npz", "tiny"),
                                               ("onnx", "keras-dcgan")])
def test_a_spectrally_normalised_discriminator_exports_the_weight_it_multiplies_by(
        format, preset, tmp_path):
    runtime = (pytest.importorskip("onnxruntime", reason="ONNX export needs fastgan[export]")
               if format == "onnx" else None)
    gan = trained(preset, spectral_norm=True)
    first = next(layer for layer in gan.discriminator.layers if layer.has_params)
    index = gan.discriminator.layers.index(first)
    images, expected = inputs(gan, "discriminator")
    path = fastgan.export(gan, tmp_path / f"d.{format}", format=format, network="discriminator")
    if runtime is not None:
        got = runtime.InferenceSession(str(path)).run(None, {"image": images})[0]
    else:
        got = npz_forward(path, images)
        with np.load(path) as arrays:        # W / sigma(W), not the raw W
            assert not np.allclose(arrays[f"{index}.weight"].reshape(first.W.shape), first.W)
    np.testing.assert_allclose(got, expected, **TOLERANCE)


def test_npz_holds_plain_arrays_and_the_layers(tmp_path):
    gan = trained("pytorch-vanilla")
    path = fastgan.export(gan, tmp_path / "g.npz", format="npz")
    z, expected = inputs(gan, "generator")
    np.testing.assert_allclose(npz_forward(path, z), expected, **TOLERANCE)


def test_no_ema_exports_the_training_weights(tmp_path):
    gan = trained("tiny")
    z, averaged = inputs(gan, "generator")
    training = gan.backend.to_numpy(gan.generator.forward(z, training=False))
    assert not np.allclose(averaged, training, **TOLERANCE)   # the test can tell them apart
    for ema, expected in ((True, averaged), (False, training)):
        path = fastgan.export(gan, tmp_path / f"{ema}.npz", format="npz", ema=ema)
        np.testing.assert_allclose(npz_forward(path, z), expected, **TOLERANCE)


# ---------------------------------------------------------------- bad input
def test_unknown_format_and_network_are_refused(tmp_path):
    gan = trained("tiny")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        fastgan.export(gan, tmp_path / "g", format="tflite")
    with pytest.raises(ConfigError, match="unknown network 'critic'"):
        fastgan.export(gan, tmp_path / "g", network="critic")
    assert not any(tmp_path.iterdir())


def test_a_conditional_gan_is_refused(tmp_path):
    gan = GAN.from_preset("tiny", data_dim=4, conditional=True, num_classes=3)
    with pytest.raises(ConfigError, match="exporting a conditional GAN is not built yet"):
        fastgan.export(gan, tmp_path / "g.npz", format="npz")
    assert not any(tmp_path.iterdir())


def test_an_existing_output_is_kept_unless_forced(tmp_path):
    gan = trained("tiny")
    path = tmp_path / "g.npz"
    path.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="exists"):
        fastgan.export(gan, path, format="npz")
    assert path.read_bytes() == b"mine"
    fastgan.export(gan, path, format="npz", force=True)
    assert "layers.json" in np.load(path)


def test_a_network_the_format_cannot_hold_leaves_nothing(tmp_path):
    pytest.importorskip("torch", reason="the PyTorch export needs fastgan[compare]")
    gan = trained("keras-dcgan", data_dim=192, channels=3)     # 8 x 8 RGB images
    with pytest.raises(ConfigError, match="output features channels-first; export it to onnx"):
        fastgan.export(gan, tmp_path / "g.pt", format="torch")
    assert list(tmp_path.iterdir()) == []


def test_without_onnx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)      # import onnx raises ImportError
    monkeypatch.delitem(sys.modules, "fastgan.export.onnx", raising=False)
    with pytest.raises(ConfigError, match=r'pip install "fastgan\[export\]"'):
        fastgan.export(trained("tiny"), tmp_path / "g.onnx")
    assert list(tmp_path.iterdir()) == []


def test_command_line_writes_and_refuses_in_one_line(tmp_path, capsys):
    trained("tiny").save(tmp_path / "run" / "checkpoint.npz")
    output = tmp_path / "g.npz"
    assert main(["export", str(tmp_path / "run"), "--format", "npz", "-o", str(output)]) == 0
    assert "layers.json" in np.load(output)
    capsys.readouterr()
    for argv in ([str(tmp_path / "run"), "--format", "npz", "-o", str(output)],
                 [str(tmp_path), "--format", "npz", "-o", str(tmp_path / "other.npz")]):
        assert main(["export", *argv]) == 1
        error = capsys.readouterr().err
        assert error.startswith("fastgan: error:") and error.count("\n") == 1, error
    assert not (tmp_path / "other.npz").exists()
    with pytest.raises(SystemExit) as stop:
        main(["export", str(tmp_path / "run"), "--format", "tflite", "-o", str(output)])
    assert stop.value.code == 2


def test_a_folder_is_replaced_only_once_complete(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "old.txt").write_text("old")

    def fails(folder):
        (folder / "half.txt").write_text("half")
        raise ConfigError("stopped half way")

    with pytest.raises(ConfigError, match="half way"):
        write_folder_atomically(site, fails)
    assert [p.name for p in tmp_path.iterdir()] == ["site"]
    assert [p.name for p in site.iterdir()] == ["old.txt"]
    write_folder_atomically(site, lambda folder: (folder / "new.txt").write_text("new"))
    assert [p.name for p in tmp_path.iterdir()] == ["site"]
    assert [p.name for p in site.iterdir()] == ["new.txt"]
