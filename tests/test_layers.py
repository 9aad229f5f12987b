"""The layer rule of docs/development.md: the core imports neither a higher layer of the
package nor a package outside the core dependencies, when a module is imported (imports
inside functions, made when a feature is used, are free to reach further)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "radiologynet"

#: The foundation every layer may import (errors, the optional-import door, atomic writes).
FOUNDATION = {
    "radiologynet.errors",
    "radiologynet._optional",
    "radiologynet._atomic",
    "radiologynet._version",
    "radiologynet._deprecated",
}
#: The core: building models, resolving weights, reading and preprocessing images.
CORE = {
    "radiologynet",
    "radiologynet.registry",
    "radiologynet.weights",
    "radiologynet.hub",
    "radiologynet.convert",
    "radiologynet.modelcard",
    "radiologynet.publish",
    "radiologynet.io",
    "radiologynet.transforms",
    "radiologynet.models",
}
#: What the core may import from outside the standard library (import names of
#: pyproject.toml's ``dependencies``).
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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The first two levels of a project module (``radiologynet.io``), or the top-level
    package of a third-party one."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "radiologynet" else parts[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it is imported (see :func:`scan`)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return scan(path.read_text(encoding="utf-8"), package)


def scan(source: str, package: str) -> set[str]:
    """Every import statement of ``source`` (a module of ``package``) outside function
    bodies and ``if TYPE_CHECKING:`` blocks, relative ones resolved."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
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
            found.add(source_module)
            for alias in node.names:  # `from radiologynet import io` imports a module
                candidate = Path(*f"{source_module}.{alias.name}".split("."))
                if (ROOT / candidate).is_dir() or (ROOT / candidate).with_suffix(".py").is_file():
                    found.add(f"{source_module}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    found.discard("__future__")
    return found


def core_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if room(module_name(p)) in CORE)


def test_the_core_is_what_the_docs_say():
    names = {room(module_name(p)) for p in core_files()}
    assert names == CORE, f"core modules missing from the tree: {CORE - names}"
    page = (ROOT / "docs/development.md").read_text(encoding="utf-8")
    for name in sorted(CORE - {"radiologynet"}) + sorted(CORE_THIRD_PARTY - {"PIL"}):
        assert f"`{name.removeprefix('radiologynet.')}`" in page, (
            f"docs/development.md's layer map does not name {name}"
        )


@pytest.mark.parametrize("path", core_files(), ids=lambda p: module_name(p))
def test_core_module_imports_only_the_core(path):
    allowed_project = CORE | FOUNDATION
    bad = []
    for imported in sorted(import_time_imports(path)):
        top = imported.split(".")[0]
        if top == "radiologynet":
            if room(imported) not in allowed_project:
                bad.append(f"{imported} (a higher layer)")
        elif top not in sys.stdlib_module_names and top not in CORE_THIRD_PARTY:
            bad.append(
                f"{imported} (not a core dependency: import it inside the function "
                "that needs it, through radiologynet._optional.require)"
            )
    assert not bad, f"{module_name(path)} imports at module level: {', '.join(bad)}"


def test_the_import_scanner_sees_what_python_runs():
    """The checker itself: function bodies and TYPE_CHECKING blocks are skipped; module
    and class level, relative and `from package import module` imports are seen."""
    scanned = import_time_imports(PACKAGE / "transforms" / "pipeline.py")
    assert {"radiologynet.io", "radiologynet.transforms.augment", "torch"} <= scanned
    source = (
        "from typing import TYPE_CHECKING\n"
        "import scipy\n"
        "from . import geometry\n"
        "from .. import hub\n"
        "from radiologynet import train\n"
        "if TYPE_CHECKING:\n    import pandas\n"
        "class A:\n    import sklearn\n"
        "def f():\n    import matplotlib\n"
    )
    assert scan(source, "radiologynet.transforms") == {
        "typing",
        "scipy",
        "radiologynet.transforms",
        "radiologynet.transforms.geometry",
        "radiologynet",
        "radiologynet.hub",
        "radiologynet.train",
        "sklearn",
    }


#: Every layer above the core, lowest first, as docs/development.md draws them. A module
#: may import (at import time) its own layer and the layers below it.
HIGHER_LAYERS = (
    {"radiologynet.torchdata", "radiologynet.datasets", "radiologynet.data"},
    {"radiologynet.train", "radiologynet.segmentation"},
    {"radiologynet.protocol", "radiologynet.benchmarks", "radiologynet.segmentation.task"},
    {
        "radiologynet.stats",
        "radiologynet.report",
        "radiologynet.explain",
        "radiologynet.pseudolabel",
        "radiologynet.pretrain",
        "radiologynet.demo",
        "radiologynet.demo_full",
    },
    {"radiologynet.cli", "radiologynet.commands", "radiologynet.__main__"},
)


def layer_of(module: str) -> int:
    """0 for the foundation, 1 for the core, 2... for HIGHER_LAYERS; -1 if unplaced."""
    for index, group in enumerate(HIGHER_LAYERS):
        if module in group:  # a module placed on its own (segmentation.task)
            return index + 2
    if room(module) in FOUNDATION:
        return 0
    if room(module) in CORE:
        return 1
    for index, group in enumerate(HIGHER_LAYERS):
        if room(module) in group:
            return index + 2
    return -1


def test_every_module_has_a_layer():
    unplaced = sorted(
        {room(module_name(p)) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) < 0}
    )
    assert not unplaced, (
        f"{unplaced}: place new modules in the layer map of "
        "docs/development.md and in tests/test_layers.py"
    )


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for imported in sorted(import_time_imports(path)):
            if imported.split(".")[0] == "radiologynet" and (layer_of(imported) > layer_of(module)):
                upward.append(f"{module} -> {imported}")
    assert not upward, f"imports from a higher layer: {upward}"
