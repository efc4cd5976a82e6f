"""The house's import rules: the layers contract in pyproject.toml (import-linter) and no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src" / "llaso"


def _cycles(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(adjacency):
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph("llaso", exclude_type_checking_imports=True)
    adjacency = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert _cycles(adjacency) == []


def test_the_layers_contract_is_kept() -> None:
    """`lint-imports` with the contract of pyproject.toml: cli -> demo -> train|infer|evaluate ->
    model|builders -> corpus -> tasks -> schema|utils."""
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(exe), "--no-cache", "--config", str(SRC.parents[1] / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_the_schema_imports_nothing_of_ours() -> None:
    tree = ast.parse((SRC / "schema.py").read_text(encoding="utf-8"))
    ours = [
        n.module if isinstance(n, ast.ImportFrom) else ", ".join(a.name for a in n.names)
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom | ast.Import)
        and any(
            (name or "").split(".")[0] == "llaso"
            for name in ([n.module] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names])
        )
    ]
    assert ours == []
