"""The code stays `ruff format`-ted (CONTRIBUTING: run `ruff format` before committing)."""

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
