"""Where the images to run a model on come from: one image file, a folder (searched
recursively, DICOM files without a suffix included), a ``DICOMDIR`` index, or a CSV with
a ``path`` column. :func:`image_table` turns any of them into a list of files plus the
CSV's other columns (a label, a split, the patient's sex), one value per file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from radiologynet.errors import DatasetFormatError, ImageReadError
from radiologynet.io import list_image_files
from radiologynet.io.listing import DICOMDIR

#: The column of a CSV source that names the image files.
PATH_COLUMN = "path"


@dataclass(frozen=True)
class ImageTable:
    """The image files of a source, in order, and per-file columns.

    Attributes:
        paths: the files (relative CSV entries resolved against the CSV's folder).
        columns: the CSV's other columns, one string per file (empty for other sources).
        source: what was listed.
    """

    paths: list[Path]
    columns: dict[str, list[str]] = field(default_factory=dict)
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def column(self, name: str) -> list[str] | None:
        """The values of column ``name`` (matched without regard to case), or ``None``."""
        for key, values in self.columns.items():
            if key.strip().lower() == name.lower():
                return values
        return None


def image_table(data: str | os.PathLike[str]) -> ImageTable:
    """The images ``data`` names.

    Args:
        data: an image file (DICOM, PNG, JPEG, ...), a folder (searched recursively with
            :func:`radiologynet.io.list_image_files`: DICOM files found by their magic
            whatever their name, hidden files and ``DICOMDIR`` indexes left out), a
            ``DICOMDIR`` file (the images it indexes), or a ``.csv`` with a ``path``
            column (relative paths are relative to the CSV's folder; its other columns
            are kept).

    Returns:
        An :class:`ImageTable`.

    Raises:
        ImageReadError: ``data`` does not exist, or a folder or index holds no image.
        DatasetFormatError: a CSV without a ``path`` column, or one that is not a
            readable CSV.
    """
    path = Path(data).expanduser()
    if not path.exists():
        raise ImageReadError(
            f"{path}: no such file or folder. Pass an image, a folder of images, a "
            "DICOMDIR, or a CSV with a 'path' column."
        )
    if path.is_dir():
        files = list_image_files(path)
        if not files:
            raise ImageReadError(
                f"{path} holds no image files (DICOM, PNG, JPEG, BMP, TIFF), in any subfolder."
            )
        return ImageTable(files, source=path)
    if path.name.upper() == DICOMDIR:
        return ImageTable(dicomdir_images(path), source=path)
    if path.suffix.lower() == ".csv":
        return _csv_table(path)
    return ImageTable([path], source=path)


def dicomdir_images(path: Path) -> list[Path]:
    """The image files a ``DICOMDIR`` index references (pydicom's File-set reader), in
    the index's order.

    Raises:
        ImageReadError: an index that cannot be read or references no file.
    """
    from pydicom.fileset import FileSet

    try:
        files = [Path(instance.path) for instance in FileSet(path)]
    except Exception as err:  # pydicom raises several types for a damaged index
        raise ImageReadError(
            f"{path}: not a readable DICOMDIR ({type(err).__name__}: {err}). Pass the "
            "folder that holds it instead: every DICOM file under it is found."
        ) from err
    if not files:
        raise ImageReadError(f"{path}: the DICOMDIR references no image file.")
    return files


def _csv_table(path: Path) -> ImageTable:
    from radiologynet.data.splits import read_csv_table

    frame = read_csv_table(path, dtype=str, keep_default_na=False)
    names = {str(c).strip().lower(): c for c in frame.columns}
    if PATH_COLUMN not in names:
        raise DatasetFormatError(
            f"{path}: no '{PATH_COLUMN}' column (found {', '.join(map(str, frame.columns))})."
            f" Name the column of image files '{PATH_COLUMN}'."
        )
    key = names[PATH_COLUMN]
    paths = []
    for value in frame[key]:
        file = Path(str(value).strip()).expanduser()
        paths.append(file if file.is_absolute() else path.parent / file)
    columns = {str(c): [str(v) for v in frame[c]] for c in frame.columns if c != key}
    return ImageTable(paths, columns, source=path)
