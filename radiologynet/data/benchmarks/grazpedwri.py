"""GRAZPEDWRI-DX (pediatric wrist trauma radiographs): binary classification of
osteopenia.

The paper's task, made deterministic and leak-free: every image with ``osteopenia == 1``
(2,473) is a positive; as many negatives are drawn at random (``numpy.random.
default_rng(seed)``) from the other images, sorted by file stem; the 4,946 images are
split 75/12.5/12.5 BY PATIENT with scikit-learn's ``StratifiedGroupKFold`` (8 folds,
shuffled with ``seed``: fold 0 is test, fold 1 validation, the other six training), so
no patient has images on two sides and each split is about half positive.

Differences from the authors' scripts: their negatives were the first 2,473 rows of
``dataset.csv`` rather than a random sample, and they split by image, which put 110+
patients on both sides of the split. (Not a difference: their reader,
``cv2.IMREAD_GRAYSCALE``, keeps the top byte of the 16-bit PNGs, ``v >> 8``, the full
range; ``radiologynet.io``'s per-image min-max differs from it by at most one grey level.)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radiologynet._optional import require
from radiologynet.data.splits import (
    SPLIT_NAMES,
    Sample,
    Splits,
    Task,
    check_fraction,
    check_seed,
    dataset_not_found,
    find_dataset_dir,
    grouped_split,
    read_csv_table,
    refuse_duplicates,
    require_columns,
    require_rows,
    sorted_samples,
)
from radiologynet.errors import DatasetFormatError

if TYPE_CHECKING:
    import pandas as pd

NAME = "grazpedwri"
TITLE = "GRAZPEDWRI-DX"
KIND = "binary"
CLASSES: tuple[str, ...] = ("none", "osteopenia")
NUM_OUTPUTS = 1
INPUT_NEEDS_SEX = False
DOWNLOAD_URL = (
    "https://doi.org/10.6084/m9.figshare.14825193 (paper: doi 10.1038/s41597-022-01328-z)"
)
EXPECTED_TREE = """\
<root>/
  dataset.csv      filestem, patient_id, ..., osteopenia, ...  (20,327 rows)
  images_part1/    0001_1297860395_01_WRI-L1_M014.png ...   (16-bit PNG)
  images_part2/ images_part3/ images_part4/   (or one images/ folder)
"""
CSV_NAME = "dataset.csv"
_IMAGE_FOLDER = re.compile(r"^images(_part\d+)?$", re.IGNORECASE)


def read_table(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """``dataset.csv`` as a pandas DataFrame (BOM stripped, ``filestem``/``patient_id`` as
    text, ``osteopenia`` as 0/1), sorted by file stem."""
    pd = require("pandas", "the GRAZPEDWRI-DX loader")
    csv_path = Path(csv_path)
    frame = read_csv_table(csv_path, dtype={"filestem": str, "patient_id": str})
    require_columns(frame, ["filestem", "patient_id", "osteopenia"], csv_path)
    flags = pd.to_numeric(frame["osteopenia"], errors="coerce")
    bad = frame["osteopenia"].notna() & ~flags.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise DatasetFormatError(
            f"{csv_path}, row {row}: osteopenia is {frame['osteopenia'].iloc[row - 2]!r}; "
            "expected 1 or empty"
        )
    frame = frame.assign(osteopenia=flags.fillna(0).astype(int))
    require_rows(len(frame), csv_path, "image")
    for column in ("filestem", "patient_id"):
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0]) + 2
            raise DatasetFormatError(
                f"{csv_path}, row {row}: {column} is empty; every image has one in the "
                "published dataset.csv"
            )
    refuse_duplicates(frame["filestem"].tolist(), csv_path, "filestem")
    return frame.sort_values("filestem", kind="stable").reset_index(drop=True)


def splits_from_csv(
    csv_path: str | os.PathLike[str],
    seed: int = 0,
    *,
    fraction: float | None = None,
    image_paths: Mapping[str, str] | None = None,
    root: str | None = None,
) -> Splits:
    """The paper's balanced, patient-grouped splits built from ``dataset.csv`` alone.

    Sample paths come from ``image_paths`` (file stem -> path) when given, else they are
    ``<filestem>.png`` (relative; enough to inspect or save a split without the images).
    Returns :class:`Splits` with the patient id as each sample's ``group``.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    frame = read_table(csv_path)
    positives = np.flatnonzero(frame["osteopenia"].to_numpy() == 1)
    negatives = np.flatnonzero(frame["osteopenia"].to_numpy() == 0)
    if len(positives) == 0 or len(negatives) < len(positives):
        raise DatasetFormatError(
            f"{csv_path}: {len(positives)} osteopenia images and {len(negatives)} others; "
            "need at least one positive and as many negatives"
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(
        np.concatenate([positives, rng.choice(negatives, size=len(positives), replace=False)])
    )
    table = frame.iloc[chosen].reset_index(drop=True)
    labels = table["osteopenia"].to_numpy()
    groups = table["patient_id"].to_numpy()
    split_of = grouped_split(labels.tolist(), groups.tolist(), seed, what=f"{csv_path}")

    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for stem, label, group, name in zip(
        table["filestem"].tolist(), labels.tolist(), groups.tolist(), split_of, strict=True
    ):
        path = image_paths[stem] if image_paths is not None else f"{stem}.png"
        parts[name].append(Sample(path=path, target=int(label), group=str(group)))
    return TASK.make_splits(
        parts["train"], parts["val"], parts["test"], seed=seed, fraction=fraction, root=root
    )


def index_images(folder: Path) -> dict[str, str]:
    """File stem -> path of every PNG under an ``images`` or ``images_part<N>`` folder
    (at any depth) of ``folder``; the first by path wins for a duplicated stem."""
    index: dict[str, str] = {}
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        parts = Path(current).relative_to(folder).parts
        if not any(_IMAGE_FOLDER.match(p) for p in parts):
            continue
        for name in sorted(files):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() == ".png" and not name.startswith("."):
                index.setdefault(stem, str(Path(current, name)))
    return index


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """Load GRAZPEDWRI-DX from ``root`` (the folder holding ``dataset.csv`` and the
    ``images_part*`` folders) and return the osteopenia splits for ``seed``.

    ``fraction`` keeps that share of the training split, per class. Raises
    ``DatasetNotFoundError`` when ``dataset.csv`` or any chosen image is missing.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    root = Path(root).expanduser().resolve()
    folder = find_dataset_dir(root, lambda f: (f / CSV_NAME).is_file())
    if folder is None:
        raise dataset_not_found(TITLE, root, DOWNLOAD_URL, EXPECTED_TREE, f"no {CSV_NAME}")
    index = index_images(folder)
    splits = splits_from_csv(folder / CSV_NAME, seed, fraction=fraction, root=str(folder))
    wanted = [Path(s.path).stem for name in SPLIT_NAMES for s in splits.split(name)]
    missing = [stem for stem in wanted if stem not in index]
    if missing:
        raise dataset_not_found(
            TITLE,
            folder,
            DOWNLOAD_URL,
            EXPECTED_TREE,
            f"{len(missing)} of the {len(wanted)} images the split needs are not in any "
            f"images_part*/ or images/ folder (e.g. {', '.join(m + '.png' for m in missing[:3])})",
        )

    def located(samples: tuple[Sample, ...]) -> tuple[Sample, ...]:
        return sorted_samples([replace(s, path=index[Path(s.path).stem]) for s in samples])

    return replace(
        splits, train=located(splits.train), val=located(splits.val), test=located(splits.test)
    )


TASK = Task.from_module(sys.modules[__name__])
