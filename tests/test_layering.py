"""The shape of the code: no import cycles, layers that only look down, small modules.

Every import counts, also those inside functions and under TYPE_CHECKING: a
cycle hidden that way is still a cycle for whoever reads the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = ("sfu", "signalling", "rooms", "recording", "breakout")
# What each layer may import of the project (besides itself). `urok bench`
# (signalling.cli) loads bench/ inside the command, only when it is run.
ALLOWED = {
    "sfu": set(),
    "recording": {"sfu"},  # aiortc internals only through sfu.aiortc_hooks
    "breakout": set(),
    "rooms": {"sfu", "recording", "breakout"},
    "signalling": {"rooms", "sfu", "recording", "breakout"},
    "bench": {"sfu", "signalling", "rooms", "recording", "breakout"},
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in (*SERVER_PACKAGES, "bench"):
        for path in (ROOT / package).rglob("*.py"):
            modules[module_name(path)] = path
    return modules


MODULES = project_modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules `name` imports, anywhere in its file."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_the_checker_finds_a_cycle() -> None:
    # The checker itself: a made-up cycle is found.
    GRAPH["sfu.__fake_a"] = {"sfu.__fake_b"}
    GRAPH["sfu.__fake_b"] = {"sfu.__fake_a"}
    try:
        assert ["sfu.__fake_a", "sfu.__fake_b"] in cycles()
    finally:
        del GRAPH["sfu.__fake_a"], GRAPH["sfu.__fake_b"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layers_only_look_down(name: str) -> None:
    layer = name.split(".")[0]
    others = {target.split(".")[0] for target in GRAPH[name]} - {layer}
    if name == "signalling.cli":
        others.discard("bench")
    assert others <= ALLOWED[layer], f"{name} imports {sorted(others - ALLOWED[layer])}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] in SERVER_PACKAGES))
def test_server_modules_and_functions_are_small(name: str) -> None:
    text = MODULES[name].read_text("utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name} has {length} lines"


if __name__ == "__main__":  # python -m tests.test_layering: the cycles, if any
    print(f"{len(MODULES)} modules, cycles: {cycles() or 'none'}")
