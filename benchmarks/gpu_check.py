"""Everything a GPU session must check, in one command: the gpu-marked tests, then the GPU
benchmark, then a short table.

    python benchmarks/gpu_check.py [--out DIR] [--skip-bench]

Writes ``DIR/tests.txt``, ``DIR/bench.txt``, ``DIR/bench_gpu.json`` and ``DIR/table.md``
(DIR defaults to $OUT, else ./gpu-check); exits non-zero when a test failed. The benchmark
runs in two phases, torch.compile last (its compilations take minutes), and the table is
written after each: a session stopped by its time limit during the compiles keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(args: list[str], log: Path) -> int:
    """Run pytest from the project root with its output appended to ``log`` as it comes (kept
    if the session is killed), then echo the end of it; return pytest's exit code."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}
    start = log.stat().st_size if log.exists() else 0
    with log.open("a") as file:
        result = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env,
                                stdout=file, stderr=subprocess.STDOUT)
    print(log.read_text()[start:][-6000:], flush=True)
    return result.returncode


IMPLEMENTATIONS = ["cupy-eager", "cupy-graph", "cublas-only", "torch-eager", "torch-compile"]
BENCH_PHASES = [("eager", "not torch-compile"), ("compiled", "torch-compile")]
"""The benchmark's phases: a name and the pytest ``-k`` selection of each."""


def _cells(found: dict[str, dict]) -> list[str]:
    """One table row's cells after the case name."""
    def seconds(impl: str) -> float | None:
        return found[impl]["s"] if impl in found else None

    def ratio(slow: str, fast: str) -> str:
        a, b = seconds(slow), seconds(fast)
        return f"{a / b:.2f}x" if a and b else "-"

    graph, floor = seconds("cupy-graph"), seconds("cublas-only")
    times = [f"{seconds(i) * 1e3:.3f}" if seconds(i) else "-" for i in IMPLEMENTATIONS]
    gflops = f"{found['cupy-graph']['gflop_per_step'] / graph:.0f}" if graph else "-"
    floor_share = f"{100 * floor / graph:.0f}%" if graph and floor else "-"
    return [*times, ratio("torch-eager", "cupy-graph"), ratio("torch-compile", "cupy-graph"),
            ratio("torch-eager", "cupy-eager"), gflops, floor_share]


def table(report: dict) -> str:
    """Per-step milliseconds per implementation and case (pytest-benchmark JSON), with the
    speed-ups over PyTorch, the graphed step's GFLOP/s and the cuBLAS-only share of it."""
    rows: dict[tuple[str, int], dict[str, dict]] = {}
    for bench in report["benchmarks"]:
        info = bench["extra_info"]
        per_step = bench["stats"]["median"] / info["steps_per_round"]
        rows.setdefault((info["preset"], info["batch"]), {})[info["impl"]] = {**info,
                                                                              "s": per_step}
    titles = [f"{i} ms/step" for i in IMPLEMENTATIONS] + [
        "graph vs torch eager", "graph vs torch.compile", "eager vs torch eager",
        "graph GFLOP/s", "cuBLAS-only / graph"]
    lines = ["| case | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    lines += [f"| {preset} b{batch} | " + " | ".join(_cells(found)) + " |"
              for (preset, batch), found in sorted(rows.items())]
    info = next((b["extra_info"] for b in report["benchmarks"] if "device" in b["extra_info"]),
                {})
    rounds = report["benchmarks"][0]["stats"]["rounds"] if report["benchmarks"] else 0
    header = (f"Device: {info.get('device', '?')}; cupy {info.get('cupy', '?')}; CUDA runtime "
              f"{info.get('cuda_runtime', '?')}; float32; medians of {rounds} rounds.\n\n")
    return header + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    parser.add_argument("--skip-bench", action="store_true", help="only run the tests")
    options = parser.parse_args()
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for log in ("tests.txt", "bench.txt"):
        (out / log).unlink(missing_ok=True)
    print("== gpu-marked tests")
    failed = run_pytest(["-m", "gpu", "-q", "-rs", "--durations=15", "tests"],
                        out / "tests.txt")
    if options.skip_bench:
        return failed
    merged: dict = {"benchmarks": []}
    for phase, selection in BENCH_PHASES:
        print(f"== GPU benchmark: {phase}", flush=True)
        json_path = out / f"bench_gpu.{phase}.json"
        run_pytest(["benchmarks/bench_gpu.py", "-q", "-rs", "-k", selection,
                    f"--benchmark-json={json_path}", "--benchmark-columns=median,iqr,rounds"],
                   out / "bench.txt")
        if not json_path.exists():
            continue
        phase_report = json.loads(json_path.read_text())
        json_path.unlink()
        merged = {**phase_report, "benchmarks": merged["benchmarks"] +
                  phase_report["benchmarks"]}
        (out / "bench_gpu.json").write_text(json.dumps(merged, indent=1))
        text = table(merged)
        (out / "table.md").write_text(text)
        print(text, flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
