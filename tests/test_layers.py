"""The layer rule of docs/development.md, derived from the folders: every top-level entry
of ``radiologynet/`` sits on one floor, and a module imports only modules of its own floor
or lower, at any depth (inside functions too). No import circle, anywhere. The core
(floors 0-2) imports no package outside the core dependencies when a module is imported."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "radiologynet"

#: The floors, lowest first: the top-level entries of ``radiologynet/`` on each. This is
#: the layer diagram; docs/development.md draws the same list (checked below).
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "_atomic", "_optional", "_version", "paper"),
    ("models", "__init__"),
    ("io", "transforms"),
    ("data",),
    ("train", "inference"),
    ("protocol",),
    ("analysis", "pretraining", "demo"),
    ("cli", "__main__"),
)
#: The core: what ``pip install radiologynet`` runs (floors 0-2).
CORE_FLOORS = 3
#: What the core may import from outside the standard library at module level (import
#: names of pyproject.toml's ``dependencies``).
CORE_THIRD_PARTY = {
    "torch",
    "torchvision",
    "timm",
    "huggingface_hub",
    "safetensors",
    "numpy",
    "segmentation_models_pytorch",
    "pydicom",
    "PIL",
    "tqdm",
    "filelock",
}
#: Top-level entries that hold no code.
DATA_ENTRIES = {"resources", "py.typed"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry_of(module: str) -> str:
    """The top-level entry of ``radiologynet/`` a project module lives in."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor_of(module: str) -> int:
    entry = entry_of(module)
    for index, names in enumerate(FLOORS):
        if entry in names:
            return index
    return -1


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(source: str, package: str, *, functions: bool, type_checking: bool = False) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, relative imports resolved
    and ``from package import module`` counted as the module. Function bodies and
    ``if TYPE_CHECKING:`` blocks are skipped unless ``functions`` / ``type_checking``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if not functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            submodules = {
                f"{source_module}.{alias.name}"
                for alias in node.names
                if _is_project_module(f"{source_module}.{alias.name}")
            }
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names are not modules
                found.add(source_module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    found.discard("__future__")
    return found


def _is_project_module(name: str) -> bool:
    candidate = ROOT / Path(*name.split("."))
    return candidate.is_dir() or candidate.with_suffix(".py").is_file()


def imports_of(path: Path, *, functions: bool, type_checking: bool = False) -> set[str]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    source = path.read_text(encoding="utf-8")
    return scan(source, package, functions=functions, type_checking=type_checking)


def project_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere (functions and type-checking
    blocks included: a type-only import is a dependency of the design too)."""
    return {
        module: {
            m
            for m in imports_of(path, functions=True, type_checking=True)
            if m.split(".")[0] == "radiologynet"
        }
        for module, path in modules().items()
    }


def test_every_top_level_entry_has_a_floor():
    entries = {
        p.stem if p.suffix == ".py" else p.name
        for p in PACKAGE.iterdir()
        if p.name != "__pycache__" and p.name not in DATA_ENTRIES
    }
    placed = {name for floor in FLOORS for name in floor}
    assert entries == placed, (
        f"unplaced: {sorted(entries - placed)}, gone: {sorted(placed - entries)}; "
        "place a new top-level entry on a floor here and in docs/development.md"
    )
    assert len(list(PACKAGE.iterdir())) - (PACKAGE / "__pycache__").exists() <= 20


def test_docs_draw_the_same_floors():
    page = (ROOT / "docs/development.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n(.*?)```", page, re.S)
    assert block, "docs/development.md has no layer diagram (a ```text block)"
    drawn = {}
    for line in block.group(1).splitlines():
        match = re.match(r"(.+?)\s+(\d)\s\s", line)
        assert match, f"docs/development.md: a diagram line without its floor: {line!r}"
        drawn[int(match.group(2))] = tuple(match.group(1).split())
    assert drawn == dict(enumerate(FLOORS)), (
        f"docs/development.md's diagram {drawn} differs from FLOORS {FLOORS}"
    )


@pytest.mark.parametrize("module", sorted(modules()), ids=str)
def test_module_imports_only_its_floor_or_lower(module):
    path = modules()[module]
    assert floor_of(module) >= 0, f"{module}: its top-level entry has no floor"
    upward = sorted(
        f"{imported} (floor {floor_of(imported)})"
        for imported in imports_of(path, functions=True, type_checking=True)
        if imported.split(".")[0] == "radiologynet" and floor_of(imported) > floor_of(module)
    )
    assert not upward, f"{module} (floor {floor_of(module)}) imports a higher floor: {upward}"


@pytest.mark.parametrize(
    "module", sorted(m for m in modules() if floor_of(m) < CORE_FLOORS), ids=str
)
def test_core_module_imports_only_core_packages(module):
    bad = sorted(
        imported
        for imported in imports_of(modules()[module], functions=False)
        if imported.split(".")[0] not in sys.stdlib_module_names | CORE_THIRD_PARTY
        and imported.split(".")[0] != "radiologynet"
    )
    assert not bad, (
        f"{module} imports at module level {bad}: not a core dependency; import it inside "
        "the function that needs it, through radiologynet._optional.require"
    )


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of two or more
    modules (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                    circles.append(sorted(component))
    return circles


def test_no_import_circle_function_local_imports_included():
    circles = strongly_connected(project_graph())
    assert not circles, f"import circles: {circles}"


def test_the_checkers_see_what_python_runs():
    """The checkers themselves: TYPE_CHECKING blocks are skipped, function bodies only
    when asked; relative and `from package import module` imports are seen; a circle
    through a function-local import is found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import scipy\n"
        "from . import geometry\n"
        "from .. import models\n"
        "from radiologynet import train, create_model\n"
        "if TYPE_CHECKING:\n    import pandas\n"
        "class A:\n    import sklearn\n"
        "def f():\n    import matplotlib\n"
    )
    module_level = {
        "typing",
        "scipy",
        "radiologynet.transforms.geometry",
        "radiologynet.models",
        "radiologynet",
        "radiologynet.train",
        "sklearn",
    }
    assert scan(source, "radiologynet.transforms", functions=False) == module_level
    assert scan(source, "radiologynet.transforms", functions=True) == module_level | {"matplotlib"}
    assert floor_of("radiologynet.models._hub") < floor_of("radiologynet.transforms.batch")
    assert floor_of("radiologynet") == floor_of("radiologynet.models")
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
