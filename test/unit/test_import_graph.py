"""The import graph of ``depth_perception`` and ``training``, read with ``ast``: no cycles.

Every ``import`` statement counts, the lazy ones inside functions too: a lazy import hides a
cycle from the interpreter, not from a reader. Imports under ``if TYPE_CHECKING:`` do not: they
never run and only name types for annotations. The core never imports ``training``; the one
exception is ``depth_perception.cli``, the console script, whose training subcommands call the
tools in ``training.tools`` (lazily, and only when the training subpackage is installed).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("depth_perception", "training")
# The console script dispatches to the training tools; nothing else in the core may.
CORE_MODULES_ALLOWED_TO_IMPORT_TRAINING = {"depth_perception.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ours (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule when there is one.
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                targets.add(target)
    return targets


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """``module -> modules of ours it imports`` for every module of the two packages."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_known_edges():
    # Guards the reader itself: a parser that found nothing would pass every check below.
    graph = import_graph()
    assert "training.trainer.loop" in graph["training.tools.train"]
    assert "training.objectives.losses" in graph["training.objectives.standard"]
    assert "depth_perception.checkpoint" in graph["training.trainer.loop"]
    # A lazy import inside a function counts.
    assert "training.data.pseudo_labels" in graph["training.data.registry"]


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_core_never_imports_training():
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "training")
        for module, targets in graph.items()
        if module.split(".")[0] == "depth_perception"
        and module not in CORE_MODULES_ALLOWED_TO_IMPORT_TRAINING
    }
    offenders = {m: t for m, t in offenders.items() if t}
    assert not offenders, f"the core imports training: {offenders}"


@pytest.mark.parametrize(
    "tool",
    ["train", "evaluate", "export", "teacher", "bundle", "sfm_losses", "adapt", "adapt_study"],
)
def test_the_library_never_imports_a_tool(tool):
    graph = import_graph()
    importers = sorted(
        module
        for module, targets in graph.items()
        if f"training.tools.{tool}" in targets and not module.startswith("training.tools")
    )
    assert not importers, f"training.tools.{tool} is imported by the library: {importers}"
