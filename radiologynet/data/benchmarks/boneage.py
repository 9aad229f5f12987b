"""RSNA Pediatric Bone Age (2017 challenge): regression of bone age in months from a hand
radiograph and the patient's sex.

The splits are the challenge's own: training (12,611), validation (1,425, in two image
folders) and test (200) sets as published, found by their sheets' columns (the Kaggle
mirror's ``boneage-training-dataset.csv`` and the RSNA original's ``train.csv`` alike).
``seed`` only matters with ``fraction``, which keeps that share of the training set,
stratified by target decile; validation and test stay whole.

Differences from the authors' scripts: their sex input was always 0 (a string was
compared with a boolean column); here ``male`` True/False (booleans, strings or 0/1) and
``Sex`` M/F are parsed into 1 (male) / 0 (female), and anything else is an error. Their
data fraction also shrank validation and test; here it applies to training only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
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
    read_csv_table,
    refuse_duplicates,
    require_rows,
    sheet_integer,
    sheet_number,
)
from radiologynet.errors import DatasetFormatError

if TYPE_CHECKING:
    import pandas as pd

NAME = "boneage"
TITLE = "RSNA Pediatric Bone Age"
KIND = "regression"
CLASSES: tuple[str, ...] = ()
NUM_OUTPUTS = 1
INPUT_NEEDS_SEX = True
DOWNLOAD_URL = (
    "https://www.rsna.org/rsnai/ai-image-challenge/rsna-pediatric-bone-age-challenge-2017 "
    "(training and validation also at https://www.kaggle.com/datasets/kmader/rsna-bone-age)"
)
EXPECTED_TREE = """\
<root>/
  boneage-training-dataset.csv   (or RSNA's train.csv)   id, boneage, male
  boneage-training-dataset/      1377.png ...  (12,611 images)
  <any name>.csv                 Image ID, male, Bone Age (months)   (validation)
  boneage-validation-dataset-1/  1386.png ...
  boneage-validation-dataset-2/  ...           (1,425 images in the two)
  Bone age ground truth.xlsx     Case ID, Sex (M/F), Ground truth bone age (months)
  <any other folder>/            4360.png ...  (the 200 test images)
"""

# split -> (id column, target column, sex column, sex kind)
SHEET_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "train": ("id", "boneage", "male", "male"),
    "val": ("Image ID", "Bone Age (months)", "male", "male"),
    "test": ("Case ID", "Ground truth bone age (months)", "Sex", "MF"),
}
SHEET_SUFFIXES = (".csv", ".xlsx", ".xls")

# sex kind -> (words for male, words for female, what the error says is expected)
_SEX_WORDS: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    "male": (
        frozenset({"true", "t", "1", "1.0", "yes", "y"}),
        frozenset({"false", "0", "0.0", "no", "n"}),
        "True/False or 1/0",
    ),
    "MF": (frozenset({"m", "male"}), frozenset({"f", "female"}), "M/F"),
}


def parse_sex(value: object, kind: str, source: str) -> int:
    """1 for male, 0 for female, from a ``male`` column (``kind="male"``: booleans,
    ``"True"``/``"False"`` strings, 0/1) or a ``Sex`` column (``kind="MF"``: M/F).

    Raises ``DatasetFormatError`` naming ``source`` for any other value (a missing one
    included)."""
    if kind == "male":
        if isinstance(value, (bool, np.bool_)):
            return int(bool(value))
        if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            return int(value)
    male, female, expected = _SEX_WORDS["male" if kind == "male" else "MF"]
    text = str(value).strip().lower()
    if text in male:
        return 1
    if text in female:
        return 0
    raise DatasetFormatError(f"{source}: sex value {value!r} is not {expected}")


def _read_sheet(path: Path, nrows: int | None = None) -> pd.DataFrame:
    """A sheet (CSV or Excel) as a DataFrame; :class:`DatasetFormatError` naming the file
    when it cannot be read."""
    if path.suffix.lower() == ".csv":
        return read_csv_table(path, nrows=nrows)
    pd = require("pandas", "the RSNA Pediatric Bone Age loader")
    require("openpyxl", "reading the bone-age .xlsx sheets")
    try:
        return pd.read_excel(path, nrows=nrows)
    except Exception as err:  # openpyxl/xlrd raise many types for a damaged workbook
        raise DatasetFormatError(
            f"{path}: not a readable spreadsheet ({type(err).__name__}: {err})."
        ) from err


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """All sheets and all PNG images under ``root``, sorted."""
    sheets, images = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith((".", "~$")):
                continue
            if suffix == ".png":
                images.append(Path(folder, name))
            elif suffix in SHEET_SUFFIXES:
                sheets.append(Path(folder, name))
    return sorted(sheets), sorted(images)


def find_sheets(sheets: Iterable[Path], unreadable: list[str] | None = None) -> dict[str, Path]:
    """Which sheet holds which split, recognised by its columns; the first (by path) of
    several copies wins. Sheets without labels (Kaggle's test CSV) are ignored, and so
    are unreadable ones (their errors are appended to ``unreadable`` when given)."""
    found: dict[str, Path] = {}
    for path in sheets:
        try:
            columns = set(_read_sheet(path, nrows=0).columns)
        except DatasetFormatError as err:  # a stray file is simply not a sheet
            if unreadable is not None:
                unreadable.append(str(err))
            continue
        for split, (id_col, target_col, sex_col, _) in SHEET_COLUMNS.items():
            if split not in found and {id_col, target_col, sex_col} <= columns:
                found[split] = path
    return found


def _image_split(path: Path, root: Path) -> str:
    """Which split's folder an image lies in: ``boneage-training-dataset*`` is training,
    ``boneage-validation-dataset-*`` validation, anything else test."""
    parts = path.relative_to(root).parts[:-1]
    if any(p.startswith("boneage-training-dataset") for p in parts):
        return "train"
    if any(p.startswith("boneage-validation-dataset") for p in parts):
        return "val"
    return "test"


def _samples(split: str, sheet: Path, index: dict[str, Path], root: Path) -> list[Sample]:
    id_col, target_col, sex_col, sex_kind = SHEET_COLUMNS[split]
    frame = _read_sheet(sheet)
    require_rows(len(frame), sheet, split)
    ids = [sheet_integer(v, f"{sheet}, row {row}") for row, v in enumerate(frame[id_col], 2)]
    refuse_duplicates(ids, sheet, "id")
    samples, missing = [], []
    for row, (image_id, target, sex) in enumerate(
        zip(ids, frame[target_col], frame[sex_col], strict=True), start=2
    ):
        where = f"{sheet}, row {row}"
        months = sheet_number(target, where, "bone age (months)", minimum=0)
        path = index.get(str(image_id))
        if path is None:
            missing.append(f"{image_id}.png")
            continue
        samples.append(Sample(str(path), months, sex=parse_sex(sex, sex_kind, where)))
    if missing:
        raise dataset_not_found(
            TITLE,
            root,
            DOWNLOAD_URL,
            EXPECTED_TREE,
            f"{len(missing)} of the {len(frame)} {split} images listed in {sheet.name} are "
            f"missing (e.g. {', '.join(missing[:3])})",
        )
    return samples


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """Load RSNA Pediatric Bone Age from ``root`` (the folder holding the training,
    validation and test sheets and image folders, at any depth).

    Returns the published training/validation/test sets with bone age in months as the
    target and sex (1 male, 0 female); ``fraction`` keeps that share of the training set,
    stratified by target decile, drawn with ``seed``. Raises ``DatasetNotFoundError``
    when a sheet or image is missing, ``DatasetFormatError`` for an unreadable value.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise dataset_not_found(TITLE, root, DOWNLOAD_URL, EXPECTED_TREE, "no such folder")
    sheet_paths, image_paths = _walk(root)
    unreadable: list[str] = []
    sheets = find_sheets(sheet_paths, unreadable)
    missing = [s for s in SHEET_COLUMNS if s not in sheets]
    if missing:
        wanted = "; ".join(", ".join(SHEET_COLUMNS[s][:3]) + f" ({s})" for s in missing)
        if unreadable:
            raise DatasetFormatError(
                f"no sheet with the columns {wanted}; unreadable: " + "; ".join(unreadable)
            )
        raise dataset_not_found(
            TITLE,
            root,
            DOWNLOAD_URL,
            EXPECTED_TREE,
            f"no sheet with the columns {wanted}",
        )
    indexes: dict[str, dict[str, Path]] = {"train": {}, "val": {}, "test": {}}
    for path in image_paths:
        indexes[_image_split(path, root)].setdefault(path.stem, path)
    train, val, test = (
        _samples(split, sheets[split], indexes[split], root) for split in SPLIT_NAMES
    )
    return TASK.make_splits(train, val, test, seed=seed, fraction=fraction, root=str(root))


TASK = Task.from_module(sys.modules[__name__])
