"""The classification and regression tasks of the task registry
(:mod:`radiologynet.data.tasks`): the paper's four benchmarks and ``folder`` (any folder
of labelled images, :mod:`radiologynet.data.benchmarks.folder`), each read by its
registry loader into :class:`radiologynet.data.Splits`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from radiologynet.data.samples import BONE_AGE_AUGMENT, PAPER_AUGMENT, SampleDataset
from radiologynet.data.tasks import TASKS, PaperProtocol, TaskInfo
from radiologynet.models._weights import Preprocessing
from radiologynet.protocol.spec import DataRequest, TaskData, TaskSpec, register_task
from radiologynet.transforms import BatchHook, BatchTransform
from radiologynet.transforms.augment import resolve_augmentation


@functools.lru_cache(maxsize=32)
def _cached_dataset(
    samples: tuple[Any, ...],
    size: Preprocessing,
    with_sex: bool,
    target_dtype: torch.dtype,
    cache_dir: Path | None,
) -> SampleDataset:
    # One decoded copy per (samples, geometry) in this process: every run of a sweep that
    # shares a split and an input size reuses the decoded images.
    dataset = SampleDataset(
        samples,
        size,
        with_sex=with_sex,
        target_dtype=target_dtype,
        cache_dir=cache_dir,
        progress=True,
    )
    return dataset.preload()


def _preprocessing(request: DataRequest) -> Preprocessing:
    """The request's preprocessing at the input size the run uses."""
    pre = request.preprocessing or Preprocessing(input_size=224)
    if request.input_size:
        pre = replace(pre, input_size=int(request.input_size))
    return pre


def _transform(request: DataRequest, augment: str) -> BatchHook:
    """The device transform with the named augmentation drawn as ``request.augment_draw``
    says (per image, or the authors' once per batch)."""
    augmentation = replace(resolve_augmentation(augment), draw=request.augment_draw)
    return BatchHook(
        BatchTransform(
            _preprocessing(request),
            in_chans=request.in_chans,
            augment=augmentation if request.augment else None,
        )
    )


def task_data_from_splits(splits: Any, request: DataRequest, *, with_sex: bool = False) -> TaskData:
    """``TaskData`` over a :class:`radiologynet.data.Splits` (decoded-image datasets
    plus the device transform with the paper's augmentation for the task kind)."""
    size = replace(_preprocessing(request), mean=None, std=None)  # the geometry only
    dtype = torch.long if splits.kind == "multiclass" else torch.float32
    cache = Path(request.cache_dir).expanduser() if request.cache_dir else None
    sets = [
        _cached_dataset(tuple(s), size, with_sex, dtype, cache)
        for s in (splits.train, splits.val, splits.test)
    ]
    augment = BONE_AGE_AUGMENT if splits.kind == "regression" else PAPER_AUGMENT
    num_classes = len(splits.classes) if splits.kind == "multiclass" else 1
    return TaskData(
        train=sets[0],
        val=sets[1],
        test=sets[2] if len(sets[2]) else None,
        num_classes=num_classes,
        class_names=tuple(splits.classes),
        batch_transform=_transform(request, augment),
        extra={"splits": splits},
    )


def _splits_builder(info: TaskInfo) -> Callable[[DataRequest], TaskData]:
    """``build_data`` of a task whose loader returns :class:`radiologynet.data.Splits`."""

    def build(request: DataRequest) -> TaskData:
        splits = info.load(request.root, seed=request.seed, fraction=request.fraction)
        return task_data_from_splits(splits, request, with_sex=info.input_needs_sex)

    return build


#: What the ``folder`` task trains when no model is given (the paper had no such task).
FOLDER_PROTOCOL = PaperProtocol(models=("resnet50",))


def _register() -> None:
    for info in list(TASKS.values()):
        if info.kind != "segmentation":  # LUNA16 is radiologynet.protocol.tasks.luna16
            protocol = FOLDER_PROTOCOL if info.name == "folder" else None
            register_task(TaskSpec(info, _splits_builder(info), protocol=protocol))


_register()
