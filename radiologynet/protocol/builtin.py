"""The built-in tasks: the four classification/regression benchmarks of
:mod:`radiologynet.datasets`, and ``folder`` (any folder of labelled images).

``folder`` reads ``ROOT/{train,val,test}/<class>/<image>`` (``test/`` optional), classes
in sorted order; it is what the demo and the fine-tuning notebook use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from radiologynet.protocol.tasks import DataRequest, TaskData, TaskSpec, register_task
from radiologynet.errors import DatasetNotFoundError
from radiologynet.io import IMAGE_SUFFIXES
from radiologynet.torchdata.samples import (
    BONE_AGE_AUGMENT,
    PAPER_AUGMENT,
    DeviceTransform,
    SampleDataset,
)

#: the paper's architectures per benchmark (a sweep's default ``--models``)
PAPER_MODELS = {
    "btmr": ("resnet50", "mobilenet_v3_small"),
    "covid19": ("mobilenet_v3_large", "resnet18"),
    "boneage": ("efficientnet_b3", "inception_v3"),
    "grazpedwri": ("densenet121", "resnet34"),
}
_ALIASES = {
    "covid19": ("covid", "covid-19"),
    "boneage": ("pba", "bone-age", "bone_age", "rsna-boneage"),
    "grazpedwri": ("grazpedwri-dx", "graz"),
    "btmr": ("brain-tumor-mri",),
}


@functools.lru_cache(maxsize=32)
def _cached_dataset(samples: tuple[Any, ...], size: int, with_sex: bool,
                    target_dtype: torch.dtype, cache_dir: Path | None) -> SampleDataset:
    # One decoded copy per (samples, size) in this process: every run of a sweep that
    # shares a split and an input size reuses the decoded images.
    dataset = SampleDataset(samples, size, with_sex=with_sex, target_dtype=target_dtype,
                            cache_dir=cache_dir, progress=True)
    return dataset.preload()


def _input_size(request: DataRequest) -> int:
    if request.input_size:
        return int(request.input_size)
    if request.preprocessing is not None:
        return int(request.preprocessing.input_size)
    return 224


def _transform(request: DataRequest, augment: dict[str, Any]) -> DeviceTransform:
    pre = request.preprocessing
    return DeviceTransform(
        in_chans=request.in_chans,
        mean=getattr(pre, "mean", None), std=getattr(pre, "std", None),
        augment=augment if request.augment else None,
    )


def task_data_from_splits(splits: Any, request: DataRequest, *, with_sex: bool = False
                          ) -> TaskData:
    """``TaskData`` over a :class:`radiologynet.datasets.Splits` (decoded-image datasets
    plus the device transform with the paper's augmentation for the task kind)."""
    size = _input_size(request)
    dtype = torch.long if splits.kind == "multiclass" else torch.float32
    cache = Path(request.cache_dir).expanduser() if request.cache_dir else None
    sets = [_cached_dataset(tuple(s), size, with_sex, dtype, cache)
            for s in (splits.train, splits.val, splits.test)]
    augment = BONE_AGE_AUGMENT if splits.kind == "regression" else PAPER_AUGMENT
    num_classes = len(splits.classes) if splits.kind == "multiclass" else 1
    return TaskData(train=sets[0], val=sets[1], test=sets[2] if len(sets[2]) else None,
                    num_classes=num_classes, class_names=tuple(splits.classes),
                    batch_transform=_transform(request, augment),
                    extra={"splits": splits})


def _benchmark_builder(name: str):
    def build(request: DataRequest) -> TaskData:
        from radiologynet.datasets import get_task as get_dataset
        from radiologynet.datasets import load_task

        splits = load_task(name, request.root, seed=request.seed, fraction=request.fraction)
        return task_data_from_splits(splits, request,
                                     with_sex=get_dataset(name).input_needs_sex)

    return build


def _folder_samples(folder: Path, classes: Sequence[str]) -> tuple[Any, ...]:
    from radiologynet.datasets.base import Sample

    samples = []
    for index, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(Sample(path=str(path), target=index))
    return tuple(samples)


def folder_splits(root: str | Path, *, seed: int = 0, fraction: float | None = None) -> Any:
    """The splits of a ``ROOT/{train,val,test}/<class>/`` folder as
    :class:`radiologynet.datasets.Splits` (``fraction`` keeps a class-stratified share of
    ``train``).

    Raises:
        DatasetNotFoundError: when ``train/`` or ``val/`` is missing or holds no images.
    """
    from radiologynet.datasets.base import Splits

    root = Path(root).expanduser()
    tree = ("ROOT/\n  train/<class>/<image>.png ...\n  val/<class>/...\n"
            "  test/<class>/...   (optional)")
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DatasetNotFoundError(
            f"{root}: a 'folder' task needs train/ and val/ sub-folders with one folder per "
            f"class:\n{tree}")
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    train = _folder_samples(root / "train", classes)
    val = _folder_samples(root / "val", classes)
    test = _folder_samples(root / "test", classes) if (root / "test").is_dir() else ()
    if not train or not val:
        raise DatasetNotFoundError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found in "
                                   f"train/ or val/. Expected:\n{tree}")
    if fraction is not None:
        train = _stratified_fraction(train, fraction, seed)
    return Splits(task="folder", kind="multiclass", classes=classes, train=train, val=val,
                  test=test, seed=seed, fraction=fraction, root=str(root))


def _stratified_fraction(samples: tuple[Any, ...], fraction: float, seed: int
                         ) -> tuple[Any, ...]:
    from radiologynet.datasets.base import subsample_training

    return tuple(subsample_training(samples, fraction, seed, "multiclass"))


def _build_folder(request: DataRequest) -> TaskData:
    splits = folder_splits(request.root, seed=request.seed, fraction=request.fraction)
    return task_data_from_splits(splits, request)


def _register() -> None:
    from radiologynet.datasets import TASKS

    for name, task in TASKS.items():
        regression = task.kind == "regression"
        register_task(TaskSpec(
            name=name, kind=task.kind, build_data=_benchmark_builder(name),
            optimizer="adam" if regression else "adamw",
            scheduler="plateau" if regression else None,
            models=PAPER_MODELS.get(name, ()), description=task.title,
        ), aliases=_ALIASES.get(name, ()))
    register_task(TaskSpec(
        name="folder", kind="multiclass", build_data=_build_folder,
        models=("resnet50",),
        description="any folder of labelled images: ROOT/{train,val,test}/<class>/",
    ))


_register()
