"""Benchmark collection and reporting: ``bench_*.py`` files are collected like tests, the
side-by-side results are printed as one table at the end of the run, and pytest-benchmark's
JSON (``--benchmark-json``, ``--benchmark-autosave``) records the provenance every result file
does (:func:`fastgan.benchmarking.provenance.provenance`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgan.benchmarking.provenance import provenance

_RESULTS: list[dict] = []


@pytest.fixture(scope="session")
def summary_rows() -> list[dict]:
    """Rows of the end-of-run table: benchmarks append ``{"machine": str, "table": {...}}``."""
    return _RESULTS


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` (pytest's own rule covers files named on the command line)."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list,
                                 output_json: dict) -> None:
    """Add the command, commit, machine and date to pytest-benchmark's JSON."""
    output_json.update(provenance())


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the collected side-by-side rows as a Markdown table."""
    if not _RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"train_step, float32, median ms over interleaved rounds ({_RESULTS[0]['machine']})")
    columns = list(_RESULTS[0]["table"])
    write("| " + " | ".join(columns) + " |")
    write("|" + "|".join("---" for _ in columns) + "|")
    for row in _RESULTS:
        write("| " + " | ".join(row["table"][c] for c in columns) + " |")
