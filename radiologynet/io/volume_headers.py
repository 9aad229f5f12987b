"""Checks on volume headers made before and after SimpleITK reads them, for what SimpleITK
does silently: a MetaImage/NRRD header pointing at data files anywhere on the machine, a
truncated NIfTI zero-filled, NaN voxels in NIfTI read as 0, and invalid spacing or
direction replaced by 1 and the identity."""

from __future__ import annotations

import gzip
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from radiologynet.errors import ImageReadError, ImageReadWarning

#: NIfTI datatype code -> numpy kind/size of one voxel (float codes are checked for NaN).
_NIFTI_FLOATS = {16: "f4", 64: "f8"}
_HEADER_LIMIT = 1 << 20  # MetaImage/NRRD headers are text of a few hundred bytes


def _text_header(path: Path) -> list[tuple[str, str]]:
    """``key = value`` (MetaImage) or ``key: value`` (NRRD) lines up to the data."""
    with open(path, "rb") as fh:
        raw = fh.read(_HEADER_LIMIT)
    lines: list[tuple[str, str]] = []
    for line in raw.split(b"\n"):
        text = line.decode("latin-1").strip()
        if not text and lines and path.suffix.lower() in (".nrrd", ".nhdr"):
            break  # NRRD: a blank line ends the header
        sep = "=" if path.suffix.lower() in (".mhd", ".mha") else ":"
        if sep not in text:
            continue
        key, value = text.split(sep, 1)
        lines.append((key.strip().lower(), value.strip()))
        if key.strip().lower() == "elementdatafile":
            break  # MetaImage: the data follows
    return lines


def data_files(path: Path) -> list[str]:
    """The data file names a MetaImage (``ElementDataFile``) or detached NRRD (``data
    file``) header names; ``[]`` when the data is inside the header file."""
    header = _text_header(path)
    for key, value in header:
        if key == "elementdatafile":
            if value.upper() in ("LOCAL", ""):
                return []
            if value.upper().startswith("LIST"):
                return _list_after(path)
            return [_pattern_or_name(value)]
        if key in ("data file", "datafile"):
            if value.upper().startswith("LIST"):
                return _list_after(path)
            return [_pattern_or_name(value)]
    return []


def _pattern_or_name(value: str) -> str:
    # "slice%03d.raw 1 10 1" (a printf pattern and its range) names files in one folder
    first = value.split()[0] if "%" in value else value
    return first


def _list_after(path: Path) -> list[str]:
    raw = path.read_bytes()[:_HEADER_LIMIT].decode("latin-1").splitlines()
    for i, line in enumerate(raw):
        if line.strip().lower().startswith(("elementdatafile", "data file", "datafile")):
            return [name.strip() for name in raw[i + 1 :] if name.strip()]
    return []


def check_data_files(path: Path, allow_outside_data: bool) -> None:
    """Refuse a header whose data file lies outside the header's folder (``..``, an
    absolute path, a link leading out) unless ``allow_outside_data``."""
    if allow_outside_data or path.suffix.lower() not in (".mhd", ".mha", ".nrrd", ".nhdr"):
        return
    folder = path.resolve().parent
    for name in data_files(path):
        target = (folder / name).resolve()
        if not target.is_relative_to(folder):
            raise ImageReadError(
                f"{path}: its header reads voxel data from {name!r}, outside the header's "
                f"folder {folder}; refused. If that file is really the volume's data, pass "
                "allow_outside_data=True."
            )


def check_metaimage_geometry(path: Path) -> None:
    """Refuse a MetaImage header whose spacing is zero, negative or not a number, or whose
    direction matrix is singular (SimpleITK refuses some of these with a cryptic message
    and silently replaces others with 1 mm and the identity)."""
    if path.suffix.lower() not in (".mhd", ".mha"):
        return
    header = dict(_text_header(path))
    if header.get("ndims", "3").strip() != "3":
        return  # not a volume: read_volume says so after reading
    for key in ("elementspacing", "elementsize"):
        if key in header:
            values = _floats(header[key])
            if values is None or any(not math.isfinite(v) or v <= 0 for v in values):
                raise ImageReadError(
                    f"{path}: ElementSpacing {header[key]!r} is not a valid "
                    "voxel size (three finite numbers > 0)."
                )
            break
    for key in ("transformmatrix", "rotation", "orientation"):
        if key in header:
            values = _floats(header[key])
            if (
                values is None
                or len(values) != 9
                or not np.all(np.isfinite(values))
                or abs(np.linalg.det(np.reshape(values, (3, 3)))) < 1e-6
            ):
                raise ImageReadError(
                    f"{path}: TransformMatrix {header[key]!r} is not a valid "
                    "direction (nine finite numbers, an invertible matrix)."
                )
            break


def _floats(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        return None


def _warn_substituted(path: Path, what: str, used: str) -> None:
    warnings.warn(
        f"{path}: {what} is not valid geometry; the volume is read with {used} "
        "instead, so world coordinates from it are not the scanner's.",
        ImageReadWarning,
        stacklevel=4,
    )


def check_nifti(path: Path) -> None:
    """Refuse a ``.nii``/``.nii.gz`` whose voxel data is shorter than its header says
    (SimpleITK zero-fills it) or holds NaN/inf voxels (SimpleITK reads them as 0); warn
    when its voxel size is zero or not a number (SimpleITK uses 1)."""
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(540)
            layout = _nifti_layout(head, path)
            if layout is None:
                return  # not a NIfTI header: SimpleITK says what is wrong
            offset, count, code, endian, pixdim = layout
            if offset <= len(head):
                data = head[offset:]
            else:
                fh.seek(offset)
                data = b""
            data += fh.read(max(count - len(data), 0))
            while name.endswith(".gz") and fh.read(1 << 20):
                pass  # to the end of the stream, so a cut-off gzip trailer is noticed too
    except (OSError, EOFError, zlib.error) as err:
        raise ImageReadError(f"{path}: truncated or corrupt compressed NIfTI ({err}).") from err
    if len(data) < count:
        raise ImageReadError(
            f"{path}: truncated NIfTI: the header describes {count} bytes of "
            f"voxel data, the file holds {len(data)}."
        )
    if code in _NIFTI_FLOATS:
        voxels = np.frombuffer(data[:count], dtype=endian + _NIFTI_FLOATS[code])
        bad = int((~np.isfinite(voxels)).sum())
        if bad:
            raise ImageReadError(f"{path}: the volume contains {bad} NaN or infinite voxels.")
    if any(not math.isfinite(v) or v == 0 for v in pixdim):
        _warn_substituted(path, f"voxel size (pixdim) {tuple(pixdim)}", "spacing 1 mm")


def _nifti_layout(head: bytes, path: Path) -> tuple[int, int, int, str, list[float]] | None:
    """(voxel offset, voxel bytes, datatype code, byte order, pixdim x/y/z) of a NIfTI-1 or
    NIfTI-2 header, or ``None`` when ``head`` is not one."""
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            code, bitpix = struct.unpack(endian + "2h", head[70:74])
            pixdim = list(struct.unpack(endian + "8f", head[76:108]))
            raw_offset = struct.unpack(endian + "f", head[108:112])[0]
            if not math.isfinite(raw_offset):
                raise ImageReadError(f"{path}: invalid NIfTI header (vox_offset {raw_offset}).")
            offset = max(int(raw_offset), 352)
            break
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            code, bitpix = struct.unpack(endian + "2h", head[12:16])
            dims = struct.unpack(endian + "8q", head[16:80])
            pixdim = list(struct.unpack(endian + "8d", head[104:168]))
            offset = max(int(struct.unpack(endian + "q", head[168:176])[0]), 544)
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]) or bitpix <= 0:
        raise ImageReadError(f"{path}: invalid NIfTI header (dim {dims}, bitpix {bitpix}).")
    if code in _NIFTI_FLOATS and bitpix != 8 * int(_NIFTI_FLOATS[code][1]):
        raise ImageReadError(
            f"{path}: invalid NIfTI header (datatype {code} with bitpix {bitpix})."
        )
    count = math.prod(dims[1 : ndim + 1]) * bitpix // 8
    if count > 1 << 40:
        raise ImageReadError(f"{path}: invalid NIfTI header (claims {count} bytes of voxels).")
    return offset, count, code, endian, pixdim[1 : min(ndim, 3) + 1]
