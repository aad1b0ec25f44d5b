"""Benchmark collection and reporting: ``bench_*.py`` files are collected like tests, and the
side-by-side results are printed as one table at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

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
