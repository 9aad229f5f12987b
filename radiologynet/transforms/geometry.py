"""Letterbox and resize-and-crop with torch ops, matching the original OpenCV pipeline.

The authors letterboxed every image with ``cv2.resize(INTER_LINEAR)`` to
``int(side * S / max(h, w))`` per side, then ``cv2.copyMakeBorder`` with zeros, the extra
pixel of an odd padding going to the bottom/right. ``F.interpolate(mode="bilinear",
align_corners=False, antialias=False)`` samples exactly where ``INTER_LINEAR`` does (half-
pixel centres, no anti-aliasing when shrinking), so the two agree to within one grey level.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_MODES = {"bilinear": "bilinear", "linear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


def letterbox_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """Where an ``height x width`` image lands in its ``size x size`` letterbox.

    Returns:
        ``(new_height, new_width, top, left)``: the resized image's size and the zero
        padding above and to its left (the rest goes below and to the right).
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot letterbox an empty image ({height} x {width})")
    ratio = float(size) / max(height, width)
    # the original computed int(side * ratio); floating point can make the long side
    # size - 1 (4997 * (224 / 4997) == 223.99999999999997); keep that quirk for parity.
    new_height, new_width = max(int(height * ratio), 1), max(int(width * ratio), 1)
    return new_height, new_width, (size - new_height) // 2, (size - new_width) // 2


def _interpolation_mode(interpolation: str) -> str:
    try:
        return _MODES[interpolation.lower()]
    except KeyError as err:
        raise ValueError(
            f"interpolation must be one of {', '.join(_MODES)}; got {interpolation!r}"
        ) from err


def _resize(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Resize a float ``(B, C, H, W)`` batch without anti-aliasing (as OpenCV)."""
    if tuple(x.shape[-2:]) == size:
        return x
    mode = _interpolation_mode(interpolation)
    kwargs = {"align_corners": False, "antialias": False} if mode != "nearest" else {}
    return F.interpolate(x, size=size, mode=mode, **kwargs)


def _as_batch(image: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, int, torch.dtype]:
    x = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    ndim, dtype = x.dim(), x.dtype
    if ndim not in (2, 3, 4):
        raise ValueError(f"expected (H, W), (C, H, W) or (B, C, H, W); got shape {tuple(x.shape)}")
    while x.dim() < 4:
        x = x.unsqueeze(0)
    return x.to(torch.float32), ndim, dtype


def _restore(x: torch.Tensor, ndim: int, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.uint8:
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    elif dtype.is_floating_point:
        x = x.to(dtype)
    while x.dim() > ndim:
        x = x.squeeze(0)
    return x


def letterbox(
    image: torch.Tensor | np.ndarray, size: int, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Resize the longest side to ``size`` (aspect kept) and zero-pad, centred, to a square.

    Args:
        image: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``, uint8 or float, any device.
        size: the side of the square output.
        interpolation: ``"bilinear"`` (the RadiologyNET weights), ``"bicubic"`` or
            ``"nearest"``.

    Returns:
        A tensor of the same layout and dtype with spatial size ``size x size`` (uint8
        input is rounded back to uint8, as OpenCV does).
    """
    x, ndim, dtype = _as_batch(image)
    new_h, new_w, top, left = letterbox_geometry(x.shape[-2], x.shape[-1], size)
    x = _resize(x, (new_h, new_w), interpolation)
    x = F.pad(x, (left, size - new_w - left, top, size - new_h - top))
    return _restore(x, ndim, dtype)


def resize_center_crop(
    image: torch.Tensor | np.ndarray,
    size: int,
    crop_pct: float = 0.875,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """timm's ``crop_mode="center"``: shorter side to ``floor(size / crop_pct)``, then a
    centred ``size x size`` crop (zero-padded if the image is too small).

    Returns:
        A tensor of the same layout and dtype, ``size x size``.
    """
    x, ndim, dtype = _as_batch(image)
    height, width = x.shape[-2:]
    scale_size = math.floor(size / crop_pct)
    ratio = scale_size / min(height, width)
    new_h, new_w = max(round(height * ratio), 1), max(round(width * ratio), 1)
    x = _resize(x, (new_h, new_w), interpolation)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    if top < 0 or left < 0:
        pad_t, pad_l = max(-top, 0), max(-left, 0)
        x = F.pad(x, (pad_l, max(size - new_w - pad_l, 0), pad_t, max(size - new_h - pad_t, 0)))
        top, left = max(top, 0), max(left, 0)
    x = x[..., top : top + size, left : left + size]
    return _restore(x, ndim, dtype)
