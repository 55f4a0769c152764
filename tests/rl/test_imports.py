"""The engine's modules stand on floors: each imports on its own, and no two import each other.

An import cycle held apart by an ``import`` inside a function is still a cycle, so the graph below
counts imports at any depth of a module (module level, functions, methods). The package
``rl/__init__.py`` is the facade on top (it imports submodules; every submodule's import runs it
first), so it is not a node of the graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

RL = Path(__file__).resolve().parents[2] / "rl"


def _module_name(path: Path) -> str:
    parts = path.relative_to(RL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(RL.rglob("*.py"))}


def _imported_rl_modules(name: str, path: Path) -> set[str]:
    """The ``rl`` submodules ``path`` imports anywhere in its code (the package ``rl`` itself excluded)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .runs import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # from rl import layers
    return {m for m in found if m in MODULES and m not in ("rl", name)}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_rl_import_graph_has_no_cycle_even_through_function_level_imports():
    graph = {name: _imported_rl_modules(name, path) for name, path in MODULES.items() if name != "rl"}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_layer_base_knows_no_concrete_layer_or_model():
    assert _imported_rl_modules("rl.layer_base", MODULES["rl.layer_base"]).isdisjoint(
        {"rl.layers", "rl.models", "rl.training", "rl.checkpoint", "rl.callbacks"}
    )
    assert _imported_rl_modules("rl.files", MODULES["rl.files"]) == {"rl.errors"}
    assert _imported_rl_modules("rl.errors", MODULES["rl.errors"]) == set()


def test_each_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter per module, all started at once (each is mostly waiting on its imports).
    names = sorted(set(MODULES) - {"rl.__main__"})
    runs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], cwd=RL.parent, text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in names}
    failed = {}
    for name, proc in runs.items():
        _, err = proc.communicate(timeout=300)
        if proc.returncode:
            failed[name] = err[-1500:]
    assert not failed, "".join(f"\nimport {name} failed:\n{err}" for name, err in failed.items())


def test_every_name_the_package_exports_exists():
    import rl

    for name in (*rl.__all__, *rl._LAZY):  # the lazy ones are imported on first access
        assert getattr(rl, name) is not None, name
