"""The package's imports run one way: floors that import only downwards, no circle, a probe
that imports nothing of gsup, and fast paths that never load click, rich or psutil.

Read from the source with ``ast``, nothing imported, so every import counts
wherever it is written: at the top of a module, inside a function (a lazy import
still runs, and a circle of lazy imports is still two modules that cannot be
understood or changed one without the other) and under ``if TYPE_CHECKING:``
(a type is a dependency too).  The package's lazy ``__getattr__`` table
(``supervisor/__init__.py``) is data, not an import statement, and is not read.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Optional

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "supervisor"
PROBE = "supervisor._probe"
# Start-up paths that must stay cheap: the guardian runs in every session, `gsup ps` is a measured figure.
FAST = ("supervisor.guardian", "supervisor.ps", "supervisor.console", "supervisor.discovery")
HEAVY = ("click", "rich", "psutil")

Graph = Mapping[str, set[str]]

# Bottom to top, as data flows (docs/architecture.md): a module imports only from its own floor or lower
# ones.  A dotted name stands for that module and everything below it (``supervisor._probe``).
FLOORS: dict[str, tuple[str, ...]] = {
    "model": ("__init__", "errors", "records", "model", "matrix_report", "wording", "strictjson"),  # plain data, no I/O
    "parsing and probing": ("options", "stops", "expect", "kinds", "explain", "schema", "events", "procfs", "signals",
                            "reaper", "readiness", "launch", "deep", "netns", "tree", "session", "discovery",
                            "gsup_child", "early_signals", "stacks", "_probe", "namespaces", "nspids", "containers",
                            "guardian"),
    "one run": ("init", "hooks", "phases", "runner", "report", "control", "api"),
    "many runs": ("scenarios",),
    "views": ("render", "display", "matrix_view", "junit", "ps", "timeline", "timeline_html", "trace", "exports"),
    "command line": ("cli", "console", "run_args", "run_command", "__main__", "pytest_plugin"),
}


# -- reading the imports ----------------------------------------------------------------------------


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(tree: ast.Module, name: str, known: Mapping[str, Path], top_level_only: bool = False) -> set[str]:
    """The dotted names ``tree`` (module ``name``) imports: modules of ``known`` where the import
    names one (``from supervisor import api`` is ``supervisor.api``, ``from supervisor import
    __version__`` is ``supervisor``), other names as written.

    ``top_level_only``: only what runs when the module is imported (not inside a function,
    not under ``if TYPE_CHECKING:``)."""
    package = name if known.get(name, Path()).name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree, top_level_only):
        if isinstance(node, ast.Import):
            found |= {_module_of(alias.name, known) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            found |= {_module_of(f"{base}.{alias.name}", known) if f"{base}.{alias.name}" in known else
                      _module_of(base, known) for alias in node.names}
    return found


def _statements(tree: ast.AST, top_level_only: bool) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if top_level_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_statements(child, top_level_only)])
            continue
        yield node
        yield from _statements(node, top_level_only)


def _absolute(module: Optional[str], level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")[:len(package.split(".")) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _module_of(dotted: str, known: Mapping[str, Path]) -> str:
    """The longest prefix of ``dotted`` that is a module of ``known``, or ``dotted`` itself."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return dotted


@functools.cache
def graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """module → the modules and outside names it imports (read once per test session)."""
    known = modules()
    return {name: imports(ast.parse(path.read_text()), name, known, top_level_only) for name, path in known.items()}


# -- the rules ------------------------------------------------------------------------------------


def find_cycle(edges: Graph) -> Optional[list[str]]:
    """One circle of ``edges`` as ``[a, b, ..., a]``, or None if there is none."""
    done: set[str] = set()
    for start in sorted(edges):
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child):], child]
            elif child not in done:
                stack.append((child, iter(sorted(edges.get(child, ())))))
                path.append(child)
                on_path.add(child)
    return None


def reachable(edges: Graph, start: str) -> set[str]:
    """Every name ``start`` imports, directly or through the package's modules (with their packages)."""
    seen = {start}
    todo = [start]
    while todo:
        for name in edges.get(todo.pop(), ()):
            parents = [".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 1)]
            for reached in [*parents, name]:
                if reached not in seen:
                    seen.add(reached)
                    todo.append(reached)
    return seen - {start}


def floor_of(module: str) -> int:
    """The floor ``module`` stands on (an index of FLOORS); AssertionError if it has none."""
    for level, names in enumerate(FLOORS.values()):
        for name in names:
            dotted = "supervisor" if name == "__init__" else f"supervisor.{name}"
            if module == dotted or (name != "__init__" and module.startswith(dotted + ".")):
                return level
    raise AssertionError(f"{module} is on no floor: add it to FLOORS here (and to docs/architecture.md)")


def upward(edges: Graph) -> list[str]:
    """Every import of ``edges`` that goes up a floor, as ``a (floor) → b (floor)``."""
    names = list(FLOORS)
    return [f"{a} ({names[floor_of(a)]}) → {b} ({names[floor_of(b)]})"
            for a in sorted(edges) for b in sorted(edges[a]) if floor_of(b) > floor_of(a)]


def inside() -> dict[str, set[str]]:
    """The graph of the package's own modules, without a module's imports of its own packages.

    Python loads a package before any module in it, so that edge exists for every
    submodule, written or not; written (``from . import js`` in a part of the
    probe that its package loads on demand) it closes no circle worth breaking."""
    known = modules()
    return {name: {m for m in edges if m in known and not name.startswith(m + ".")}
            for name, edges in graph().items()}


def test_imports_go_down_the_floors() -> None:
    assert upward(inside()) == []


def test_no_import_circle() -> None:
    cycle = find_cycle(inside())
    assert cycle is None, " → ".join(cycle or [])


def test_the_probe_imports_nothing_of_supervisor() -> None:
    """It runs inside the measured program: importing ``supervisor`` there would run
    gsup's own code (and its package ``__init__``) in every process of the tree."""
    for name, path in modules().items():
        if name == PROBE or name.startswith(PROBE + "."):
            tree = ast.parse(path.read_text())
            written = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
            written |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            assert not {w for w in written if w.split(".")[0] == "supervisor"}, name
            relative = imports(tree, name, modules()) - written
            assert all(r == PROBE or r.startswith(PROBE + ".") for r in relative if r.startswith("supervisor")), name


@pytest.mark.parametrize("module", FAST)
def test_fast_paths_load_no_heavy_library(module: str) -> None:
    loaded = {name.split(".")[0] for name in reachable(graph(top_level_only=True), module)}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


# -- the checks can fail -------------------------------------------------------------------------


def test_find_cycle_on_small_graphs() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond is no circle
    assert find_cycle({"d": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"y"}}) == ["y", "z", "y"]


def test_imports_counts_lazy_and_type_only_imports() -> None:
    known = {name: Path(f"{name}.py") for name in ("p", "p.a", "p.b", "p.c", "p.d", "p.e")}
    known["p"] = Path("__init__.py")
    source = ("import os\nfrom typing import TYPE_CHECKING\nfrom p import a, VERSION\n"
              "if TYPE_CHECKING:\n    from p.b import Thing\n"
              "def f():\n    import p.c\n    from .d import g\n"
              "class K:\n    from p import e\n")
    tree = ast.parse(source)
    assert imports(tree, "p.x", known) == {"os", "typing", "p", "p.a", "p.b", "p.c", "p.d", "p.e"}
    assert imports(tree, "p.x", known, top_level_only=True) == {"os", "typing", "p", "p.a", "p.e"}


def test_upward_names_each_import_that_climbs() -> None:
    edges = {"supervisor.model": {"supervisor.render"}, "supervisor.cli": {"supervisor.model"},
             "supervisor._probe.hooks": {"supervisor._probe.writer"}}
    assert upward(edges) == ["supervisor.model (model) → supervisor.render (views)"]
    with pytest.raises(AssertionError, match=r"supervisor\.newcomer is on no floor"):
        floor_of("supervisor.newcomer")


def test_reachable_follows_modules_and_their_packages() -> None:
    edges = {"p.fast": {"p.lib"}, "p.lib": {"json"}, "p": {"rich"}, "p.slow": {"click"}}
    assert reachable(edges, "p.fast") == {"p.lib", "p", "json", "rich"}


# -- the installed package ------------------------------------------------------------------------


def test_the_install_puts_supervisor_alone_on_the_path(tmp_path: Path) -> None:
    """``make install`` maps the package, not the checkout: ``import tests`` elsewhere is not gsup's."""
    probe = ("import importlib.util as u, supervisor\n"
             "for name in ('tests', 'benchmark', 'examples'):\n"
             "    spec = u.find_spec(name)\n"
             "    print(spec.origin if spec and spec.origin else spec and list(spec.submodule_search_locations))\n"
             "print(supervisor.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)
    *others, package = done.stdout.splitlines()
    installed = Path(package).resolve()
    from_a_wheel = installed.is_relative_to(Path(sys.prefix).resolve())  # make package: the sdist's tests
    assert installed == PACKAGE / "__init__.py" or from_a_wheel, installed
    root = str(PACKAGE.parent)
    assert [line for line in others if root in line] == [], others
