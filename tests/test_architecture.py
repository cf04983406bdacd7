"""The tree reads as its architecture: no import circle between files or between packages.

The layers themselves (imports only go down, siblings apart, the SDK free of the server)
are import-linter contracts in pyproject.toml, which `make test` runs as `lint-imports`;
import-linter has no contract for circles inside a layer, so this test looks for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import grimp
import pytest

PACKAGES = (
    "kept_wire",
    "kept",
    "kept_storage",
    "kept_ingest",
    "kept_analytics",
    "kept_dashboards",
    "kept_service",
    "kept_cli",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def circles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_of(graph: grimp.ImportGraph, module: str) -> str:
    """A package stands for itself; a plain module for the package that holds it."""
    if graph.find_children(module) or "." not in module:
        return module
    return module.rpartition(".")[0]


def test_circles_finds_a_circle() -> None:
    assert circles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert circles({"a": ["b"], "b": []}) == []


def test_no_import_circle_between_files(graph: grimp.ImportGraph) -> None:
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert circles(edges) == []


def contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer + ".")


def package_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Which package imports which, between packages neither of which holds the other
    (kept_ingest and kept_analytics; kept.transports and kept.integrations). A subpackage
    using its parent's modules stays inside one package: a circle of files there is
    caught by the file-level test."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        source = package_of(graph, module)
        for imported in graph.find_modules_directly_imported_by(module):
            target = package_of(graph, imported)
            if not contains(source, target) and not contains(target, source):
                edges[source].add(target)
    return edges


def test_no_import_circle_between_packages(graph: grimp.ImportGraph) -> None:
    assert circles(package_edges(graph)) == []


def test_a_circle_between_packages_is_found() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "b", "b.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="b.z")
    graph.add_import(importer="b.z", imported="a.y")
    assert circles(package_edges(graph)) == [["a", "b"]]
