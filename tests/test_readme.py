"""The README's two commands are the ones CI runs, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The commands of the README's Quick start, in order."""
    quick_start = ROOT.joinpath("README.md").read_text().split("## Quick start", 1)[1]
    quick_start = quick_start.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_ci_runs_the_readme_commands_verbatim():
    commands = readme_commands()
    assert len(commands) == 2, commands
    ci_lines = ROOT.joinpath(".ci", "run").read_text().splitlines()
    for command in commands:
        assert f"{command} || exit $?" in ci_lines, f"{command!r} is not a line of .ci/run"
