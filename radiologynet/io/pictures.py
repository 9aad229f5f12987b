"""Reading PNG, JPEG and other 2-D picture files (8 and 16 bits) with Pillow."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from radiologynet.errors import ImageReadError, ImageReadWarning
from radiologynet.io.windowing import Image, Window, resolve_window

__all__ = ["read_picture"]


def read_picture(path: str | PathLike[str], window: Window = None) -> Image:
    """Read a PNG/JPEG/BMP/TIFF file, keeping its bit depth (16-bit PNG stays ``uint16``).

    The EXIF orientation tag is honoured (the picture is turned as a viewer shows it). A
    multi-page file (TIFF) whose pages all have the first page's size and mode is read as
    a stack of frames, like a multi-frame DICOM; one whose pages differ (thumbnails,
    pyramids) gives its first page with an :class:`~radiologynet.errors.ImageReadWarning`.

    Returns:
        An :class:`Image` whose ``pixels`` are ``(H, W)`` grayscale or ``(H, W, 3)`` RGB
        (``(F, H, W)`` / ``(F, H, W, 3)`` for a stack of pages).

    Raises:
        ImageReadError: a missing, unreadable, truncated or empty file, or one whose header
            claims more pixels than Pillow's decompression-bomb limit.
    """
    path = Path(path)
    try:
        with PILImage.open(path) as pil:
            pages = _pages(pil, path)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file.") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: not an image file Pillow can read.") from err
    except PILImage.DecompressionBombError as err:
        raise ImageReadError(
            f"{path}: the header claims an image too large to decode safely ({err})."
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


def _pages(pil: PILImage.Image, path: Path) -> list[np.ndarray]:
    """Every page of ``pil`` as arrays when they share the first page's size and mode,
    else the first page alone (with a warning)."""
    count = int(getattr(pil, "n_frames", 1) or 1)
    first_size, first_mode = pil.size, pil.mode
    pages = [_array(pil)]
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
        pages.append(_array(pil))
    return pages


def _array(pil: PILImage.Image) -> np.ndarray:
    """One page as an array in its own bit depth, turned by its EXIF orientation."""
    pil = ImageOps.exif_transpose(pil) or pil
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(pil, dtype=np.uint16).copy()
    if mode in ("I", "F"):
        return np.asarray(pil).copy()
    if mode in ("L", "1", "P", "LA", "PA"):
        return np.asarray(pil.convert("L"), dtype=np.uint8).copy()
    return np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
