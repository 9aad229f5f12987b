"""Any folder of labelled images, ``ROOT/{train,val,test}/<class>/<image>`` (``test/``
optional): the ``folder`` task, what the demo and the fine-tuning notebook use.

The classes are the sub-folders of ``train/`` in sorted order (hidden ones such as
``.ipynb_checkpoints`` left out); ``val/`` and ``test/`` are read with the same classes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from radiologynet.data.splits import (
    Sample,
    Splits,
    Task,
    check_fraction,
    check_seed,
    class_folders,
    subsample_training,
)
from radiologynet.errors import DatasetNotFoundError
from radiologynet.io import IMAGE_SUFFIXES, list_image_files

NAME = "folder"
TITLE = "any folder of labelled images: ROOT/{train,val,test}/<class>/"
KIND = "multiclass"
#: Read from the data: the sub-folders of ``train/``.
CLASSES: tuple[str, ...] = ()
#: 0: as many outputs as the data has classes.
NUM_OUTPUTS = 0
INPUT_NEEDS_SEX = False
DOWNLOAD_URL = ""
EXPECTED_TREE = """\
ROOT/
  train/<class>/<image>.png ...
  val/<class>/...
  test/<class>/...   (optional)
"""


def _samples(folder: Path, classes: Sequence[str]) -> tuple[Sample, ...]:
    return tuple(
        Sample(path=str(path), target=index)
        for index, name in enumerate(classes)
        if (folder / name).is_dir()
        for path in list_image_files(folder / name)
    )


def load(root: str | os.PathLike[str], *, seed: int = 0, fraction: float | None = None) -> Splits:
    """The splits of a ``ROOT/{train,val,test}/<class>/`` folder (``fraction`` keeps a
    class-stratified share of ``train``, drawn with ``seed``).

    Raises:
        DatasetNotFoundError: ``train/`` or ``val/`` is missing or holds no images.
    """
    seed, fraction = check_seed(seed), check_fraction(fraction)
    root = Path(root).expanduser()
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DatasetNotFoundError(
            f"{root}: a 'folder' task needs train/ and val/ sub-folders with one folder per "
            f"class:\n{EXPECTED_TREE}"
        )
    classes = tuple(class_folders(root / "train"))
    train = _samples(root / "train", classes)
    val = _samples(root / "val", classes)
    test = _samples(root / "test", classes) if (root / "test").is_dir() else ()
    if not train or not val:
        raise DatasetNotFoundError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found in "
            f"train/ or val/. Expected:\n{EXPECTED_TREE}"
        )
    if fraction is not None:
        train = tuple(subsample_training(train, fraction, seed, KIND))
    return Splits(
        task=NAME,
        kind=KIND,
        classes=classes,
        train=train,
        val=val,
        test=test,
        seed=seed,
        fraction=fraction,
        root=str(root),
    )


TASK = Task.from_module(sys.modules[__name__])
