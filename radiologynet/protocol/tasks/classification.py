"""The built-in tasks: the four classification/regression benchmarks of
:mod:`radiologynet.data`, and ``folder`` (any folder of labelled images).

``folder`` reads ``ROOT/{train,val,test}/<class>/<image>`` (``test/`` optional), classes
in sorted order; it is what the demo and the fine-tuning notebook use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from radiologynet.data.samples import BONE_AGE_AUGMENT, PAPER_AUGMENT, SampleDataset
from radiologynet.data.tasks import TASKS, TaskInfo, get_task, register_task_info
from radiologynet.errors import DatasetNotFoundError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files
from radiologynet.models._weights import Preprocessing
from radiologynet.protocol.spec import DataRequest, TaskData, TaskSpec, register_task
from radiologynet.transforms import BatchHook, BatchTransform


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
    return BatchHook(
        BatchTransform(
            _preprocessing(request),
            in_chans=request.in_chans,
            augment=augment if request.augment else None,
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


def _benchmark_builder(name: str):
    def build(request: DataRequest) -> TaskData:
        info = get_task(name)
        splits = info.load(request.root, seed=request.seed, fraction=request.fraction)
        return task_data_from_splits(splits, request, with_sex=info.input_needs_sex)

    return build


def _folder_samples(folder: Path, classes: Sequence[str]) -> tuple[Any, ...]:
    from radiologynet.data.splits import Sample

    samples = []
    for index, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in list_image_files(class_dir):
            samples.append(Sample(path=str(path), target=index))
    return tuple(samples)


def folder_splits(root: str | Path, *, seed: int = 0, fraction: float | None = None) -> Any:
    """The splits of a ``ROOT/{train,val,test}/<class>/`` folder as
    :class:`radiologynet.data.Splits` (``fraction`` keeps a class-stratified share of
    ``train``).

    Raises:
        DatasetNotFoundError: when ``train/`` or ``val/`` is missing or holds no images.
    """
    from radiologynet.data.splits import Splits

    root = Path(root).expanduser()
    tree = (
        "ROOT/\n  train/<class>/<image>.png ...\n  val/<class>/...\n  test/<class>/...   (optional)"
    )
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DatasetNotFoundError(
            f"{root}: a 'folder' task needs train/ and val/ sub-folders with one folder per "
            f"class:\n{tree}"
        )
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    train = _folder_samples(root / "train", classes)
    val = _folder_samples(root / "val", classes)
    test = _folder_samples(root / "test", classes) if (root / "test").is_dir() else ()
    if not train or not val:
        raise DatasetNotFoundError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found in "
            f"train/ or val/. Expected:\n{tree}"
        )
    if fraction is not None:
        train = _stratified_fraction(train, fraction, seed)
    return Splits(
        task="folder",
        kind="multiclass",
        classes=classes,
        train=train,
        val=val,
        test=test,
        seed=seed,
        fraction=fraction,
        root=str(root),
    )


def _stratified_fraction(samples: tuple[Any, ...], fraction: float, seed: int) -> tuple[Any, ...]:
    from radiologynet.data.splits import subsample_training

    return tuple(subsample_training(samples, fraction, seed, "multiclass"))


def _build_folder(request: DataRequest) -> TaskData:
    splits = folder_splits(request.root, seed=request.seed, fraction=request.fraction)
    return task_data_from_splits(splits, request)


def _register() -> None:
    for name, info in list(TASKS.items()):
        if info.kind != "segmentation":  # LUNA16 is radiologynet.protocol.tasks.luna16
            register_task(TaskSpec.from_info(info, build_data=_benchmark_builder(name)))
    description = "any folder of labelled images: ROOT/{train,val,test}/<class>/"
    register_task_info(
        TaskInfo(
            name="folder",
            title=description,
            kind="multiclass",
            classes=(),
            num_outputs=0,
            input_needs_sex=False,
            download_url="",
            expected_tree="ROOT/\n  train/<class>/<image>\n  val/<class>/...\n  test/ (optional)\n",
            load=folder_splits,
        )
    )
    register_task(
        TaskSpec(
            name="folder",
            kind="multiclass",
            build_data=_build_folder,
            models=("resnet50",),
            description=description,
        )
    )


_register()
