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
    hidden_widths,
    interleaved,
    plot_scaling,
    scaling_cases,
    settle_time,
    spread,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENDER_FIGURES = {"step_ms", "steps_per_s", "samples_per_s", "gflops", "pct_gemm_peak",
                     "pct_floor"}
FLOOR_FIGURES = {"gemm_ms", "optimizer_ms", "floor_ms", "gemm_gflops", "flops"}


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
    assert {"cpu", "logical_cpus", "load_average", "versions"} <= set(report["machine"])
    [result] = report["results"]
    assert (result["preset"], result["batch"], result["dtype"]) == ("tiny", 64, "float32")
    assert set(result["floor"]) == FLOOR_FIGURES
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


def test_bench_rejects_an_unknown_backend(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fastgan", "bench", "--backend", "jax"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "unknown backend jax" in done.stderr


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
                    "floor": {"floor_ms": 1.0 * x},
                    "contenders": {"numpy": {"steps_per_s": 100.0 / x}}} for x in (1, 2, 4)]
            for axis in ("batch", "width")}
    path = plot_scaling(tmp_path / "scaling.png", rows)
    assert path is not None
    assert path.read_bytes().startswith(b"\x89PNG")
