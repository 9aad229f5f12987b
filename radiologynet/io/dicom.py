"""Reading DICOM files with pydicom: modality LUT (HU), VOI LUT / window tags,
MONOCHROME1, multi-frame stacks, colour, and compressed transfer syntaxes."""

from __future__ import annotations

import math
import warnings
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from radiologynet.errors import ImageReadError, ImageReadWarning
from radiologynet.io.budget import DecodeBudget, resolve_budget
from radiologynet.io.dicom_checks import check_before_decoding, check_deflated
from radiologynet.io.inputs import regular_file_size
from radiologynet.io.windowing import Image, Window, resolve_window

#: Photometric interpretations this reader turns into grayscale or RGB pixels.
SUPPORTED_PHOTOMETRIC = (
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
    "PALETTE COLOR",
)
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
#: What to ``pip install`` for each family of compressed transfer syntaxes.
_PLUGINS = {
    "JPEG-LS": "pylibjpeg pylibjpeg-libjpeg  (or: pyjpegls)",
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "JPEG": "pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pylibjpeg pylibjpeg-rle",
}
_VOI_KEYWORDS = (
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
)
#: The elements that hold an image's pixels.
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_METADATA_KEYWORDS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SeriesDescription",
    "StudyDescription",
    "Manufacturer",
    "ViewPosition",
    "InstanceNumber",
)


def header_text(value: object) -> str:
    """A DICOM header value as the text every label and feature uses: upper case, runs of
    whitespace as one space, trimmed (``"chest "``, ``"Chest"`` and ``"CHEST"`` are one
    body part; DICOM's code strings are upper case, archives often are not); a
    multi-valued element's values joined with ``\\``; ``""`` when missing."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = "\\".join(str(v) for v in value)
    return " ".join(str(value).upper().split())


def is_dicom(path: str | PathLike[str]) -> bool:
    """Whether ``path`` starts with the DICOM preamble and ``DICM`` magic (``False`` for
    anything but a regular file, which is never opened: a FIFO would block)."""
    try:
        regular_file_size(path)
    except ImageReadError:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def has_pixel_data(path: str | PathLike[str]) -> bool:
    """Whether the DICOM file at ``path`` holds an image (pixel data); ``False`` for
    ``DICOMDIR`` indexes, structured reports, presentation states and other image-less
    objects. Reads the header only.

    Raises:
        ImageReadError: ``path`` is not a readable DICOM file.
    """
    regular_file_size(path)
    try:
        ds = pydicom.dcmread(path, specific_tags=list(_PIXEL_KEYWORDS), defer_size=1024)
    except Exception as err:  # pydicom raises many types on junk
        raise ImageReadError(f"{path}: not a readable DICOM file ({err}).") from err
    return any(keyword in ds for keyword in _PIXEL_KEYWORDS)


def _plugin_hint(ds: Dataset) -> str:
    name = str(getattr(ds.file_meta.TransferSyntaxUID, "name", ds.file_meta.TransferSyntaxUID))
    for key, package in _PLUGINS.items():
        if key.lower() in name.lower():
            return f"pip install {package}"
    return "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle"


def _require_decoder(ds: Dataset, path: Path) -> None:
    """Refuse a compressed transfer syntax no installed pydicom plugin decodes."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax is not None and tsyntax.is_compressed:
        try:
            decoder = get_decoder(tsyntax)
        except NotImplementedError as err:
            raise ImageReadError(
                f"{path}: no pydicom decoder exists for transfer syntax {tsyntax.name}."
            ) from err
        if not decoder.is_available:
            raise ImageReadError(
                f"{path}: compressed with {tsyntax.name}, and no installed pydicom plugin "
                f"decodes it; run `{_plugin_hint(ds)}`."
            )


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken pixel data
        raise ImageReadError(f"{path}: cannot decode the pixel data: {err}") from err


def _voi_module(ds: Dataset, path: Path) -> Dataset | None:
    """The display (VOI) tags of ``ds`` that are usable, as a small dataset; ``None`` when
    there are none. Invalid ones are dropped with a warning (see :func:`_usable_window`)."""
    if not any(k in ds for k in ("WindowCenter", "WindowWidth", "VOILUTSequence")):
        return None
    voi = Dataset()
    voi.file_meta = FileMetaDataset()
    little = ds.original_encoding[1]
    voi.file_meta.TransferSyntaxUID = (
        ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
    )
    voi.PhotometricInterpretation = "MONOCHROME2"
    for keyword in _VOI_KEYWORDS:
        if keyword in ds:
            setattr(voi, keyword, ds[keyword].value)
    voi.setdefault("PixelRepresentation", 0)
    if "VOILUTSequence" in voi and not _usable_voi_lut(voi):
        warnings.warn(
            f"{path}: its VOI LUT Sequence has no usable LUT (LUTDescriptor and "
            "LUTData); ignored, the window tags or min-max are used instead.",
            ImageReadWarning,
            stacklevel=4,
        )
        del voi.VOILUTSequence
    if ("WindowCenter" in voi or "WindowWidth" in voi) and _usable_window(voi) is None:
        warnings.warn(
            f"{path}: WindowCenter {voi.get('WindowCenter')!r} / WindowWidth "
            f"{voi.get('WindowWidth')!r} is not a usable window (both are needed, "
            "finite, width >= 1); ignored, min-max scaling is used instead.",
            ImageReadWarning,
            stacklevel=4,
        )
        for keyword in ("WindowCenter", "WindowWidth", "VOILUTFunction"):
            if keyword in voi:
                delattr(voi, keyword)
    if "VOILUTSequence" not in voi and "WindowCenter" not in voi:
        return None
    return voi


def _usable_voi_lut(voi: Dataset) -> bool:
    try:
        item = voi.VOILUTSequence[0]
        descriptor = [int(v) for v in item.LUTDescriptor]
        return len(descriptor) == 3 and 1 <= descriptor[2] <= 16 and len(item.LUTData) > 0
    except Exception:  # noqa: BLE001 - any broken LUT is unusable, which is the answer
        return False


def _usable_window(voi: Dataset) -> tuple[float, float] | None:
    """``(center, width)`` from the first window of ``voi``, or ``None`` when it is missing
    half, not a number, infinite, or narrower than 1 (DICOM's minimum)."""
    try:
        center, width = _first(voi.WindowCenter), _first(voi.WindowWidth)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if not (math.isfinite(center) and math.isfinite(width) and width >= 1):
        return None
    return center, width


def _first(value: object) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0])  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def read_dicom(
    path: str | PathLike[str], window: Window = None, *, budget: DecodeBudget | None = None
) -> Image:
    """Read one DICOM file into an :class:`Image` of modality values (HU for CT).

    Before any pixel is decoded, the header is checked against the decode budget (per
    frame and in total) and against the pixel data itself: PixelData's length, the
    transfer syntax against the stream's markers, the frame count, the lookup tables.

    Args:
        path: the file.
        window: ``(center, width)`` or a preset name; it overrides the file's own window /
            VOI LUT when the image is converted to 8 bits.
        budget: the most the file may decode to; ``None`` is the default
            :class:`~radiologynet.io.DecodeBudget` as the environment adjusts it.

    Returns:
        The image; multi-frame files give an ``(F, H, W)`` stack; YBR and palette colour
        are converted to RGB.

    Raises:
        ImageReadError: not a regular DICOM file, truncated or corrupt, no pixel data, an
            unsupported photometric interpretation, over the decode budget, a header that
            contradicts its pixel data, or a compressed transfer syntax with no installed
            decoder (the message says what to ``pip install``).
    """
    path = Path(path)
    try:
        return _read_dicom(path, window, resolve_budget(budget))
    except ImageReadError:
        raise
    except Exception as err:  # a corrupt header can break pydicom anywhere
        raise ImageReadError(f"{path}: corrupt DICOM ({type(err).__name__}: {err}).") from err


def _read_dicom(path: Path, window: Window, budget: DecodeBudget) -> Image:
    regular_file_size(path)
    check_deflated(path, budget)
    ds, photometric = _read_header(path)
    photometric = _photometric_for_samples(ds, photometric, path)
    _require_decoder(ds, path)
    check_before_decoding(ds, path, budget)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr, photometric = _pixels(ds, photometric, path)
    _check_shape(arr, photometric, frames, path)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ImageReadError(f"{path}: the pixel data contains NaN or infinite values.")
    explicit = resolve_window(window, path)
    voi = None if photometric == "RGB" else _voi_module(ds, path)
    file_window = None
    if voi is not None and "WindowCenter" in voi:
        file_window = _usable_window(voi)
    return Image(
        pixels=arr,
        path=path,
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "")),
        spacing=_pixel_spacing(ds, path),
        photometric=photometric,
        window=explicit if explicit is not None else file_window,
        voi=None if explicit is not None else voi,
        frames=frames,
        metadata={k: str(ds.get(k, "")) for k in _METADATA_KEYWORDS if k in ds},
        bits_stored=_bits_stored(ds, arr),
    )


def _read_header(path: Path) -> tuple[Dataset, str]:
    """The dataset and its photometric interpretation, once the header shows an image this
    reader can decode (pixel data, a supported photometric interpretation, a size).

    Raises:
        ImageReadError: not DICOM, missing, truncated, or holding no readable image.
    """
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as err:
        raise ImageReadError(f"{path}: not a DICOM file ({err}).") from err
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file.") from err
    except Exception as err:  # truncated headers raise EOFError, struct.error, ...
        raise ImageReadError(f"{path}: corrupt or truncated DICOM ({err}).") from err
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise ImageReadError(f"{path}: the DICOM file has no pixel data (no image to read).")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in SUPPORTED_PHOTOMETRIC:
        raise ImageReadError(
            f"{path}: unsupported photometric interpretation {photometric!r}; supported: "
            f"{', '.join(SUPPORTED_PHOTOMETRIC)}."
        )
    try:
        int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as err:
        raise ImageReadError(f"{path}: missing or invalid Rows/Columns ({err}).") from err
    if int(ds.Rows) == 0 or int(ds.Columns) == 0:
        raise ImageReadError(f"{path}: zero-size image ({ds.Rows} x {ds.Columns}).")
    return ds, photometric


def _pixels(ds: Dataset, photometric: str, path: Path) -> tuple[np.ndarray, str]:
    """The decoded pixels in their physical units (palette applied to RGB, modality LUT
    and dose scaling applied to grey images) and the photometric interpretation they
    now have.

    Raises:
        ImageReadError: the pixel data or one of its lookup tables cannot be applied.
    """
    arr = _decode(ds, path)
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as err:
            raise ImageReadError(f"{path}: cannot apply its palette colour LUT: {err}") from err
        return np.asarray(arr), "RGB"
    if photometric.startswith("YBR") or photometric == "RGB":
        return np.asarray(arr), "RGB"  # pydicom converts YBR to RGB while decoding
    try:
        arr = apply_modality_lut(arr, ds)
    except Exception as err:
        raise ImageReadError(f"{path}: cannot apply its modality LUT: {err}") from err
    return np.asarray(_apply_dose_grid_scaling(arr, ds, path)), photometric


def _apply_dose_grid_scaling(arr: np.ndarray, ds: Dataset, path: Path) -> np.ndarray:
    """An RT dose grid in Gy: the stored integers times DoseGridScaling (pydicom's modality
    LUT does not apply it); other images unchanged.

    Raises:
        ImageReadError: a DoseGridScaling that is not a positive, finite number.
    """
    if "DoseGridScaling" not in ds:
        return arr
    try:
        scaling = float(ds.DoseGridScaling)
    except (TypeError, ValueError) as err:
        raise ImageReadError(
            f"{path}: DoseGridScaling {ds.DoseGridScaling!r} is not a number."
        ) from err
    if not (np.isfinite(scaling) and scaling > 0):
        raise ImageReadError(
            f"{path}: DoseGridScaling {scaling:g} is not a positive number; the dose in Gy "
            "is the stored value times it."
        )
    return np.asarray(arr, dtype=np.float64) * scaling


def _pixel_spacing(ds: Dataset, path: Path) -> tuple[float, float] | None:
    """PixelSpacing (or ImagerPixelSpacing) as ``(row, column)`` mm; ``None`` when absent,
    or, with a warning, when it is not two finite positive numbers."""
    keyword = "PixelSpacing" if ds.get("PixelSpacing") else "ImagerPixelSpacing"
    value = ds.get(keyword)
    if not value:
        return None
    try:
        row, column = (float(v) for v in value)
    except (TypeError, ValueError):
        row = column = math.nan
    if not (math.isfinite(row) and math.isfinite(column) and row > 0 and column > 0):
        warnings.warn(
            f"{path}: {keyword} {value!r} is not two positive sizes; the image is "
            "read with spacing None (unknown).",
            ImageReadWarning,
            stacklevel=4,
        )
        return None
    return row, column


def _photometric_for_samples(ds: Dataset, photometric: str, path: Path) -> str:
    """The photometric interpretation that matches SamplesPerPixel, which fixes the layout
    of the pixel data: a colour label on one sample per pixel is read as MONOCHROME2, and
    a monochrome label on three samples as RGB, each with a warning."""
    try:
        samples = int(ds.get("SamplesPerPixel", 1))
    except (TypeError, ValueError) as err:
        raise ImageReadError(f"{path}: invalid SamplesPerPixel ({err}).") from err
    if samples not in (1, 3):
        raise ImageReadError(
            f"{path}: SamplesPerPixel is {samples}; only 1 (grayscale) and "
            "3 (colour) are images this reader knows."
        )
    if samples == 1 and photometric in _COLOUR:
        warnings.warn(
            f"{path}: PhotometricInterpretation {photometric} but SamplesPerPixel 1; "
            "read as MONOCHROME2 (one value per pixel).",
            ImageReadWarning,
            stacklevel=4,
        )
        ds.PhotometricInterpretation = "MONOCHROME2"
        return "MONOCHROME2"
    if samples == 3 and photometric not in _COLOUR:
        warnings.warn(
            f"{path}: PhotometricInterpretation {photometric} but SamplesPerPixel 3; "
            "read as RGB (three values per pixel).",
            ImageReadWarning,
            stacklevel=4,
        )
        ds.PhotometricInterpretation = "RGB"
        return "RGB"
    return photometric


def _check_shape(arr: np.ndarray, photometric: str, frames: int, path: Path) -> None:
    expected = (2 if frames == 1 else 3) + (photometric == "RGB")
    if arr.ndim != expected or (photometric == "RGB" and arr.shape[-1] != 3):
        raise ImageReadError(
            f"{path}: decoded pixel data of shape {arr.shape} does not match "
            f"{frames} frame(s) of {photometric}."
        )


def _bits_stored(ds: Dataset, arr: np.ndarray) -> int | None:
    """BitsStored when the pixels are still the stored integers (no rescale applied)."""
    if arr.dtype.kind not in "ui" or "BitsStored" not in ds:
        return None
    try:
        return int(ds.BitsStored)
    except (TypeError, ValueError):
        return None
