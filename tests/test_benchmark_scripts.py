"""The benchmark scripts in benchmarks/ still run against today's API (on shrunken shapes:
what they measure is not checked here, only that every code path executes and reports)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

import fastgan
from fastgan.benchmarking.floor import step_gemms
from fastgan.benchmarking.provenance import FIELDS
from fastgan.gan import presets

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
def test_time_to_quality_race_runs_every_contender_in_slices(monkeypatch, classifier_cache,
                                                              tmp_path, device):
    bench = _load("bench_time_to_quality")
    reason = bench.unavailable_reason(device)
    if reason is not None:
        pytest.skip(reason)
    tuned, seed_settings, peer = (bench.Contender("fastgan", "tiny"),
                                  bench.Contender("fastgan", "numpy-mlp"),
                                  bench.Contender("pytorch", "tiny"))
    for name, contender in (("TUNED", tuned), ("SEED_SETTINGS", seed_settings), ("PEER", peer)):
        monkeypatch.setattr(bench, name, contender)
    monkeypatch.setattr(bench, "EVAL_N", 200)
    monkeypatch.setattr(bench, "PICTURE_TIMES", (1, 2))
    pictures = tmp_path / "pictures"
    shards = [bench.race((tuned, seed_settings, peer), seeds=(0, 1), budget=3.0, slice_s=1.0,
                         device=device, shard=(index, 2), log=lambda line: None,
                         cache_dir=classifier_cache, pictures=pictures) for index in range(2)]
    assert [len(shard["runs"]) for shard in shards] == [3, 3]      # 3 contenders x 2 seeds
    result = bench.combine(shards)
    assert set(FIELDS) <= set(result) and len(result["shards"]) == 2
    assert all(shard["commit"] == result["commit"] for shard in result["shards"])
    assert {(run["contender"]["preset"], run["seed"]) for run in result["runs"]} == {
        (preset, seed) for preset in ("tiny", "numpy-mlp") for seed in (0, 1)}
    for run in result["runs"]:
        seconds = [point["seconds"] for point in run["trace"]]
        assert len(seconds) >= 2 and seconds == sorted(seconds) and seconds[-1] >= 3.0
        assert all(point["steps"] > 0 and point["frechet_distance"] > 0 for point in run["trace"])
    summary = result["summary"]
    assert set(summary["contenders"]) == {"fastgan tiny", "fastgan numpy-mlp", "pytorch tiny"}
    assert set(summary["goals"]) == {"time_to_target_s", "distance_ratio", "recall", "coverage"}
    assert "| fastgan tiny (seeds 0, 1) |" in bench.report(result)
    bench.plot(result, tmp_path / "race.png")
    assert (tmp_path / "race.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = sorted(path.name for path in pictures.iterdir())   # seed 0 of each, at 1 and 2 s
    assert kept == sorted(f"{c.name.replace(' ', '-')}-{t}s.png"
                          for c in (tuned, seed_settings, peer) for t in (1, 2))
    sheet = bench.save_sheet(pictures, [tuned, peer])
    with Image.open(sheet) as picture:     # 2 rows of real + 2 times, 28x28 grids of 8x8
        assert picture.width > 3 * 8 * 28 and 2 * 8 * 28 < picture.height < 3 * 8 * 28
    with pytest.raises(fastgan.FastganError, match="kept no picture"):
        bench.save_sheet(pictures, [bench.Contender("fastgan", "fast-dcgan")])


def test_time_to_quality_summary_takes_medians_over_seeds():
    bench = _load("bench_time_to_quality")

    def run(contender, seed, distances, recall=0.5):
        trace = [{"seconds": 10.0 * (i + 1), "steps": i + 1, "frechet_distance": fd,
                  "precision": 0.9, "recall": recall, "coverage": recall, "density": 1.0}
                 for i, fd in enumerate(distances)]
        return {"contender": {"side": contender.side, "preset": contender.preset},
                "seed": seed, "trace": trace}

    runs = [run(bench.PEER, 0, [90, 60, 50]), run(bench.PEER, 1, [80, 70, 40]),
            run(bench.PEER, 2, [95, 75, 60]),                      # target: median 50
            run(bench.TUNED, 0, [70, 40, 20], 0.6), run(bench.TUNED, 1, [50, 30, 25], 0.4),
            run(bench.TUNED, 2, [60, 55, 24], 0.2),        # reach 50 at 20, 10, 30 s: 20 s
            run(bench.SEED_SETTINGS, 0, [90, 80, 70], 0.3),
            run(bench.SEED_SETTINGS, 1, [90, 80, 70], 0.3)]      # never reaches 50
    summary = bench.summarize({"runs": runs, "budget_s": 30.0})
    assert summary["target_frechet_distance"] == 50
    tuned = summary["contenders"][bench.TUNED.name]
    assert (tuned["time_to_target_s"], tuned["frechet_distance"], tuned["recall"]) == (20, 24, 0.4)
    assert summary["contenders"][bench.SEED_SETTINGS.name]["time_to_target_s"] is None
    goals = summary["goals"]
    assert goals["time_to_target_s"] == {"value": 20, "goal": "<= 10", "met": False}
    assert goals["distance_ratio"] == {"value": 24 / 50, "goal": "<= 0.5", "met": True}
    assert goals["recall"] == {"value": 0.4, "goal": ">= 0.3", "met": True}


def test_time_to_quality_scores_the_conditional_preset_against_its_goals():
    bench = _load("bench_time_to_quality")

    def run(contender, seed, distance, accuracy=None):
        point = {"seconds": 10.0, "steps": 1, "frechet_distance": distance, "precision": 0.9,
                 "recall": 0.5, "coverage": 0.5, "density": 1.0}
        if accuracy is not None:
            point |= {"class_accuracy": accuracy, "class_accuracy_real": 0.9}
        return {"contender": asdict(contender), "seed": seed, "trace": [point]}

    projection = bench.Contender("fastgan", "fast-cgan", ("projection",))
    runs = [run(bench.CONDITIONAL, 0, 9.0, 0.81), run(bench.CONDITIONAL, 1, 7.0, 0.87),
            run(bench.CONDITIONAL, 2, 8.0, 0.84),             # medians: FD 8, accuracy 0.84
            run(projection, 0, 9.0, 0.88), run(projection, 1, 8.8, 0.86),  # FD 8.9, acc 0.87
            run(bench.TUNED, 0, 7.5), run(bench.TUNED, 1, 9.5)]               # FD median 8.5
    summary = json.loads(json.dumps(bench.summarize({"runs": runs, "budget_s": 10.0})))
    assert summary["contenders"][bench.CONDITIONAL.name]["class_accuracy"] == 0.84
    assert "class_accuracy" not in summary["contenders"][bench.TUNED.name]
    goals = summary["goals"]
    accuracy, distance = (f"{goal} ({bench.CONDITIONAL.name})"
                          for goal in ("class_accuracy_of_ceiling", "frechet_distance"))
    assert goals[accuracy]["value"] == pytest.approx(0.84 / 0.9)
    assert not goals[accuracy]["met"]                                         # 0.933 < 0.95
    assert goals[distance] == {"value": 8.0, "goal": "<= 8.5", "met": True}
    assert goals["class_accuracy_of_ceiling (fastgan fast-cgan+projection)"]["met"]  # 0.967
    assert not goals["frechet_distance (fastgan fast-cgan+projection)"]["met"]      # 8.9
    assert "accuracy on the asked class 0.840" in bench.report(
        {"summary": summary, "budget_s": 10.0})


def test_time_to_quality_scores_a_challenger_against_the_tuned_preset():
    """fast-dcgan is scored against fast-mlp's distance at the budget: half of it or less,
    reached within half the budget, and at least its recall and coverage."""
    bench = _load("bench_time_to_quality")

    def run(contender, seed, distances, recall):
        trace = [{"seconds": 10.0 * (i + 1), "steps": i + 1, "frechet_distance": fd,
                  "precision": 0.9, "recall": recall, "coverage": 0.5, "density": 1.0}
                 for i, fd in enumerate(distances)]
        return {"contender": asdict(contender), "seed": seed, "trace": trace}

    runs = [run(bench.TUNED, 0, [30, 20, 10], 0.5), run(bench.TUNED, 1, [30, 20, 12], 0.5),
            run(bench.CONVOLUTIONAL, 0, [40, 9, 4], 0.6),   # reaches 11 at 20 s
            run(bench.CONVOLUTIONAL, 1, [40, 30, 6], 0.4),   # at 30 s
            run(bench.CONVOLUTIONAL, 2, [40, 10, 5], 0.5)]   # at 20 s: median 20 s, FD 5
    summary = json.loads(json.dumps(bench.summarize({"runs": runs, "budget_s": 30.0})))
    name = bench.CONVOLUTIONAL.name
    assert summary["contenders"][name]["time_to_tuned_s"] == 20
    goals = summary["goals"]
    assert goals[f"distance_ratio to fastgan fast-mlp ({name})"] == {
        "value": 5 / 11, "goal": "<= 0.5", "met": True}
    assert goals[f"time_to_tuned_s ({name})"] == {"value": 20, "goal": "<= 15", "met": False}
    assert goals[f"recall ({name})"]["met"] and goals[f"coverage ({name})"]["met"]
    assert "time_to_tuned_s" not in summary["contenders"][bench.TUNED.name]
    never = [run(bench.TUNED, 0, [5], 0.5), run(bench.CONVOLUTIONAL, 0, [9], 0.5)]
    goal = bench.summarize({"runs": never, "budget_s": 10.0})["goals"][f"time_to_tuned_s ({name})"]
    assert goal == {"value": None, "goal": "<= 5", "met": False}


def test_time_to_quality_contenders_are_read_from_the_command_line():
    bench = _load("bench_time_to_quality")
    assert bench._contenders("fastgan:fast-cgan,fastgan:fast-mlp") == (bench.CONDITIONAL,
                                                                         bench.TUNED)
    assert bench._contenders("fastgan:fast-cgan+projection") == (
        bench.Contender("fastgan", "fast-cgan", ("projection",)),)
    with pytest.raises(Exception, match="a contender is fastgan:PRESET"):
        bench._contenders("jax:fast-mlp")
    with pytest.raises(Exception, match=r"options .* are among"):
        bench._contenders("fastgan:fast-cgan+projektion")


def test_data_parallel_benchmark_launches_every_contender(capsys, tmp_path):
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("the data-parallel benchmark needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    bench = _load("bench_data_parallel")
    bench.main(["--preset", "tiny", "--batches", "8", "--steps", "2", "--warmup", "1",
                "--rounds", "1", "--timeout", "240", "--json", str(tmp_path / "dp.json")])
    table = capsys.readouterr().out
    for contender in ("1 rank x 1 thread", "1 rank x 2 threads", "2 ranks x 1 thread",
                      "1 rank x 1 thread, batch 4"):
        assert f"| {contender} |" in table
    assert "scaling efficiency" in table
    assert set(FIELDS) <= set(json.loads((tmp_path / "dp.json").read_text()))


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


def test_gemm_library_comparison_times_xla_both_ways(monkeypatch):
    """XLA's products are checked against NumPy's and timed beside np.matmul, one jitted dot
    per GEMM and all in one program."""
    pytest.importorskip("jax", reason="XLA's GEMMs need jax (the [compare] extra)")
    gemm_libraries = _load("gemm_libraries")
    monkeypatch.setattr(gemm_libraries, "CASES", (("tiny", 8),))
    results = gemm_libraries.measure([], threads=1, rounds=1, window=0.01, xla=True)
    [result] = results
    assert set(result["libraries"]) == {gemm_libraries.REFERENCE, gemm_libraries.XLA_PER_GEMM,
                                        gemm_libraries.XLA_PROGRAM}
    assert all(row["gflops"] > 0 for row in result["libraries"].values())
    assert "| tiny b8 | xla one program (jax " in gemm_libraries.table(
        results, gemm_libraries.describe([]), 1)


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


def test_rng_streams_benchmark_measures_and_reports():
    pytest.importorskip("numba", reason="the stream benchmark times the numba backend")
    bench = _load("bench_rng_streams")
    result = bench.measure(bench.Case("pytorch-vanilla", 4, "float32",
                                      (("g_hidden", (8,)), ("d_hidden", (8,)))),
                           rounds=2, window=0.01, warmup=1)
    assert len(result["rounds"]) == 2 and result["philox_speedup"]["median"] > 0
    assert set(FIELDS) <= set(result)
    text = bench.report(result)
    assert "numba philox:" in text and "numba pcg64:" in text and "Philox over PCG64" in text


def test_graph_floor_benchmark_reports_every_case(monkeypatch):
    bench = _load("graph_floor")
    monkeypatch.setattr(bench, "CASES", (("tiny", 8),))
    rows = bench.measure(threads=2, repeats=1)
    row = rows["tiny b8"]
    assert row["gemm_ms"] == max(row["critical_path_ms"], row["work_ms"])
    assert row["floor_ms"] == pytest.approx(row["gemm_ms"] + row["optimizer_ms"])


def test_split_benchmark_times_every_gemm_three_ways():
    bench = _load("bench_split")
    rows = bench.measure("tiny", 8, threads=2, repeats=1)
    assert len(rows) == len(step_gemms(presets.get("tiny", batch_size=8), 8))
    assert all(row[way] > 0 for row in rows for way in ("one_thread", "side_by_side",
                                                          "blas_pool", "copies"))
    assert all(row["copies_speedup"] == pytest.approx(2 * row["one_thread"] / row["copies"])
               for row in rows)
    table = bench.report(rows)
    assert "| side_by_side us |" in table and "cutting is fastest from" in table
    assert "| T copies us | copies' speed-up |" in table
