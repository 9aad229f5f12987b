"""Labelled images as users have them: the ``folder`` task, what ``finetune --task folder``,
the demo and the fine-tuning notebook read.

Three layouts (:func:`read_labelled` reads each into ``(path, label, split, patient)``
rows, the one reader of labelled images; :func:`load` splits them):

- ``ROOT/<class>/<image>``: one folder per class, split here (stratified by class,
  75/12.5/12.5, drawn with the seed);
- ``ROOT/{train,val[,test]}/<class>/<image>``: split already;
- a CSV file ``path,label[,split][,patient]``: paths relative to the CSV's folder (or
  absolute); ``split`` (``train``, ``val``, ``test``) when the split is made already,
  else, with a ``patient`` column, a patient-grouped split (no patient on two sides, as
  GRAZPEDWRI-DX's, :func:`radiologynet.data.splits.grouped_split`), else a stratified one.

Class names are sorted; hidden folders (``.ipynb_checkpoints``, ``.Trash``) are never
classes, and hidden files never images.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiologynet.data.splits import (
    SPLIT_NAMES,
    Sample,
    Splits,
    Task,
    check_fraction,
    check_seed,
    class_folders,
    grouped_split,
    read_csv_table,
    require_columns,
    sorted_samples,
    split_per_class,
    subsample_training,
)
from radiologynet.errors import DatasetFormatError, DatasetNotFoundError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files

NAME = "folder"
TITLE = "any labelled images: ROOT/<class>/, ROOT/{train,val,test}/<class>/ or a CSV"
KIND = "multiclass"
#: Read from the data: the class folders or the CSV's labels.
CLASSES: tuple[str, ...] = ()
#: 0: as many outputs as the data has classes.
NUM_OUTPUTS = 0
INPUT_NEEDS_SEX = False
DOWNLOAD_URL = ""
EXPECTED_TREE = """\
ROOT/<class>/<image>.png ...            (split here: 75/12.5/12.5 per class)
or ROOT/train/<class>/..., ROOT/val/<class>/..., ROOT/test/<class>/... (test optional)
or labels.csv: path,label[,split][,patient]  (paths relative to the CSV's folder)
"""
#: The shares of a split made here: training, validation, test.
SPLIT_RATIOS = (0.75, 0.125, 0.125)


@dataclass(frozen=True)
class LabelledImage:
    """One labelled image as the user has it.

    Attributes:
        path: the image file (absolute).
        label: its class name.
        split: ``"train"``, ``"val"`` or ``"test"`` when the layout says, else ``None``.
        patient: the patient id of a CSV's ``patient`` column, else ``None``.
    """

    path: str
    label: str
    split: str | None = None
    patient: str | None = None


def _from_class_folders(root: Path, split: str | None) -> list[LabelledImage]:
    return [
        LabelledImage(str(path), name, split)
        for name in class_folders(root)
        for path in list_image_files(root / name)
    ]


def _text(value: object) -> str:
    """A CSV cell as text (empty for a missing value)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _from_csv(path: Path) -> list[LabelledImage]:
    frame = read_csv_table(path, dtype=str, keep_default_na=False)
    require_columns(frame, ["path", "label"], path)
    rows, missing = [], []
    for number, record in enumerate(frame.to_dict("records"), start=2):
        file, label = _text(record["path"]).strip(), _text(record["label"]).strip()
        split = _text(record.get("split")).strip().lower() or None
        patient = _text(record.get("patient")).strip() or None
        if not file or not label:
            raise DatasetFormatError(f"{path}, row {number}: an empty path or label")
        if split is not None and split not in SPLIT_NAMES:
            raise DatasetFormatError(
                f"{path}, row {number}: split {split!r}; expected one of {', '.join(SPLIT_NAMES)}"
            )
        image = Path(file).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            missing.append(file)
        rows.append(LabelledImage(str(image), label, split, patient))
    if missing:
        raise DatasetNotFoundError(
            f"{path}: {len(missing)} image(s) it lists do not exist, e.g. "
            f"{', '.join(missing[:3])} (paths are read relative to the CSV's folder)"
        )
    return rows


def read_labelled(source: str | os.PathLike[str]) -> list[LabelledImage]:
    """The labelled images of a CSV file, a ``ROOT/{train,val[,test]}/<class>/`` folder
    or a ``ROOT/<class>/`` folder (see the module's text), in a stable order.

    Raises:
        DatasetNotFoundError: no such file or folder, or no images in it.
        DatasetFormatError: a CSV without ``path``/``label``, with an empty cell or an
            unknown split.
    """
    root = Path(source).expanduser()
    if root.is_file() and root.suffix.lower() == ".csv":
        rows = _from_csv(root)
    elif not root.is_dir():
        raise DatasetNotFoundError(
            f"{root}: no such folder or CSV file. The 'folder' task reads:\n{EXPECTED_TREE}"
        )
    elif (root / "train").is_dir() and (root / "val").is_dir():
        rows = [
            row
            for split in SPLIT_NAMES
            if (root / split).is_dir()
            for row in _from_class_folders(root / split, split)
        ]
    else:
        rows = _from_class_folders(root, None)
    if not rows:
        raise DatasetNotFoundError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}, or DICOM) found. "
            f"The 'folder' task reads:\n{EXPECTED_TREE}"
        )
    return rows


def _assign_splits(rows: Sequence[LabelledImage], seed: int, source: Path) -> list[str]:
    """The split of each row: its own, else grouped by patient, else stratified."""
    given = [r.split for r in rows]
    if all(s is not None for s in given):
        return [str(s) for s in given]
    if any(s is not None for s in given):
        raise DatasetFormatError(
            f"{source}: some rows name a split and others do not; fill the split column "
            "for every row, or leave it out to have the data split"
        )
    labels = [r.label for r in rows]
    patients = [r.patient for r in rows]
    if any(p is not None for p in patients):
        if not all(p is not None for p in patients):
            raise DatasetFormatError(f"{source}: some rows have no patient id")
        return grouped_split(labels, patients, seed, what=str(source))
    rng = np.random.default_rng([seed, 0xF01D])
    parts = split_per_class(list(range(len(rows))), labels, SPLIT_RATIOS, rng)
    names = [""] * len(rows)
    for name, part in zip(SPLIT_NAMES, parts, strict=True):
        for index in part:
            names[index] = name
    return names


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """The splits of labelled images in any of the ``folder`` task's layouts
    (:func:`read_labelled`); ``seed`` draws the split where the data has none, and
    ``fraction`` keeps a class-stratified share of ``train``.

    Raises:
        DatasetNotFoundError: no images, or too few to give training and validation
            images.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    source = Path(root).expanduser()
    rows = read_labelled(source)
    split_of = _assign_splits(rows, seed, source)
    training = {r.label for r, s in zip(rows, split_of, strict=True) if s == "train"}
    classes = tuple(sorted(training))
    index = {name: i for i, name in enumerate(classes)}
    parts: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
    for row, split in zip(rows, split_of, strict=True):
        if row.label not in index:
            raise DatasetFormatError(
                f"{source}: class {row.label!r} has {split} images but no training images"
            )
        parts[split].append(Sample(path=row.path, target=index[row.label], group=row.patient))
    if not parts["train"] or not parts["val"]:
        raise DatasetNotFoundError(
            f"{source}: {len(parts['train'])} training and {len(parts['val'])} validation "
            "images; both are needed (a split made here gives 12.5 % of each class to "
            "validation: add images, or split them yourself)"
        )
    train = sorted_samples(parts["train"])
    if fraction is not None:
        train = subsample_training(train, fraction, seed, KIND)
    base = source.parent if source.is_file() else source
    return Splits(
        task=NAME,
        kind=KIND,
        classes=classes,
        train=train,
        val=sorted_samples(parts["val"]),
        test=sorted_samples(parts["test"]),
        seed=seed,
        fraction=fraction,
        root=str(base),
    )


TASK = Task.from_module(sys.modules[__name__])
