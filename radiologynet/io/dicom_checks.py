"""Checks on a DICOM file's header against its own pixel data, made before anything is
decoded: the decode budget, PixelData's length against Rows x Columns x frames x samples x
bits, the transfer syntax against the markers of the encapsulated stream, the frame count
against NumberOfFrames, and lookup-table descriptors against their data. pydicom reads
most of these contradictions into a plausible but wrong image, or corrects them with its
own warning; here each one is an :class:`~radiologynet.errors.ImageReadError`."""

from __future__ import annotations

import io
import math
import warnings
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, parse_basic_offsets, parse_fragments
from pydicom.filereader import read_dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from radiologynet.errors import ImageReadError, ImageReadWarning
from radiologynet.io.budget import DecodeBudget, check_decode

__all__ = ["check_before_decoding", "check_deflated"]

_JPEG_SOF = {  # transfer syntax -> the start-of-frame markers its stream may carry
    "1.2.840.10008.1.2.4.50": (0xC0, 0xC1),
    "1.2.840.10008.1.2.4.51": (0xC0, 0xC1),
    "1.2.840.10008.1.2.4.57": (0xC3,),
    "1.2.840.10008.1.2.4.70": (0xC3,),
    "1.2.840.10008.1.2.4.80": (0xF7,),
    "1.2.840.10008.1.2.4.81": (0xF7,),
}
_J2K = {f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203)}
_RLE = "1.2.840.10008.1.2.5"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_HEADER_LIMIT = 64 << 20  # inflated bytes before PixelData in a deflated file


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if isinstance(value, (bytes, bytearray)) or value is None:
        raise ImageReadError(f"{ds.filename}: {keyword} {value!r} is not a number.")
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise ImageReadError(f"{ds.filename}: {keyword} {value!r} is not a number.") from err
    if number < 0:
        raise ImageReadError(f"{ds.filename}: {keyword} {number} is negative.")
    return number


def check_before_decoding(ds: Dataset, path: Path, budget: DecodeBudget) -> None:
    """Every check of this module on a dataset read by pydicom, before its pixel data is
    decoded.

    Raises:
        ImageReadError: over budget, or the header contradicts the pixel data.
    """
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    samples = _int(ds, "SamplesPerPixel", 1)
    keyword = next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds)
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword) or _int(
        ds, "BitsAllocated"
    )
    if bits not in (1, 8, 16, 32, 64):
        raise ImageReadError(f"{path}: BitsAllocated {bits} is not 1, 8, 16, 32 or 64.")
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    encapsulated = tsyntax is not None and tsyntax.is_encapsulated and keyword == "PixelData"
    data = ds[keyword].value
    check_decode(
        path,
        (rows, columns),
        budget,
        frames=frames,
        bytes_per_value=samples * bits / 8,
        stored_bytes=len(data) if encapsulated else None,
    )
    if encapsulated:
        _check_encapsulated(data, str(tsyntax), (rows, columns, frames, samples, bits), path)
    else:
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        per_pixel = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples
        _check_native_length(data, rows * columns * frames * per_pixel, bits, frames, path)
    _check_luts(ds, path)


def _check_native_length(data: bytes, values: int, bits: int, frames: int, path: Path) -> None:
    """PixelData's length against what the header describes: equal (or one byte of
    padding more), or longer by zero bytes of padding, less than a frame, which are
    ignored with an :class:`~radiologynet.errors.ImageReadWarning`; anything else is
    refused (a shorter image, extra frames, a header lying about the size)."""
    length, expected = len(data), math.ceil(values * bits / 8)
    if length in (expected, expected + 1):  # one byte pads odd lengths to even
        return
    frame = max(expected // max(frames, 1), 1)
    if expected < length < expected + frame and not any(data[expected:]):
        warnings.warn(
            f"{path}: the pixel data ends with {length - expected} zero bytes of padding "
            "after the image its header describes; they are ignored.",
            ImageReadWarning,
            stacklevel=6,
        )
        return
    what = "shorter" if length < expected else "longer"
    extra = ""
    if length > expected and (length - expected) % frame == 0:
        extra = f" ({(length - expected) // frame} frames more than NumberOfFrames)"
    raise ImageReadError(
        f"{path}: the pixel data holds {length} bytes, {what} than the {expected} that "
        f"Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated say{extra}; "
        "the header does not describe this image, refused."
    )


def _check_encapsulated(
    data: bytes, tsyntax: str, shape: tuple[int, int, int, int, int], path: Path
) -> None:
    """The stream's frames and markers against the header and transfer syntax."""
    rows, columns, frames, samples, bits = shape
    try:
        fragments = list(generate_fragments(data))[1:]  # the first item is the offset table
        offsets = parse_basic_offsets(data)
        starts = parse_fragments(data)[1][1:]
    except Exception as err:  # noqa: BLE001 - pydicom raises several types on broken items
        raise ImageReadError(f"{path}: broken encapsulated pixel data ({err}).") from err
    if offsets:
        known = {start - starts[0] for start in starts} if starts else set()
        if len(offsets) != frames or offsets[0] != 0 or not set(offsets) <= known:
            raise ImageReadError(
                f"{path}: its Basic Offset Table {offsets[:8]} does not point at the starts "
                f"of {frames} frames in the pixel data; refused."
            )
    if tsyntax in _JPEG_SOF or tsyntax in _J2K or tsyntax == _RLE:
        if fragments:
            _check_frame(fragments[0], tsyntax, (rows, columns, samples, bits), path)
        if tsyntax == _RLE:
            heads = fragments  # one fragment per RLE frame (PS3.5 A.4.2)
        else:
            heads = [f for f in fragments if _starts_frame(f, tsyntax)]
        if len(heads) != frames:
            raise ImageReadError(
                f"{path}: its pixel data holds {len(heads)} frames of {_name(tsyntax)}, "
                f"NumberOfFrames says {frames}; refused."
            )
        for head in heads[-1:]:
            _check_frame(head, tsyntax, (rows, columns, samples, bits), path)


def _name(tsyntax: str) -> str:
    return str(pydicom.uid.UID(tsyntax).name)


def _starts_frame(fragment: bytes, tsyntax: str) -> bool:
    if tsyntax in _JPEG_SOF:
        return fragment[:2] == b"\xff\xd8"
    return fragment[:4] == b"\xff\x4f\xff\x51" or fragment[:12] == _JP2_SIGNATURE


def _check_frame(head: bytes, tsyntax: str, shape: tuple[int, int, int, int], path: Path) -> None:
    """One frame's first fragment: its marker and its own size against the header."""
    rows, columns, samples, bits = shape
    label = _name(tsyntax)
    if tsyntax == _RLE:
        count = int.from_bytes(head[:4], "little") if len(head) >= 64 else 0
        if count != samples * max(bits // 8, 1) or int.from_bytes(head[4:8], "little") != 64:
            raise ImageReadError(
                f"{path}: the pixel data is not an RLE stream of {samples} x {bits // 8} "
                f"segments as {label} and the header say (header {head[:8].hex()}); refused."
            )
        return
    size = _jpeg_size(head, _JPEG_SOF[tsyntax]) if tsyntax in _JPEG_SOF else _j2k_size(head)
    if size is None:
        raise ImageReadError(
            f"{path}: the transfer syntax says {label}, but the pixel data does not start "
            f"like one (it starts {head[:12].hex()}); refused."
        )
    height, width = size
    if (height and height != rows) or width != columns:
        raise ImageReadError(
            f"{path}: the compressed frame is {height} x {width}, the header's Rows x "
            f"Columns say {rows} x {columns}; refused."
        )


def _jpeg_size(stream: bytes, allowed: tuple[int, ...]) -> tuple[int, int] | None:
    """(height, width) from a JPEG stream's start-of-frame, if that marker is allowed."""
    if stream[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(stream) and stream[at] == 0xFF:
        marker = stream[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) or marker == 0xF7:
            if marker not in allowed:
                return None
            return int.from_bytes(stream[at + 5 : at + 7]), int.from_bytes(stream[at + 7 : at + 9])
        at += 2 + int.from_bytes(stream[at + 2 : at + 4])
    return None


def _j2k_size(stream: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG 2000 codestream's SIZ marker (raw or in a JP2 box)."""
    if not (stream[:4] == b"\xff\x4f\xff\x51" or stream[:12] == _JP2_SIGNATURE):
        return None
    at = stream.find(b"\xff\x4f\xff\x51")
    if at < 0 or at + 24 > len(stream):
        return None
    siz = stream[at + 4 :]
    width = int.from_bytes(siz[4:8]) - int.from_bytes(siz[12:16])
    height = int.from_bytes(siz[8:12]) - int.from_bytes(siz[16:20])
    return height, width


def _check_luts(ds: Dataset, path: Path) -> None:
    """Each LUT descriptor's entry count against its LUT data."""
    tables = []
    for sequence in ("ModalityLUTSequence", "VOILUTSequence"):
        for item in ds.get(sequence) or []:
            if "LUTDescriptor" in item and "LUTData" in item:
                tables.append((sequence, item.LUTDescriptor, item["LUTData"], False))
    for colour in ("Red", "Green", "Blue"):
        descriptor = ds.get(f"{colour}PaletteColorLookupTableDescriptor")
        if descriptor is not None and f"{colour}PaletteColorLookupTableData" in ds:
            element = ds[f"{colour}PaletteColorLookupTableData"]
            tables.append((f"{colour} palette", descriptor, element, True))
    for name, descriptor, element, palette in tables:
        try:
            entries, _first, depth = (int(v) for v in descriptor)
        except (TypeError, ValueError) as err:
            raise ImageReadError(
                f"{path}: {name} LUT descriptor {descriptor!r} is invalid."
            ) from err
        entries = entries or 65536
        value = element.value
        count = len(value) // 2 if isinstance(value, (bytes, bytearray)) else len(value or [])
        packed = isinstance(value, (bytes, bytearray)) and len(value) in (entries, entries + 1)
        if count != entries and not ((palette or depth == 8) and packed):
            raise ImageReadError(
                f"{path}: its {name} LUT descriptor says {entries} entries of {depth} bits, "
                f"its LUT data holds {count}; refused."
            )


def check_deflated(path: Path, budget: DecodeBudget) -> None:
    """For a Deflated Explicit VR Little Endian file (pydicom inflates the whole dataset
    at once): inflate it in pieces, read the header before PixelData, check the budget,
    and refuse a stream that inflates to more than the header describes. Other transfer
    syntaxes return at once.

    Raises:
        ImageReadError: over budget, a corrupt stream, or more data than the header says.
    """
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - not DICOM at all: the full read says how
        return
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    # the dataset starts after the preamble, "DICM" and the meta group, whose first
    # element (12 bytes in explicit VR) gives the group's length
    start = 128 + 4 + 12 + _int_of(meta, "FileMetaInformationGroupLength", path)
    header, stream = _inflated_header(path, start)
    ds = read_dataset(
        io.BytesIO(header), False, True, stop_when=lambda tag, vr, length: tag >= 0x7FE00000
    )
    rows, columns = _int_of(ds, "Rows", path), _int_of(ds, "Columns", path)
    frames, samples = (
        _int_of(ds, "NumberOfFrames", path, 1),
        _int_of(ds, "SamplesPerPixel", path, 1),
    )
    bits = _int_of(ds, "BitsAllocated", path, 16)
    stored = path.stat().st_size
    shape = (rows, columns)
    check_decode(
        path,
        shape,
        budget,
        frames=frames or 1,
        bytes_per_value=samples * bits / 8,
        stored_bytes=stored,
    )
    limit = len(header) + math.ceil(rows * columns * (frames or 1) * samples * bits / 8) + (1 << 16)
    if stream(limit) > limit:
        raise ImageReadError(
            f"{path}: its deflated data inflates to more than the {rows} x {columns} x "
            f"{frames or 1} frames its header describes; refused."
        )


def _int_of(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    ds.filename = str(path)
    return _int(ds, keyword, default)


def _inflated_header(path: Path, start: int):  # noqa: ANN202 - (bytes, counter)
    """The inflated bytes up to the PixelData element, and a function that inflates the
    rest, counting, until a limit."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    fh = open(path, "rb")  # noqa: SIM115 - closed by the counter below
    fh.seek(start)
    size = path.stat().st_size
    header = b""
    try:
        while (at := header.find(b"\xe0\x7f\x10\x00")) < 0 and len(header) < _HEADER_LIMIT:
            chunk = fh.read(1 << 16)
            if not chunk and not inflater.unconsumed_tail:
                break
            header += inflater.decompress(inflater.unconsumed_tail + chunk, 1 << 20)
    except zlib.error as err:
        fh.close()
        raise ImageReadError(f"{path}: corrupt deflated DICOM ({err}).") from err
    if at < 0:
        fh.close()
        raise ImageReadError(f"{path}: no pixel data within the first 64 MB of deflated data.")

    def count(limit: int) -> int:
        total = len(header)
        try:
            pending = inflater.unconsumed_tail
            while total <= limit and not inflater.eof:
                pending = pending or fh.read(1 << 20)
                piece = inflater.decompress(pending, 1 << 22)
                pending = inflater.unconsumed_tail
                total += len(piece)
                if not piece and not pending and fh.tell() >= size:
                    break
        except zlib.error as err:
            raise ImageReadError(f"{path}: corrupt deflated DICOM ({err}).") from err
        finally:
            fh.close()
        return total

    return header[:at], count
