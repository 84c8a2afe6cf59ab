"""The package's shape: imports point down the layers, and no two modules import each other.

Layers, bottom to top (a module may import its own layer and the layers below it):

    0  nbforget (the error type), languages, scoring, metrics (pure functions)
    1  config
    2  runs, data
    3  models
    4  encoding, layers
    5  tasks
    6  train, evaluate
    7  strategies
    8  engine
    9  plots
    10 analysis
    11 pages
    12 batch
    13 publish
    14 cli

Every import counts, the ones inside functions too: a lazy import hides a dependency, it does
not remove it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nbforget.config import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "nbforget"
LAYERS = [
    ["nbforget", "languages", "scoring", "metrics"],
    ["config"],
    ["runs", "data"],
    ["models"],
    ["encoding", "layers"],
    ["tasks"],
    ["train", "evaluate"],
    ["strategies"],
    ["engine"],
    ["plots"],
    ["analysis"],
    ["pages"],
    ["batch"],
    ["publish"],
    ["cli"],
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The nbforget modules `path` imports anywhere in its body (``from x import y`` counts the
    submodule x.y when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("nbforget")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbforget"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if f"{node.module}.{alias.name}" in known}
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(path, known) - {name} for name, path in found.items()}


def top_level(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nbforget"


def test_every_module_has_a_layer():
    missing = sorted({top_level(name) for name in modules()} - set(LAYER_OF))
    assert not missing, f"modules without a layer in this test's LAYERS: {missing}"


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if target == "nbforget":  # the package itself: the error type only
                continue
            if LAYER_OF[top_level(target)] > LAYER_OF[top_level(module)]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_circle():
    edges = graph()
    # a package's __init__ importing its own submodules is how it re-exports them, not a circle
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not (t.startswith(module + ".") and modules()[module].name == "__init__.py")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("source, expected", [
    ("from nbforget.engine import run_strategy\n", {"nbforget.engine"}),
    ("def f():\n    from nbforget import runs\n", {"nbforget", "nbforget.runs"}),
    ("import nbforget.batch.grid\n", {"nbforget.batch.grid"}),
    ("import os\n", set()),
])
def test_imports_are_found_at_any_depth(tmp_path, source, expected):
    file = tmp_path / "module.py"
    file.write_text(source)
    assert imported(file, set(modules())) == expected
