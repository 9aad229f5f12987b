"""The :class:`Image` record and the conversion to the 8-bit images RadiologyNET was
pretrained on (windowing, presets, min-max, MONOCHROME1 inversion)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut

from radiologynet.errors import ImageReadError, ImageReadWarning

#: Named CT windows as ``(center, width)`` in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}

#: ITU-R BT.601 luma weights (what OpenCV and PIL use to turn RGB into grayscale).
_LUMA = np.array([0.299, 0.587, 0.114])

Window = tuple[float, float] | str | None


@dataclass
class Image:
    """A decoded 2-D image (or a stack of frames) with the metadata preprocessing needs.

    Attributes:
        pixels: modality values (Hounsfield units for CT after rescale slope/intercept;
            the stored values for PNG/JPEG). Shape ``(H, W)``, ``(H, W, 3)`` for colour,
            ``(F, H, W)`` / ``(F, H, W, 3)`` for a multi-frame stack.
        path: the file it was read from (``None`` when built in memory).
        modality: DICOM Modality (``"CT"``, ``"MR"``, ``"CR"``, ...) or ``""``.
        body_part: DICOM BodyPartExamined or ``""``.
        spacing: pixel spacing ``(row, column)`` in mm, or ``None`` when unknown.
        photometric: ``"MONOCHROME1"``, ``"MONOCHROME2"`` or ``"RGB"``.
        window: the ``(center, width)`` chosen at read time (explicit or preset), or the
            file's first window; ``None`` means min-max (or a VOI LUT, see ``voi``).
        voi: a small pydicom dataset holding the VOI LUT module used for display
            (window tags or a VOI LUT sequence); ``None`` when there is none.
        frames: number of frames (1 for a single image).
        metadata: other header values (study/series UIDs, ...), strings only.
        bits_stored: significant bits of integer pixels as stored (DICOM BitsStored), or
            ``None`` when unknown or after a rescale; pixels of fewer than 8 bits (1-bit
            masks and overlays) are scaled to 0..255 by their range, not kept as 0/1.
    """

    pixels: np.ndarray
    path: Path | None = None
    modality: str = ""
    body_part: str = ""
    spacing: tuple[float, float] | None = None
    photometric: str = "MONOCHROME2"
    window: tuple[float, float] | None = None
    voi: Dataset | None = None
    frames: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    bits_stored: int | None = None

    @property
    def is_color(self) -> bool:
        """Whether the pixels carry three colour channels."""
        return self.photometric == "RGB"

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of one frame."""
        if self.is_color:
            return tuple(self.pixels.shape[-3:-1])  # type: ignore[return-value]
        return tuple(self.pixels.shape[-2:])  # type: ignore[return-value]

    def frame(self, index: int) -> Image:
        """One frame of a stack as an :class:`Image` of its own."""
        if self.frames == 1:
            return self
        if not -self.frames <= index < self.frames:
            raise IndexError(f"{self.path}: frame {index} out of range (0..{self.frames - 1})")
        return Image(
            pixels=self.pixels[index],
            path=self.path,
            modality=self.modality,
            body_part=self.body_part,
            spacing=self.spacing,
            photometric=self.photometric,
            window=self.window,
            voi=self.voi,
            frames=1,
            metadata=dict(self.metadata),
            bits_stored=self.bits_stored,
        )


def resolve_window(window: Window, source: object = None) -> tuple[float, float] | None:
    """A window given as ``(center, width)``, a preset name or ``None``, as a tuple.

    Raises:
        ImageReadError: for an unknown preset or a non-positive width.
    """
    if window is None:
        return None
    if isinstance(window, str):
        key = window.lower().removeprefix("ct-").removeprefix("ct_")
        if key not in WINDOW_PRESETS:
            raise ImageReadError(
                f"{source or 'window'}: unknown window preset {window!r}; use one of "
                f"{', '.join(WINDOW_PRESETS)} or an explicit (center, width)."
            )
        return WINDOW_PRESETS[key]
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as err:
        raise ImageReadError(
            f"{source or 'window'}: window must be (center, width) or a preset name, "
            f"got {window!r}."
        ) from err
    if not (np.isfinite(center) and np.isfinite(width) and width >= 1):
        raise ImageReadError(
            f"{source or 'window'}: window must be a finite center and a "
            f"width >= 1, got ({center}, {width})."
        )
    return center, width


def window_dataset(center: float, width: float) -> Dataset:
    """A VOI LUT module for an explicit window whose output range is 0..255."""
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 8
    ds.PixelRepresentation = 0
    ds.WindowCenter = float(center)
    ds.WindowWidth = float(width)
    ds.VOILUTFunction = "LINEAR"
    return ds


def _voi_output_range(voi: Dataset) -> tuple[float, float]:
    """The range of values pydicom's ``apply_voi_lut`` produces for ``voi``."""
    if "VOILUTSequence" in voi:  # pydicom prefers the LUT over window tags
        bits = int(voi.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if voi.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(voi.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(voi.BitsStored)
    if int(voi.PixelRepresentation) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    slope, intercept = voi.get("RescaleSlope"), voi.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return low, high


def _minmax_uint8(frame: np.ndarray) -> np.ndarray:
    values = frame.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(frame.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _to_gray(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.rint(pixels.astype(np.float64) @ _LUMA).astype(np.uint8)
    return pixels.astype(np.float64) @ _LUMA


def to_radiologynet_uint8(image: Image | np.ndarray, window: Window = None) -> np.ndarray:
    """Convert an image to the 8-bit grayscale pictures the RadiologyNET weights were
    pretrained on.

    The display transform is chosen in this order: ``window`` (``(center, width)`` or a
    preset name from :data:`WINDOW_PRESETS`); the window or VOI LUT recorded in the image
    (its DICOM VOI LUT module, applied with pydicom; the reader has already dropped, with
    an :class:`~radiologynet.errors.ImageReadWarning`, a window that is NaN, infinite,
    narrower than 1 or missing its width, and an empty VOI LUT); integer pixels of fewer
    than 8 stored bits are scaled by their range (a 1-bit image becomes 0/255); an 8-bit
    image is kept as it is; anything else is min-max scaled to 0..255 over its full range
    (never truncated or wrapped). MONOCHROME1 images are inverted so that bone is bright;
    colour images are turned into grayscale with the ITU-R 601 weights. Stacks are
    converted frame by frame.

    Returns:
        ``uint8`` array of shape ``(H, W)`` (or ``(F, H, W)`` for a stack).

    Raises:
        ImageReadError: empty images, NaN/inf values, an invalid window, or pixels the
            image's metadata does not describe; the message names the file.
    """
    if isinstance(image, np.ndarray):
        image = Image(
            pixels=image,
            photometric="RGB"
            if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3
            else "MONOCHROME2",
        )
    source = image.path or "image"
    try:
        return _to_uint8(image, window, source)
    except ImageReadError:
        raise
    except Exception as err:  # a header pydicom or numpy cannot apply: still one clear error
        raise ImageReadError(
            f"{source}: cannot convert to 8-bit grayscale ({type(err).__name__}: {err})."
        ) from err


def _to_uint8(image: Image, window: Window, source: object) -> np.ndarray:
    pixels = _gray_pixels(image, source)
    explicit = resolve_window(window, source)
    voi = window_dataset(*explicit) if explicit is not None else image.voi
    if voi is None and image.window is not None:
        voi = window_dataset(*resolve_window(image.window, source))  # type: ignore[misc]
    bits = image.bits_stored
    if voi is not None:
        result = _apply_voi(pixels, voi, source)
    elif pixels.dtype.kind in "uib" and bits is not None and 1 <= bits < 8:
        scaled = np.clip(pixels.astype(np.float64), 0, 2**bits - 1) * (255.0 / (2**bits - 1))
        result = np.rint(scaled).astype(np.uint8)
    elif pixels.dtype == np.uint8:
        result = pixels.copy()
    elif pixels.ndim == 3:
        result = np.stack([_minmax_uint8(f) for f in pixels])
    else:
        result = _minmax_uint8(pixels)
    if image.photometric == "MONOCHROME1":
        result = 255 - result
    if result.size > 1 and result.min() == result.max() and pixels.min() != pixels.max():
        warnings.warn(
            f"{source}: every pixel became {int(result.flat[0])}: its window or VOI "
            f"LUT lies outside the pixel values {pixels.min():g}..{pixels.max():g}; "
            "pass window= (a preset or (center, width)) to see the image.",
            ImageReadWarning,
            stacklevel=3,
        )
    return result


def _gray_pixels(image: Image, source: object) -> np.ndarray:
    """The image's pixels as one grey channel, ``(H, W)`` or ``(F, H, W)``, once they are
    checked to be a finite numeric image.

    Raises:
        ImageReadError: no pixels, a non-numeric dtype, NaN/inf, or a shape that is no image.
    """
    pixels = image.pixels
    if pixels.size == 0:
        raise ImageReadError(f"{source}: the image has no pixels (shape {pixels.shape}).")
    if pixels.dtype.kind not in "uifb":
        raise ImageReadError(f"{source}: pixels of type {pixels.dtype} are not an image.")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ImageReadError(f"{source}: the image contains NaN or infinite values.")
    if image.is_color:
        if pixels.ndim not in (3, 4) or pixels.shape[-1] != 3:
            raise ImageReadError(
                f"{source}: a colour image needs (H, W, 3) pixels, got shape {pixels.shape}."
            )
        return _to_gray(pixels)
    if pixels.ndim not in (2, 3):
        raise ImageReadError(
            f"{source}: a grayscale image needs (H, W) or (F, H, W) pixels, "
            f"got shape {pixels.shape}."
        )
    return pixels


def _apply_voi(pixels: np.ndarray, voi: Dataset, source: object) -> np.ndarray:
    low, high = _voi_output_range(voi)
    try:
        # a LUT is indexed by integer values; windows work on any real value
        values = (
            np.rint(pixels).astype(np.int64)
            if "VOILUTSequence" in voi
            else np.asarray(pixels, dtype=np.float64)
        )
        out = apply_voi_lut(values, voi)
    except Exception as err:  # pydicom raises several types for broken LUTs
        raise ImageReadError(f"{source}: cannot apply its VOI LUT/window: {err}") from err
    out = (np.asarray(out, dtype=np.float64) - low) * (255.0 / max(high - low, 1e-12))
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)
