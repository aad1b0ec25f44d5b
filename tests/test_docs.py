"""The documentation says what the code does: the public API table lists every public name,
the architecture page states the import rule the architecture test enforces, and the docs
build turns the docstrings' Sphinx roles into links or plain code. (``nox -s docs`` builds
the site itself, strictly.)"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from test_architecture import ALLOWED

import fastgan

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_api_reference_lists_every_public_name():
    listed = set(re.findall(r"`fastgan\.(\w+)`", (DOCS / "api" / "index.md").read_text()))
    assert set(fastgan.__all__) <= listed, sorted(set(fastgan.__all__) - listed)


def test_the_architecture_page_states_the_tested_rule():
    page = (DOCS / "architecture.md").read_text().split("## The rule", 1)[1]
    rule = {}
    for row in re.findall(r"^\| `(\w+)` \| (.+) \|$", page, re.MULTILINE):
        part, imports = row
        rule[part] = set(re.findall(r"`(\w+)`", imports))
    assert rule == ALLOWED


@pytest.fixture(scope="module")
def roles():
    """docs/griffe_sphinx_roles.py (needs griffe: the ``[docs]`` extra)."""
    pytest.importorskip("griffe", reason="the docs extension needs griffe (pip install '.[docs]')")
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles",
                                                  DOCS / "griffe_sphinx_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_links_or_plain_code(roles):
    known = {"GAN": "fastgan.gan.model.GAN",
             "fastgan.training.loop.fit": "fastgan.training.loop.fit"}
    text = ("A :class:`GAN`, :func:`~fastgan.training.loop.fit`, :data:`_PRIVATE`, "
            ":meth:`the step <GAN>` and ``literal``.")
    assert roles.rewrite(text, known.get) == (
        "A [`GAN`][fastgan.gan.model.GAN], [`fit()`][fastgan.training.loop.fit], `_PRIVATE`, "
        "[`the step`][fastgan.gan.model.GAN] and ``literal``.")


def test_a_literal_block_marker_becomes_a_colon(roles):
    text = "A run folder holds::\n\n    config.json\n\nand more:: not a block."
    assert roles.rewrite(text, lambda name: None) == (
        "A run folder holds:\n\n    config.json\n\nand more:: not a block.")


def test_names_resolve_in_the_docstring_scope_first(roles):
    griffe = pytest.importorskip("griffe")
    package = griffe.load("fastgan", search_paths=[str(DOCS.parent)])
    scope = package["training.loop.TrainingLoop"]
    assert list(roles.candidates("log", scope))[:2] == [
        "fastgan.training.loop.TrainingLoop.log", "fastgan.training.loop.log"]
    resolve = roles.resolver(scope, package.modules_collection)
    assert resolve("TrainingLoop.log") == "fastgan.training.loop.TrainingLoop.log"
    assert resolve("Backend") == "fastgan.backends.base.Backend"   # imported name: canonical
    assert resolve(".checkpoint.save") == "fastgan.training.checkpoint.save"
    assert resolve("DEFAULT_LOG_EVERY") is None                    # no docstring: not rendered
    assert resolve("numpy.ndarray") is None


def _docstrings():
    """(where, cleaned docstring) of every module, class and function of the package."""
    root = DOCS.parent
    for path in sorted((root / "fastgan").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(root)}: {getattr(node, 'name', 'module')}"
                yield where, ast.get_docstring(node) or ""


def test_no_docstring_line_starts_with_a_doctest_prompt():
    """Markdown reads ``>>>`` at the start of a line as three nested quotes, so an example
    left at a docstring's margin renders as one quoted paragraph: examples go indented, under
    ``Examples:`` (mkdocstrings renders that Google section as code)."""
    at_margin = [where for where, docstring in _docstrings()
                 if any(line.startswith(">>>") for line in docstring.splitlines())]
    assert not at_margin, at_margin
