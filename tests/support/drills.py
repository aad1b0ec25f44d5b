"""Fault drills' figures for the "What survives what" page (docs/faults.md).

Each drill test calls :func:`record` once, after its assertions passed, with how many faults
it injected, how many the program survived (nothing lost, the next command carries on), what
was lost (steps or results; the goal is 0) and the longest time it took to notice a fault.
With ``FASTGAN_DRILLS`` set to a file (``nox -s faults`` sets it), each record is appended
there as a JSON line, and ``python tests/support/drills.py FILE`` prints the table the page shows.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

DRILLS = "FASTGAN_DRILLS"


def record(drill: str, *, faults: int, survived: int, lost: int = 0,
           detection_s: float | None = None, note: str = "") -> None:
    """Add one drill's figures to the file ``$FASTGAN_DRILLS`` names (nothing when unset)."""
    path = os.environ.get(DRILLS)
    if not path:
        return
    line = {"drill": drill, "faults": faults, "survived": survived, "lost": lost,
            "detection_s": None if detection_s is None else round(detection_s, 2),
            "note": note}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of ``records``: one row per drill, in the order the drills first
    ran, its runs added up (the longest detection time kept)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        row = rows.setdefault(r["drill"], {**r, "faults": 0, "survived": 0, "lost": 0})
        for key in ("faults", "survived", "lost"):
            row[key] += r[key]
        times = [t for t in (row["detection_s"], r["detection_s"]) if t is not None]
        row["detection_s"] = max(times) if times else None
    lines = ["| drill | faults injected | survived | lost | detected within | notes |",
             "|---|---|---|---|---|---|"]
    for r in rows.values():
        detected = "—" if r["detection_s"] is None else f"{r['detection_s']:.1f} s"
        lines.append(f"| {r['drill']} | {r['faults']} | {r['survived']} | {r['lost']} | "
                     f"{detected} | {r['note']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    lines = Path(sys.argv[1]).read_text(encoding="utf-8").splitlines()
    print(table([json.loads(line) for line in lines]), end="")
