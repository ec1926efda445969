"""The layer checker: every import of every module (top-level, function-level, TYPE_CHECKING) against the layers."""
from __future__ import annotations

import ast
import pathlib
from typing import Mapping, Sequence

# bottom to top (DESIGN.md §3); modules in one tuple are siblings that must not import each other
LAYERS: tuple[tuple[str, ...], ...] = (("core",), ("model",), ("data",), ("train", "eval"), ("experiment",), ("cli",),
                                       ("main",))


def _module_name(root: pathlib.Path, path: pathlib.Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: pathlib.Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file (a name imported from a package counts as
    the submodule when one exists)."""
    files = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    out: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    up = here[: len(here) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # `import pkg.mod.attr` -> the nearest module
                    t = t.rpartition(".")[0]
                if t and t != mod and t != root.name:
                    found.add(t)
        out[mod] = found
    return out


def layer_of(mod: str, layers: Sequence[Sequence[str]] = LAYERS) -> tuple[int, str] | None:
    """(rank, layer name) of a module from its first sub-package (or top-level module) name."""
    parts = mod.split(".")
    head = parts[1] if len(parts) > 1 else ""
    for rank, names in enumerate(layers):
        if head in names:
            return rank, head
    return None


def violations(root: str | pathlib.Path, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """One line per problem: a module in no layer, an upward import, a sibling-layer import, a cycle."""
    root = pathlib.Path(root)
    graph = imports(root)
    problems = []
    for mod, targets in sorted(graph.items()):
        here = layer_of(mod, layers)
        if here is None:
            if mod != root.name:
                problems.append(f"{mod}: in no layer")
            continue
        for t in sorted(targets):
            there = layer_of(t, layers)
            if there is None:
                continue
            if there[0] > here[0]:
                problems.append(f"{mod} -> {t}: upward ({here[1]} imports {there[1]})")
            elif there[0] == here[0] and there[1] != here[1]:
                problems.append(f"{mod} -> {t}: sibling layers ({here[1]} imports {there[1]})")
    problems += [f"cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules, as a closed path through it (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group) + [min(group)])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups
