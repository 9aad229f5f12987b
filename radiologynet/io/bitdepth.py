"""The authors' 16-bit to 8-bit conversion, for reproducing their inputs exactly.

The authors read the 16-bit GRAZPEDWRI-DX PNGs with OpenCV's ``cv2.IMREAD_GRAYSCALE``,
which keeps the top byte of each pixel (``v >> 8``): the full range, not a truncation.
:func:`radiologynet.io.to_radiologynet_uint8` scales each image's own min..max to 0..255
instead; on the real GRAZPEDWRI-DX images (full 0..65535 range) the two differ by at most
one grey level. Use :func:`paper_uint8` where the exact bytes matter.
"""

from __future__ import annotations

import numpy as np

from radiologynet.errors import ImageReadError


def paper_uint8(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as the authors' reader gave them: 8-bit images unchanged, 16-bit
    images ``v >> 8`` (OpenCV's ``IMREAD_GRAYSCALE``).

    Raises:
        ImageReadError: any other pixel type (float, signed, 32-bit).
    """
    array = np.asarray(pixels)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise ImageReadError(
        f"paper_uint8 takes uint8 or uint16 pixels, not {array.dtype}: "
        "use radiologynet.io.to_radiologynet_uint8 for other images."
    )
