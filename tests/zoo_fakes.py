"""Fabricated weights in the authors' original formats, for tests (no downloads)."""

from __future__ import annotations

import datetime
import tarfile
from pathlib import Path

import torch
import torchvision


def original_resnet18_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The authors' ResNet18 checkpoint format: a dict with ``model_state`` (``model.*``)."""
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=36)
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    torch.save(
        {
            "time": str(datetime.datetime(2023, 1, 1)),
            "model_state": state,
            "model_name": "ResNet18",
            "optimizer_state": {},
            "optimizer_name": "AdamW",
            "epoch": 3,
        },
        path,
    )
    return state


def tar_gz(member: Path, archive: Path) -> Path:
    """``archive`` (.tar.gz) holding ``member`` under its own name; fastest compression
    (weights barely compress, level 9 only costs time)."""
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(member, arcname=member.name)
    return archive
