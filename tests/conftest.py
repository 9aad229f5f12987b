"""Suite-wide settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite.

    The models here are tiny and the CI machine has two cores shared with data-loading and
    DDP subprocesses; oversubscribed OpenMP threads made forwards up to 20x slower than one
    thread (measured on resnet50).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ``shared`` folder beside the repository (``../shared``): real sample data
    and reference files that are not part of the package. Every test that reads from it goes
    through this fixture, so a checkout without it skips those tests instead of failing or
    reaching for a machine-specific path."""
    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        pytest.skip(f"the shared folder is not beside the repository (looked for {path})")
    return path
