"""Reading PNG, JPEG and other 2-D picture files (8 and 16 bits) with Pillow."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from radiologynet.errors import ImageReadError
from radiologynet.io.windowing import Image, Window, resolve_window

#: Suffixes read by :func:`read_picture`.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_picture(path: str | PathLike[str], window: Window = None) -> Image:
    """Read a PNG/JPEG/BMP/TIFF file, keeping its bit depth (16-bit PNG stays ``uint16``).

    Returns:
        An :class:`Image` whose ``pixels`` are ``(H, W)`` grayscale or ``(H, W, 3)`` RGB.

    Raises:
        ImageReadError: a missing, unreadable, truncated or empty file.
    """
    path = Path(path)
    try:
        with PILImage.open(path) as pil:
            mode = pil.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                pixels = np.asarray(pil, dtype=np.uint16).copy()
            elif mode in ("I", "F"):
                pixels = np.asarray(pil).copy()
            elif mode in ("L", "1", "P", "LA", "PA"):
                pixels = np.asarray(pil.convert("L"), dtype=np.uint8).copy()
            else:
                pixels = np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file.") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: not an image file Pillow can read.") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err}).") from err
    if pixels.size == 0:
        raise ImageReadError(f"{path}: the image has no pixels (shape {pixels.shape}).")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ImageReadError(f"{path}: the image contains NaN or infinite values.")
    return Image(
        pixels=pixels,
        path=path,
        photometric="RGB" if pixels.ndim == 3 else "MONOCHROME2",
        window=resolve_window(window, path),
    )
