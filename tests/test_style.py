"""The code stays `ruff format`-ted and `ruff check`-clean (run both before committing)."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_is_ruff_formatted():
    ruff = shutil.which("ruff")
    if ruff is None:  # ruff is in the dev extra, which the README's set-up installs
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    done = subprocess.run(
        [ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, "run `ruff format` on these files:\n" + done.stdout + done.stderr


def test_the_repository_is_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    done = subprocess.run(
        [ruff, "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, "ruff check findings:\n" + done.stdout + done.stderr


def _defined_names(tree: ast.Module) -> set[str]:
    """The names a module defines itself (functions, classes, assignments), not imports."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_a_modules_all_lists_only_what_it_defines():
    """A module's ``__all__`` re-exports nothing: what it imports belongs to the module that
    defines it (packages' ``__init__`` files gather names and are exempt)."""
    offenders = []
    for path in sorted((ROOT / "radiologynet").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported = next(
            (
                ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            ),
            [],
        )
        foreign = sorted(set(exported) - _defined_names(tree))
        if foreign:
            offenders.append(f"{path.relative_to(ROOT)}: {', '.join(foreign)}")
    assert not offenders, "re-exported in __all__:\n" + "\n".join(offenders)


#: The team's function-length rule (ruff's C901/PLR0915 in pyproject.toml bound what
#: makes a function long; this bounds the length itself).
MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_80_lines():
    too_long = []
    for path in sorted((ROOT / "radiologynet").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    too_long.append(f"{where} {node.name}: {lines} lines")
    assert not too_long, "split these functions:\n" + "\n".join(too_long)
