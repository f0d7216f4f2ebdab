"""The layout's rules, read from the source: only demo/views imports gradio, and no module import cycle."""
from __future__ import annotations

import ast
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(DEMO.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in DEMO.rglob("*.py")}
    return {name: {m for m in imports(path) if m in mods and m != name} for name, path in mods.items()}


def test_only_views_import_gradio():
    offenders = [module_name(p) for p in DEMO.rglob("*.py")
                 if any(m == "gradio" or m.startswith("gradio.") for m in imports(p))
                 and not module_name(p).startswith("demo.views")]
    assert offenders == []


def test_no_import_cycles():
    edges = graph()
    # a package's __init__ re-exporting its own modules is not a cycle between concerns
    edges = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in edges.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []
