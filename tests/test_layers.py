"""The package shows its architecture: each layer imports only the layers below it, and no cycle.

The layers, bottom to top. A module may import its own layer and any layer below; read from the
code (function-level imports included, so an import moved into a function cannot hide a cycle).
"""

from __future__ import annotations

import pytest

from helpers.imports import direct_imports, library_modules

#: Ground modules: everything may import these, and they import only each other.
GROUND = (
    "errors",
    "progress",
    "contract",
    "io",
    "config",
    "paths",
    "startup",
    "curves",
    "gate",
    "metrics",
    "engine",
    "servicelog",
    "listeners",
)
#: Packages, bottom to top; the ground is below them all and cli.py on top.
LAYERS = ("data", "features", "model", "scoring", "evaluation", "monitoring", "serve", "pipeline", "cli")
MODULES = library_modules()


def layer(module: str) -> int:
    """0 for the package root and the ground, then 1 + the index of its package in LAYERS."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in GROUND:
        return 0
    assert parts[1] in LAYERS, f"{module}: its package {parts[1]!r} is in neither GROUND nor LAYERS of this test"
    return 1 + LAYERS.index(parts[1])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_nothing_from_a_layer_above_its_own(module):
    own = layer(module)
    upward = sorted(name for name in direct_imports(MODULES[module]) if layer(name) > own)
    assert not upward, f"{module} (layer {own}) imports {upward} from above its layer"


def _cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One cycle of the graph, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package_edges(module: str) -> frozenset[str]:
    """A module's imports, less the packages it sits in (importing ``a.b`` runs ``a/__init__``)."""
    parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    return frozenset(name for name in direct_imports(MODULES[module]) if name != module and name not in parents)


def test_no_import_cycle_between_modules():
    graph = {module: _package_edges(module) for module in MODULES}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == ["a", "b", "c", "a"]
    assert _cycle({"a": frozenset({"b"}), "b": frozenset()}) is None
