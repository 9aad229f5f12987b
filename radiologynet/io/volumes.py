"""3-D volumes (MHD/RAW, NIfTI, NRRD, a folder holding one DICOM series) through
SimpleITK, with their geometry, and slicing them into 2-D images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from radiologynet._optional import require
from radiologynet.errors import ImageReadError
from radiologynet.io.budget import DecodeBudget, check_decode, resolve_budget
from radiologynet.io.dicom import is_dicom, read_dicom
from radiologynet.io.dicom_checks import check_deflated
from radiologynet.io.inputs import regular_file_size
from radiologynet.io.suffixes import DICOM_SUFFIXES
from radiologynet.io.volume_headers import (
    check_data_files,
    check_metaimage_data,
    check_metaimage_geometry,
    check_nifti,
    check_nrrd_lines,
)

#: The one SimpleITK reader each volume suffix is given to (never ITK's guess from the
#: content, which would let any of its dozens of formats in).
_IMAGE_IO = {
    ".mhd": "MetaImageIO",
    ".mha": "MetaImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".nii": "NiftiImageIO",
    ".nii.gz": "NiftiImageIO",
    ".hdr": "NiftiImageIO",
    ".img": "NiftiImageIO",
}
_AXES = {"axial": 0, "z": 0, "coronal": 1, "y": 1, "sagittal": 2, "x": 2}


@dataclass
class Volume:
    """A 3-D image and its place in the world (patient, LPS, millimetres).

    Attributes:
        array: voxel values indexed ``[z, y, x]`` (slice, row, column).
        spacing: voxel size ``(x, y, z)`` in mm (ITK order).
        origin: world position ``(x, y, z)`` of voxel ``[0, 0, 0]`` in mm.
        direction: 3x3 matrix whose columns are the world directions of the x, y, z axes.
        path: the file or folder it was read from.
        metadata: header key/values (strings).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    path: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in array order ``(z, y, x)``."""
        return self.spacing[2], self.spacing[1], self.spacing[0]

    def world_to_voxel(self, points_xyz: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """World coordinates ``(x, y, z)`` in mm to continuous array indices ``(z, y, x)``.

        Accepts one point or an ``(N, 3)`` array; round the result to get voxel indices.
        """
        points = np.asarray(points_xyz, dtype=np.float64)
        offsets = np.atleast_2d(points) - np.asarray(self.origin)
        scaled = np.linalg.solve(np.asarray(self.direction, dtype=np.float64), offsets.T).T
        ijk = scaled / np.asarray(self.spacing)
        zyx = ijk[:, ::-1]
        return zyx[0] if points.ndim == 1 else zyx

    def voxel_to_world(self, indices_zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Array indices ``(z, y, x)`` to world coordinates ``(x, y, z)`` in mm."""
        indices = np.asarray(indices_zyx, dtype=np.float64)
        ijk = np.atleast_2d(indices)[:, ::-1] * np.asarray(self.spacing)
        xyz = ijk @ np.asarray(self.direction, dtype=np.float64).T + np.asarray(self.origin)
        return xyz[0] if indices.ndim == 1 else xyz

    def slices(self, axis: int | str = "axial") -> Iterator[np.ndarray]:
        """The 2-D slices along ``axis`` (0/"axial", 1/"coronal", 2/"sagittal"), in order."""
        index = _axis_index(axis)
        for i in range(self.array.shape[index]):
            yield np.take(self.array, i, axis=index)

    def slice(self, index: int, axis: int | str = "axial") -> np.ndarray:
        """One 2-D slice along ``axis``."""
        return np.take(self.array, index, axis=_axis_index(axis))


def _axis_index(axis: int | str) -> int:
    if isinstance(axis, str):
        if axis.lower() not in _AXES:
            raise ValueError(f"axis must be 0, 1, 2 or one of {', '.join(_AXES)}; got {axis!r}")
        return _AXES[axis.lower()]
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2; got {axis!r}")
    return int(axis)


def _read_series(
    sitk: Any, folder: Path, series_id: str | None, budget: DecodeBudget
) -> tuple[Any, list[str]]:
    """The series' geometry (SimpleITK) and its files in slice order, once every file is
    a regular file and the series is within ``budget``."""
    for entry in folder.iterdir():
        if not entry.is_dir():
            regular_file_size(entry, f"in the series folder {folder}")
    reader = sitk.ImageSeriesReader()
    ids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise ImageReadError(f"{folder}: the folder holds no DICOM series.")
    if series_id is None:
        if len(ids) > 1:
            raise ImageReadError(
                f"{folder}: the folder holds {len(ids)} DICOM series ({', '.join(ids)}); "
                "pass series_id= to choose one."
            )
        series_id = ids[0]
    elif series_id not in ids:
        raise ImageReadError(f"{folder}: no series {series_id!r}; found {', '.join(ids)}.")
    files = list(reader.GetGDCMSeriesFileNames(str(folder), series_id))
    _check_series_budget(files, folder, budget)
    reader.SetFileNames(files)
    return reader.Execute(), files


def _check_series_budget(files: list[str], folder: Path, budget: DecodeBudget) -> None:
    """Every file's header against the budget, and the series' voxels in all."""
    import pydicom

    frames, rows, columns = 0, 0, 0
    for name in files:
        check_deflated(Path(name), budget)
        ds = pydicom.dcmread(name, stop_before_pixels=True)
        rows, columns = max(rows, int(ds.get("Rows", 0))), max(columns, int(ds.get("Columns", 0)))
        frames += int(ds.get("NumberOfFrames", 1) or 1)
    check_decode(folder, (frames, rows, columns), budget, volume=True)


def _dicom_voxels(files: list[str], path: Path, budget: DecodeBudget) -> np.ndarray:
    """The voxels of DICOM ``files`` (one multi-frame file or a series in slice order)
    decoded by :func:`radiologynet.io.read_dicom`, the same pixel path as 2-D images:
    SimpleITK's GDCM reads 32-bit big-endian data with its halves swapped."""
    stacks = [read_dicom(name, budget=budget) for name in files]
    if any(image.is_color for image in stacks):
        raise ImageReadError(f"{path}: a colour DICOM is not a volume of one value per voxel.")
    slices = [image.pixels if image.frames > 1 else image.pixels[None] for image in stacks]
    if len({s.shape[1:] for s in slices}) != 1:
        raise ImageReadError(f"{path}: the series' slices differ in size.")
    return np.concatenate(slices)


def read_volume(
    path: str | PathLike[str],
    series_id: str | None = None,
    *,
    allow_outside_data: bool = False,
    budget: DecodeBudget | None = None,
) -> Volume:
    """Read a 3-D volume: ``.mhd``/``.mha`` (+ ``.raw``), ``.nii``/``.nii.gz`` (or a
    ``.hdr``/``.img`` pair), ``.nrrd``/``.nhdr``, a multi-frame DICOM file (RT dose,
    enhanced CT/MR), or a folder holding one DICOM series (``series_id`` chooses among
    several).

    Geometry comes from SimpleITK; DICOM voxels are decoded by pydicom exactly as
    :func:`radiologynet.io.read_image` decodes them. A header whose spacing or direction
    is invalid (zero, NaN, a singular matrix) is read with SimpleITK's substitutes (1 mm,
    the identity) and an :class:`~radiologynet.errors.ImageReadWarning`. The size the
    header claims is checked against the decode budget before any voxel is decoded.

    Args:
        path: the file or folder.
        series_id: which DICOM series of a folder to read.
        allow_outside_data: let a MetaImage or NRRD header read its voxel data from a file
            outside the header's own folder (``../``, an absolute path, a link leading out,
            a file pattern or list naming one). Off by default: such a header can turn any
            file on the machine into voxels.
        budget: the most the volume may decode to; ``None`` is the default
            :class:`~radiologynet.io.DecodeBudget` as the environment adjusts it.

    Returns:
        A :class:`Volume` with the voxels as ``[z, y, x]`` and the file's geometry.

    Raises:
        ImageReadError: a missing, truncated or unreadable file, one that is not a regular
            file (a FIFO, a device), a data file outside the header's folder, over the
            decode budget, a non-3-D image, an empty volume or NaN/inf voxels.
    """
    sitk = require("SimpleITK", "reading volumes")
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder.")
    if not path.is_dir():
        regular_file_size(path)
    try:
        image, array = _read(sitk, path, series_id, allow_outside_data, resolve_budget(budget))
    except ImageReadError:
        raise
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown"
        raise ImageReadError(f"{path}: SimpleITK cannot read it ({reason}).") from err
    except Exception as err:  # a corrupt header can break the header checks anywhere
        raise ImageReadError(f"{path}: cannot read it ({type(err).__name__}: {err}).") from err
    if array.size == 0:
        raise ImageReadError(f"{path}: the volume is empty (shape {array.shape}).")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ImageReadError(f"{path}: the volume contains {bad} NaN or infinite voxels.")
    metadata = {}
    if not path.is_dir() and hasattr(image, "GetMetaDataKeys"):
        metadata = {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()}
    return Volume(
        array=array,
        spacing=tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
        direction=np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3),
        path=path,
        metadata=metadata,
    )


def _image_io(path: Path) -> str:
    name = path.name.lower()
    for suffix, image_io in _IMAGE_IO.items():
        if name.endswith(suffix):
            return image_io
    raise ImageReadError(
        f"{path}: not a volume format read_volume reads (one of {', '.join(_IMAGE_IO)}, "
        "a DICOM file or a DICOM series folder)."
    )


def _header_checked_reader(
    sitk: Any, path: Path, allow_outside_data: bool, budget: DecodeBudget
) -> Any:
    """A SimpleITK reader of ``path`` whose header, data files and claimed size have
    passed every check, ready to read the voxels."""
    image_io = _image_io(path)
    check_nrrd_lines(path)
    stored = sum(regular_file_size(p) for p in check_data_files(path, allow_outside_data))
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if reader.GetDimension() != 3:
        raise ImageReadError(f"{path}: expected a 3-D volume, got {reader.GetDimension()}-D.")
    if reader.GetNumberOfComponents() != 1:
        raise ImageReadError(
            f"{path}: expected one value per voxel, got {reader.GetNumberOfComponents()}."
        )
    size = tuple(int(v) for v in reversed(reader.GetSize()))
    value_bytes = sitk.Image([1, 1, 1], reader.GetPixelID()).GetSizeOfPixelComponent()
    check_decode(path, size, budget, volume=True, bytes_per_value=value_bytes, stored_bytes=stored)
    check_metaimage_data(path, int(np.prod(size)) * value_bytes)
    check_nifti(path)
    check_metaimage_geometry(path)
    return reader


def _read(
    sitk: Any, path: Path, series_id: str | None, allow_outside_data: bool, budget: DecodeBudget
) -> tuple[Any, np.ndarray]:
    """The SimpleITK image (for its geometry) and the voxel array ``[z, y, x]``."""
    if path.is_dir():
        image, files = _read_series(sitk, path, series_id, budget)
        array = _dicom_voxels(files, path, budget)
    elif path.suffix.lower() in DICOM_SUFFIXES or is_dicom(path):
        check_deflated(path, budget)
        image = sitk.ImageFileReader()
        image.SetFileName(str(path))
        image.ReadImageInformation()
        array = _dicom_voxels([str(path)], path, budget)
    else:
        image = _header_checked_reader(sitk, path, allow_outside_data, budget).Execute()
        array = None
    if image.GetDimension() != 3:
        raise ImageReadError(f"{path}: expected a 3-D volume, got {image.GetDimension()}-D.")
    components = (
        image.GetNumberOfComponents()
        if isinstance(image, sitk.ImageFileReader)
        else image.GetNumberOfComponentsPerPixel()
    )
    if components != 1:
        raise ImageReadError(f"{path}: expected one value per voxel, got {components}.")
    if array is None:
        array = sitk.GetArrayFromImage(image)
    expected = tuple(int(v) for v in reversed(image.GetSize()))
    if array.shape != expected:
        raise ImageReadError(
            f"{path}: decoded voxels {array.shape} do not match the header's size {expected}."
        )
    return image, array
