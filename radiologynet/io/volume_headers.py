"""Checks on volume headers made before and after SimpleITK reads them, for what SimpleITK
does silently: a MetaImage/NRRD header pointing at data files anywhere on the machine, a
truncated NIfTI zero-filled, NaN voxels in NIfTI read as 0, a MetaImage whose compressed
data is not what its header says, and invalid spacing or direction replaced by 1 and the
identity."""

from __future__ import annotations

import glob
import gzip
import math
import mmap
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from radiologynet.errors import ImageReadError, ImageReadWarning
from radiologynet.io.inputs import regular_file_size

#: NIfTI datatype code -> bytes of one voxel; the float codes are checked for NaN.
_NIFTI_SIZES = {
    2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4,
    1024: 8, 1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4,
}  # fmt: skip
_NIFTI_FLOATS = {16: "f4", 64: "f8"}
_HEADER_LIMIT = 1 << 20  # the geometry and compression fields of a MetaImage header
#: A data-file key as ITK's MetaIO (``ElementDataFile``, ``=`` or ``:``) or teem's NRRD
#: (``data file:``, ``datafile:``) spell it, in any case, anywhere in the file: matching
#: more than either parser does is what makes the check impossible to spell around.
_DATA_KEY = re.compile(rb"(elementdatafile|data[ \t]*file)[ \t]*[=:]", re.IGNORECASE)
_SEPARATORS = re.compile(rb"[=:\s]*")
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
#: The one printf conversion a file pattern may hold (an integer: digits and a sign only).
_CONVERSION = re.compile(r"%[-+ 0]*\d*[diu]")
_LOCAL = ("LOCAL", "Local", "local")  # MetaIO's spellings of "the data follows"
_MAX_NAMES = 100_000
_VALUE_LIMIT = 8192


def _text_header(path: Path) -> list[tuple[str, str]]:
    """``key = value`` or ``key: value`` lines (ITK accepts either separator in MetaImage
    headers; CR, LF and CRLF all end a line) up to MetaImage's data key."""
    with open(path, "rb") as fh:
        raw = fh.read(_HEADER_LIMIT).decode("latin-1")
    lines: list[tuple[str, str]] = []
    for line in _LINE_ENDS.split(raw):
        at = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if at < 0:
            continue
        key, value = line[:at].strip().lower(), line[at:].lstrip("=: \t").strip()
        lines.append((key, value))
        if key == "elementdatafile":
            break  # MetaImage: the data follows
    return lines


def data_files(path: Path) -> list[str]:
    """Every file name a MetaImage (``ElementDataFile``) or NRRD (``data file``) header
    could make SimpleITK read: each value of a data key anywhere in the file, read both up
    to a CR and up to an LF; the names listed after ``LIST``; and for a printf pattern
    (``slice%03d.raw 1 10 1``) every existing file it can name. ``[]`` when the data is
    inside the header file.

    Raises:
        ImageReadError: a pattern with anything but one integer conversion (SimpleITK
            hands it to ``sprintf``), or a list of more than 100,000 names.
    """
    if regular_file_size(path) == 0:
        return []
    names: list[str] = []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for match in _DATA_KEY.finditer(mm):  # type: ignore[call-overload]
            start = _SEPARATORS.match(mm, match.end()).end()  # type: ignore[call-overload, union-attr]
            raw = bytes(mm[start : start + _VALUE_LIMIT])
            line_feed = raw.split(b"\n", 1)[0]
            first_line = re.split(rb"[\r\n]", raw, maxsplit=1)[0]
            for value in {line_feed.strip(), first_line.strip()}:
                text = value.decode("latin-1")
                # a LIST's names: every line after the first line end of any kind
                names.extend(_names_of(path, text, mm, start + len(first_line)))
    return names


def _names_of(path: Path, value: str, mm: mmap.mmap, after: int) -> list[str]:
    """The file names one data-key value stands for (see :func:`data_files`)."""
    if not value or value in _LOCAL:
        return []
    if value.upper().startswith("LIST"):
        rest = bytes(mm[after : after + _MAX_NAMES * 256]).decode("latin-1")
        listed = [name.strip() for name in _LINE_ENDS.split(rest) if name.strip()]
        if len(listed) > _MAX_NAMES:
            raise ImageReadError(f"{path}: its data-file LIST names over {_MAX_NAMES} files.")
        return [value, *listed]
    if "%" in value:
        return [value, *_pattern_matches(path, value.split()[0])]
    return [value]


def _pattern_matches(path: Path, pattern: str) -> list[str]:
    """The existing files a printf file pattern can name, whatever its number range."""
    literal = pattern.replace("%%", "\0")
    conversions = _CONVERSION.findall(literal)
    if len(conversions) != 1 or "%" in _CONVERSION.sub("", literal):
        raise ImageReadError(
            f"{path}: data-file pattern {pattern!r} must hold exactly one integer "
            "conversion such as %03d; refused."
        )
    parts = [p.replace("\0", "%") for p in _CONVERSION.split(literal)]
    folder = str(Path(path).absolute().parent)
    wildcard = os.path.join(folder, glob.escape(parts[0]) + "*" + glob.escape(parts[1]))
    shape = re.compile(re.escape(parts[0]) + r"[-+ ]*\d+" + re.escape(parts[1]) + "$")
    found = []
    for name in glob.iglob(wildcard):
        if shape.search(name):
            found.append(name)  # as globbed: "folder/link/../x" resolves as the OS does
        if len(found) > _MAX_NAMES:
            raise ImageReadError(f"{path}: its data-file pattern names over {_MAX_NAMES} files.")
    return found


def nifti_data_files(path: Path) -> list[str]:
    """The image files of a NIfTI/Analyze ``.hdr``/``.img`` pair that the header ``path``
    names implicitly (the same stem), in every spelling NIfTI's library tries."""
    name = path.name
    lower = name.lower()
    for suffix in (".hdr", ".img", ".hdr.gz", ".img.gz"):
        if lower.endswith(suffix):
            stem = name[: -len(suffix)]
            return [stem + s for s in (".img", ".img.gz", ".IMG", ".IMG.gz", ".hdr", ".HDR")]
    return []


def check_data_files(path: Path, allow_outside_data: bool) -> list[Path]:
    """Refuse a header whose data files lie outside the header's folder (``..``, an
    absolute path, a link leading out, a pattern or list naming one) unless
    ``allow_outside_data``, or are not regular files (a FIFO would block the read).

    Returns:
        The header and the existing data files, each once, resolved.
    """
    folder = Path(path).absolute().parent
    real_folder = folder.resolve()
    files = {Path(path).resolve()}
    names = data_files(path) + nifti_data_files(path)
    for name in dict.fromkeys(names):
        target = folder / name
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError) as err:  # a loop of links
            raise ImageReadError(
                f"{path}: its data file {name!r} cannot be resolved ({err})."
            ) from err
        if not allow_outside_data and not resolved.is_relative_to(real_folder):
            raise ImageReadError(
                f"{path}: its header reads voxel data from {name!r}, outside the header's "
                f"folder {real_folder}; refused. If that file is really the volume's data, "
                "pass allow_outside_data=True."
            )
        if os.path.lexists(target) and resolved.exists():
            regular_file_size(resolved, f"data file of {path.name}")
            files.add(resolved)
    return sorted(files)


#: The longest NRRD header line passed to teem: on a line of about 1,000 characters it
#: cannot parse, teem (SimpleITK's NRRD reader) overflows its error message and the
#: process dies of a segmentation fault.
_NRRD_LINE_LIMIT = 512


def check_nrrd_lines(path: Path) -> None:
    """Refuse a NRRD header (``.nrrd`` up to its blank line, ``.nhdr`` whole) holding a
    line other than a comment longer than 512 characters, which crashes teem."""
    if path.suffix.lower() not in (".nrrd", ".nhdr"):
        return
    with open(path, "rb") as fh:
        raw = fh.read(_HEADER_LIMIT * 16)
    text = raw.decode("latin-1")
    for number, line in enumerate(_LINE_ENDS.split(text), start=1):
        if not line and path.suffix.lower() == ".nrrd":
            return  # the blank line: the data follows
        if len(line) > _NRRD_LINE_LIMIT and not line.startswith("#"):
            raise ImageReadError(
                f"{path}: header line {number} is {len(line)} characters long (at most "
                f"{_NRRD_LINE_LIMIT}); refused, since SimpleITK's NRRD reader crashes the "
                "process on such lines."
            )
    if len(raw) == len(text) == _HEADER_LIMIT * 16 and path.suffix.lower() == ".nhdr":
        raise ImageReadError(f"{path}: a detached NRRD header over 16 MB; refused.")


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


def _nifti_pair(path: Path) -> tuple[Path, Path] | None:
    """(header file, voxel file) of a NIfTI volume: the same file for ``.nii``/``.nii.gz``,
    the ``.hdr`` and ``.img`` of a pair; ``None`` for other files."""
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return path, path
    if not lower.endswith((".hdr", ".img", ".hdr.gz", ".img.gz")):
        return None
    siblings = [path.parent / name for name in nifti_data_files(path)]
    headers = [p for p in siblings if p.name.lower().endswith(".hdr") and p.exists()]
    images = [p for p in siblings if p.name.lower().endswith((".img", ".img.gz")) and p.exists()]
    if not headers or not images:
        raise ImageReadError(f"{path}: a NIfTI/Analyze pair needs both its .hdr and .img files.")
    return headers[0], images[0]


def check_nifti(path: Path) -> None:
    """Refuse a NIfTI volume (``.nii``, ``.nii.gz`` or a ``.hdr``/``.img`` pair) whose voxel
    data is shorter than its header says (SimpleITK zero-fills it), holds NaN/inf voxels
    (SimpleITK reads them as 0), or whose header contradicts itself (``bitpix`` against
    the datatype, a ``vox_offset`` inside the header of a single file); warn when its
    voxel size is zero or not a number (SimpleITK uses 1)."""
    pair = _nifti_pair(path)
    if pair is None:
        return
    header_path, data_path = pair
    with _open_maybe_gzip(header_path) as fh:
        layout = _nifti_layout(fh.read(540), path, single=header_path == data_path)
    if layout is None:
        return  # not a NIfTI header: SimpleITK says what is wrong
    offset, count, code, endian, pixdim = layout
    data = _nifti_voxel_bytes(path, data_path, offset, count)
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


def _open_maybe_gzip(path: Path):  # noqa: ANN202 - a binary file object either way
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _nifti_voxel_bytes(path: Path, data_path: Path, offset: int, count: int) -> bytes:
    """Up to ``count`` bytes of ``data_path`` from ``offset``; a gzip stream is read to
    its end, so that a cut-off trailer is noticed too."""
    try:
        with _open_maybe_gzip(data_path) as fh:
            fh.seek(offset)
            data = fh.read(count)
            while data_path.name.lower().endswith(".gz") and fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as err:
        raise ImageReadError(f"{path}: truncated or corrupt compressed NIfTI ({err}).") from err
    return data


def _nifti_layout(
    head: bytes, path: Path, single: bool
) -> tuple[int, int, int, str, list[float]] | None:
    """(voxel offset, voxel bytes, datatype code, byte order, pixdim x/y/z) of a NIfTI-1,
    NIfTI-2 or Analyze header, or ``None`` when ``head`` is not one."""
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            code, bitpix = struct.unpack(endian + "2h", head[70:74])
            pixdim = list(struct.unpack(endian + "8f", head[76:108]))
            raw_offset, minimum = struct.unpack(endian + "f", head[108:112])[0], 352
            break
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            code, bitpix = struct.unpack(endian + "2h", head[12:16])
            dims = struct.unpack(endian + "8q", head[16:80])
            pixdim = list(struct.unpack(endian + "8d", head[104:168]))
            raw_offset, minimum = struct.unpack(endian + "q", head[168:176])[0], 544
            break
    else:
        return None
    if not math.isfinite(raw_offset) or raw_offset < (minimum if single else 0):
        raise ImageReadError(
            f"{path}: invalid NIfTI header (vox_offset {raw_offset}; the voxels of a "
            f"single-file NIfTI start at byte {minimum} or later, after the header)."
        )
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]):
        raise ImageReadError(f"{path}: invalid NIfTI header (dim {dims}).")
    size = _NIFTI_SIZES.get(code)
    if size is None or bitpix != 8 * size:
        raise ImageReadError(
            f"{path}: invalid NIfTI header (datatype {code} with bitpix {bitpix}; "
            + ("an unknown datatype)." if size is None else f"the datatype has {8 * size}).")
        )
    count = math.prod(dims[1 : ndim + 1]) * size
    if count > 1 << 40:
        raise ImageReadError(f"{path}: invalid NIfTI header (claims {count} bytes of voxels).")
    return int(raw_offset), count, code, endian, pixdim[1 : min(ndim, 3) + 1]


def check_metaimage_data(path: Path, expected_bytes: int) -> None:
    """Refuse a compressed MetaImage whose ``CompressedDataSize`` is not the size of its
    compressed data, or whose data does not inflate to exactly ``expected_bytes`` (the
    voxels its header declares): SimpleITK reads a short or lying stream into garbage.
    The stream is inflated in pieces and abandoned as soon as it overflows, so a
    decompression bomb costs no memory."""
    if path.suffix.lower() not in (".mhd", ".mha"):
        return
    header = dict(_text_header(path))
    if header.get("compresseddata", "false").strip().lower() not in ("true", "1"):
        return
    source = header.get("elementdatafile", "")
    if source in _LOCAL:
        start = _local_data_offset(path)
        data_path = path
    elif source and "%" not in source and not source.upper().startswith("LIST"):
        start, data_path = 0, path.absolute().parent / source
    else:
        return  # a pattern or list of compressed slices: SimpleITK checks each slice
    stored = regular_file_size(data_path) - start
    declared = header.get("compresseddatasize")
    if declared is not None and declared.strip() != str(stored):
        raise ImageReadError(
            f"{path}: CompressedDataSize {declared.strip()} is not the {stored} bytes of "
            "compressed data the file holds; refused (SimpleITK would decode garbage)."
        )
    inflated = _inflated_size(path, data_path, start, expected_bytes)
    if inflated != expected_bytes:
        raise ImageReadError(
            f"{path}: its compressed data inflates to {inflated} bytes, the header's "
            f"DimSize and ElementType say {expected_bytes}; refused."
        )


def _local_data_offset(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_LIMIT)
    match = re.search(rb"elementdatafile[ \t]*[=:][^\n]*\n", head, re.IGNORECASE)
    if match is None:
        raise ImageReadError(f"{path}: cannot find where its compressed data starts.")
    return match.end()


def _inflated_size(path: Path, data_path: Path, start: int, limit: int) -> int:
    """How many bytes the zlib stream of ``data_path`` from ``start`` inflates to, counted
    piece by piece and stopped once over ``limit``."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
    total = 0
    try:
        with open(data_path, "rb") as fh:
            fh.seek(start)
            pending = b""
            while total <= limit and not inflater.eof:
                if not pending:
                    pending = fh.read(1 << 20)
                piece = inflater.decompress(pending, 1 << 22)
                pending = inflater.unconsumed_tail
                total += len(piece)
                if not piece and not pending and fh.tell() >= os.fstat(fh.fileno()).st_size:
                    break  # input exhausted and nothing more comes out
    except zlib.error as err:
        raise ImageReadError(f"{path}: corrupt compressed voxel data ({err}).") from err
    if total <= limit and not inflater.eof:
        raise ImageReadError(f"{path}: its compressed voxel data is cut off.")
    return total
