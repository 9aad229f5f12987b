"""How the image files of a folder are listed: every command, dataset and pipeline
that scans a folder for images goes through :func:`list_image_files`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from radiologynet.errors import ImageReadError
from radiologynet.io.dicom import is_dicom
from radiologynet.io.suffixes import IMAGE_SUFFIXES, PICTURE_SUFFIXES

#: The DICOM media index file (PS3.10): a DICOM file without pixel data, never an image.
DICOMDIR = "DICOMDIR"


def _is_image(path: Path, suffixes: Sequence[str]) -> bool:
    if path.name.upper() == DICOMDIR:
        return False
    suffix = path.suffix.lower()
    if suffix in suffixes:
        return True
    return suffix not in PICTURE_SUFFIXES and is_dicom(path)


def list_image_files(
    folder: str | PathLike[str],
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    *,
    recursive: bool = True,
) -> list[Path]:
    """The image files in ``folder``, sorted: those whose lower-cased suffix is in
    ``suffixes``, and any other file that is DICOM by its ``DICM`` magic (suffix-less
    exports such as ``IM0001``; picture suffixes are never sniffed).

    Hidden files and folders (a name starting with ``.``: macOS ``._x.png`` AppleDouble
    files, ``.DS_Store``, ``.Trashes/``) and ``DICOMDIR`` index files (no pixel data) are
    skipped. ``recursive=False`` lists ``folder`` itself only.

    Raises:
        ImageReadError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(
            f"{str(root)!r} is not a folder; pass the folder that holds the images."
        )
    wanted = tuple(s.lower() for s in suffixes)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        for name in filenames:
            path = Path(dirpath, name)
            if not name.startswith(".") and path.is_file() and _is_image(path, wanted):
                found.append(path)
    return sorted(found)
