"""The benchmark scripts in benchmarks/ still run against today's API (on shrunken shapes:
what they measure is not checked here, only that every code path executes and reports)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fastgan

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_dcgan_benchmark_measures_and_reports(monkeypatch):
    pytest.importorskip("numba", reason="the DCGAN benchmark times the numba backend")
    bench = _load("bench_dcgan")
    monkeypatch.setattr(bench, "DATA_DIM", 8 * 8)
    monkeypatch.setattr(bench, "BATCH", 2)
    monkeypatch.setattr(bench, "WARMUP", 1)
    results = bench.measure(rounds=1)
    assert {"numba", "numpy", "floor"} <= set(results["ms"])
    assert all(value > 0 for value in results["ms"].values())
    assert "GEMM" in results["numba_breakdown"]
    table = bench.report(results)
    assert "| numba |" in table and "| GEMM |" in table


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_time_to_quality_race_runs_both_contenders(monkeypatch, classifier_cache, tmp_path,
                                                   device):
    bench = _load("bench_time_to_quality")
    reason = bench.unavailable_reason(device)
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.setattr(bench, "PRESET", "tiny")           # an epoch in a second or two
    monkeypatch.setattr(bench, "EVAL_N", 200)
    result = bench.race(targets=[1e8, 1e9], budget=600, log=lambda line: None,
                        cache_dir=classifier_cache, device=device)
    assert result["device"] == device
    assert result["targets"] == [1e9, 1e8]
    for run in result["contenders"].values():
        assert len(run["trace"]) == 1                 # both targets met at the first evaluation
        first = run["trace"][0]
        assert first["steps"] > 0 and 0 < first["frechet_distance"] < 1e8
        assert run["reached_s"] == {1e9: first["seconds"], 1e8: first["seconds"]}
    assert set(result["ratio_fastgan_to_torch"]) == {1e9, 1e8}
    bench.plot(result, tmp_path / "race.png")
    assert (tmp_path / "race.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_parallel_benchmark_launches_every_contender(capsys):
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("the data-parallel benchmark needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    bench = _load("bench_data_parallel")
    bench.main(["--preset", "tiny", "--batches", "8", "--steps", "2", "--warmup", "1",
                "--rounds", "1", "--timeout", "240"])
    table = capsys.readouterr().out
    for contender in ("1 rank x 1 thread", "1 rank x 2 threads", "2 ranks x 1 thread",
                      "1 rank x 1 thread, batch 4"):
        assert f"| {contender} |" in table
    assert "scaling efficiency" in table


def test_step_profile_accounts_for_kernels_gemms_and_threads():
    pytest.importorskip("numba", reason="the profile times the numba backend")
    profile_step = _load("profile_step")
    result = profile_step.profile("tiny", 16, "numba", steps=2, threads=1)
    kernels = result["kernels"]
    assert {"gemm forward", "gemm grad_weight", "gemm grad_input", "adam_update"} <= set(kernels)
    assert kernels["gemm forward"]["calls"] > 0 and result["gemms_alone_ms"] > 0
    assert "main" in result["cpu_ms_per_step"]
    text = profile_step.report(result)
    assert "GEMMs in the step" in text and "python and the rest" in text
    shared = fastgan.get_backend("numba")         # the timers are gone: later tests patch and
    assert not set(vars(shared)) & {"gemm", "adam_update", "bias_act"}   # time its methods


def test_gemm_library_comparison_checks_and_times_numpys_own_blas(tmp_path, monkeypatch):
    """NumPy's own OpenBLAS through its C interface (the route every other library takes)
    gives NumPy's products, and the comparison reports it beside np.matmul."""
    gemm_libraries = _load("gemm_libraries")
    from fastgan.environment import gemm_library

    found = gemm_library()
    if found is None or found["library"] != "openblas":
        pytest.skip("NumPy is not linked against OpenBLAS here")
    monkeypatch.setattr(gemm_libraries, "CASES", (("tiny", 8),))
    library = gemm_libraries.Library.load("own", found["path"])
    results = gemm_libraries.measure([library], threads=1, rounds=2, window=0.01)
    [result] = results
    assert set(result["libraries"]) == {gemm_libraries.REFERENCE, "own"}
    assert all(row["gflops"] > 0 for row in result["libraries"].values())
    table = gemm_libraries.table(results, gemm_libraries.describe([library]), 1)
    assert "| tiny b8 | own (openblas" in table


def test_gemm_library_check_catches_wrong_products():
    gemm_libraries = _load("gemm_libraries")
    import numpy as np

    operands = [(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32),
                 np.empty((2, 2), np.float32))]

    def wrong() -> None:
        operands[0][2][...] = 2.0                     # the product is 3

    with pytest.raises(SystemExit, match="differ from NumPy's"):
        gemm_libraries.check("wrong", wrong, operands)


def test_allreduce_benchmark_times_both_networks_on_two_ranks():
    bench = _load("bench_data_parallel")
    try:
        launcher = bench.mpiexec()
    except SystemExit:
        launcher = None
    if importlib.util.find_spec("mpi4py") is None or launcher is None:
        pytest.skip("the all-reduce benchmark needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    result = subprocess.run([launcher, "-n", "2", sys.executable,
                             str(BENCHMARKS / "bench_allreduce.py"), "--preset", "tiny",
                             "--repeats", "2"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "float32" in result.stdout and "on 2 ranks: median" in result.stdout
    assert result.stdout.count("median") == 1                     # rank 0 alone prints
