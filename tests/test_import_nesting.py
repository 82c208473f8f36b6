"""Layering: the statistics never import torch or matplotlib (STYLE.md, section 1); no
import cycle in the package, deferred imports included; the library never imports the CLI."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

STATS_MODULES = ["topobrain", "topobrain.sheet", "topobrain.contrast", "topobrain.glm",
                 "topobrain.correction", "topobrain.spatial", "topobrain.clusters",
                 "topobrain.inference", "topobrain.selectivity", "topobrain.brain",
                 "topobrain.nulls"]


@pytest.mark.parametrize("module", STATS_MODULES)
def test_statistics_do_not_load_torch_or_matplotlib(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not part of this build yet")
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'matplotlib') "
            f"if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


# --------------------------------------------------------------------------- import graph
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "topobrain"
CLI_MODULES = ("topobrain.cli", "topobrain._cli", "topobrain.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set) -> set:
    """Every topobrain module that ``path`` imports, at any depth (module level,
    functions, methods, try blocks), except under ``if TYPE_CHECKING:``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()

    def add(target):
        # the deepest existing module: "topobrain.models.load" -> "topobrain.models"
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "topobrain":
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "topobrain":
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(sub if sub in modules else mod)
    return found


def _import_graph() -> dict:
    files = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules) for f in files}


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path_in(graph, comp) -> str:
    """One concrete cycle through a component, for the failure message."""
    start = comp[0]
    members = set(comp)
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                chain = [v]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])
                return " -> ".join([*reversed(chain), start])
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return " <-> ".join(comp)


def test_import_graph_walker_finds_deferred_and_relative_imports(tmp_path, monkeypatch):
    """The walker itself: a cycle hidden in a function body is found."""
    pkg = tmp_path / "topobrain"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from . import a\n")
    (pkg / "d.py").write_text("import topobrain.c\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_ROOT", pkg)
    graph = _import_graph()
    assert graph["topobrain.a"] == {"topobrain.sub.b"}
    assert graph["topobrain.sub.b"] == {"topobrain.a"}
    assert graph["topobrain.c"] == set()
    assert graph["topobrain.d"] == {"topobrain.c"}
    assert _cycles(graph) == [["topobrain.a", "topobrain.sub.b"]]


def test_no_import_cycles_deferred_imports_included():
    graph = _import_graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_path_in(graph, c) for c in cycles)


def test_library_never_imports_the_cli():
    graph = _import_graph()
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items()
                 if not m.startswith(CLI_MODULES)
                 for t in targets if t.startswith(CLI_MODULES))
    assert not bad, "library modules import the CLI:\n" + "\n".join(bad)
