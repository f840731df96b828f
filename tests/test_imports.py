"""The import graph of `reporter`: no circle, and the config package at the bottom (issue 18).

The graph is read from the source with `ast`, so it shows what importing a module runs:
module-level imports (class bodies, `try` and plain `if` blocks included). Imports under
`if TYPE_CHECKING:` and inside functions are left out: they run late or never. A function-level
import that only hides a dependency from this test is still one; review it as such.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "reporter"
CONFIG = "reporter.config"
# What the config package may import from the rest of `reporter`, directly or through another
# module: only things below every stage. `state.engine` holds the state database URL rule that
# the config checks `state.database_url` by; the state package imports nothing of `reporter` but
# `errors` when it is imported (its migrations load Alembic only when they run).
BELOW_CONFIG = frozenset(
    {
        "reporter",
        "reporter.errors",
        "reporter.models",
        "reporter.state",
        "reporter.state.engine",
    }
)
# Stages the config configures; named here so a failure says plainly what went wrong.
STAGES_ABOVE = (
    "reporter.owners",
    "reporter.web",
    "reporter.pipeline",
    "reporter.deliver",
    "reporter.render",
    "reporter.sources",
    "reporter.cli",
    "reporter.collect",
    "reporter.exceptions",
    "reporter.evidence",
    "reporter.schedule",
)

Graph = dict[str, set[str]]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name → file, for every module of `package` under `root`."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(
    body: list[ast.stmt], type_checking: bool = False
) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported (with `type_checking`, also
    those only a type checker follows)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # runs when called, not when imported (decorators hold no imports)
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            yield from _import_time_nodes(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None) or []
                for child in children:
                    inner = (
                        child.body
                        if isinstance(child, ast.ExceptHandler | ast.match_case)
                        else [child]
                    )
                    yield from _import_time_nodes(inner, type_checking)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        base_parts = module.split(".") if is_package else module.split(".")[:-1]
        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
        base = ".".join([*base_parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in known else base


def import_graph(root: Path, package: str, *, type_checking: bool = False) -> Graph:
    """Module → the modules of `package` it imports at import time."""
    files = module_files(root, package)
    known = set(files)
    graph: Graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in _import_time_nodes(tree.body, type_checking):
            for target in _targets(node, module, is_package, known):
                # `import a.b.c` names a.b.c; the nearest module of ours that it reaches.
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def reachable(graph: Graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT, PACKAGE)


def test_the_import_graph_has_no_circle(graph: Graph) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_type_only_imports_make_no_circle_either() -> None:
    # `if TYPE_CHECKING:` once hid the config ↔ owners circle (issue 18): none hides behind it.
    cycle = find_cycle(import_graph(ROOT, PACKAGE, type_checking=True))
    assert cycle is None, "import circle through type-only imports: " + " → ".join(cycle or [])


def test_the_config_package_imports_nothing_from_a_stage_above_it(graph: Graph) -> None:
    config_modules = [m for m in graph if m == CONFIG or m.startswith(f"{CONFIG}.")]
    assert len(config_modules) > 1, "reporter.config is a package of modules"
    for module in config_modules:
        direct = {t for t in graph[module] if not t.startswith(CONFIG)}
        above = sorted(t for t in direct if t.startswith(STAGES_ABOVE))
        assert not above, f"{module} imports {above}: stages above the config"
        outside = sorted(t for t in reachable(graph, module) if not t.startswith(CONFIG))
        assert set(outside) <= BELOW_CONFIG, f"{module} reaches {outside}"


def test_importing_the_config_loads_no_stage_above_it() -> None:
    # The same at run time, which also sees imports the source does not spell out.
    code = "import sys, reporter.config; print(*sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    ours = {m for m in loaded if m == PACKAGE or m.startswith(f"{PACKAGE}.")}
    outside = {m for m in ours if not m.startswith(CONFIG)}
    assert outside <= BELOW_CONFIG, sorted(outside - BELOW_CONFIG)


# --- the graph builder itself, on a package written for the purpose ---------------------------


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_builder_sees_import_time_imports_and_skips_the_others(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub import thing\n",
            "pkg/sub/__init__.py": "thing = 1\n",
            "pkg/sub/low.py": "import os\n",
            "pkg/a.py": """
                from typing import TYPE_CHECKING
                from . import b
                from .sub import low
                import pkg.sub.low
                try:
                    from pkg import c
                except ImportError:
                    pass
                if TYPE_CHECKING:
                    from .d import D
                else:
                    from .e import E
                class K:
                    from .f import F
                def later():
                    from .g import G
            """,
            **{f"pkg/{name}.py": "" for name in "bcdefg"},
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg"] == {"pkg.sub"}
    assert graph["pkg.a"] == {"pkg.b", "pkg.c", "pkg.e", "pkg.f", "pkg.sub.low"}
    assert find_cycle(graph) is None
    typed = import_graph(tmp_path, "pkg", type_checking=True)
    assert typed["pkg.a"] == graph["pkg.a"] | {"pkg.d"}


def test_the_builder_finds_a_circle_through_relative_imports(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/one.py": "from .inner.two import x\n",
            "pkg/inner/__init__.py": "",
            "pkg/inner/two.py": "from ..one import y\n",
        },
    )
    cycle = find_cycle(import_graph(tmp_path, "pkg"))
    assert cycle is not None and set(cycle) == {"pkg.one", "pkg.inner.two"}
