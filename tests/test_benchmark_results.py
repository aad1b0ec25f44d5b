"""Every result in benchmarks/results/ can be traced to how it was made: each JSON file records
the command, the git commit, the machine and the date
(:func:`fastgan.benchmarking.provenance.provenance`), except the files measured before that
was recorded, which benchmarks/results/LEGACY.md lists, and every file it lists exists."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Collection
from pathlib import Path

from fastgan.benchmarking.provenance import FIELDS, provenance

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
LEGACY = RESULTS / "LEGACY.md"


def listed(manifest: Path) -> list[str]:
    """The paths in the first column of the manifest's table (in backticks)."""
    return re.findall(r"^\| `([^`]+)` \|", manifest.read_text(), re.MULTILINE)


def untraced(folder: Path, legacy: Collection[str]) -> list[str]:
    """The JSON files under ``folder`` (relative paths) that are not in ``legacy`` and lack
    one of the provenance fields."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.json")
                  if str(path.relative_to(folder)) not in legacy
                  and not set(FIELDS) <= set(json.loads(path.read_text())))


def test_every_json_result_records_its_provenance_or_is_legacy():
    assert untraced(RESULTS, listed(LEGACY)) == []


def test_the_legacy_manifest_lists_only_files_that_exist():
    legacy = listed(LEGACY)
    assert legacy, "LEGACY.md lists no file: its table cannot be read"
    assert [name for name in legacy if not (RESULTS / name).exists()] == []


def test_a_result_without_its_provenance_is_caught(tmp_path):
    (tmp_path / "traced.json").write_text(json.dumps({**provenance(["x"]), "ms": 1.0}))
    (tmp_path / "measured-before.json").write_text(json.dumps({"ms": 1.0}))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "untraced.json").write_text(json.dumps({"ms": 1.0, "date": "today"}))
    assert untraced(tmp_path, ["measured-before.json"]) == ["new/untraced.json"]


def test_provenance_names_the_command_commit_machine_and_date():
    record = json.loads(json.dumps(provenance()))          # JSON values, all of them
    assert list(record) == list(FIELDS)
    assert record["command"] == sys.argv
    assert set(record["commit"]) == {"id", "dirty"}
    if (RESULTS.parents[1] / ".git").exists():              # this checkout
        assert re.fullmatch(r"[0-9a-f]{40}", record["commit"]["id"])
        assert isinstance(record["commit"]["dirty"], bool)
    assert {"cpu", "logical_cpus", "gemm", "gpu", "versions"} <= set(record["machine"])
    assert time.strptime(record["date"], "%Y-%m-%dT%H:%M:%S%z")
    assert provenance(["fastgan", "bench"])["command"] == ["fastgan", "bench"]
