"""``read_image``: one entry point for DICOM and picture files."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from radiologynet.errors import ImageReadError
from radiologynet.io.budget import DecodeBudget
from radiologynet.io.dicom import is_dicom, read_dicom
from radiologynet.io.inputs import regular_file_size
from radiologynet.io.pictures import read_picture
from radiologynet.io.suffixes import DICOM_SUFFIXES, PICTURE_SUFFIXES
from radiologynet.io.windowing import Image, Window

__all__ = ["read_image"]


def read_image(
    path: str | PathLike[str], window: Window = None, *, budget: DecodeBudget | None = None
) -> Image:
    """Read a 2-D medical image (DICOM, PNG, JPEG, BMP, TIFF) with its metadata.

    DICOM is recognised by its suffix or by the ``DICM`` magic (files without a suffix are
    common in PACS exports). ``window`` is ``(center, width)`` or a preset name from
    :data:`radiologynet.io.WINDOW_PRESETS`; it is used when the image is converted to 8 bits.
    ``budget`` bounds what the file may decode to (``None``: the default
    :class:`~radiologynet.io.DecodeBudget`, adjusted by its environment variables); the
    header is checked against it before any pixel is decoded.

    Returns:
        An :class:`radiologynet.io.Image`.

    Raises:
        ImageReadError: the file is missing, not a regular file, of an unknown type, over
            the decode budget, or unreadable; the message names the file and the reason.
    """
    path = Path(path)
    regular_file_size(path)  # missing, unreachable, a FIFO, a device: refused unopened
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or is_dicom(path):
        return read_dicom(path, window=window, budget=budget)
    if suffix in PICTURE_SUFFIXES or suffix == "":
        return read_picture(path, window=window, budget=budget)
    raise ImageReadError(
        f"{path}: unknown image type {suffix!r}; expected DICOM or one of "
        f"{', '.join(PICTURE_SUFFIXES)} (use read_volume for 3-D volumes)."
    )
