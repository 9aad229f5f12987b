"""Reading DICOM files with pydicom: modality LUT (HU), VOI LUT / window tags,
MONOCHROME1, multi-frame stacks, colour, and compressed transfer syntaxes."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from radiologynet.errors import ImageReadError
from radiologynet.io.windowing import Image, Window, resolve_window

#: Photometric interpretations this reader turns into grayscale or RGB pixels.
SUPPORTED_PHOTOMETRIC = (
    "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT",
    "YBR_PARTIAL_420", "PALETTE COLOR",
)
#: What to ``pip install`` for each family of compressed transfer syntaxes.
_PLUGINS = {
    "JPEG-LS": "pylibjpeg pylibjpeg-libjpeg  (or: pyjpegls)",
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "JPEG": "pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pylibjpeg pylibjpeg-rle",
}
_VOI_KEYWORDS = (
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence",
    "BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept",
)
_METADATA_KEYWORDS = (
    "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SeriesDescription",
    "StudyDescription", "Manufacturer", "ViewPosition", "InstanceNumber",
)


def is_dicom(path: str | PathLike[str]) -> bool:
    """Whether ``path`` starts with the DICOM preamble and ``DICM`` magic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _plugin_hint(ds: Dataset) -> str:
    name = str(getattr(ds.file_meta.TransferSyntaxUID, "name", ds.file_meta.TransferSyntaxUID))
    for key, package in _PLUGINS.items():
        if key.lower() in name.lower():
            return f"pip install {package}"
    return "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle"


def _decode(ds: Dataset, path: Path) -> np.ndarray:
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
    try:
        return ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken pixel data
        raise ImageReadError(f"{path}: cannot decode the pixel data: {err}") from err


def _voi_module(ds: Dataset) -> Dataset | None:
    if "WindowCenter" not in ds and "VOILUTSequence" not in ds:
        return None
    voi = Dataset()
    voi.file_meta = FileMetaDataset()
    little = ds.original_encoding[1]
    voi.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little is not False else \
        ExplicitVRBigEndian
    voi.PhotometricInterpretation = "MONOCHROME2"
    for keyword in _VOI_KEYWORDS:
        if keyword in ds:
            setattr(voi, keyword, ds[keyword].value)
    voi.setdefault("PixelRepresentation", 0)
    return voi


def _first(value: object) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0])  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def read_dicom(path: str | PathLike[str], window: Window = None) -> Image:
    """Read one DICOM file into an :class:`Image` of modality values (HU for CT).

    Args:
        path: the file.
        window: ``(center, width)`` or a preset name; it overrides the file's own window /
            VOI LUT when the image is converted to 8 bits.

    Returns:
        The image; multi-frame files give an ``(F, H, W)`` stack; YBR and palette colour
        are converted to RGB.

    Raises:
        ImageReadError: not a DICOM file, truncated or corrupt, no pixel data, an
            unsupported photometric interpretation, or a compressed transfer syntax with no
            installed decoder (the message says what to ``pip install``).
    """
    path = Path(path)
    try:
        return _read_dicom(path, window)
    except ImageReadError:
        raise
    except Exception as err:  # a corrupt header can break pydicom anywhere
        raise ImageReadError(
            f"{path}: corrupt DICOM ({type(err).__name__}: {err})."
        ) from err


def _read_dicom(path: Path, window: Window) -> Image:
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as err:
        raise ImageReadError(f"{path}: not a DICOM file ({err}).") from err
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file.") from err
    except Exception as err:  # truncated headers raise EOFError, struct.error, ...
        raise ImageReadError(f"{path}: corrupt or truncated DICOM ({err}).") from err
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
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
    arr = _decode(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as err:
            raise ImageReadError(f"{path}: cannot apply its palette colour LUT: {err}") from err
        photometric = "RGB"
    elif photometric.startswith("YBR") or photometric == "RGB":
        photometric = "RGB"  # pydicom converts YBR to RGB while decoding
        arr = np.asarray(arr)
    else:
        try:
            arr = apply_modality_lut(arr, ds)
        except Exception as err:
            raise ImageReadError(f"{path}: cannot apply its modality LUT: {err}") from err
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ImageReadError(f"{path}: the pixel data contains NaN or infinite values.")
    explicit = resolve_window(window, path)
    voi = None if photometric == "RGB" else _voi_module(ds)
    file_window = None
    if voi is not None and "WindowCenter" in voi and "WindowWidth" in voi:
        file_window = (_first(voi.WindowCenter), _first(voi.WindowWidth))
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return Image(
        pixels=arr,
        path=path,
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "")),
        spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        photometric=photometric,
        window=explicit if explicit is not None else file_window,
        voi=None if explicit is not None else voi,
        frames=frames,
        metadata={k: str(ds.get(k, "")) for k in _METADATA_KEYWORDS if k in ds},
    )
