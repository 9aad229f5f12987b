"""The code stays `ruff format`-ted and `ruff check`-clean (run both before committing)."""

from __future__ import annotations

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
