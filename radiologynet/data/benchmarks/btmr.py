"""Brain Tumor MRI (Kaggle ``masoudnickparvar/brain-tumor-mri-dataset``): four-class
classification of glioma, meningioma, no tumour and pituitary tumour.

The paper's split, made deterministic: ``Testing/`` is the test set; ``Training/`` is
split 75/25 per class into train and validation, each class's sorted file list shuffled
with ``numpy.random.default_rng(seed)``. Differences from the authors' scripts: the
shuffle runs over sorted file lists (theirs was seeded, ``random.seed(1221)``, but over
``os.listdir`` order, which depends on the filesystem) and the 75 % cut is rounded
(theirs truncated: 4,282 / 1,430 training / validation images, here 4,284 / 1,428); the
MobileNetV3 heads' sigmoid-before-cross-entropy defect belongs to the trainer, not here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from radiologynet.data.splits import (
    Sample,
    Splits,
    Task,
    check_fraction,
    check_seed,
    dataset_not_found,
    find_dataset_dir,
    split_per_class,
)
from radiologynet.io import list_image_files

NAME = "btmr"
TITLE = "Brain Tumor MRI"
KIND = "multiclass"
CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")
NUM_OUTPUTS = len(CLASSES)
INPUT_NEEDS_SEX = False
DOWNLOAD_URL = "https://www.kaggle.com/datasets/masoudnickparvar/brain-tumor-mri-dataset"
EXPECTED_TREE = """\
<root>/
  Training/
    glioma/      Tr-gl_0010.jpg ...  (1,321 images)
    meningioma/  Tr-me_0010.jpg ...  (1,339)
    notumor/     Tr-no_0010.jpg ...  (1,595)
    pituitary/   Tr-pi_0010.jpg ...  (1,457)
  Testing/
    glioma/ meningioma/ notumor/ pituitary/   Te-gl_0010.jpg ... (300/306/405/300)
"""
TRAIN_VAL_RATIOS = (0.75, 0.25)


def _is_dataset(folder: Path) -> bool:
    return all((folder / part / c).is_dir() for part in ("Training", "Testing") for c in CLASSES)


def _samples(folder: Path) -> list[Sample]:
    return [
        Sample(path=str(p), target=index)
        for index, name in enumerate(CLASSES)
        for p in list_image_files(folder / name, recursive=False)
    ]


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """Load Brain Tumor MRI from ``root`` (the folder holding ``Training/`` and
    ``Testing/``, or the folder the archive was unpacked into).

    Returns the paper's splits for ``seed``; ``fraction`` keeps that share of the
    training split, per class (validation and test unchanged).
    Raises ``DatasetNotFoundError`` when the layout is not the published one.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    root = Path(root).expanduser().resolve()
    folder = find_dataset_dir(root, _is_dataset)
    if folder is None:
        raise dataset_not_found(
            TITLE,
            root,
            DOWNLOAD_URL,
            EXPECTED_TREE,
            "no Training/ and Testing/ folders with one sub-folder per class",
        )
    training = _samples(folder / "Training")
    test = _samples(folder / "Testing")
    for part, samples in (("Training", training), ("Testing", test)):
        if not samples:
            raise dataset_not_found(
                TITLE, folder / part, DOWNLOAD_URL, EXPECTED_TREE, f"{part}/ holds no images"
            )
    rng = np.random.default_rng(seed)
    train, val = split_per_class(training, [s.target for s in training], TRAIN_VAL_RATIOS, rng)
    return TASK.make_splits(train, val, test, seed=seed, fraction=fraction, root=str(folder))


TASK = Task.from_module(sys.modules[__name__])
