"""No import cycle among videotok's modules.

Every `import` and `from ... import` naming videotok counts, wherever it stands (module level,
inside a function, under TYPE_CHECKING): a cycle hidden by a late import is still a cycle in the
design. Importing `videotok.a.b` also runs the package `videotok.a`'s `__init__`, so that is an
edge too, except towards the importer's own packages (a package re-exporting its modules is not a
cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import videotok

ROOT = Path(videotok.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """The videotok modules that importing `name` (at `path`) imports directly."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # `import videotok.x.y as z`, attributes
                target = target.rpartition(".")[0]
            if target:
                out.add(target)
                out |= ancestors(target) - ancestors(name) - {name}
    out.discard(name)
    return out


def ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when the graph has none (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported(path, name, set(modules)) for name, path in modules.items()}


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_sees_the_known_edges():
    graph = import_graph()
    assert "videotok.reduce.state" in graph["videotok.layers.block"]
    assert "videotok.reduce" in graph["videotok.layers.block"]  # the package __init__ runs first


def test_no_import_cycle_among_videotok_modules():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)
