"""The GPU session's report script reads real pytest-benchmark JSON into the table."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_BENCH = '''
import pytest

@pytest.mark.parametrize("impl, seconds", [("cupy-graph", 0.001), ("cublas-only", 0.0005),
                                           ("torch-eager", 0.003)])
def test_step(benchmark, impl, seconds):
    benchmark.extra_info.update(impl=impl, preset="tiny", batch=8, steps_per_round=2,
                                gflop_per_step=0.5, device="Fake GPU", cupy="0", cuda_runtime=1)
    benchmark.pedantic(lambda: None, rounds=3, iterations=1)
'''


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_from_pytest_benchmark_json(tmp_path):
    (tmp_path / "test_fake_bench.py").write_text(FAKE_BENCH)
    report = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    str(tmp_path / "test_fake_bench.py"), f"--benchmark-json={report}"],
                   check=True, cwd=tmp_path, capture_output=True)
    data = json.loads(report.read_text())
    for bench in data["benchmarks"]:               # known per-step times, whatever was timed
        bench["stats"]["median"] = {"cupy-graph": 0.002, "cublas-only": 0.001,
                                    "torch-eager": 0.006}[bench["extra_info"]["impl"]]
    text = _gpu_check().table(data)
    assert "Device: Fake GPU" in text and "medians of 3 rounds" in text
    row = next(line for line in text.splitlines() if line.startswith("| tiny b8"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # case, 5 times, graph/torch, graph/compile, eager/torch, GFLOP/s, floor share
    assert cells == ["tiny b8", "-", "1.000", "0.500", "3.000", "-", "3.00x", "-", "-", "500",
                     "50%"]
