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

    python benchmarks/fuzz_readers.py [--cases 5000] [--seed N] [--show 5]
"""

from __future__ import annotations

import argparse
import gzip
import random
import struct
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--show", type=int, default=5, help="examples shown per bug outcome")
    args = parser.parse_args(argv)
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
