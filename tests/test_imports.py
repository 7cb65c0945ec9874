"""The import structure of optlab: no import cycles, and no private name used across subpackages.

Read from the source (``ast``), without importing anything, so an import inside a function counts as
much as one at the top of a module: a cycle kept alive by a function-level import or by the order of an
``__init__`` is still a cycle.

The graph: a node per module of optlab (``optlab.curvature`` is the package's ``__init__``). ``M``
importing ``T`` gives the edge ``M -> T``, plus ``M -> P`` for each package ``P`` above ``T`` that is
not above ``M`` (Python runs ``P/__init__`` first; the packages above ``M`` are already running). So
``from . import x`` is an edge to the submodule ``x`` if there is one, and to the package (its own
``__init__``) if ``x`` is a name defined there.

A subpackage is a top-level part of optlab (``optlab.curvature``, ``optlab.optim``, ``optlab.flat``):
inside one, any name may be imported; across two, a module or a name starting with ``_`` may not.
"""

from __future__ import annotations

import ast
import pkgutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import optlab

ROOT = Path(optlab.__file__).parent


# ----- reading the graph -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    """One import statement's target: ``importer`` imports module ``target`` (and maybe ``name`` from it)."""

    importer: str
    target: str
    name: str | None
    line: int

    def __str__(self) -> str:
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.importer} (line {self.line}): {what}"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root``: dotted name -> file (packages map to ``__init__.py``)."""
    files = {package: root / "__init__.py"}
    for info in pkgutil.iter_modules([str(root)]):
        if info.ispkg:
            files.update(module_files(root / info.name, f"{package}.{info.name}"))
        else:
            files[f"{package}.{info.name}"] = root / f"{info.name}.py"
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every ``import`` / ``from ... import`` in the tree, at any depth (functions, classes, ``try``),
    except under ``if TYPE_CHECKING:`` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str, path: Path, modules: set[str], package: str) -> list[Import]:
    """The imports of ``module`` (file ``path``) that land in ``package``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    here = module if is_pkg else module.rpartition(".")[0]  # the package relative imports start from
    out = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, None, node.lineno) for a in node.names
                    if a.name == package or a.name.startswith(package + ".")]
            continue
        if node.level:
            base = here.split(".")
            if node.level - 1 > len(base) - 1:
                raise AssertionError(f"{module} line {node.lineno}: relative import beyond {package}")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not (target == package or target.startswith(package + ".")):
            continue
        for a in node.names:
            sub = f"{target}.{a.name}"
            if sub in modules:  # ``from pkg import submodule``
                out.append(Import(module, sub, None, node.lineno))
            else:
                out.append(Import(module, target, a.name, node.lineno))
    return sorted(out, key=lambda i: i.line)


def _packages_above(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def edges_of(imp: Import) -> list[str]:
    """Modules that ``imp`` runs: its target, and the packages above the target not above the importer."""
    above_importer = set(_packages_above(imp.importer))
    runs = [p for p in _packages_above(imp.target) if p not in above_importer and p != imp.importer]
    if imp.target != imp.importer:
        runs.append(imp.target)
    return runs


def import_graph(root: Path, package: str):
    """``(graph, imports)``: ``graph[m]`` = {target: first Import causing the edge}; ``imports`` = all of them."""
    files = module_files(root, package)
    graph: dict[str, dict[str, Import]] = {m: {} for m in files}
    everything = []
    for m, path in files.items():
        for imp in imports_of(m, path, set(files), package):
            everything.append(imp)
            for t in edges_of(imp):
                if t in graph:  # a name that is no module of the package is caught by importing it
                    graph[m].setdefault(t, imp)
    return graph, everything


# ----- cycles ------------------------------------------------------------------------------------------

def strongly_connected(graph: dict[str, dict]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (or a module importing itself)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def a_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> list[Import]:
    """One cycle through the first module of ``component``, as the imports that close it (breadth-first)."""
    start, members = component[0], set(component)
    paths = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w, imp in sorted(graph[v].items()):
                if w == start:
                    return paths[v] + [imp]
                if w in members and w not in paths:
                    paths[w] = paths[v] + [imp]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component has one


def cycle_report(graph, component) -> str:
    cycle = a_cycle(graph, component)
    chain = " -> ".join([cycle[0].importer] + [_edge_target(graph, imp) for imp in cycle])
    return f"import cycle among {component}:\n  {chain}\n" + "\n".join(f"    {imp}" for imp in cycle)


def _edge_target(graph, imp: Import) -> str:
    return next(t for t, i in graph[imp.importer].items() if i is imp and t in graph)


# ----- private names across subpackages ---------------------------------------------------------------

def subpackage(module: str) -> str:
    """``optlab.curvature.diagonal.exact`` -> ``optlab.curvature``; ``optlab`` -> ``optlab``."""
    return ".".join(module.split(".")[:2])


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def private_violations(imports: list[Import]) -> list[Import]:
    """Imports of a private module or name of another subpackage."""
    bad = []
    for imp in imports:
        if subpackage(imp.importer) == subpackage(imp.target):
            continue
        if any(_private(p) for p in imp.target.split(".")[1:]) or (imp.name is not None and _private(imp.name)):
            bad.append(imp)
    return bad


# ----- the tests on optlab ----------------------------------------------------------------------------

GRAPH, IMPORTS = import_graph(ROOT, "optlab")
SUBPACKAGES = sorted({subpackage(m) for m in GRAPH if m != "optlab"})


def test_every_module_is_read():
    assert {"optlab.curvature", "optlab.curvature.diagonal", "optlab.curvature.hessian", "optlab.errors",
            "optlab.flat", "optlab.grading.runner"} <= set(GRAPH)


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_no_import_cycle(sub):
    cycles = [c for c in strongly_connected(GRAPH) if any(subpackage(m) == sub for m in c)]
    reports = [cycle_report(GRAPH, c) for c in cycles]
    print("\n\n".join(reports))
    assert not cycles, "\n\n".join(reports)


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_no_private_name_imported_from_another_subpackage(sub):
    bad = [imp for imp in private_violations(IMPORTS) if subpackage(imp.importer) == sub]
    lines = [f"{imp}  (private to {subpackage(imp.target)})" for imp in bad]
    print("\n".join(lines))
    assert not bad, "private names imported across subpackages:\n" + "\n".join(lines)


def test_errors_module_imports_nothing_from_optlab():
    assert [str(i) for i in IMPORTS if i.importer == "optlab.errors"] == []


# ----- the analysis itself, on a made-up package --------------------------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


def test_a_cycle_closed_only_inside_a_function_is_found(tmp_path):
    root = _package(tmp_path, {
        "a.py": "from .b import f\n",
        "b.py": "def f():\n    from .a import g\n    return g\n",
    })
    graph, _ = import_graph(root, "pkg")
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]
    report = cycle_report(graph, ["pkg.a", "pkg.b"])
    assert "pkg.a -> pkg.b -> pkg.a" in report and "line 2" in report


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    # hessian imports sub._layers, which runs sub/__init__, which imports hessian
    root = _package(tmp_path, {
        "hessian.py": "from .sub._layers import h\n",
        "sub/__init__.py": "from ..hessian import H\n",
        "sub/_layers.py": "h = 1\n",
    })
    graph, _ = import_graph(root, "pkg")
    assert strongly_connected(graph) == [["pkg.hessian", "pkg.sub"]]


def test_siblings_importing_each_other_through_their_own_package_are_no_cycle(tmp_path):
    # the package's __init__ imports its modules; each module imports siblings; none imports the __init__
    root = _package(tmp_path, {
        "sub/__init__.py": "from .a import f\nfrom .b import g\n",
        "sub/a.py": "from ._c import x\nfrom . import b\n",
        "sub/b.py": "from ._c import y\n",
        "sub/_c.py": "x = y = 1\n",
    })
    graph, _ = import_graph(root, "pkg")
    assert strongly_connected(graph) == []
    assert set(graph["pkg.sub.a"]) == {"pkg.sub._c", "pkg.sub.b"}  # ``from . import b``: the module b


def test_importing_a_name_of_the_own_package_init_is_an_edge_to_it(tmp_path):
    root = _package(tmp_path, {
        "sub/__init__.py": "from .a import f\nCONSTANT = 1\n",
        "sub/a.py": "from . import CONSTANT\n",
    })
    graph, _ = import_graph(root, "pkg")
    assert "pkg.sub" in graph["pkg.sub.a"]
    assert strongly_connected(graph) == [["pkg.sub", "pkg.sub.a"]]


def test_absolute_imports_and_type_checking_blocks(tmp_path):
    root = _package(tmp_path, {
        "a.py": "import pkg.b\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n",
        "b.py": "import os\n",
        "c.py": "import pkg.a\n",
    })
    graph, _ = import_graph(root, "pkg")
    assert set(graph["pkg.a"]) == {"pkg.b"} and strongly_connected(graph) == []


def test_private_names_are_flagged_only_across_subpackages(tmp_path):
    root = _package(tmp_path, {
        "one/_data.py": "def _helper(): pass\ndef flatten(): pass\n",
        "one/user.py": "from ._data import _helper\n",  # same subpackage: fine
        "two/x.py": ("from ..one._data import flatten\n"  # a private module of another subpackage
                     "from ..one import user\n"
                     "def f():\n    from pkg.one.user import _secret\n"),  # a private name, in a function
        "three.py": "from .one import _data\n",  # a private submodule by ``from ... import``
    })
    _, imports = import_graph(root, "pkg")
    bad = sorted(str(i) for i in private_violations(imports))
    assert bad == ["pkg.three (line 1): import pkg.one._data",
                   "pkg.two.x (line 1): from pkg.one._data import flatten",
                   "pkg.two.x (line 4): from pkg.one.user import _secret"]
