"""Reading PNG, JPEG and other 2-D picture files (8 and 16 bits) with Pillow."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import ExifTags, UnidentifiedImageError
from PIL import Image as PILImage

from radiologynet.errors import ImageReadError, ImageReadWarning
from radiologynet.io.budget import DecodeBudget, check_decode, resolve_budget
from radiologynet.io.inputs import regular_file_size
from radiologynet.io.windowing import Image, Window, resolve_window

__all__ = ["read_picture"]


def read_picture(
    path: str | PathLike[str], window: Window = None, *, budget: DecodeBudget | None = None
) -> Image:
    """Read a PNG/JPEG/BMP/TIFF file, keeping its bit depth (16-bit PNG stays ``uint16``,
    16-bit grey+alpha too, its alpha dropped).

    The EXIF orientation tag is honoured exactly once, for every format (the picture is
    turned as a viewer shows it). A multi-page file (TIFF, APNG) whose pages all have the
    first page's size and mode is read as a stack of frames, like a multi-frame DICOM;
    one whose pages differ (thumbnails, pyramids) gives its first page with an
    :class:`~radiologynet.errors.ImageReadWarning`. The sizes the header claims are
    checked against the decode budget before any pixel is decoded.

    Args:
        path: the file.
        window: ``(center, width)`` or a preset name, used for the 8-bit conversion.
        budget: the most the file may decode to; ``None`` is the default
            :class:`~radiologynet.io.DecodeBudget` as the environment adjusts it.

    Returns:
        An :class:`Image` whose ``pixels`` are ``(H, W)`` grayscale or ``(H, W, 3)`` RGB
        (``(F, H, W)`` / ``(F, H, W, 3)`` for a stack of pages).

    Raises:
        ImageReadError: a missing, unreadable, truncated or empty file, not a regular
            file, or one whose header claims more pixels than the decode budget (or than
            Pillow's own decompression-bomb limit).
    """
    path = Path(path)
    stored = regular_file_size(path)
    budget = resolve_budget(budget)
    try:
        with PILImage.open(path) as pil:
            _check_budget(pil, path, budget, stored)
            pages = _pages(pil, path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file.") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: not an image file Pillow can read.") from err
    except PILImage.DecompressionBombError as err:
        raise ImageReadError(
            f"{path}: the header claims an image too large to decode safely ({err}; "
            "Pillow's own limit is PIL.Image.MAX_IMAGE_PIXELS)."
        ) from err
    except ImageReadError:
        raise
    except Exception as err:  # Pillow's decoders raise OSError, ValueError, SyntaxError...
        raise ImageReadError(
            f"{path}: corrupt or truncated image ({type(err).__name__}: {err})."
        ) from err
    pixels = pages[0] if len(pages) == 1 else np.stack(pages)
    if pixels.size == 0:
        raise ImageReadError(f"{path}: the image has no pixels (shape {pixels.shape}).")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ImageReadError(f"{path}: the image contains NaN or infinite values.")
    color = pages[0].ndim == 3
    return Image(
        pixels=pixels,
        path=path,
        photometric="RGB" if color else "MONOCHROME2",
        window=resolve_window(window, path),
        frames=len(pages),
    )


def _check_budget(pil: PILImage.Image, path: Path, budget: DecodeBudget, stored: int) -> None:
    """The sizes the header claims against ``budget``: every page when they share one
    size (read as a stack), else the first page (the only one read)."""
    count = int(getattr(pil, "n_frames", 1) or 1)
    sizes = {pil.size}
    if pil.format == "TIFF" and count > 1:  # pages may differ; their headers say how
        for index in range(1, count):
            pil.seek(index)
            sizes.add(pil.size)
        pil.seek(0)
    frames = count if len(sizes) == 1 else 1
    width, height = pil.size
    depth = 2 if pil.mode.startswith("I;16") or _rawmode(pil) == "LA;16B" else 1
    check_decode(
        path,
        (height, width),
        budget,
        frames=frames,
        bytes_per_value=len(pil.getbands()) * depth,
        stored_bytes=stored,
    )


def _pages(pil: PILImage.Image, path: Path) -> list[np.ndarray]:
    """Every page of ``pil`` as arrays when they share the first page's size and mode,
    else the first page alone (with a warning)."""
    count = int(getattr(pil, "n_frames", 1) or 1)
    first_size, first_mode = pil.size, pil.mode
    pages = [_array(pil, path)]
    for index in range(1, count):
        pil.seek(index)
        if (pil.size, pil.mode) != (first_size, first_mode):
            warnings.warn(
                f"{path}: {count} pages of different sizes or modes; only the first "
                f"page ({first_size[0]}x{first_size[1]} {first_mode}) is read.",
                ImageReadWarning,
                stacklevel=4,
            )
            return pages[:1]
        pages.append(_array(pil, path))
    return pages


def _rawmode(pil: PILImage.Image) -> str:
    """How the decoder unpacks the current page (``"LA;16B"`` for 16-bit grey+alpha)."""
    if not pil.tile:
        return ""
    args = pil.tile[0].args
    return str(args if isinstance(args, str) else (args or ("",))[0])


def _stored_orientation(pil: PILImage.Image) -> int:
    """The page's EXIF orientation (1-8), after stopping Pillow from applying it itself:
    Pillow turns TIFF pages while loading them (and scrambles orientations 5-8), so the
    stored raster is loaded instead and turned once, by :func:`_orient`."""
    if pil.format == "TIFF":
        orientation = int(pil.tag_v2.get(ExifTags.Base.Orientation, 1) or 1)
        if orientation != 1:
            pil.tag_v2[ExifTags.Base.Orientation] = 1
            pil.getexif()[ExifTags.Base.Orientation] = 1
            tile_size = getattr(pil, "_tile_size", None)
            if tile_size is not None:
                pil._size = tile_size  # noqa: SLF001 - the stored raster's size
    else:
        orientation = int(pil.getexif().get(ExifTags.Base.Orientation, 1) or 1)
    return orientation if 1 <= orientation <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` (rows, columns[, samples]) turned as EXIF ``orientation`` says."""
    if orientation in (5, 7):
        array = np.swapaxes(array, 0, 1)
        return array if orientation == 5 else np.rot90(array, 2)
    turns = {1: 0, 3: 2, 6: -1, 8: 1, 2: 0, 4: 2}[orientation]
    array = np.rot90(array, turns)
    return array[:, ::-1] if orientation in (2, 4) else array


def _array(pil: PILImage.Image, path: Path) -> np.ndarray:
    """One page as an array in its own bit depth, turned by its EXIF orientation."""
    grey_alpha_16 = _rawmode(pil) == "LA;16B"
    if grey_alpha_16:
        _unpack_grey_alpha_16(pil, path)  # before anything loads the page
    orientation = _stored_orientation(pil)
    mode = pil.mode
    if grey_alpha_16:
        raw = np.asarray(pil, dtype=np.uint8)
        array = (raw[..., 0].astype(np.uint16) << 8) | raw[..., 1]
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(pil, dtype=np.uint16)
    elif mode in ("I", "F"):
        array = np.asarray(pil)
    elif mode in ("L", "1", "P", "LA", "PA"):
        array = np.asarray(pil.convert("L"), dtype=np.uint8)
    else:
        array = np.asarray(pil.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(_orient(array, orientation))


def _unpack_grey_alpha_16(pil: PILImage.Image, path: Path) -> None:
    """Make Pillow unpack a 16-bit grey+alpha PNG's four bytes per pixel as RGBA (grey
    high, grey low, alpha high, alpha low) instead of keeping the high bytes only."""
    if pil.mode != "RGBA" or len(pil.tile) != 1 or pil.info.get("interlace"):
        raise ImageReadError(
            f"{path}: a 16-bit grey+alpha PNG this Pillow cannot decode at 16 bits "
            "(interlaced or animated); refused rather than reduced to 8 bits. Save it as "
            "16-bit grey without alpha."
        )
    pil.tile = [pil.tile[0]._replace(args="RGBA")]
