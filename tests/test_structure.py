"""Repository structure checks: no import cycles between our modules, no overlong modules.

Our modules are the packages of pyproject.toml's `[tool.setuptools] package-dir` that exist with an
`__init__.py` (the generated `ossa` package in gen/ excepted), under their import names (envoy/ is
`ossa_envoy`, console/ is `ossa_console`).

The import graph is read with `ast` from every `import` and `from ... import` statement, at module
level or inside functions and classes, except under `if TYPE_CHECKING:`. Relative imports are
resolved; `from pkg import name` imports the submodule `pkg.name` when there is one, else `pkg`'s
`__init__`; `import a.b` imports `a.b`. The parent packages Python imports on the way are not
counted: every submodule would otherwise form a cycle with an `__init__` that re-exports it.

A module over MAX_LINES lines must say why in its first 15 lines, in a comment or docstring line
starting with "Long module:" (gen/, tests/ and benchmarks/ are not packages here, so not checked).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
EXEMPTION = "Long module:"
EXEMPTION_LINES = 15
GENERATED = "gen/ossa"


@dataclass(frozen=True)
class Module:
    name: str  # import name, e.g. registry_svc.servicer
    path: Path
    is_package: bool  # an __init__.py

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


@cache
def packages() -> dict[str, Path]:
    """Import name -> directory, for our packages (pyproject's package-dir) that exist."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    found = {}
    for name, directory in package_dir.items():
        path = ROOT / directory
        if directory.rstrip("/") != GENERATED and (path / "__init__.py").is_file():
            found[name] = path
    return found


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package, directory in packages().items():
        for path in sorted(directory.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = [package, *path.relative_to(directory).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node` except those in the body of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            # Only the `else:` of `if TYPE_CHECKING:` runs; visit it as a block of its own.
            yield from _import_nodes(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from _import_nodes(child)


def _ours(name: str) -> str | None:
    """The module of ours that importing `name` runs: `name` itself or its longest known prefix."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (target := _ours(alias.name)) is not None:
                yield target
        return
    base = node.module or ""
    if node.level:
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        parts = package.split(".")
        if node.level - 1 >= len(parts):
            return  # beyond the top-level package: not resolvable, Python would fail too
        anchor = ".".join(parts[: len(parts) - (node.level - 1)])
        base = f"{anchor}.{base}" if base else anchor
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if alias.name != "*" and submodule in modules():
            yield submodule
        elif (target := _ours(base)) is not None:
            yield target


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, module in modules().items():
        edges: dict[str, int] = {}
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        for node in _import_nodes(tree):
            for target in _targets(module, node):
                if target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: no recursion limit on long chains
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, members: set[str]) -> list[str]:
    """The shortest chain start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return [*reversed(chain), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")


def cycles(graph: dict[str, dict[str, int]]) -> list[list[list[str]]]:
    """Per strongly connected component, the distinct shortest cycles through each of its modules."""
    out = []
    for component in strongly_connected(graph):
        members, seen, chains = set(component), set(), []
        for start in component:
            chain = _shortest_cycle(graph, start, members)
            ring = chain[:-1]
            turn = ring.index(min(ring))
            key = tuple(ring[turn:] + ring[:turn])
            if key not in seen:
                seen.add(key)
                chains.append([*key, key[0]])
        out.append(chains)
    return out


def describe(graph: dict[str, dict[str, int]], chain: list[str]) -> str:
    """`a (a.py:3) -> b (b.py:7) -> a`: each module with the line importing the next one."""
    known = modules()
    steps = [f"{a} ({known[a].rel}:{graph[a][b]})" for a, b in pairwise(chain)]
    return " -> ".join([*steps, chain[-1]])


def _exemption(lines: list[str]) -> str | None:
    """The reason given on a `Long module: <why>` comment or docstring line, if any."""
    for line in lines[:EXEMPTION_LINES]:
        text = line.strip()
        if text.startswith("#"):
            text = text.lstrip("#").strip()
        for quote in ('r"""', '"""', "r'''", "'''"):
            if text.startswith(quote):
                text = text.removeprefix(quote).strip()
                break
        if text.startswith(EXEMPTION):
            return text.removeprefix(EXEMPTION).strip(" \"'") or None
    return None


def long_modules() -> list[tuple[str, int]]:
    found = []
    for module in modules().values():
        lines = module.path.read_text().splitlines()
        if len(lines) > MAX_LINES and _exemption(lines) is None:
            found.append((module.rel, len(lines)))
    return sorted(found)


# The checks ---------------------------------------------------------------------------------------


def test_our_packages_are_found() -> None:
    found = packages()
    assert {"ossa_runtime", "registry_svc", "orchestrator_svc", "monitoring_svc"} <= set(found), found
    assert "ossa" not in found  # generated
    assert all(m.path.suffix == ".py" for m in modules().values())


def test_no_import_cycles_between_our_modules() -> None:
    graph = import_graph()
    found = cycles(graph)
    report = []
    for number, chains in enumerate(found, 1):
        members = sorted({m for chain in chains for m in chain})
        report.append(f"cycle group {number} ({len(members)} modules: {', '.join(members)}):")
        report += [f"  {describe(graph, chain)}" for chain in chains]
    assert not found, f"{len(found)} group(s) of modules import each other in a cycle:\n" + "\n".join(report)


def test_modules_over_the_line_limit_say_why() -> None:
    found = long_modules()
    listing = "\n".join(f"  {path}: {count} lines" for path, count in found)
    assert not found, (
        f"{len(found)} module(s) over {MAX_LINES} lines without a '{EXEMPTION} <why>' comment or docstring "
        f"line in their first {EXEMPTION_LINES} lines (split them by concept, or say why not):\n{listing}"
    )


# The checker itself, on small made-up graphs and files ----------------------------------------------


def test_cycles_are_reported_as_chains() -> None:
    graph: dict[str, dict[str, int]] = {
        "a": {"b": 1},
        "b": {"c": 2, "a": 3},
        "c": {"a": 4},
        "d": {"a": 5},
        "e": {"f": 6},
        "f": {"e": 7},
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["e", "f"]]
    assert cycles(graph) == [[["a", "b", "a"], ["a", "b", "c", "a"]], [["e", "f", "e"]]]


def test_exemption_needs_a_reason_near_the_top() -> None:
    assert _exemption(['"""Long module: one state machine, split it and it reads worse."""']) is not None
    assert _exemption(["from x import y", "# Long module: generated tables"]) is not None
    assert _exemption(['"""Stores.', "", "Long module: the SQL of one table."]) is not None
    assert _exemption(["# Long module:"]) is None
    assert _exemption([""] * EXEMPTION_LINES + ["# Long module: too late"]) is None


def test_type_checking_imports_are_ignored_and_functions_are_read() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\nelse:\n    import shown_else\n"
        "def f():\n    import inside\n"
        "if typing.TYPE_CHECKING:\n    import hidden_too\n"
    )
    names = [alias.name for node in _import_nodes(tree) for alias in node.names]
    assert names == ["TYPE_CHECKING", "shown_else", "inside"]


def test_every_package_directory_is_installed() -> None:
    """A wheel holds only the packages pyproject.toml lists: a subpackage left out (as `ossa.auth.v1`
    once was) imports from a checkout but not from `pip install .` (the Docker image)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    missing = []
    for name, folder in setuptools["package-dir"].items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" in parts:
                continue
            dotted = ".".join((name, *parts))
            if dotted not in listed:
                missing.append(dotted)
    assert not missing, f"packages missing from pyproject.toml [tool.setuptools] packages: {missing}"
