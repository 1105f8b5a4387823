"""The layout is the architecture: what the package's modules may import, and how long a
function may grow (issue 12). Read from the source, so a change that breaks a rule fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "batchsubmit"
# The presentation layer: the only modules that may draw with rich or speak in exit codes.
PRESENTATION = ("batchsubmit.cli", "batchsubmit.commands", "batchsubmit.logs")
# Long on purpose: argument-parser registration, and the expander's hot loops (every point
# passes through them; their locals are bound once for speed).
LONG_ALLOWED = {
    ("batchsubmit.commands.emulator", "register"),
    ("batchsubmit.commands.expand", "register"),
    ("batchsubmit.sweep.expand", "renderer"),
    ("batchsubmit.sweep.preflight", "_scan"),
}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules a module imports, TYPE_CHECKING-only imports included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            submodules = names & known
            found |= submodules or ({node.module} & known)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & known
    return found


def test_no_module_imports_itself_round_a_cycle() -> None:
    """The import graph of batchsubmit has no cycle (a protocol breaks one where needed)."""
    trees = modules()
    graph = {name: imports(tree, set(trees)) - {name} for name, tree in trees.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_only_the_command_line_imports_rich() -> None:
    """No core module imports rich: the core returns data and the command line renders it."""
    offenders = []
    for name, tree in modules().items():
        if name.startswith(PRESENTATION):
            continue
        for node in ast.walk(tree):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if (module or "").split(".")[0] == "rich" or any(n.split(".")[0] == "rich"
                                                            for n in names):
                offenders.append(name)
    assert offenders == []


def test_no_function_is_a_god_function() -> None:
    """No function over 60 lines, but parser registration and the expander's hot loops."""
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 60 and (name, node.name) not in LONG_ALLOWED:
                    long.append(f"{name}.{node.name}: {size} lines")
    assert long == []


def test_exit_codes_belong_to_the_command_line() -> None:
    """ExitCode is used by cli.py and commands/ only; the core has no exit codes."""
    users = [
        name for name, tree in modules().items()
        if not name.startswith(PRESENTATION)
        and any(isinstance(n, ast.Name) and n.id in ("ExitCode", "EXIT_OK", "EXIT_FAILED")
                for n in ast.walk(tree))
    ]
    assert users == []
