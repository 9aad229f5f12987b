"""Suite-wide settings."""

from __future__ import annotations

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
