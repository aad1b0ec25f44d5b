"""A Griffe extension that turns the Sphinx roles of fastgan's docstrings into mkdocstrings links.

fastgan's docstrings name other objects the Sphinx way (``:class:`GAN```,
``:func:`~fastgan.gan.presets.get```, ``:mod:`fastgan.fileio```). mkdocstrings renders
docstrings as Markdown, where those roles would show as raw text. When the package is loaded,
this extension rewrites every role in every docstring:

* into a cross-reference ``[`text`][canonical.path]`` when the name resolves to an object that
  the API reference renders (public along its whole path, with a docstring), so that
  ``mkdocs build --strict`` checks the link;
* into plain code ``` `text` ``` otherwise (a private helper, a name outside fastgan).

A name resolves as Sphinx would look it up: a dotted path from the package root as written;
``.name`` relative to the docstring's module and its package; a bare or partial name in the
object's own scope, then each enclosing class and the module. ``~`` keeps only the last
component as the text; ``:func:`` and ``:meth:`` add ``()``.

Sphinx's literal-block marker is rewritten too: a paragraph ending in ``::`` before an indented
block ends in ``:``, and the block stays a code block.

Loaded by ``mkdocs.yml`` (``plugins: mkdocstrings: handlers: python: options: extensions``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import griffe

ROLE = re.compile(r"(?::py)?:(?P<role>class|func|meth|mod|data|attr|exc|obj|const):"
                  r"`(?P<body>[^`]+)`")
LITERAL_BLOCK = re.compile(r"::\n(?=\n[ \t]+\S)")
CALLABLE_ROLES = {"func", "meth"}
PRIVATE = re.compile(r"^_[^_]")   # the names mkdocstrings-python's default filters leave out


def rewrite(text: str, resolve: Callable[[str], str | None]) -> str:
    """``text`` with its Sphinx roles as Markdown: a link where ``resolve(name)`` gives the
    canonical path of a rendered object, plain code where it gives ``None``."""

    def replace(match: re.Match[str]) -> str:
        body = match["body"].strip()
        titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", body)
        if titled:
            title, target = titled["title"], titled["target"].strip()
        else:
            target = body.lstrip("~")
            title = target.rpartition(".")[2] if body.startswith("~") else target
            title = title.lstrip(".")
            if match["role"] in CALLABLE_ROLES:
                title += "()"
        path = resolve(target.lstrip("~"))
        return f"[`{title}`][{path}]" if path else f"`{title}`"

    return LITERAL_BLOCK.sub(":\n", ROLE.sub(replace, text))


def rendered(obj: griffe.Object | griffe.Alias) -> bool:
    """Whether the API reference shows ``obj``: every name on its canonical path public, and a
    docstring (modules are shown whole, with or without one)."""
    if any(PRIVATE.match(name) for name in obj.canonical_path.split(".")):
        return False
    return obj.is_module or obj.has_docstring


def candidates(name: str, scope: griffe.Object) -> Iterator[str]:
    """The full paths ``name`` may mean in a docstring of ``scope``, most specific first."""
    module = scope.module
    if name.startswith("."):
        relative = name.lstrip(".")
        levels = len(name) - len(relative)
        package = module.path.split(".")
        if not module.is_package:
            package = package[:-1]
        yield f"{module.path}.{relative}"
        yield ".".join([*package[: len(package) - levels + 1], relative])
        return
    enclosing: griffe.Object | None = scope
    while enclosing is not None:
        yield f"{enclosing.path}.{name}"
        if enclosing is module:
            break
        enclosing = enclosing.parent
    yield name


def resolver(scope: griffe.Object, collection: Any) -> Callable[[str], str | None]:
    """``resolve(name)``: the canonical path of the rendered object ``name`` means in ``scope``."""

    def resolve(name: str) -> str | None:
        for path in candidates(name, scope):
            try:
                found = collection.get_member(path)
                if rendered(found):
                    return found.canonical_path
            except (KeyError, ValueError, griffe.AliasResolutionError,
                    griffe.CyclicAliasError):
                continue
        return None

    return resolve


def documented(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined under it (not the names it imports)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from documented(member)


class SphinxRoles(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring once the whole package is loaded, when
    every name a role may point to exists."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        """Rewrite each docstring of the package ``pkg``."""
        for obj in documented(pkg):
            if obj.docstring is not None:
                resolve = resolver(obj, loader.modules_collection)
                obj.docstring.value = rewrite(obj.docstring.value, resolve)
