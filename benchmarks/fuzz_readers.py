"""Fuzz campaign over the readers: mutated DICOM, PNG and NIfTI files, counted by outcome.

Each case takes a fabricated valid file (several DICOM, PNG and NIfTI variants), applies
one or more mutations (truncation, byte flips, inserted or zeroed runs, and structure-aware
edits of DICOM tags, PNG IHDR fields and NIfTI header fields) and reads it the way training
does: ``read_image`` + ``to_radiologynet_uint8`` for 2-D files, ``read_volume`` for NIfTI.

Outcomes:
    ok            read, no warning
    warned        read, with an ImageReadWarning (a header part ignored or corrected)
    refused       ImageReadError naming the file
    escaped       any other exception (a bug: the readers promise ImageReadError only)
    unnamed       an ImageReadError whose message does not name the file (a bug)
    blank         a constant output from a non-constant input without a warning (a bug)

``tests/test_fuzz_readers.py`` runs a few hundred cases of this per test run.

The ``bombs`` campaign fabricates small files that claim huge images (a 1 MB deflated
DICOM of 16384 x 16384 pixels, an APNG of a hundred 6000 x 6000 frames, gzip volumes of
a billion voxels, ...: the table of issue 23) and reads each in a child process under a
memory cap, recording its peak resident memory (``ru_maxrss``):

    refused   ImageReadError naming the file, peak memory under --rss-limit
    resource  over --rss-limit, out of memory or killed (the bomb went off)
    read      decoded without an error (a bomb read whole)
    escaped   any other exception

    python benchmarks/fuzz_readers.py [--cases 5000] [--seed N] [--show 5]
    python benchmarks/fuzz_readers.py --bombs [--memory-cap-mb 4096] [--rss-limit-mb 400]
    python benchmarks/fuzz_readers.py --headers

The ``headers`` campaign writes MetaImage and NRRD headers in every combination of the
spellings ITK's MetaIO and teem's NRRD reader accept (separator, key case, line endings,
padding) and of the ways a data file can lie outside the header's folder (``../``, an
absolute path, a link, a ``%d`` pattern through a link, a ``LIST``), reads each in a
forked process, and counts the reads that return the outside file's bytes (``escaped``)
and those that kill the process (``crashed``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUTCOMES = ("ok", "warned", "refused", "escaped", "unnamed", "blank")
BUGS = ("escaped", "unnamed", "blank")


# --- seeds: valid files ------------------------------------------------------------------


def _dicom_seeds(folder: Path) -> list[Path]:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, RLELossless

    def write(
        name: str,
        pixels: np.ndarray,
        photometric: str = "MONOCHROME2",
        compress: str | None = None,
        **tags: object,
    ) -> Path:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.Modality = "CT"
        ds.set_pixel_data(pixels, photometric, 8 if pixels.dtype.itemsize == 1 else 12)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        if compress is not None:
            ds.compress(compress)
        ds.save_as(folder / name, enforce_file_format=True)
        return folder / name

    ramp = np.linspace(0, 4000, 24 * 20).reshape(24, 20).astype(np.uint16)
    lut = Dataset()
    lut.add_new(0x00283002, "US", [256, 0, 8])
    lut.add_new(0x00283006, "OW", np.arange(255, -1, -1, dtype="<u2").tobytes())
    colour = np.stack([ramp % 256, (ramp // 16) % 256, ramp[::-1] % 256], -1).astype(np.uint8)
    return [
        write(
            "ct.dcm", ramp, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400
        ),
        write("mono1.dcm", (ramp // 16).astype(np.uint8), "MONOCHROME1"),
        write("rgb.dcm", colour, "RGB"),
        write("frames.dcm", np.stack([ramp, ramp // 2, ramp // 3]), NumberOfFrames=3),
        write("lut.dcm", (ramp % 256).astype(np.uint16), VOILUTSequence=pydicom.Sequence([lut])),
        write("rle.dcm", ramp, compress=RLELossless),
    ]


def _png_seeds(folder: Path) -> list[Path]:
    from PIL import Image as PILImage

    ramp = np.linspace(0, 60000, 24 * 20).reshape(24, 20).astype(np.uint16)
    out = []
    for name, array in (
        ("gray8.png", (ramp // 256).astype(np.uint8)),
        ("gray16.png", ramp),
        ("rgb.png", np.stack([ramp // 256] * 3, -1).astype(np.uint8)),
    ):
        PILImage.fromarray(array).save(folder / name)
        out.append(folder / name)
    PILImage.fromarray((ramp // 256).astype(np.uint8)).convert("P").save(folder / "pal.png")
    return out + [folder / "pal.png"]


def _nifti_seeds(folder: Path) -> list[Path]:
    import nibabel as nib

    data = np.linspace(-5, 5, 9 * 8 * 7).reshape(9, 8, 7).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([0.7, 0.8, 2.5, 1])), folder / "f32.nii")
    nib.save(nib.Nifti1Image((data * 100).astype(np.int16), np.eye(4)), folder / "i16.nii.gz")
    return [folder / "f32.nii", folder / "i16.nii.gz"]


def make_seeds(folder: Path) -> dict[str, list[Path]]:
    """Valid files to mutate, by kind (``dicom``, ``png``, ``nifti``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"dicom": _dicom_seeds(folder), "png": _png_seeds(folder), "nifti": _nifti_seeds(folder)}


# --- mutations ---------------------------------------------------------------------------


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[at:]


def _fill(data: bytes, rng: random.Random) -> bytes:
    at, size = rng.randrange(len(data)), rng.randint(1, 64)
    value = rng.choice((0, 0xFF, rng.randrange(256)))
    return data[:at] + bytes([value]) * min(size, len(data) - at) + data[at + size :]


_HOSTILE_DICOM: dict[str, tuple[object, ...]] = {
    "Rows": (0, 1, 65535),
    "Columns": (0, 1, 65535),
    "BitsAllocated": (1, 8, 12, 32, 64),
    "BitsStored": (0, 1, 4, 17, 33),
    "HighBit": (0, 31),
    "SamplesPerPixel": (0, 2, 3, 4),
    "PixelRepresentation": (1, 2),
    "PlanarConfiguration": (1, 7),
    "NumberOfFrames": (0, 2, 999),
    "PhotometricInterpretation": ("RGB", "MONOCHROME1", "YBR_FULL", "PALETTE COLOR", "HSV", ""),
    "WindowCenter": ("NaN", "inf", "-1e308", "", "1e9"),
    "WindowWidth": ("NaN", "0", "-5", ""),
    "RescaleSlope": ("0", "NaN", "inf", "-1"),
    "RescaleIntercept": ("NaN", "1e308"),
    "VOILUTFunction": ("SIGMOID", "BANANA"),
    "VOILUTSequence": ("empty",),
}


def _dicom_tag(data: bytes, rng: random.Random) -> bytes:
    import io

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for _ in range(rng.randint(1, 3)):
            keyword = rng.choice(sorted(_HOSTILE_DICOM))
            value = rng.choice(_HOSTILE_DICOM[keyword])
            if keyword == "VOILUTSequence":
                value = pydicom.Sequence([pydicom.Dataset()])
            setattr(ds, keyword, value)
        out = io.BytesIO()
        ds.save_as(out)
    return out.getvalue()


def _png_ihdr(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return _flip(data, rng)
    fields = list(struct.unpack(">IIBBBBB", data[16:29]))
    index = rng.randrange(7)
    fields[index] = rng.choice((0, 1, 3, 7, 16, 255, 60000, 2**31 - 1))
    fields[index] &= 0xFFFFFFFF if index < 2 else 0xFF
    body = b"IHDR" + struct.pack(">IIBBBBB", *fields)
    return data[:12] + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF) + data[33:]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    chunks, at = [], 8
    while at + 12 <= len(data):
        (size,) = struct.unpack(">I", data[at : at + 4])
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + size]))
        at += 12 + size
    return chunks if chunks and chunks[0][0] == b"IHDR" else None


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body
        out += struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return out


def _png_pixels(data: bytes, rng: random.Random) -> bytes:
    """Edit the decompressed scanlines (filter bytes included) and the EXIF orientation,
    with valid CRCs, so the decoder itself is exercised rather than the CRC check."""
    chunks = _png_chunks(data)
    if chunks is None:
        return _flip(data, rng)
    if rng.random() < 0.3:
        exif = (
            b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01"
            + struct.pack(">H", rng.randrange(65536))
            + b"\x00\x00\x00\x00\x00\x00"
        )
        return _png_join(chunks[:1] + [(b"eXIf", exif)] + chunks[1:])
    try:
        raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    except zlib.error:
        return _flip(data, rng)
    raw = rng.choice((_flip, _truncate, _insert, _fill))(raw, rng) if raw else raw
    idat = (b"IDAT", zlib.compress(raw))
    rest = [c for c in chunks if c[0] != b"IDAT"]
    return _png_join(rest[:-1] + [idat] + rest[-1:])


# NIfTI-1 header fields: (offset, struct format, hostile values)
_NIFTI_FIELDS = (
    (40, "h", (0, 2, 3, 8, -1)),
    (42, "h", (0, 1, -3, 32767)),
    (44, "h", (0, 1, 32767)),
    (70, "h", (0, 2, 4, 16, 64, 128, 511, 1536)),
    (72, "h", (0, 1, 8, 64, 7)),
    (80, "f", (0.0, float("nan"), float("inf"), -1.0)),
    (84, "f", (0.0, float("nan"))),
    (108, "f", (0.0, 348.0, 1e9, float("nan"))),
    (112, "f", (0.0, float("nan"), 1e30)),
    (252, "h", (0, 1, 2, 9)),
    (254, "h", (0, 1, 2, 9)),
)


def _nifti_field(data: bytes, rng: random.Random, gz: bool) -> bytes:
    raw = bytearray(gzip.decompress(data) if gz else data)
    offset, fmt, values = rng.choice(_NIFTI_FIELDS)
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack("<" + fmt, rng.choice(values))
    return gzip.compress(bytes(raw), compresslevel=1) if gz else bytes(raw)


def mutate(kind: str, seed_path: Path, rng: random.Random) -> bytes:
    """One mutated copy of ``seed_path``'s bytes."""
    data = seed_path.read_bytes()
    gz = seed_path.name.endswith(".gz")
    generic: list[Callable[[bytes, random.Random], bytes]] = [_truncate, _flip, _insert, _fill]
    for _ in range(rng.choice((1, 1, 1, 2))):
        if not data:
            break  # an empty file is a case of its own
        roll = rng.random()
        if kind == "dicom" and roll < 0.45:
            try:
                data = _dicom_tag(data, rng)
            except Exception:  # noqa: BLE001 - a file too broken to edit: flip bytes instead
                data = _flip(data, rng)
        elif kind == "png" and roll < 0.2:
            data = _png_ihdr(data, rng)
        elif kind == "png" and roll < 0.55:
            data = _png_pixels(data, rng)
        elif kind == "nifti" and roll < 0.5:
            try:
                data = _nifti_field(data, rng, gz)
            except (OSError, EOFError, zlib.error):
                data = _flip(data, rng)
        elif len(data) > 1:
            data = rng.choice(generic)(data, rng)
    return data


# --- running one case --------------------------------------------------------------------


@dataclass
class Case:
    """One fuzz case's result."""

    kind: str
    seed_file: str
    outcome: str
    detail: str


def read_case(kind: str, path: Path) -> Case:
    """Read ``path`` as training does and classify the outcome."""
    from radiologynet import io
    from radiologynet.errors import ImageReadError, ImageReadWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if kind == "nifti":
                volume = io.read_volume(path)
                values, out = volume.array, volume.array
            else:
                image = io.read_image(path)
                values, out = image.pixels, io.to_radiologynet_uint8(image)
        except ImageReadError as err:
            named = path.name in str(err)
            return Case(kind, "", "refused" if named else "unnamed", str(err)[:200])
        except Exception as err:  # noqa: BLE001 - exactly what the campaign counts
            return Case(kind, "", "escaped", f"{type(err).__name__}: {err}"[:200])
    warned = any(issubclass(w.category, ImageReadWarning) for w in caught)
    blank = out.size > 1 and out.min() == out.max() and values.min() != values.max()
    if blank and not warned:
        detail = f"constant {out.flat[0]} from {values.min()}..{values.max()}"
        return Case(kind, "", "blank", detail)
    return Case(kind, "", "warned" if warned else "ok", "")


def run_campaign(cases: int, seed: int, folder: Path) -> list[Case]:
    """``cases`` mutated files spread evenly over the kinds, reproducible from ``seed``."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's stderr chatter on odd headers
    seeds = make_seeds(folder / "seeds")
    rng = random.Random(seed)
    kinds = sorted(seeds)
    results = []
    for index in range(cases):
        kind = kinds[index % len(kinds)]
        seed_path = rng.choice(seeds[kind])
        suffix = ".nii.gz" if seed_path.name.endswith(".gz") else seed_path.suffix
        path = folder / f"case{index}{suffix}"
        path.write_bytes(mutate(kind, seed_path, rng))
        case = read_case(kind, path)
        case.seed_file = seed_path.name
        results.append(case)
        path.unlink()
    return results


def summary(results: list[Case]) -> str:
    """A table of outcome counts per kind."""
    kinds = sorted({c.kind for c in results})
    counts = Counter((c.kind, c.outcome) for c in results)
    lines = [f"{'kind':<7}" + "".join(f"{o:>9}" for o in OUTCOMES) + f"{'total':>9}"]
    for kind in kinds + ["all"]:
        row = [
            sum(v for (k, o), v in counts.items() if o == outcome and kind in (k, "all"))
            for outcome in OUTCOMES
        ]
        lines.append(f"{kind:<7}" + "".join(f"{n:>9}" for n in row) + f"{sum(row):>9}")
    return "\n".join(lines)


# --- bombs: small files claiming huge images -------------------------------------------


def _deflate(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` then ``zeros`` zero bytes, made without holding
    the zeros: one compressed MiB of zeros, closed by a full flush (so it needs nothing
    before it), repeated."""
    mib = 1 << 20
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)]
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = block.compress(bytes(mib)) + block.flush(zlib.Z_FULL_FLUSH)
    out.append(one * (zeros // mib))
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out.append(tail.compress(bytes(zeros % mib)) + tail.flush())
    return b"".join(out)


def _zlib_zeros(zeros: int) -> bytes:
    adler = ((zeros % 65521) << 16) | 1  # Adler-32 of n zero bytes: a = 1, b = n
    return b"\x78\xda" + _deflate(b"", zeros) + struct.pack(">I", adler)


def _gzip(prefix: bytes, zeros: int) -> bytes:
    crc = zlib.crc32(prefix)
    chunk = bytes(1 << 24)
    for _ in range(zeros // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(bytes(zeros % len(chunk)), crc)
    size = (len(prefix) + zeros) & 0xFFFFFFFF
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        + _deflate(prefix, zeros)
        + struct.pack("<II", crc, size)
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(path: Path, width: int, height: int, frames: int = 1, colour: int = 2) -> Path:
    """A PNG (an APNG when ``frames`` > 1) of black pixels, ``colour`` 0 grey / 2 RGB."""
    samples = 3 if colour == 2 else 1
    idat = _zlib_zeros(height * (1 + width * samples))
    out = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)),
    ]
    if frames > 1:
        out.append(_chunk(b"acTL", struct.pack(">II", frames, 0)))
    sequence = 0
    for index in range(frames):
        if frames > 1:
            control = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 1, 10, 0, 0)
            out.append(_chunk(b"fcTL", control))
            sequence += 1
        if index == 0:
            out.append(_chunk(b"IDAT", idat))
        else:
            out.append(_chunk(b"fdAT", struct.pack(">I", sequence) + idat))
            sequence += 1
    out.append(_chunk(b"IEND", b""))
    path.write_bytes(b"".join(out))
    return path


def _tiff_bomb(path: Path, width: int, height: int, pages: int) -> Path:
    """A grey TIFF of ``pages`` deflated pages that all share one strip of zeros."""
    strip = _zlib_zeros(width * height)
    entries = 9
    ifd_size = 2 + 12 * entries + 4
    first_ifd = 8 + len(strip)
    out = [b"II*\x00" + struct.pack("<I", first_ifd), strip]
    for page in range(pages):
        at = first_ifd + page * ifd_size
        following = at + ifd_size if page + 1 < pages else 0
        tags = [
            (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
            (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, len(strip)),
        ]  # fmt: skip
        body = struct.pack("<H", entries)
        for tag, kind, value in tags:
            body += struct.pack("<HHI", tag, kind, 1) + struct.pack(
                "<I" if kind == 4 else "<HH", *((value,) if kind == 4 else (value, 0))
            )
        out.append(body + struct.pack("<I", following))
    path.write_bytes(b"".join(out))
    return path


def _dicom_header(rows: int, columns: int, frames: int, tsyntax: str) -> tuple[bytes, bytes]:
    """(preamble + file meta, the dataset before PixelData in explicit VR little endian)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import CTImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = tsyntax
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SamplesPerPixel, ds.PhotometricInterpretation = "CT", 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored = rows, columns, 16, 12
    ds.HighBit, ds.PixelRepresentation = 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    return head.getvalue(), body.getvalue()


def _deflated_dicom_bomb(path: Path, rows: int, columns: int, frames: int = 1) -> Path:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    head, body = _dicom_header(rows, columns, frames, DeflatedExplicitVRLittleEndian)
    size = rows * columns * frames * 2
    pixel_header = b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", size)
    path.write_bytes(head + _deflate(body + pixel_header, size))
    return path


def _rle_dicom_bomb(path: Path, rows: int, columns: int, frames: int) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    segment = b"\x81\x00" * (rows * columns // 128)  # runs of 128 zero bytes
    frame = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13)) + segment * 2
    head, body = _dicom_header(rows, columns, frames, RLELossless)
    pixels = encapsulate([frame] * frames)
    pixel_header = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
    delimiter = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # the end of the fragments
    path.write_bytes(head + body + pixel_header + pixels + delimiter)
    return path


def _metaimage_bomb(path: Path, shape: tuple[int, int, int], element: str = "MET_FLOAT") -> Path:
    size = math.prod(shape) * {"MET_FLOAT": 4, "MET_UCHAR": 1}[element]
    data = _zlib_zeros(size)
    dims = " ".join(str(n) for n in reversed(shape))
    header = (
        f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = {element}\n"
        f"CompressedData = True\nCompressedDataSize = {len(data)}\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + data)
    return path


def _nrrd_bomb(path: Path, shape: tuple[int, int, int], kind: str = "float") -> Path:
    size = math.prod(shape) * {"float": 4, "uint8": 1}[kind]
    dims = " ".join(str(n) for n in reversed(shape))
    header = (
        f"NRRD0004\ntype: {kind}\ndimension: 3\nsizes: {dims}\nencoding: gzip\nendian: little\n\n"
    )
    path.write_bytes(header.encode() + _gzip(b"", size))
    return path


def _nifti_bomb(path: Path, shape: tuple[int, int, int]) -> Path:
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, shape[2], shape[1], shape[0], 1, 1, 1, 1)
    struct.pack_into("<2h", header, 70, 16, 32)  # float32
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)
    header[344:348] = b"n+1\x00"
    path.write_bytes(_gzip(bytes(header), math.prod(shape) * 4))
    return path


def _jpeg_bomb(path: Path, width: int, height: int) -> Path:
    """A JPEG whose frame header claims ``width`` x ``height`` and whose scan is cut off."""
    from PIL import Image as PILImage

    PILImage.new("L", (16, 16)).save(path, quality=50)
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def _bomb(fabricate: Callable[..., Path], name: str, *args: object, **kw: object):  # noqa: ANN202
    return lambda folder: fabricate(folder / name, *args, **kw)


_BIG = (256, 2000, 2000)
#: name -> (fabricate(folder) -> path, reader): the table of issue 23 and one per reader.
BOMBS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dicom-deflated-16384x16384": (_bomb(_deflated_dicom_bomb, "a.dcm", 16384, 16384), "image"),
    "dicom-deflated-64x4096x4096": (_bomb(_deflated_dicom_bomb, "b.dcm", 4096, 4096, 64), "image"),
    "dicom-rle-128x4096x4096": (_bomb(_rle_dicom_bomb, "c.dcm", 4096, 4096, 128), "image"),
    "apng-100x6000x6000": (_bomb(_png_bomb, "d.png", 6000, 6000, frames=100), "image"),
    "tiff-64x8000x8000": (_bomb(_tiff_bomb, "e.tif", 8000, 8000, 64), "image"),
    "mha-zlib-256x2000x2000-float": (_bomb(_metaimage_bomb, "f.mha", _BIG), "volume"),
    "nrrd-gzip-256x2000x2000-float": (_bomb(_nrrd_bomb, "g.nrrd", _BIG), "volume"),
    "nifti-gzip-256x2000x2000-float": (_bomb(_nifti_bomb, "h.nii.gz", _BIG), "volume"),
    "png-11000x11000-rgb": (_bomb(_png_bomb, "i.png", 11000, 11000), "image"),
    "jpeg-12000x12000": (_bomb(_jpeg_bomb, "j.jpg", 12000, 12000), "image"),
}
#: The cheap ones, fabricated in a second or two: tests/test_fuzz_readers.py runs these.
SMALL_BOMBS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dicom-rle-1x16384x16384": (_bomb(_rle_dicom_bomb, "c.dcm", 16384, 16384, 1), "image"),
    "nrrd-gzip-260x2000x2000-uint8": (
        _bomb(_nrrd_bomb, "g.nrrd", (260, 2000, 2000), "uint8"),
        "volume",
    ),
    **{
        name: BOMBS[name]
        for name in (
            "dicom-deflated-16384x16384",
            "apng-100x6000x6000",
            "tiff-64x8000x8000",
            "mha-zlib-256x2000x2000-float",
            "png-11000x11000-rgb",
            "jpeg-12000x12000",
        )
    },
}

_CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")


def peak_mb():
    # VmHWM: this process's own peak; ru_maxrss also holds the parent's RSS at exec time
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


cap = int(sys.argv[1])
if cap:
    resource.setrlimit(resource.RLIMIT_AS, (cap << 20, cap << 20))
from radiologynet import io
from radiologynet.errors import ImageReadError
for line in sys.stdin:
    path, reader = json.loads(line)
    start = time.perf_counter()
    try:
        (io.read_volume if reader == "volume" else io.read_image)(path)
        outcome, detail = "read", ""
    except ImageReadError as err:
        outcome, detail = "refused", str(err)
    except MemoryError as err:
        outcome, detail = "resource", "MemoryError"
    except Exception as err:
        outcome, detail = "escaped", f"{type(err).__name__}: {err}"
    print(json.dumps([outcome, detail[:300], peak_mb(), time.perf_counter() - start]), flush=True)
print(json.dumps(["done", "", peak_mb(), 0.0]), flush=True)
"""


def baseline_rss() -> float:
    """Peak resident MB of the reading child when it reads nothing (Python, numpy,
    pydicom, Pillow and the readers imported)."""
    return read_in_child([], include_done=True)[-1][2]


def read_in_child(
    cases: list[tuple[Path, str]],
    memory_cap_mb: int = 0,
    timeout: float = 600,
    include_done: bool = False,
) -> list[tuple[str, str, float, float]]:
    """Read each ``(path, "image" | "volume")`` in one child Python, in order; each result
    is ``(outcome, detail, peak resident MB so far, seconds)``. A child that dies (out of
    memory, killed, over ``timeout``) gives ``resource`` for the case it was reading and
    for those after it."""
    lines = "".join(json.dumps([str(p), kind]) + "\n" for p, kind in cases)
    env = dict(
        os.environ,
        OPENBLAS_NUM_THREADS="1",  # its per-thread buffers would count against the cap
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(memory_cap_mb)],
            input=lines, capture_output=True, text=True, timeout=timeout, env=env,
        )  # fmt: skip
        out, why = done.stdout, f"child exited {done.returncode}: {done.stderr.strip()[-200:]}"
    except subprocess.TimeoutExpired as err:
        out, why = (
            (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or ""),
            "timed out",
        )
    results = [tuple(json.loads(line)) for line in out.splitlines() if line.startswith("[")]
    if include_done:
        return results  # type: ignore[return-value]
    results = [r for r in results if r[0] != "done"]
    results += [("resource", why, float("nan"), float("nan"))] * (len(cases) - len(results))
    return results  # type: ignore[return-value]


def run_bombs(
    folder: Path,
    bombs: dict[str, tuple[Callable[[Path], Path], str]],
    memory_cap_mb: int,
    rss_limit_mb: float,
    one_child: bool = False,
) -> list[tuple[str, int, str, str, float, float]]:
    """Fabricate and read each bomb: ``(name, bytes on disk, outcome, detail, peak MB,
    seconds)``; a refusal whose peak passed ``rss_limit_mb`` counts as ``resource``."""
    made = []
    for name, (fabricate, reader) in bombs.items():
        path = fabricate(folder)
        made.append((name, path, reader))
    if one_child:
        results = read_in_child([(p, r) for _, p, r in made], memory_cap_mb)
    else:
        results = [read_in_child([(p, r)], memory_cap_mb)[0] for _, p, r in made]
    rows = []
    for (name, path, _), (outcome, detail, peak, seconds) in zip(made, results, strict=True):
        ran_out = any(word in detail for word in ("MemoryError", "allocate"))
        if outcome == "refused" and (ran_out or not peak <= rss_limit_mb):
            outcome = "resource"  # refused only because memory ran out, or too late
        rows.append((name, path.stat().st_size, outcome, detail, peak, seconds))
    return rows


def bombs_table(rows: list[tuple[str, int, str, str, float, float]]) -> str:
    """The bombs campaign as a Markdown table."""
    lines = ["| input | on disk | outcome | peak RSS | seconds |", "|---|---|---|---|---|"]
    for name, size, outcome, _detail, peak, seconds in rows:
        lines.append(
            f"| {name} | {size / 1e6:.1f} MB | {outcome} | {peak:.0f} MB | {seconds:.1f} |"
        )
    return "\n".join(lines)


# --- headers: every spelling of a data file outside the header's folder ------------------

_SECRET = bytes(range(101, 109))  # the outside file's eight bytes


def _header_text(fmt: str, key: str, sep: str, value: str, end: str, pad: str) -> bytes:
    dims = "4 1 2" if "%" in value else "8 1 1"
    if fmt == "mhd":
        lines = ["ObjectType = Image", "NDims = 3", f"DimSize = {dims}", "ElementType = MET_UCHAR"]
    else:
        lines = ["NRRD0004", "type: uint8", "dimension: 3", f"sizes: {dims}", "encoding: raw"]
    value_lines = value.split("\n")
    text = end.join(lines) + end + pad + f"{key}{sep}{value_lines[0]}" + end
    return (text + "".join(v + end for v in value_lines[1:])).encode()


def header_cases() -> list[tuple[str, str, bytes]]:
    """(name, suffix, header) for every combination of the spellings ITK's MetaIO and
    teem's NRRD reader accept and the ways a name can lead outside the folder."""
    targets = {
        "parent": "../outside.raw",
        "absolute": "{outside}",
        "link": "link.raw",
        "pattern-link": "s%d.raw 1 2 1",
        "list": "LIST\n../outside.raw",
    }
    pads = {"none": "", "spaces-2MiB": " " * (2 << 20), "blank-lines": "\n\n\n"}
    ends = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
    spellings = {
        "mhd": ["ElementDataFile = ", "ElementDataFile : ", "ElementDataFile=", "elementdatafile:"],
        "nhdr": ["data file: ", "datafile: ", "DATA FILE: ", "data file:"],
    }
    cases = []
    for fmt, keys in spellings.items():
        for spelling in keys:
            key = spelling.rstrip(" =:")
            sep = spelling[len(key) :]
            for target, value in targets.items():
                for pad_name, pad in pads.items():
                    for end_name, end in ends.items():
                        spelled = key.replace(" ", "_") + (sep.strip() or "_")
                        name = f"{fmt}-{spelled}-{target}-{pad_name}-{end_name}"
                        header = _header_text(fmt, key, sep, value, end, pad.replace("\n", end))
                        cases.append((name, "." + fmt, header))
    return cases


def _read_outside(path: Path) -> int:
    """In a forked child: 1 if the default read returns the outside bytes, + 2 if the read
    with ``allow_outside_data=True`` does."""
    from radiologynet import io

    code = 0
    for bit, allow in ((1, False), (2, True)):
        try:
            volume = io.read_volume(path, allow_outside_data=allow)
            if any(v in _SECRET for v in volume.array.ravel().tolist()):
                code |= bit
        except Exception:  # noqa: BLE001, S112 - refused or unreadable: no outside data
            continue
    return code


def run_headers(folder: Path) -> list[tuple[str, str, bool]]:
    """Read every header case by default and with ``allow_outside_data=True``, each in a
    forked process: ``(name, outcome, live)``. The outcome is ``escaped`` when the default
    read returned the outside file's bytes, ``crashed`` when a read killed the process, and
    ``clean`` otherwise; ``live`` says whether SimpleITK reads the outside bytes when
    allowed (the spelling really reaches the file)."""
    import SimpleITK as sitk

    import radiologynet.io  # noqa: F401 - imported once, before forking

    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    (folder / "outside.raw").write_bytes(_SECRET)
    inside = folder / "in"
    inside.mkdir()
    (inside / "link.raw").symlink_to(folder / "outside.raw")
    (inside / "s1.raw").write_bytes(bytes(4))
    (inside / "s2.raw").symlink_to(folder / "outside.raw")
    results = []
    for name, suffix, header in header_cases():
        path = inside / ("case" + suffix)
        path.write_bytes(header.replace(b"{outside}", str(folder / "outside.raw").encode()))
        pid = os.fork()  # a reader that crashes the process takes only this case with it
        if pid == 0:
            os._exit(_read_outside(path))
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status):
            results.append((name, "crashed", False))
        else:
            code = os.WEXITSTATUS(status)
            results.append((name, "escaped" if code & 1 else "clean", bool(code & 2)))
        path.unlink()
    return results


def _print_headers(results: list[tuple[str, str, bool]], show: int) -> int:
    counts = Counter(outcome for _, outcome, _ in results)
    live = sum(1 for *_, reaches in results if reaches)
    print(
        f"{len(results)} headers tried: {counts['clean']} clean, {counts['escaped']} "
        f"escaped, {counts['crashed']} crashed the process; {live} reach the outside file "
        "when allowed"
    )
    bad = [(name, outcome) for name, outcome, _ in results if outcome != "clean"]
    for name, outcome in bad[:show]:
        print(f"  {outcome}: {name}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--show", type=int, default=5, help="examples shown per bug outcome")
    parser.add_argument("--bombs", action="store_true", help="run the bombs campaign instead")
    parser.add_argument("--headers", action="store_true", help="run the volume-header campaign")
    parser.add_argument(
        "--memory-cap-mb", type=int, default=4096, help="address-space cap of the reading child"
    )
    parser.add_argument(
        "--rss-limit-mb", type=float, default=400.0, help="peak memory a refusal may use"
    )
    args = parser.parse_args(argv)
    if args.headers:
        with tempfile.TemporaryDirectory() as tmp:
            return _print_headers(run_headers(Path(tmp)), args.show)
    if args.bombs:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run_bombs(Path(tmp), BOMBS, args.memory_cap_mb, args.rss_limit_mb)
        print(bombs_table(rows))
        print(
            f"a child that imports the readers and reads nothing peaks at {baseline_rss():.0f} MB"
        )
        for name, _size, outcome, detail, _peak, _seconds in rows:
            print(f"  {name}: {outcome}: {detail[:160]}")
        return 0 if all(row[2] == "refused" for row in rows) else 1
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_campaign(args.cases, seed, Path(tmp))
        seconds = time.perf_counter() - start
    print(f"seed {seed}, {len(results)} cases in {seconds:.0f} s")
    print(summary(results))
    for outcome in BUGS:
        for case in [c for c in results if c.outcome == outcome][: args.show]:
            print(f"  {outcome}: {case.kind} from {case.seed_file}: {case.detail}")
    return 1 if any(c.outcome in BUGS for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
