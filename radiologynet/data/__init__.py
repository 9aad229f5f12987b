"""Data: the paper's benchmark datasets and the task registry, torch datasets over image
files and folders, and the decoded-image cache.

The benchmark readers live in :mod:`radiologynet.data.benchmarks` (one module each); the
torch ``Dataset`` classes in :mod:`.folders` and :mod:`.samples`; the cache in :mod:`.cache`.

``load_task("btmr", "~/data/brain-tumor-mri", seed=0)`` returns the deterministic
train/validation/test :class:`Splits` of a benchmark (``"folder"``: any
``ROOT/{train,val,test}/<class>/`` folder); :data:`TASKS` maps each task name
to its :class:`TaskInfo` (kind, classes, output count, aliases, whether it needs the sex
input, where to download it, how the paper trained it); :func:`get_task` accepts the
aliases (``"covid"``, ``"pba"``, ``"luna"``). A protocol task
(:class:`radiologynet.protocol.TaskSpec`) holds its record and adds only the protocol's
own parts.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from radiologynet.data.benchmarks import boneage, btmr, covid19, grazpedwri  # noqa: F401
from radiologynet.data.splits import (
    Sample,
    Splits,
    Task,
    refuse_duplicates,
    require_rows,
    sheet_integer,
    sheet_number,
)
from radiologynet.data.tasks import (
    TASK_KINDS,
    TASKS,
    PaperProtocol,
    TaskInfo,
    canonical_task_name,
    get_task,
    register_task_info,
)
from radiologynet.errors import DatasetFormatError

if TYPE_CHECKING:
    from radiologynet.data.benchmarks.luna16 import LUNA16
    from radiologynet.data.cache import DecodedImageCache, build_cache
    from radiologynet.data.folders import DicomFolderDataset, ImageFolderDataset, ImageListDataset

#: The torch datasets and the cache: loaded on first use (PEP 562), so reading task
#: metadata and splits (the report, the protocol table) loads no torch.
_LAZY = {
    "DecodedImageCache": "cache",
    "build_cache": "cache",
    "DicomFolderDataset": "folders",
    "ImageFolderDataset": "folders",
    "ImageListDataset": "folders",
}


def load_task(
    name: str, root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None
) -> Splits | LUNA16:
    """Load task ``name`` from the dataset folder ``root``: its splits for ``seed``, with
    ``fraction`` of the training split kept (validation and test intact); for ``luna16``
    the :class:`~radiologynet.data.benchmarks.luna16.LUNA16` dataset (series split, the
    training fraction taken over its nodule crops)."""
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
    paths: list[str] = []
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
                where = f"{csv_path}, row {row_number}"
                target = (
                    sheet_number(row["target"], where, "target")
                    if info.kind == "regression"
                    else sheet_integer(row["target"], where, "target")
                )
                sample = Sample(
                    path=str(path),
                    target=target,
                    sex=int(row["sex"]) if row["sex"] else None,
                    group=row["group"] or None,
                )
                parts[row["split"]].append(sample)
                paths.append(sample.path)
            except DatasetFormatError:
                raise
            except (KeyError, ValueError):
                raise DatasetFormatError(
                    f"{csv_path}, row {row_number}: cannot read {dict(row)}"
                ) from None
    refuse_duplicates(paths, csv_path, "path")
    require_rows(len(parts["train"]), csv_path, "train")
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


__all__ = [
    "DecodedImageCache",
    "DicomFolderDataset",
    "ImageFolderDataset",
    "ImageListDataset",
    "build_cache",
    "TASKS",
    "TASK_KINDS",
    "PaperProtocol",
    "Sample",
    "Splits",
    "Task",
    "TaskInfo",
    "canonical_task_name",
    "get_task",
    "load_task",
    "read_splits",
    "register_task_info",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"radiologynet.data.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
