"""The paper's downstream benchmark datasets, one module each, and their registry.

``load_task("btmr", "~/data/brain-tumor-mri", seed=0)`` returns the deterministic
train/validation/test :class:`Splits` of a benchmark; :data:`TASKS` maps each task name
to its :class:`Task` (kind, classes, output count, whether it needs the sex input, where
to download it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType

from radiologynet.datasets import boneage, btmr, covid19, grazpedwri
from radiologynet.datasets.base import Sample, Splits, Task
from radiologynet.errors import UnknownTaskError

TASKS: Mapping[str, Task] = MappingProxyType(
    {task.name: task for task in (btmr.TASK, covid19.TASK, boneage.TASK, grazpedwri.TASK)}
)


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``; raises ``UnknownTaskError`` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"Unknown task {name!r}; choose one of: {', '.join(TASKS)}"
        ) from None


def load_task(
    name: str, root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None
) -> Splits:
    """Load benchmark ``name`` from the dataset folder ``root`` and return its splits for
    ``seed``, with ``fraction`` of the training split kept (validation and test intact)."""
    return get_task(name).load(root, seed=seed, fraction=fraction)


__all__ = ["TASKS", "Sample", "Splits", "Task", "get_task", "load_task"]
