"""The paper's downstream benchmark datasets, one module each, and their registry.

``load_task("btmr", "~/data/brain-tumor-mri", seed=0)`` returns the deterministic
train/validation/test :class:`Splits` of a benchmark; :data:`TASKS` maps each task name
to its :class:`Task` (kind, classes, output count, whether it needs the sex input, where
to download it).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from radiologynet.datasets import boneage, btmr, covid19, grazpedwri
from radiologynet.datasets.base import Sample, Splits, Task
from radiologynet.errors import DatasetFormatError, UnknownTaskError

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


def read_splits(
    csv_path: str | os.PathLike[str],
    task: str,
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    fraction: float | None = None,
) -> Splits:
    """Read back a split written by :meth:`Splits.to_csv` (or made by hand in that format),
    resolving relative paths against ``root``; ``seed`` and ``fraction`` are recorded as
    given. Raises ``DatasetFormatError`` for a malformed file."""
    info = get_task(task)
    csv_path = Path(csv_path)
    base = Path(root).expanduser().resolve() if root is not None else None
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["split", "path", "target", "sex", "group"]:
            raise DatasetFormatError(
                f"{csv_path}: columns {reader.fieldnames}; expected split, path, target, sex, group"
            )
        for row_number, row in enumerate(reader, start=2):
            try:
                path = Path(row["path"])
                if base is not None and not path.is_absolute():
                    path = base / path
                target = float(row["target"]) if info.kind == "regression" else int(row["target"])
                sample = Sample(
                    path=str(path),
                    target=target,
                    sex=int(row["sex"]) if row["sex"] else None,
                    group=row["group"] or None,
                )
                parts[row["split"]].append(sample)
            except (KeyError, ValueError):
                raise DatasetFormatError(
                    f"{csv_path}, row {row_number}: cannot read {dict(row)}"
                ) from None
    return Splits(
        task=info.name,
        kind=info.kind,
        classes=info.classes,
        train=tuple(parts["train"]),
        val=tuple(parts["val"]),
        test=tuple(parts["test"]),
        seed=seed,
        fraction=fraction,
        root=None if base is None else str(base),
    )


__all__ = ["TASKS", "Sample", "Splits", "Task", "get_task", "load_task", "read_splits"]
