"""GPU training-step benchmark: cupy eager, cupy graphed, PyTorch eager, torch.compile.

    pytest benchmarks/bench_gpu.py --benchmark-json=gpu.json     # skipped without a GPU

Every implementation runs the same algorithm (one D step on real + fake rows in one pass,
then one G step with fresh noise through the updated D) in float32 on a batch already on
the GPU. One benchmark round is ``STEPS_PER_ROUND`` steps followed by a synchronisation, so
pytest-benchmark's times divided by it are per-step GPU-inclusive times. ``cublas-only``
replays just the step's GEMMs (as a CUDA graph): the floor the step cannot beat (for the
DCGAN, whose im2col/col2im gathers are extra memory traffic, a floor that leaves them out).
``benchmarks/gpu_check.py`` prints the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fastgan import GAN
from fastgan.backends import cupy_backend
from fastgan.benchmarking.floor import step_gemms
from fastgan.gan import presets

CASES = [("pytorch-vanilla", 100), ("pytorch-vanilla", 1024), ("pytorch-vanilla", 8192),
         ("numpy-mlp", 64), ("keras-dcgan", 64)]
DATA_DIM = {"keras-dcgan": 32 * 32}      # seed 003's padded MNIST; the MLPs take 28 x 28
IMPLEMENTATIONS = ["cupy-eager", "cupy-graph", "cublas-only", "torch-eager", "torch-compile"]
STEPS_PER_ROUND = 20
ROUNDS = 15
WARMUP_STEPS = 10

REASON = cupy_backend.unavailable_reason()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(REASON is not None, reason=f"cupy unavailable: {REASON}")]

Runner = tuple[Callable[[], None], Callable[[], None], dict[str, Any]]


def _data_dim(preset: str) -> int:
    return DATA_DIM.get(preset, 28 * 28)


def _cupy_gan(preset: str, batch: int) -> tuple[GAN, Any]:
    gan = GAN.from_preset(preset, backend="cupy", seed=0, data_dim=_data_dim(preset))
    host = np.random.default_rng(0).uniform(-1, 1, (gan.k * batch, gan.data_dim))
    return gan, gan.backend.asarray(host, gan.dtype)


def _sync_cupy() -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


def _step_gemms(gan: GAN, real: Any) -> list[tuple]:
    """The GEMM calls (a, b, out, trans_a, trans_b, accumulate) of one training step, in
    order."""
    backend, calls = gan.backend, []
    gemm = backend.gemm

    def recording(a, b, out, trans_a=False, trans_b=False, accumulate=False):
        calls.append((a, b, out, trans_a, trans_b, accumulate))
        gemm(a, b, out, trans_a, trans_b, accumulate)

    backend.gemm = recording
    try:
        gan.step(real)
    finally:
        del backend.gemm
    return calls


def _gemm_info(gan: GAN, real: Any) -> tuple[list[tuple], dict[str, Any]]:
    """The step's recorded GEMM calls, and the case's facts for the table (FLOPs from
    :func:`fastgan.benchmarking.floor.step_gemms`, the project's one list of a step's GEMMs)."""
    import cupy

    calls = _step_gemms(gan, real)
    gemms = step_gemms(gan.config, real.shape[0] // gan.k)
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return calls, {"gflop_per_step": sum(g.flops for g in gemms) / 1e9,
                   "gemms_per_step": len(calls), "gemms_expected": len(gemms),
                   "device": props["name"].decode(), "cupy": cupy.__version__,
                   "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}


def _cupy_eager(preset: str, batch: int) -> Runner:
    gan, real = _cupy_gan(preset, batch)
    _, info = _gemm_info(gan, real)
    return (lambda: gan.step(real)), _sync_cupy, info


def _cupy_graph(preset: str, batch: int) -> Runner:
    from fastgan.gan.cuda_graph import GraphedStep

    gan, real = _cupy_gan(preset, batch)
    _, info = _gemm_info(gan, real)
    graphed = GraphedStep(gan)
    return (lambda: graphed.step(real)), _sync_cupy, info


def _cublas_only(preset: str, batch: int) -> Runner:
    gan, real = _cupy_gan(preset, batch)
    calls, info = _gemm_info(gan, real)
    device = gan.backend.device
    with device.capture() as captured:
        for call in calls:
            device.gemm(*call)
    return captured.graph.launch, _sync_cupy, info


def _torch(preset: str, batch: int, compile: bool) -> Runner:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    try:
        from fastgan.benchmarking.torch_peer import TorchGAN
    except ImportError as exc:
        pytest.skip(f"the PyTorch peer fastgan.benchmarking.torch_peer is not here ({exc})")
    preset_spec = presets.get(preset, _data_dim(preset), batch_size=batch)
    peer = TorchGAN(preset_spec, device="cuda", dtype="float32", seed=0, compile=compile)
    real = peer.make_batch()                     # k*B uniform rows on the GPU
    info = {"torch": torch.__version__, "mode": "reduce-overhead" if compile else "eager"}
    return (lambda: peer.step(real)), torch.cuda.synchronize, info


RUNNERS: dict[str, Callable[[str, int], Runner]] = {
    "cupy-eager": _cupy_eager,
    "cupy-graph": _cupy_graph,
    "cublas-only": _cublas_only,
    "torch-eager": lambda preset, batch: _torch(preset, batch, compile=False),
    "torch-compile": lambda preset, batch: _torch(preset, batch, compile=True),
}


@pytest.mark.parametrize(("preset", "batch"), CASES, ids=[f"{p}-{b}" for p, b in CASES])
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_training_step(benchmark, impl: str, preset: str, batch: int) -> None:
    """Median time of STEPS_PER_ROUND training steps (the table divides by it)."""
    run, sync, info = RUNNERS[impl](preset, batch)
    for _ in range(WARMUP_STEPS):
        run()
    sync()

    def one_round() -> None:
        for _ in range(STEPS_PER_ROUND):
            run()
        sync()

    benchmark.extra_info.update(impl=impl, preset=preset, batch=batch,
                                steps_per_round=STEPS_PER_ROUND, **info)
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
