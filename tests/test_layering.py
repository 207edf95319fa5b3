"""The house: gsocket's server modules import each other without a circle,
a lower module never imports a higher one, no module outgrows ~600 lines,
and every public method of SocketServer says what it returns and when it
blocks. The imports are read from the source with ``ast`` (every import:
module level, inside functions, under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import gsocket

PACKAGE = Path(gsocket.__file__).parent

#: The server's modules from the bottom up: each may import only modules
#: before it in this list.
SERVER_LAYERS = [
    "gsocket._accelerate",
    "gsocket.events",
    "gsocket._netutil",
    "gsocket._unix",
    "gsocket._arguments",
    "gsocket._event_channel",
    "gsocket._slot",
    "gsocket._stream",
    "gsocket._connecting",
    "gsocket._listener",
    "gsocket._udp",
    "gsocket._tls",
    "gsocket._udp_ops",
    "gsocket._flow_ops",
    "gsocket._foreign_calls",
    "gsocket.server",
]

#: No file beyond about this many lines (STYLE.md: "no file beyond ~600 lines").
MAX_LINES = 600


def module_names(package: Path) -> Dict[str, Path]:
    """Dotted module name -> source file, for every .py under ``package``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(package: Path) -> Dict[str, Set[str]]:
    """module -> the modules of the same package it imports."""
    names = module_names(package)
    graph: Dict[str, Set[str]] = {name: set() for name in names}
    for name, path in names.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from . import low`` imports the module low, not the package
                submodules = [f"{target}.{a.name}" for a in node.names
                              if f"{target}.{a.name}" in names]
                candidates: Iterable[str] = submodules or [target]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(c for c in candidates if c in names and c != name)
    return graph


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def find_cycle(graph: Dict[str, Set[str]], nodes: Set[str]) -> Optional[List[str]]:
    """An import circle among ``nodes`` (as a path a -> ... -> a), or None."""
    state: Dict[str, int] = {}   # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node] & nodes):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(nodes):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_server_modules_have_no_import_circle() -> None:
    graph = import_graph(PACKAGE)
    house = reachable(graph, "gsocket.server")
    # Not vacuous: the server reaches every kind of slot through the graph.
    assert set(SERVER_LAYERS) <= house, set(SERVER_LAYERS) - house
    assert find_cycle(graph, house) is None, find_cycle(graph, house)


def test_a_lower_module_never_imports_a_higher_one() -> None:
    graph = import_graph(PACKAGE)
    rank = {name: i for i, name in enumerate(SERVER_LAYERS)}
    wrong = [(name, target) for name in SERVER_LAYERS for target in sorted(graph[name])
             if target not in rank or rank[target] >= rank[name]]
    # Outside the list is wrong too: the server's modules import nothing
    # else of gsocket (not the driver, not the socket API, not the package).
    assert wrong == []


def test_the_checks_find_a_circle(tmp_path: Path) -> None:
    # The same parser and search on a package with a circle hidden under
    # TYPE_CHECKING (as _slot -> server was): both must see it.
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import High\n")
    (package / "high.py").write_text("from . import low\n")
    (package / "alone.py").write_text("import pkg.low\n")
    graph = import_graph(package)
    assert graph["pkg.high"] == {"pkg.low"}
    assert graph["pkg.low"] == {"pkg.high"}
    assert graph["pkg.alone"] == {"pkg.low"}
    assert find_cycle(graph, reachable(graph, "pkg.alone")) == ["pkg.low", "pkg.high", "pkg.low"]
    assert find_cycle(graph, {"pkg.alone", "pkg.low"}) is None


def test_no_module_outgrows_600_lines() -> None:
    sizes = {str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines())
             for path in module_names(PACKAGE).values()}
    assert len(sizes) > 20
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_layout_page_names_every_module() -> None:
    layout = (PACKAGE.parent / "docs" / "layout.md").read_text()
    missing = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if path.name != "__init__.py" and path.name not in layout)
    assert not missing, f"docs/layout.md does not name {missing}"
