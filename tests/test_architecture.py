"""The package's architecture, checked from its source: dependencies point one way, no cycles.

Every import of every module under ``fastgan/`` counts — at the top, inside a function, under
``TYPE_CHECKING`` — because a late import is still a dependency. :data:`ALLOWED` is the written
rule (docs/architecture.md explains it): each part and the parts it may import. A part is a
sub-package (``backends``, ``nn``, ...) or a top-level module (a leaf such as ``errors``).
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastgan"

LEAVES = {"_version": set(), "errors": set(), "fileio": {"errors"}, "threads": {"errors"},
          "data": {"errors", "fileio"}, "viz": {"errors", "fileio"}}
ALLOWED: dict[str, set[str]] = {
    **LEAVES,
    "backends": {"errors", "threads"},
    "environment": {"_version", "backends", "errors"},
    "nn": {"backends", "errors"},
    "training": {"nn", "backends", *LEAVES},
    "gan": {"training", "nn", "backends", *LEAVES},
    "evaluation": {"gan", "training", "nn", "backends", *LEAVES},
    "benchmarking": {"gan", "nn", "backends", "environment", *LEAVES},
    "export": {"benchmarking", "gan", "nn", "backends", *LEAVES},
    "runs": {"evaluation", "gan", "training", "nn", "backends", "environment", *LEAVES},
    "distributed": {"runs", "evaluation", "gan", "training", "nn", "backends", "environment",
                    *LEAVES},
    "sweep": {"runs", "evaluation", "gan", "training", "nn", "backends", "environment", *LEAVES},
}
"""Part -> the parts it may import (besides itself). The command line (``cli``) and the
package root (``fastgan/__init__.py``, the public API) may import every part; nothing imports
either of them."""
TOP = {"cli", "root"}


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (packages by their name)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The package modules that module ``name`` imports, with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:   # "fastgan.nn.mlp.MLP" -> "fastgan.nn.mlp"
                target = target.rpartition(".")[0]
            if target:
                yield target, node.lineno


def part(module: str) -> str:
    """The part a module belongs to: its sub-package or top-level module; "root" for the
    package's ``__init__``, "cli" for ``__main__`` (``python -m fastgan``)."""
    pieces = module.split(".")
    if len(pieces) == 1:
        return "root"
    return "cli" if pieces[1] == "__main__" else pieces[1]


def violations(root: Path) -> list[str]:
    """Every import that breaks :data:`ALLOWED`, as "module:line imports target (a -> b)"."""
    found = modules(root)
    problems = []
    for name, path in sorted(found.items()):
        source = part(name)
        for target, line in imports(name, path, set(found)):
            destination = part(target)
            if destination == source:
                continue
            if source in TOP:
                allowed = destination not in TOP
            else:
                allowed = destination in ALLOWED.get(source, set())
            if not allowed:
                problems.append(f"{name}:{line} imports {target} ({source} -> {destination})")
    return problems


def cycles(root: Path) -> list[list[str]]:
    """The import cycles among the package's modules (Tarjan's strongly connected components
    of more than one module, or a module importing itself)."""
    found = modules(root)
    graph = {name: {target for target, _ in imports(name, path, set(found)) if target != name}
             for name, path in found.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_every_part_has_a_rule_and_a_docstring():
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    assert all((folder / "__init__.py").exists() for folder in folders), \
        "every folder of modules is a package with an __init__.py (no namespace packages)"
    parts = {part(name) for name in modules(PACKAGE)}
    assert parts <= set(ALLOWED) | TOP, sorted(parts - set(ALLOWED) - TOP)
    for package in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert docstring and "import" in docstring, \
            f"{package.name}/__init__.py must say what the part does and what it may import"


def test_imports_follow_the_written_rule():
    assert violations(PACKAGE) == []


def test_there_are_no_import_cycles():
    assert cycles(PACKAGE) == []


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the package to plant bad imports in."""
    copy = tmp_path / "fastgan"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_planted_upward_import_is_caught(planted: Path):
    params = planted / "nn" / "params.py"
    params.write_text(params.read_text() + "\n\ndef late():\n    from ..gan.model import GAN\n")
    assert any(v.startswith("fastgan.nn.params:") and "(nn -> gan)" in v
               for v in violations(planted))


def test_a_planted_cycle_is_caught(planted: Path):
    loop = planted / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom . import checkpoint  # noqa\n")
    assert ["fastgan.training.checkpoint", "fastgan.training.loop"] in cycles(planted)
