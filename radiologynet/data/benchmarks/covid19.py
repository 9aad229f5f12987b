"""COVID-19 Radiography Database (Kaggle ``tawsifurrahman/covid19-radiography-database``):
binary classification, COVID (1) against Normal (0) chest X-rays.

The paper's split, made deterministic: the Normal images are undersampled to the number
of COVID images (3,616) by a seeded random draw from the sorted file list, then each
class is split 75/12.5/12.5 into train/validation/test (2,712/452/452 per class).
Lung_Opacity and Viral Pneumonia are not used. Difference from the authors' scripts:
they kept the first 3,616 Normal files in directory order (unsorted, so
filesystem-dependent); here the draw is ``numpy.random.default_rng(seed)``.
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

NAME = "covid19"
TITLE = "COVID-19 Radiography Database"
KIND = "binary"
CLASSES: tuple[str, ...] = ("Normal", "COVID")
NUM_OUTPUTS = 1
INPUT_NEEDS_SEX = False
DOWNLOAD_URL = "https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database"
TOP_FOLDER = "COVID-19_Radiography_Dataset"
ALL_CLASSES = ("COVID", "Normal", "Lung_Opacity", "Viral Pneumonia")
EXPECTED_TREE = """\
<root>/
  COVID-19_Radiography_Dataset/
    COVID/            images/COVID-1.png ...  (3,616)   masks/
    Normal/           images/Normal-1.png ... (10,192)  masks/
    Lung_Opacity/     images/ masks/   (not used)
    Viral Pneumonia/  images/ masks/   (not used)
    COVID.metadata.xlsx  Normal.metadata.xlsx  ...
"""
SPLIT_RATIOS = (0.75, 0.125, 0.125)


def _image_folder(folder: Path, name: str) -> Path:
    """``<class>/images/`` in the current release, ``<class>/`` in the first ones."""
    images = folder / name / "images"
    return images if images.is_dir() else folder / name


def _is_dataset(folder: Path) -> bool:
    return all((folder / c).is_dir() for c in CLASSES)


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """Load the COVID-19 Radiography Database from ``root`` (the folder holding
    ``COVID-19_Radiography_Dataset/``, or that folder itself).

    Returns the paper's balanced COVID-vs-Normal splits for ``seed``; ``fraction`` keeps
    that share of the training split, per class. Raises ``DatasetNotFoundError`` when the
    layout is not the published one.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    root = Path(root).expanduser().resolve()
    folder = find_dataset_dir(root, _is_dataset)
    if folder is None and (root / TOP_FOLDER).is_dir():
        folder = find_dataset_dir(root / TOP_FOLDER, _is_dataset)
    if folder is None:
        raise dataset_not_found(
            TITLE, root, DOWNLOAD_URL, EXPECTED_TREE, "no COVID/ and Normal/ class folders"
        )
    files = {
        name: list_image_files(_image_folder(folder, name), recursive=False) for name in CLASSES
    }
    for name, paths in files.items():
        if not paths:
            raise dataset_not_found(
                TITLE, folder / name, DOWNLOAD_URL, EXPECTED_TREE, f"{name}/images/ is empty"
            )
    rng = np.random.default_rng(seed)
    n_covid = len(files["COVID"])
    normal = files["Normal"]
    if len(normal) > n_covid:
        keep = np.sort(rng.choice(len(normal), size=n_covid, replace=False))
        normal = [normal[i] for i in keep]
    samples = [Sample(str(p), CLASSES.index("Normal")) for p in normal]
    samples += [Sample(str(p), CLASSES.index("COVID")) for p in files["COVID"]]
    train, val, test = split_per_class(samples, [s.target for s in samples], SPLIT_RATIOS, rng)
    return TASK.make_splits(train, val, test, seed=seed, fraction=fraction, root=str(folder))


TASK = Task.from_module(sys.modules[__name__])
