"""``fastgan bench --quick`` end to end, as a user runs it: the JSON has every figure, each one
positive and finite. No assertion on speed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastgan.benchmarking import bench as bench_module
from fastgan.benchmarking.bench import (
    SCALING_BATCHES,
    SCALING_WIDTHS,
    Case,
    alternating_windows,
    format_windows,
    hidden_widths,
    interleaved,
    measure_windows,
    plot_scaling,
    scaling_cases,
    settle_time,
    spread,
    thread_counts,
)
from fastgan.benchmarking.provenance import FIELDS

ROOT = Path(__file__).resolve().parents[1]
CONTENDER_FIGURES = {"step_ms", "steps_per_s", "samples_per_s", "gflops", "pct_gemm_peak",
                     "pct_floor", "pct_graph_floor", "cpu_per_wall"}
FLOOR_FIGURES = {"gemm_ms", "optimizer_ms", "floor_ms", "gemm_gflops", "flops", "graph"}
GRAPH_FIGURES = {"critical_path_ms", "work_ms", "together_gflops", "gemm_ms", "floor_ms"}


def _numbers(value: object) -> list[float]:
    """Every number inside ``value`` (dicts and lists walked)."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--quick", "--threads", "1",
                           "--json", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| numpy |" in done.stdout  # the printed table
    report = json.loads(out.read_text())
    assert report["settings"]["threads"] == 1
    assert set(FIELDS) <= set(report) and "bench" in report["command"]
    assert {"cpu", "logical_cpus", "load_average", "versions"} <= set(report["machine"])
    [result] = report["results"]
    assert (result["preset"], result["batch"], result["dtype"]) == ("tiny", 64, "float32")
    assert set(result["floor"]) == FLOOR_FIGURES
    assert set(result["floor"]["graph"]) == GRAPH_FIGURES
    contenders = result["contenders"]
    assert {"numpy", "numba"} <= set(contenders) | set(report["skipped"])
    assert "numpy" in contenders
    for name, row in contenders.items():
        assert set(row) >= CONTENDER_FIGURES, name
        assert set(row["step_ms"]) == {"median", "q1", "q3", "min", "max"}
        assert row["step_ms"]["min"] <= row["step_ms"]["median"] <= row["step_ms"]["max"]
        if "torch eager" in contenders:
            assert "ratio_to_torch_eager" in row
    if "torch eager" in contenders:
        assert contenders["torch eager"]["ratio_to_torch_eager"] == pytest.approx(1.0)
    figures = _numbers(result)
    assert figures and all(math.isfinite(x) and x > 0 for x in figures)


def test_the_scheduled_step_races_beside_serial_numba_and_both_floors(tmp_path: Path) -> None:
    pytest.importorskip("numba")
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--quick", "--threads", "2",
                           "--backend", "numba", "--schedule", "--peers", "none", "--repeats",
                           "2", "--json", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for line in ("| numba |", "| numba scheduled |", "| floor (GEMMs + optimizer) |",
                 "| graph floor (critical path"):
        assert line in done.stdout, line
    assert "% floor | % graph floor |" in done.stdout
    [result] = json.loads(out.read_text())["results"]
    assert set(result["contenders"]) == {"numba", "numba scheduled"}
    graph = result["floor"]["graph"]
    assert graph["gemm_ms"] == max(graph["critical_path_ms"], graph["work_ms"])
    assert graph["floor_ms"] == pytest.approx(graph["gemm_ms"] + result["floor"]["optimizer_ms"])
    assert all(math.isfinite(x) and x > 0 for x in _numbers(result))


def test_the_scheduled_step_is_skipped_with_numbas_reason(monkeypatch) -> None:
    monkeypatch.setattr(bench_module, "available_backends",
                        lambda: {"numpy": None, "numba": "numba is missing"})
    runnable, skipped = bench_module.usable(["numpy", "numba"], (), schedule=True)
    assert runnable == ["numpy"]
    assert skipped == {"numba": "numba is missing", "numba scheduled": "numba is missing"}


@pytest.mark.parametrize(("arguments", "message"), [
    (["--backend", "jax"], "unknown backend jax"),
    (["--windows", "0"], "--windows must be a positive number"),
])
def test_bench_rejects_bad_arguments(tmp_path: Path, arguments: list[str], message: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", *arguments],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert message in done.stderr


def test_the_jax_peer_races_beside_the_backends_on_as_many_cores_as_threads(tmp_path: Path
                                                                           ) -> None:
    for needed in ("jax", "optax"):                    # the JAX peer's; [compare] brings them
        pytest.importorskip(needed)
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--quick", "--threads", "1",
                           "--backend", "numpy", "--peers", "jax", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| jax |" in done.stdout
    contenders = json.loads(out.read_text())["results"][0]["contenders"]
    assert set(contenders) == {"numpy", "jax"}
    # pinned to one core, no contender can keep more than one busy (XLA would, unpinned)
    assert all(0 < row["cpu_per_wall"] <= 1.05 for row in contenders.values()), contenders


def test_a_missing_peer_is_skipped_with_the_extra_that_brings_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)           # `import jax` now raises
    monkeypatch.delitem(sys.modules, "fastgan.benchmarking.jax_peer", raising=False)
    runnable, skipped = bench_module.usable(["numpy"], bench_module.PEERS["jax"])
    assert runnable == ["numpy"]
    assert "fastgan[compare]" in skipped["jax"]


def test_interleaving_rotates_the_order_and_spread_orders_the_figures() -> None:
    calls: list[str] = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    seconds = interleaved(contenders, repeats=3, warmup=1)
    assert calls == list("abc" "abc" "bca" "cab")
    assert {name: len(times) for name, times in seconds.items()} == dict.fromkeys("abc", 3)
    figures = spread([0.004, 0.001, 0.002, 0.003])
    assert figures["min"] == 1.0 and figures["max"] == 4.0 and figures["median"] == 2.5
    assert figures["min"] <= figures["q1"] <= figures["median"] <= figures["q3"] <= figures["max"]


def test_interleaving_pauses_after_every_timed_call_when_asked(monkeypatch) -> None:
    events: list[str | float] = []
    monkeypatch.setattr(bench_module.time, "sleep", events.append)
    contenders = {name: (lambda name=name: events.append(name)) for name in "ab"}
    interleaved(contenders, repeats=2, warmup=1, settle=0.25)
    assert events == ["a", "b", "a", 0.25, "b", 0.25, "b", 0.25, "a", 0.25]
    events.clear()
    interleaved(contenders, repeats=1, warmup=0)
    assert events == ["a", "b"]


def test_settle_time_is_paid_only_with_more_than_one_thread(monkeypatch) -> None:
    monkeypatch.setattr(bench_module, "get_num_threads", lambda: {"numba": 1, "blas": 1})
    assert settle_time() == 0.0
    monkeypatch.setattr(bench_module, "get_num_threads", lambda: {"numba": 1, "blas": 2})
    assert settle_time() == bench_module.SETTLE_S > 0


def test_scaling_cases_scale_the_presets_hidden_widths() -> None:
    cases = scaling_cases("pytorch-vanilla", 100, "float32")
    assert [case.batch for case in cases["batch"]] == list(SCALING_BATCHES)
    assert [case.batch for case in cases["width"]] == [100] * len(SCALING_WIDTHS)
    widest = dict(cases["width"][-1].overrides)
    assert widest == {"g_hidden": (1024, 2048, 4096), "d_hidden": (4096, 2048, 1024)}
    assert hidden_widths(cases["width"][-1].build()) == widest


def test_scaling_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = {axis: [{"x": x, "preset": "tiny", "dtype": "float32",
                    "floor": {"floor_ms": 1.0 * x, "graph": {"floor_ms": 0.6 * x}},
                    "contenders": {"numpy": {"steps_per_s": 100.0 / x}}} for x in (1, 2, 4)]
            for axis in ("batch", "width", "threads")}
    path = plot_scaling(tmp_path / "scaling.png", rows)
    assert path is not None
    assert path.read_bytes().startswith(b"\x89PNG")


class FakeClock:
    """A perf_counter that only the contenders move, each by its own cost per call."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def contender(self, name: str, cost: float):
        def run() -> None:
            self.calls.append(name)
            self.now += cost
        return run


def test_alternating_windows_run_each_contender_back_to_back_for_a_window(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(bench_module.time, "perf_counter", lambda: clock.now)
    contenders = {"a": clock.contender("a", 0.1), "b": clock.contender("b", 0.2)}
    seconds = alternating_windows(contenders, rounds=2, window=0.45, warmup=1)
    # warm-up a, b; round 1: a five times (0.5 s >= 0.45), b three times; round 2: b first
    assert clock.calls == ["a", "b"] + ["a"] * 5 + ["b"] * 3 + ["b"] * 3 + ["a"] * 5
    assert seconds["a"] == pytest.approx([0.1, 0.1])
    assert seconds["b"] == pytest.approx([0.2, 0.2])


def test_windows_are_paired_with_the_floor_of_their_own_round(monkeypatch) -> None:
    """Round 1 is fast, round 2 slow for both: each contender's % uses its round's floor."""
    monkeypatch.setattr(bench_module, "contenders_for", lambda case, names, threads: {})
    monkeypatch.setattr(bench_module, "alternating_windows", lambda *args: {
        bench_module.GEMMS: [0.020, 0.030], "numba": [0.025, 0.040]})
    case = Case("tiny", 64, "float32")
    preset = case.build()
    bandwidth = bench_module.optimizer_bytes(preset, 4) / 0.005   # optimizer: 5 ms
    result = measure_windows(case, ["numba"], rounds=2, window=1.0, warmup=0,
                             bandwidth=bandwidth, threads=1)
    assert result["optimizer_ms"] == pytest.approx(5.0)
    first, second = result["rounds"]
    assert first["floor_ms"] == pytest.approx(25.0) and second["floor_ms"] == pytest.approx(35.0)
    assert first["contenders"]["numba"]["pct_floor"] == pytest.approx(100.0)
    assert second["contenders"]["numba"]["pct_floor"] == pytest.approx(87.5)
    assert second["contenders"]["numba"]["steps_per_s"] == pytest.approx(25.0)
    assert result["pct_floor"]["numba"]["median"] == pytest.approx(93.75)
    table = format_windows(result)
    assert "| 2 | 28.6 | 25.0 | 88 |" in table and "min 87.5" in table


def test_thread_counts_double_up_to_the_cores() -> None:
    assert thread_counts(1) == [1]
    assert thread_counts(2) == [1, 2]
    assert thread_counts(6) == [1, 2, 4, 6]
    assert thread_counts(32) == [1, 2, 4, 8, 16, 32]


def test_quick_bench_in_alternating_windows(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--quick", "--threads", "1",
                           "--peers", "none", "--backend", "numba", "--windows", "0.05",
                           "--repeats", "2", "--json", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rounds of alternating 0.05 s windows" in done.stdout
    report = json.loads(out.read_text())
    [result] = report["windows"]
    assert len(result["rounds"]) == 2 and set(result["pct_floor"]) == {"numba"}
    assert all(math.isfinite(x) and x > 0 for x in _numbers(result))


def test_threads_axis_sets_each_count_then_restores_the_settings(monkeypatch) -> None:
    applied: list[int] = []
    monkeypatch.setattr(bench_module, "physical_cores", lambda: 4)
    monkeypatch.setattr(bench_module, "set_threads", lambda n, torch_too: applied.append(n))
    monkeypatch.setattr(bench_module, "measure_bandwidth", lambda dtype, threads: 1e9 * threads)
    monkeypatch.setattr(bench_module, "measure_cases", lambda cases, names, settings, bandwidth,
                        notify: [{"bandwidth_seen": bandwidth, "threads_seen": applied[-1]}])
    settings = bench_module.Settings(backends=("numpy",), peers="none", threads=3)
    results = bench_module.measure_threads(Case("tiny", 8, "float32"), ["numpy"], settings)
    assert applied == [1, 2, 4, 3]
    assert [(r["x"], r["threads_seen"], r["bandwidth_gbs"]) for r in results] == [
        (1, 1, 1.0), (2, 2, 2.0), (4, 4, 4.0)]


PINNING = """
import os, threading
import numpy as np
from fastgan.threads import allowed_cpus, physical_cores, pin_cpus
a = np.ones((300, 300)); a @ a                          # OpenBLAS's pool is running
done = threading.Event()
waiting = threading.Thread(target=done.wait); waiting.start()
threads = lambda: [os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")]
one = pin_cpus(1)
print(len(one), all(cpus == set(one) for cpus in threads()), physical_cores())
back = pin_cpus(physical_cores())
print(back == allowed_cpus(), all(cpus == set(back) for cpus in threads()))
done.set()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs a system that pins threads and two CPUs to pin to")
def test_pinning_holds_every_thread_of_the_process_and_comes_undone() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PINNING], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pinned, restored = done.stdout.splitlines()
    cores = pinned.split()[2]
    assert pinned == f"1 True {cores}" and int(cores) >= 1   # the count outlives the pinning
    assert restored == "True True"
