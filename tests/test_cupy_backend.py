"""The CuPy backend: availability, argument checks, and its kernels against the NumPy reference.

Kernel, whole-step and graph tests run twice: on the real GPU (``cupy``, marked ``gpu``,
skipped with the reason where CuPy cannot run) and on the CPU emulation of the same CUDA
source (``emulated``, see cuda_emulator.py), which needs only g++.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from support import cuda_emulator, tolerances
from support.gradcheck import check_gradient, slot_names
from support.small_presets import TRANSPOSED_GENERATOR
from test_gradients import (
    CONDITIONAL,
    FAST_DCGAN_CASES,
    SCORE_LOGITS,
    TRANSPOSED_CASES,
    check_conditional_dcgan,
    check_conditional_gan,
    check_conv_transpose,
    check_fast_dcgan,
    check_transposed_gan,
    check_transposed_stack,
)
from test_parity import DCGAN_SGD, GEOMETRIES, SCORE_CASES
from test_r1 import (
    check_discriminator_step,
    check_penalty,
    r1_config,
    transposed_penalty_net,
)

import fastgan
from fastgan import GAN, backends
from fastgan.backends import cupy_backend
from fastgan.backends.base import (
    ACTIVATION_CODES,
    IDENTITY,
    LEAKY_RELU,
    RELU,
    SIGMOID,
    TANH,
    PhiloxRng,
)
from fastgan.backends.cublas import OP_N, OP_T, gemm_arguments
from fastgan.backends.cuda_kernels import KERNELS, SOURCE, name_expressions
from fastgan.backends.cupy_backend import CupyBackend
from fastgan.errors import BackendUnavailable, ConfigError, FastganError
from fastgan.gan.cuda_graph import GraphedStep
from fastgan.nn.specs import Conv2D, Flatten, Reshape

DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------- availability (CPU)
class _CudaError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"CUDA error {status}")
        self.status = status


def _fake_cuda(monkeypatch, driver: int, runtime: int, devices: int | Exception,
               libraries: Exception | None = None) -> None:
    """Pretend cupy imports and CUDA reports these versions and this device count (or error),
    and that its libraries load (or raise ``libraries``)."""
    monkeypatch.setattr(cupy_backend, "_import_cupy", lambda: SimpleNamespace())
    monkeypatch.setattr(cupy_backend, "_cuda_versions", lambda cupy: (driver, runtime))

    def load_libraries(cupy):
        if libraries is not None:
            raise libraries

    monkeypatch.setattr(cupy_backend, "_load_libraries", load_libraries)

    def device_count(cupy):
        if isinstance(devices, Exception):
            raise devices
        return devices

    monkeypatch.setattr(cupy_backend, "_device_count", device_count)


def _no_cupy(monkeypatch, missing: str = "cupy") -> None:
    def fail():
        raise ImportError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(cupy_backend, "_import_cupy", fail)


def test_import_fastgan_and_the_module_never_import_cupy():
    code = ("import sys, fastgan, fastgan.backends.cupy_backend, fastgan.gan.cuda_graph; "
            "assert 'cupy' not in sys.modules, 'cupy was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reason_when_cupy_is_not_installed(monkeypatch):
    _no_cupy(monkeypatch)
    reason = cupy_backend.unavailable_reason()
    assert "cupy is not installed" in reason and "fastgan[cuda12]" in reason


def test_reason_when_cupy_is_broken(monkeypatch):
    _no_cupy(monkeypatch, missing="cupy_backends.cuda.libs.cublas")
    assert "installed but cannot be imported" in cupy_backend.unavailable_reason()


def test_reason_without_a_driver(monkeypatch):
    _fake_cuda(monkeypatch, driver=0, runtime=12040, devices=_CudaError(35))
    assert "no NVIDIA driver" in cupy_backend.unavailable_reason()


@pytest.mark.parametrize("devices", [0, _CudaError(100)], ids=["zero", "error-100"])
def test_reason_without_a_device(monkeypatch, devices):
    _fake_cuda(monkeypatch, driver=12040, runtime=12040, devices=devices)
    assert "no CUDA device is visible" in cupy_backend.unavailable_reason()


@pytest.mark.parametrize(("driver", "runtime", "devices", "advice"), [
    (11080, 12040, 1, "CUDA 12 or newer"),
    (12020, 13000, 1, "fastgan[cuda12]"),
    (12000, 12080, _CudaError(35), "fastgan[cuda12]"),     # same major, still refused
])
def test_reason_when_the_driver_is_too_old(monkeypatch, driver, runtime, devices, advice):
    _fake_cuda(monkeypatch, driver=driver, runtime=runtime, devices=devices)
    reason = cupy_backend.unavailable_reason()
    assert "driver is too old" in reason and advice in reason
    assert f"{driver // 1000}.{driver % 1000 // 10}" in reason


def test_other_cuda_errors_are_reported(monkeypatch):
    _fake_cuda(monkeypatch, driver=12040, runtime=12040, devices=_CudaError(999))
    assert cupy_backend.unavailable_reason() == "CUDA cannot start: CUDA error 999"


def test_reason_when_nvrtc_or_cublas_is_missing(monkeypatch):
    missing = ImportError('Failure finding "libnvrtc.so.13"\n  listdir(...)')
    _fake_cuda(monkeypatch, driver=13000, runtime=13000, devices=1, libraries=missing)
    reason = cupy_backend.unavailable_reason()
    assert 'cannot load a CUDA library it needs (Failure finding "libnvrtc.so.13")' in reason
    assert "cupy-cuda12x[ctk]" in reason


def test_usable_when_a_device_answers(monkeypatch):
    _fake_cuda(monkeypatch, driver=12040, runtime=12040, devices=1)
    assert cupy_backend.unavailable_reason() is None


def test_get_backend_names_the_reason_and_the_alternatives(monkeypatch):
    _no_cupy(monkeypatch)
    monkeypatch.setattr(backends, "_instances", {})
    with pytest.raises(BackendUnavailable) as info:
        fastgan.get_backend("cupy")
    message = str(info.value)
    assert "cupy is not installed" in message and "Usable here:" in message and "numpy" in message
    assert fastgan.available_backends()["cupy"].startswith("cupy is not installed")
    assert fastgan.get_backend("auto").name != "cupy"


# ---------------------------------------------------------------- argument checks (CPU)
def _colmajor_gemm(g, first: np.ndarray, second: np.ndarray, out: np.ndarray) -> None:
    """BLAS's column-major C = op(A) op(B) on flat buffers, as cuBLAS defines it."""

    def matrix(buffer, rows, cols, ld):
        return np.lib.stride_tricks.as_strided(buffer, (rows, cols),
                                               (buffer.itemsize, ld * buffer.itemsize))

    a_rows, a_cols = (g.m, g.k) if g.trans_first == OP_N else (g.k, g.m)
    b_rows, b_cols = (g.k, g.n) if g.trans_second == OP_N else (g.n, g.k)
    a = matrix(first, a_rows, a_cols, g.ld_first)
    b = matrix(second, b_rows, b_cols, g.ld_second)
    c = matrix(out, g.m, g.n, g.ld_out)
    c[...] = (a if g.trans_first == OP_N else a.T) @ (b if g.trans_second == OP_N else b.T)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize(("m", "k", "n"), [(5, 3, 4), (1, 7, 2), (6, 1, 1)])
def test_gemm_arguments_drive_a_column_major_blas_to_the_row_major_product(trans_a, trans_b,
                                                                           m, k, n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    padded = np.zeros((m, n + 3))                 # rows of out farther apart than its width
    out = padded[:, :n]
    g = gemm_arguments(a, b, out, trans_a, trans_b)
    _colmajor_gemm(g, b.ravel(), a.ravel(), padded.ravel())
    np.testing.assert_allclose(out, (a.T if trans_a else a) @ (b.T if trans_b else b),
                               **tolerances.kernel("float64"))
    assert g.trans_first == (OP_T if trans_b else OP_N) and g.ld_out == (n + 3 if m > 1 else n)


def test_gemm_arguments_refuse_what_cublas_cannot_read():
    a, b = np.ones((4, 3)), np.ones((3, 2))
    with pytest.raises(ConfigError, match="shapes do not match"):
        gemm_arguments(a, b, np.empty((4, 3)), False, False)
    with pytest.raises(ConfigError, match="contiguous rows"):
        gemm_arguments(np.ones((3, 4)).T, b, np.empty((4, 2)), False, False)
    with pytest.raises(ConfigError, match="one dtype"):
        gemm_arguments(a.astype(np.float32), b, np.empty((4, 2)), False, False)


def test_kernel_arguments_are_typed_and_checked():
    kernel = KERNELS["bias_act"]
    y, bias = np.zeros((2, 3), np.float32), np.zeros(3, np.float32)
    args = kernel.arguments(np.float32, (y, bias, 6, 3, RELU, 0.1))
    assert [type(a) for a in args[2:]] == [np.int64, np.int32, np.int32, np.float32]
    with pytest.raises(ConfigError, match="float32"):
        kernel.arguments(np.float32, (y, bias.astype(np.float64), 6, 3, RELU, 0.1))
    with pytest.raises(ConfigError, match="non-contiguous"):
        kernel.arguments(np.float32, (y.T, bias, 6, 3, RELU, 0.1))
    with pytest.raises(ConfigError, match="takes 6 arguments"):
        kernel.arguments(np.float32, (y, bias))


def test_every_kernel_is_compiled_for_both_dtypes():
    names = name_expressions()
    assert "bias_act<float>" in names and "bias_act<double>" in names
    assert "schedule_next" in names and len(names) == len(set(names))
    assert all(any(n.split("<")[0] == k for n in names) for k in KERNELS)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_kernel_source_compiles_with_nvcc(tmp_path):
    lines = [SOURCE]
    for kernel in KERNELS.values():
        for dtype in DTYPES if kernel.templated else []:
            lines.append(f"template __global__ void {kernel.instance(dtype)}"
                         f"({', '.join(kernel.c_params(dtype))});")
    source = tmp_path / "kernels.cu"
    source.write_text("\n".join(lines))
    for arch in ("sm_80", "sm_90"):
        result = subprocess.run(["nvcc", "-std=c++17", f"-arch={arch}", "--ptx", str(source),
                                 "-o", str(tmp_path / f"{arch}.ptx")],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"{arch}.ptx").read_text().count(".entry") == len(name_expressions())


# ---------------------------------------------------------------- GPU and emulated GPU
@pytest.fixture(params=["emulated", pytest.param("cupy", marks=pytest.mark.gpu)])
def make_cuda(request):
    """A factory of CupyBackend objects on the real GPU or on the CPU emulation."""
    if request.param == "cupy":
        reason = cupy_backend.unavailable_reason()
        if reason is not None:
            pytest.skip(f"backend cupy unavailable: {reason}")
        return CupyBackend
    library = request.getfixturevalue("emulator_library")
    return lambda **options: CupyBackend(device=cuda_emulator.EmulatedDevice(library), **options)


@pytest.fixture
def cuda(make_cuda):
    return make_cuda()


def run_both(backend, method: str, dtype, *args):
    """Call ``method`` on the NumPy reference (host copies) and on ``backend`` (device copies);
    return (reference, backend) host arrays for every array argument."""
    reference = fastgan.get_backend("numpy")
    ref_args = [a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args]
    dev_args = [backend.asarray(a, dtype) if isinstance(a, np.ndarray) else a for a in args]
    getattr(reference, method)(*ref_args)
    getattr(backend, method)(*dev_args)
    return [(r, backend.to_numpy(d)) for r, d in zip(ref_args, dev_args, strict=True)
            if isinstance(r, np.ndarray)]


def assert_same(pairs, dtype, scale: float = 1.0):
    for i, (expected, actual) in enumerate(pairs):
        tol = tolerances.device_kernel(dtype)
        np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=f"array argument {i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize(("trans_a", "trans_b"), [(False, False), (True, False), (False, True)])
def test_gemm(cuda, dtype, trans_a, trans_b, accumulate):
    rng = np.random.default_rng(1)
    m, k, n = 33, 70, 45
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    out = rng.standard_normal((m, n))
    assert_same(run_both(cuda, "gemm", dtype, a, b, out, trans_a, trans_b, accumulate), dtype,
                scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", list(ACTIVATION_CODES.values()), ids=list(ACTIVATION_CODES))
def test_bias_act(cuda, dtype, act):
    rng = np.random.default_rng(2)
    y = 3 * rng.standard_normal((37, 45))
    assert_same(run_both(cuda, "bias_act", dtype, y, rng.standard_normal(45), act, 0.1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", list(ACTIVATION_CODES.values()), ids=list(ACTIVATION_CODES))
@pytest.mark.parametrize("shape", [(7, 45), (300, 20), (1, 3)], ids=["two-tiles", "chunked", "one"])
@pytest.mark.parametrize("with_dbias", [True, False], ids=["dbias", "no-dbias"])
def test_act_backward(cuda, dtype, act, shape, with_dbias):
    rng = np.random.default_rng(3)
    z = rng.standard_normal(shape)
    y = {IDENTITY: z, RELU: np.maximum(z, 0), LEAKY_RELU: np.maximum(z, 0.1 * z),
         TANH: np.tanh(z), SIGMOID: 1 / (1 + np.exp(-z))}[act]
    dbias = np.full(shape[1], np.nan) if with_dbias else None
    pairs = run_both(cuda, "act_backward", dtype, rng.standard_normal(shape), y, act, 0.1, dbias)
    assert_same(pairs, dtype, scale=shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("target", "scale"), [(1.0, 1 / 300), (0.0, 1 / 300), (0.9, 1 / 300),
                                               (0.0, -1 / 300)])
def test_bce_with_logits(cuda, dtype, target, scale):
    rng = np.random.default_rng(4)
    logits = 4 * rng.standard_normal((300, 1))
    logits[:3, 0] = [-60.0, 60.0, 0.0]                  # far tails and the branch point
    pairs = run_both(cuda, "bce_with_logits", dtype, logits, target, scale, np.zeros((300, 1)),
                     np.zeros(2))
    assert_same(pairs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "target"), SCORE_CASES)
def test_score_loss(cuda, dtype, kind, target):
    rng = np.random.default_rng(4)
    logits = 3 * rng.standard_normal((300, 1))
    logits[:4, 0] = [-60.0, 60.0, 1.0, -1.0]            # far tails and the hinge's kinks
    pairs = run_both(cuda, "score_loss", dtype, logits, kind, target, 1 / 300,
                     np.zeros((300, 1)), np.zeros(2))
    assert_same(pairs, dtype)


@pytest.mark.parametrize(("kind", "target"), SCORE_CASES)
def test_score_loss_gradient(cuda, kind, target):
    """The kernel's gradient against central differences of its loss, in float64."""
    logits = cuda.asarray(SCORE_LOGITS, "float64")
    grad, stats = cuda.zeros((6, 1), "float64"), cuda.zeros((2,), "float64")

    def loss() -> float:
        cuda.score_loss(logits, kind, target, 1 / 6, grad, stats)
        return float(cuda.to_numpy(stats)[0])

    loss()
    check_gradient(loss, logits, cuda.asarray(cuda.to_numpy(grad).copy()), cuda)


@pytest.mark.parametrize("dtype", DTYPES)
def test_spectral_norm_kernels(cuda, dtype):
    rng = np.random.default_rng(6)
    w, u, v = rng.standard_normal((300, 70)), rng.standard_normal(70), np.zeros(300)
    assert_same(run_both(cuda, "power_iteration", dtype, w, u, v), dtype)
    u, v = u / np.linalg.norm(u), rng.standard_normal(300) / np.sqrt(300)
    pairs = run_both(cuda, "spectral_weight", dtype, w, u, v, np.zeros(1), np.zeros((300, 70)))
    assert_same(pairs, dtype, scale=10)
    w_bar = w / (v @ w @ u)
    pairs = run_both(cuda, "spectral_backward", dtype, rng.standard_normal((300, 70)), w_bar, u,
                     v, np.array([v @ w @ u]))
    assert_same(pairs, dtype, scale=10)


SPECTRAL_NETWORKS = {
    "dense": ([fastgan.Dense(7, "leaky_relu", alpha=0.2), fastgan.Dense(3)], 5, 6),
    "conv": ([Reshape((5, 4, 2)), Conv2D(3, activation="leaky_relu", alpha=0.2),
              Conv2D(2, stride=2), Flatten(), fastgan.Dense(3)], 40, 3),
}
"""Spectrally normalised networks: (layers, input features, rows)."""


@pytest.mark.parametrize("network", list(SPECTRAL_NETWORKS))
def test_spectral_norm_gradient(cuda, network):
    """Every parameter's and the input's gradient through spectrally normalised dense or
    convolution layers (u frozen), by central differences on the emulated GPU, in float64."""
    layers, features, rows = SPECTRAL_NETWORKS[network]
    net = fastgan.MLP(layers, in_features=features, backend=cuda, dtype="float64", seed=4,
                      spectral_norm=True)
    net.power_iteration()
    x = cuda.asarray(np.random.default_rng(1).standard_normal((rows, features)), "float64")
    weights = np.random.default_rng(2).standard_normal((rows, 3))

    def loss() -> float:
        return float((cuda.to_numpy(net.forward(x, training=True)) * weights).sum())

    net.forward(x, training=True)
    dx = cuda.to_numpy(net.backward(cuda.asarray(weights, "float64"), input_grad=True)).copy()
    grad = cuda.asarray(cuda.to_numpy(net.params.grad).copy())
    check_gradient(loss, net.params.data, grad, cuda, names=slot_names(net.params))
    check_gradient(loss, x, cuda.asarray(dx), cuda)


def test_r1_penalty_gradient(cuda):
    """The R1 penalty's second-order gradient by central differences on the emulated GPU:
    through dropout (fixed masks), LeakyReLU and spectrally normalised layers (u frozen), and
    through convolutions; then D's whole step with the penalty."""
    mlp = fastgan.MLP([fastgan.Dense(7, "leaky_relu", alpha=0.2), fastgan.Dropout(0.3),
                       fastgan.Dense(1)], in_features=5, backend=cuda, dtype="float64", seed=4,
                      spectral_norm=True)
    mlp.power_iteration()
    check_penalty(mlp)
    conv = fastgan.MLP([Reshape((4, 5, 2)), Conv2D(3, stride=2, activation="leaky_relu",
                                                   alpha=0.2), Flatten(), fastgan.Dense(1)],
                       in_features=40, backend=cuda, dtype="float64", seed=5)
    check_penalty(conv, rows=3)
    check_discriminator_step(GAN(r1_config(spectral_norm=True), backend=cuda, dtype="float64",
                                 seed=10))


@pytest.mark.parametrize("kernel,stride", list(TRANSPOSED_CASES.values()),
                         ids=list(TRANSPOSED_CASES))
def test_conv_transpose_gradient(cuda, kernel, stride):
    """A ConvTranspose2D's input and parameter gradients by central differences on the
    emulated GPU, in float64, for each padding case of the convolution it is the adjoint of."""
    check_conv_transpose(cuda, kernel, stride)


@pytest.mark.parametrize(("upsample", "norm", "kernel"), list(FAST_DCGAN_CASES.values()),
                         ids=list(FAST_DCGAN_CASES))
def test_fast_dcgan_gradients(cuda, upsample, norm, kernel):
    """A tiny fast-dcgan's D and G gradients by central differences on the emulated GPU, in
    float64, each way of doubling the image."""
    check_fast_dcgan(cuda, upsample, norm, kernel)


def test_transposed_convolution_networks_gradients(cuda):
    """On the emulated GPU: a transposed convolution before a Conv2D (plain, then spectrally
    normalised with u frozen), a GAN whose generator is made of them (both losses end to
    end), and the R1 penalty's second-order gradient through one."""
    check_transposed_stack(cuda)
    check_transposed_stack(cuda, spectral_norm=True)
    check_transposed_gan(cuda)
    check_penalty(transposed_penalty_net(cuda, spectral_norm=True), rows=3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_columns_and_one_hot(cuda, dtype):
    """Column blocks between matrices of other widths, and one-hot codes (the edge C too)."""
    rng = np.random.default_rng(6)
    src, out = rng.standard_normal((7, 9)), rng.standard_normal((7, 14))
    assert_same(run_both(cuda, "copy_columns", dtype, src, 2, out, 8, 5), dtype)
    codes = np.concatenate([rng.uniform(0, 4, 6), [4.0]])
    assert_same(run_both(cuda, "one_hot", dtype, codes, out, 3, 4), dtype)
    rows, maps = rng.standard_normal((7, 12 + 3)), rng.standard_normal((7, 6 * 5))
    assert_same(run_both(cuda, "label_maps", dtype, rows, rows, 12, maps, 2, 3), dtype)
    assert_same(run_both(cuda, "image_channels", dtype, maps, rng.standard_normal((7, 12)), 2,
                         3), dtype)


@pytest.mark.parametrize("labels", list(CONDITIONAL))
def test_conditional_gan_gradients(cuda, labels):
    """A conditional GAN's D and G gradients (class embedding included) on the emulated GPU,
    by central differences in float64."""
    check_conditional_gan(cuda, **CONDITIONAL[labels])
    check_conditional_dcgan(cuda, labels)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multiply(cuda, dtype):
    rng = np.random.default_rng(5)
    shape = (13, 29)
    pairs = run_both(cuda, "multiply", dtype, rng.standard_normal(shape),
                     rng.standard_normal(shape), np.zeros(shape))
    assert_same(pairs, dtype)
    with pytest.raises(ConfigError, match="equal shapes"):
        cuda.multiply(cuda.zeros((2, 3), dtype), cuda.zeros((1, 3), dtype),
                      cuda.zeros((2, 3), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_and_col2im(cuda, dtype, geometry):
    rng = np.random.default_rng(8)
    rows = 3 * geometry.out_height * geometry.out_width
    x = rng.standard_normal((3, geometry.height * geometry.width * geometry.channels))
    cols = np.full((rows, geometry.patch_size), np.nan)          # every entry must be written
    assert_same(run_both(cuda, "im2col", dtype, x, geometry, cols), dtype)
    dcols = rng.standard_normal((rows, geometry.patch_size))
    assert_same(run_both(cuda, "col2im", dtype, dcols, geometry, np.full_like(x, np.nan)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_upsample2x_and_backward(cuda, dtype):
    rng = np.random.default_rng(9)
    shape = (3, 5, 4)
    x, dy = rng.standard_normal((2, 60)), rng.standard_normal((2, 240))
    assert_same(run_both(cuda, "upsample2x", dtype, x, shape, np.full((2, 240), np.nan)), dtype)
    assert_same(run_both(cuda, "upsample2x_backward", dtype, dy, shape, np.full((2, 60), np.nan)),
                dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(50, 70), (3, 5)])
def test_batchnorm_train(cuda, dtype, shape):
    rng = np.random.default_rng(6)
    cols = shape[1]
    pairs = run_both(cuda, "batchnorm_train", dtype, 2 + 3 * rng.standard_normal(shape),
                     rng.standard_normal(cols), rng.standard_normal(cols), np.zeros(shape),
                     np.zeros(shape), np.zeros(cols), rng.standard_normal(cols),
                     rng.uniform(0.5, 2, cols), 0.8, 1e-3)
    assert_same(pairs, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_eval(cuda, dtype):
    rng = np.random.default_rng(7)
    pairs = run_both(cuda, "batchnorm_eval", dtype, rng.standard_normal((9, 40)),
                     rng.standard_normal(40), rng.standard_normal(40), np.zeros((9, 40)),
                     rng.standard_normal(40), rng.uniform(0.5, 2, 40), 1e-3)
    assert_same(pairs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_dx", [True, False], ids=["dx", "no-dx"])
def test_batchnorm_backward(cuda, dtype, with_dx):
    rng = np.random.default_rng(8)
    shape = (50, 70)
    x = rng.standard_normal(shape)
    xhat = (x - x.mean(0)) / x.std(0)
    dx = np.zeros(shape) if with_dx else None
    pairs = run_both(cuda, "batchnorm_backward", dtype, rng.standard_normal(shape), xhat,
                     rng.standard_normal(70), rng.uniform(0.5, 2, 70), np.zeros(70), np.zeros(70),
                     dx)
    assert_same(pairs, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_update(cuda, dtype, momentum):
    rng = np.random.default_rng(9)
    pairs = run_both(cuda, "sgd_update", dtype, rng.standard_normal(1000),
                     rng.standard_normal(1000), rng.standard_normal(1000), 0.01, momentum)
    assert_same(pairs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ema_update(cuda, dtype):
    rng = np.random.default_rng(10)
    pairs = run_both(cuda, "ema_update", dtype, rng.standard_normal(1000),
                     rng.standard_normal(1000), 0.999)
    assert_same(pairs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", [1, 2, 7])
def test_adam_update(cuda, dtype, step):
    rng = np.random.default_rng(10)
    pairs = run_both(cuda, "adam_update", dtype, rng.standard_normal(1000),
                     rng.standard_normal(1000), rng.standard_normal(1000),
                     rng.uniform(0, 1, 1000), 2e-4, 0.5, 0.999, 1e-8, step)
    assert_same(pairs, dtype)


def test_scheduled_updates_equal_the_eager_ones(cuda):
    """Adam at step t from a schedule holding t-1 equals eager Adam at step t, bit for bit."""
    rng = np.random.default_rng(11)
    host = [rng.standard_normal(500) for _ in range(3)] + [rng.uniform(0, 1, 500)]
    eager = [cuda.asarray(a, "float32") for a in host]
    scheduled = [cuda.asarray(a, "float32") for a in host]
    schedule = cuda.new_schedule()
    cuda.set_schedule(schedule, 2, 1e-3, 0.5, 0.999)
    for step in (3, 4):
        cuda.adam_update(*eager, 1e-3, 0.5, 0.999, 1e-8, step)
        cuda.adam_update_scheduled(*scheduled, 0.5, 0.999, 1e-8, schedule)
    for a, b in zip(eager, scheduled, strict=True):
        np.testing.assert_array_equal(cuda.to_numpy(a), cuda.to_numpy(b))
    np.testing.assert_array_equal(cuda.to_numpy(schedule)[2:], [4, 1e-3])


# ---------------------------------------------------------------- random numbers
# The Philox stream itself is tested on every backend in test_philox.py.
def test_pcg64_generator_reproduces_the_numpy_stream(make_cuda):
    cuda = make_cuda(rng="pcg64")
    reference = fastgan.get_backend("numpy").rng(3)
    rng = cuda.rng(3)
    for draw in ("normal", "uniform"):
        expected = np.empty((6, 4), np.float32)
        getattr(reference, draw)(expected)
        out = cuda.empty((6, 4), "float32")
        getattr(rng, draw)(out)
        np.testing.assert_array_equal(cuda.to_numpy(out), expected)


# ---------------------------------------------------------------- whole training steps
PRESETS = {
    "tiny": {"data_dim": 6},
    "keras-mlp": {"data_dim": 12, "latent_dim": 4, "g_hidden": (8, 16), "d_hidden": (8,)},
    "pytorch-vanilla": {"data_dim": 12, "g_hidden": (16,), "d_hidden": (16, 8), "k": 2},
    "numpy-mlp": {"data_dim": 10, "g_hidden": (16,), "d_hidden": (8,)},
    "keras-dcgan": {"data_dim": 64, "latent_dim": 4, "g_filters": (6, 4, 3),
                    "d_filters": (3, 4, 6), **DCGAN_SGD},
}


def _batches(gan, count: int, batch: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [rng.uniform(-1, 1, (gan.k * batch, gan.data_dim)) for _ in range(count)]
    if not gan.num_classes:
        return rows
    labels = np.eye(gan.num_classes)[rng.integers(0, gan.num_classes, (count, gan.k * batch))]
    return [np.concatenate(pair, axis=1) for pair in zip(rows, labels, strict=True)]


def _state(gan) -> dict[str, np.ndarray]:
    be = gan.backend
    arrays = {"G": gan.generator.params.data, "D": gan.discriminator.params.data,
              "stats": gan.stats}
    arrays.update({f"G.{k}": v for k, v in gan.generator.buffers().items()})
    arrays.update({f"D.{k}": v for k, v in gan.discriminator.buffers().items()})
    if gan.ema is not None:
        arrays["G.ema"] = gan.ema.average
    for name, opt in (("g_opt", gan.g_optimizer), ("d_opt", gan.d_optimizer)):
        arrays.update({f"{name}.{k}": v for k, v in opt.state.items()})
    return {k: be.to_numpy(v).copy() for k, v in arrays.items()}


def _assert_twenty_steps_match_numpy(make_cuda, preset: str, dtype, **options) -> None:
    """From the same weights and the same noise (host generator), 20 steps of ``preset``
    (with ``options``) agree with the NumPy reference's."""
    reference = GAN.from_preset(preset, backend="numpy", dtype=dtype, seed=3, **options)
    gan = GAN.from_preset(preset, backend=make_cuda(rng="pcg64"), dtype=dtype, seed=3,
                          **options)
    for i, batch in enumerate(_batches(gan, 20)):
        reference.epoch = gan.epoch = i // 10            # the learning-rate schedules move
        reference.step(batch)
        gan.step(batch)
    expected, actual = _state(reference), _state(gan)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], err_msg=name,
                                   **tolerances.device_steps(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_twenty_steps_match_numpy(make_cuda, preset, dtype):
    """From the same weights and the same noise (host generator), 20 steps agree."""
    _assert_twenty_steps_match_numpy(make_cuda, preset, dtype, **PRESETS[preset])


@pytest.mark.parametrize("dtype", DTYPES)
def test_twenty_steps_of_a_transposed_generator_match_numpy(make_cuda, dtype):
    """keras-dcgan's small D and a generator of transposed convolutions (SGD: see
    DCGAN_SGD), 20 steps as the NumPy reference's."""
    _assert_twenty_steps_match_numpy(make_cuda, "keras-dcgan", dtype,
                                     **PRESETS["keras-dcgan"], generator=TRANSPOSED_GENERATOR)


@pytest.mark.parametrize("options", [{"d_loss": "hinge", "g_loss": "hinge"},
                                     {"d_loss": "least_squares", "g_loss": "least_squares"},
                                     {"spectral_norm": True},
                                     {"r1_gamma": 1.0, "spectral_norm": True, "r1_every": 2},
                                     {"conditional": True, "num_classes": 4},
                                     {"conditional": True, "num_classes": 4, "projection": True}],
                         ids=["hinge", "least-squares", "spectral-norm", "r1", "conditional",
                              "projection"])
def test_twenty_steps_of_each_stabiliser_match_numpy(make_cuda, options):
    """Steps with each loss, and with spectral norm, 20 of them, as the NumPy reference."""
    options = {**PRESETS["pytorch-vanilla"], **options}
    reference = GAN.from_preset("pytorch-vanilla", backend="numpy", seed=3, **options)
    gan = GAN.from_preset("pytorch-vanilla", backend=make_cuda(rng="pcg64"), seed=3, **options)
    for batch in _batches(gan, 20):
        reference.step(batch)
        gan.step(batch)
    expected, actual = _state(reference), _state(gan)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], err_msg=name,
                                   **tolerances.device_steps("float32"))


# ---------------------------------------------------------------- CUDA-graph replay
def _train_both_ways(make_cuda, preset: str, plant=None, **options):
    eager = GAN.from_preset(preset, backend=make_cuda(), seed=4, **PRESETS[preset], **options)
    replayed = GAN.from_preset(preset, backend=make_cuda(), seed=4, **PRESETS[preset],
                               **options)
    graphed = GraphedStep(replayed)
    if plant is not None:
        plant(graphed)
    batches = _batches(eager, 8, seed=1)
    for i, batch in enumerate(batches):
        eager.epoch = replayed.epoch = i // 4           # a new learning rate mid-way
        eager.step(batch)
        if i == 5:
            replayed.step(batch)                         # an eager step between replays
        else:
            graphed.step(batch)
    return eager, replayed


@pytest.mark.parametrize(("preset", "options"), [
    ("pytorch-vanilla", {}), ("numpy-mlp", {}), ("keras-mlp", {}), ("keras-dcgan", {}),
    ("pytorch-vanilla", {"ema_decay": 0.9}),
    ("pytorch-vanilla", {"d_loss": "hinge", "g_loss": "hinge"}),
    ("pytorch-vanilla", {"d_loss": "least_squares", "g_loss": "least_squares"}),
    ("pytorch-vanilla", {"spectral_norm": True}),
    ("pytorch-vanilla", {"r1_gamma": 1.0}), ("keras-dcgan", {"spectral_norm": True}),
    ("pytorch-vanilla", {"conditional": True, "num_classes": 4}),
    ("pytorch-vanilla", {"conditional": True, "num_classes": 4, "projection": True}),
    ("keras-dcgan", {"conditional": True, "num_classes": 4, "projection": True}),
    ("keras-dcgan", {"conditional": True, "num_classes": 4})],
    ids=["pytorch-vanilla", "numpy-mlp", "keras-mlp", "keras-dcgan", "pytorch-vanilla-ema",
         "pytorch-vanilla-hinge", "pytorch-vanilla-least-squares",
         "pytorch-vanilla-spectral-norm", "pytorch-vanilla-r1", "keras-dcgan-spectral-norm",
         "pytorch-vanilla-conditional", "pytorch-vanilla-projection", "keras-dcgan-projection",
         "keras-dcgan-label-maps"])
def test_graph_replay_equals_eager_steps(make_cuda, preset, options):
    eager, replayed = _train_both_ways(make_cuda, preset, **options)
    expected, actual = _state(eager), _state(replayed)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert replayed.steps == eager.steps == 8
    assert replayed.d_optimizer.steps == eager.d_optimizer.steps
    assert replayed.g_optimizer.steps == eager.g_optimizer.steps
    assert replayed.noise_rng.get_state() == eager.noise_rng.get_state()
    assert replayed.last_stats() == eager.last_stats()


class Halving:
    """Stands in for the all-reduce of two ranks whose other rank has zero gradients: the mean
    is half the buffer, made by one device kernel (so a graph records it)."""

    def __init__(self, backend: CupyBackend) -> None:
        self.backend = backend
        self._zeros: dict[int, object] = {}

    def mean(self, grad) -> None:
        zeros = self._zeros.get(grad.size)
        if zeros is None:
            zeros = self._zeros[grad.size] = self.backend.zeros(grad.shape, grad.dtype)
        self.backend.ema_update(grad, zeros, 0.5)


def test_graph_replays_the_gradient_mean_before_each_update(make_cuda):
    """What data parallelism adds to a graphed step, the gradients' mean before each update,
    is recorded and replayed: replays equal eager steps that average alike, and differ from
    replays without it."""
    def build() -> GAN:
        return GAN.from_preset("pytorch-vanilla", backend=make_cuda(), seed=4,
                               **PRESETS["pytorch-vanilla"])

    eager, replayed, plain = build(), build(), build()
    eager_halving, halving = Halving(eager.backend), Halving(replayed.backend)
    graphed, graphed_plain = GraphedStep(replayed), GraphedStep(plain)
    for batch in _batches(eager, 6, seed=1):
        eager.step(batch, gradient_hook=eager_halving.mean)
        graphed.step(batch, gradient_hook=halving.mean)
        graphed_plain.step(batch)
    expected, actual = _state(eager), _state(replayed)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert replayed.steps == eager.steps == 6
    assert not np.array_equal(_state(plain)["G"], actual["G"])


def test_graph_comparison_catches_a_step_count_baked_into_the_graph(make_cuda):
    """Plant the classic bug (the host's Adam step passed as a launch argument): replays then
    repeat the captured bias correction, and the comparison above must notice."""

    def plant(graphed):
        for opt in (graphed.gan.d_optimizer, graphed.gan.g_optimizer):
            opt.step_scheduled = lambda schedule, opt=opt: opt.params.backend.adam_update(
                opt.params.data, opt.params.grad, opt.state["m"], opt.state["v"],
                opt.config.lr, opt.config.beta1, opt.config.beta2, opt.config.eps, opt.steps + 1)

    eager, replayed = _train_both_ways(make_cuda, "pytorch-vanilla", plant)
    assert not np.array_equal(_state(replayed)["G"], _state(eager)["G"])


def test_graph_replay_needs_cupy_and_the_device_generator(make_cuda):
    with pytest.raises(ConfigError, match="needs the cupy backend"):
        GraphedStep(GAN.from_preset("tiny", data_dim=2, backend="numpy"))
    host_drawn = GAN.from_preset("tiny", data_dim=2, backend=make_cuda(rng="pcg64"))
    with pytest.raises(ConfigError, match="device random generator"):
        GraphedStep(host_drawn)
    assert isinstance(GAN.from_preset("tiny", data_dim=2, backend=make_cuda()).noise_rng,
                      PhiloxRng)
    lazy = GAN.from_preset("tiny", data_dim=2, backend=make_cuda(), r1_gamma=1.0, r1_every=4)
    with pytest.raises(ConfigError, match="lazy R1 penalty"):
        GraphedStep(lazy)


def test_backend_options_are_checked(make_cuda):
    with pytest.raises(ConfigError, match="rng must be"):
        make_cuda(rng="cpu")
    assert make_cuda(rng="host").rng_stream == "pcg64"          # its names before Philox
    assert make_cuda(rng="device").rng_stream == "philox"


# ---------------------------------------------------------------- real GPU only
@pytest.fixture
def gpu():
    reason = cupy_backend.unavailable_reason()
    if reason is not None:
        pytest.skip(f"backend cupy unavailable: {reason}")
    return CupyBackend()


@pytest.mark.gpu
def test_tf32_gemm_stays_within_the_documented_bound(gpu):
    tf32 = CupyBackend(tf32=True)
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((256, 1024)), rng.standard_normal((1024, 512))
    out = tf32.zeros((256, 512), "float32")
    tf32.gemm(tf32.asarray(a, "float32"), tf32.asarray(b, "float32"), out)
    error = np.abs(tf32.to_numpy(out) - a.astype(np.float32).astype(np.float64) @ b.astype(
        np.float32).astype(np.float64))
    assert (error <= 2.0**-9 * (np.abs(a) @ np.abs(b))).all()


@pytest.mark.gpu
def test_capture_refuses_allocation_and_leaves_the_stream_usable(gpu):
    import cupy

    with pytest.raises(FastganError, match="allocate"), gpu.device.capture():
        cupy.empty(1000, dtype=np.float32)
    x, ones = gpu.zeros((4, 4), "float32"), gpu.asarray(np.ones(4), "float32")
    gpu.bias_act(x, ones, IDENTITY, 0.0)                       # eager: x = 1
    with gpu.device.capture() as captured:
        gpu.bias_act(x, ones, IDENTITY, 0.0)                   # recorded, not run
    np.testing.assert_array_equal(gpu.to_numpy(x), np.ones((4, 4)))
    captured.graph.launch()
    captured.graph.launch()
    np.testing.assert_array_equal(gpu.to_numpy(x), 3 * np.ones((4, 4)))
