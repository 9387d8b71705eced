"""No import loops between medreq's modules.

Every ``.py`` file under ``medreq/`` is parsed (not imported) and each ``import medreq.x`` /
``from medreq.x import y`` / ``from . import y`` anywhere in it becomes an edge from that
module to the module it names, so the check sees:

- imports inside functions (a lazy import is still a dependency, it only hides the loop
  until the function runs);
- imports under ``if TYPE_CHECKING:`` too: a loop that only the type checker sees is still
  two modules that each need the other to be read, which is what this test exists to stop;
- ``from package import name`` as an edge to the submodule ``package.name`` when that is a
  module, else to the package's ``__init__``;
- importing ``medreq.cli.user_profile`` as an edge to ``medreq.cli`` too, since Python runs
  the package's ``__init__`` first (not for the packages the importer itself is inside);
- a package's ``__init__`` re-exporting its own submodules as ordinary edges, so a submodule
  that imports its sibling through the package (``from medreq.client import X`` inside
  ``medreq/client/_live.py``) is a loop through the ``__init__``, as it is at import time.

Any strongly connected set of modules fails the test, named with one cycle through it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import medreq

ROOT = Path(medreq.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The medreq modules ``name`` (the module in ``path``) imports, wherever the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                yield from _known(child if child in modules else target, modules)


def _known(target: str, modules: dict[str, Path]) -> Iterator[str]:
    """``target`` or its nearest enclosing module that is part of medreq."""
    while target:
        if target in modules:
            yield target
            return
        target = target.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for dep in imported(name, path, modules):
            deps.update(_with_packages(dep, name))
        graph[name] = deps
    return graph


def _with_packages(target: str, importer: str) -> set[str]:
    """``target`` and the packages Python runs first to import it (``medreq.cli.user_profile``
    runs ``medreq/cli/__init__.py``), except those the importer is already inside."""
    own = importer.split(".")
    parts = target.split(".")
    found = {target}
    for size in range(2, len(parts)):
        package = ".".join(parts[:size])
        if parts[:size] != own[:size]:
            found.add(package)
    return found - {importer}


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each as one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.add(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle(graph, component) for component in components]


def _cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for dep in sorted(graph[node] & component):
                if dep == start:
                    return [*paths[node], start]
                if dep not in paths:
                    paths[dep] = [*paths[node], dep]
                    following.append(dep)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


def test_medreq_has_no_import_loops() -> None:
    found = loops(import_graph())
    assert not found, "import loops:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_walk_sees_lazy_type_checking_and_package_relative_imports() -> None:
    # the walker is only as good as the edges it finds: check it on the kinds it must see
    graph = import_graph()
    assert "medreq.cli.app" in graph["medreq.cli.inbox"]  # from .app import app
    assert "medreq.tui" in graph["medreq.cli.inbox"]  # inside the command function
    assert "medreq.client._live" in graph["medreq.client"]  # __init__ re-exporting a submodule
    assert "medreq.protocol.errors" in graph["medreq.client._errors"]  # absolute import
    assert _with_packages("medreq.cli.user_profile", "medreq.tui.backend") == {
        "medreq.cli.user_profile",
        "medreq.cli",
    }
    assert _with_packages("medreq.client._tokens", "medreq.client._live") == {"medreq.client._tokens"}
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert loops({"a": {"b"}, "b": set()}) == []
