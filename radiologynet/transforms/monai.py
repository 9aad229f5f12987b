"""MONAI interop: :class:`RadiologyNetPreprocessd`, a MONAI dictionary transform that
applies a weight's preprocessing (``keys=["image"]``), and the W x H rule of MONAI's
loaders (:func:`monai_xy_order`).

MONAI's ``LoadImage`` returns 2-D pictures indexed ``(x, y)``, that is ``(W, H)``: its
``PILReader`` transposes by default (``reverse_indexing=True``) and ITK keeps ITK's
``(x, y)``. numpy, PIL's ``np.asarray``, OpenCV and :func:`radiologynet.io.read_image` use
``(H, W)``. An ``(x, y)`` array given to a transform that takes ``(H, W)`` is the image
mirrored across its diagonal, silently (a radiograph classified as an MR in a trial).
:class:`RadiologyNetPreprocessd` reads the order from the MONAI metadata and turns such
arrays back, so the flip cannot happen.

``monai`` is imported through :func:`radiologynet._optional.require` when the class is
first used (the ``deploy`` extra); this module itself loads without it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch

from radiologynet._optional import require
from radiologynet.errors import InvalidArgumentError
from radiologynet.transforms.pipeline import ImageTransform, read_preprocessing

#: ``layout`` values: read it from MONAI's metadata, or say it.
LAYOUTS = ("auto", "xy", "yx")
#: PIL modes whose pixels are 8-bit (MONAI hands them over as float32 0..255).
_EIGHT_BIT_MODES = {"1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


def _meta_size(meta: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(width, height)`` as MONAI's metadata records it: PILReader's ``width`` and
    ``height``, else ``spatial_shape`` (``(x, y)`` for every MONAI reader)."""
    if meta.get("width") is not None and meta.get("height") is not None:
        return int(meta["width"]), int(meta["height"])
    spatial = meta.get("spatial_shape")
    if spatial is not None and len(spatial) >= 2:
        values = [int(v) for v in np.asarray(spatial).ravel()[:2]]
        return values[0], values[1]
    return None


def monai_xy_order(
    shape: Sequence[int], meta: Mapping[str, Any] | None, layout: str = "auto"
) -> bool:
    """Whether a 2-D array of ``shape`` (two spatial sides) is indexed ``(x, y)``.

    ``layout="xy"`` / ``"yx"`` say it. With ``"auto"``: an array without MONAI metadata is
    ``(H, W)`` (numpy's order); one with metadata is compared with the ``(width,
    height)`` recorded there (a non-square image tells its order); a square one takes
    MONAI's documented ``LoadImage`` order, ``(x, y)`` (pass ``layout="yx"`` for a reader
    made with ``reverse_indexing=False``).

    Raises:
        InvalidArgumentError: an unknown layout, or a shape that fits neither order of
            the recorded size.
    """
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout != "auto":
        return layout == "xy"
    if not meta:
        return False
    size = _meta_size(meta)
    if size is None:
        return True
    width, height = size
    spatial = tuple(int(s) for s in shape)
    if width != height:
        if spatial in ((width, height), (height, width)):
            return spatial == (width, height)
        raise InvalidArgumentError(
            f"{meta.get('filename_or_obj', 'image')}: an array of shape {spatial} does not "
            f"fit the recorded size {width} x {height}; pass layout='xy' or 'yx'"
        )
    return True


def _as_picture(value: Any, meta: Mapping[str, Any] | None, layout: str) -> np.ndarray:
    """A MONAI image (``(x, y)``, ``(1, x, y)``, ``(x, y, 3)``, ``(3, x, y)``; tensor or
    array) as the ``(H, W)`` / ``(H, W, 3)`` array the library's transforms take."""
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    channel_first = array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3)
    if channel_first:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise InvalidArgumentError(
            f"expected one 2-D image (optionally with a channel); got shape {array.shape}"
        )
    if monai_xy_order(array.shape[:2], meta, layout):
        array = np.swapaxes(array, 0, 1)
    mode = str((meta or {}).get("mode", ""))
    whole = array.dtype.kind == "f" and bool(np.all(array == np.round(array)))
    if mode in _EIGHT_BIT_MODES and whole and array.min() >= 0 and array.max() <= 255:
        array = array.astype(np.uint8)  # the 8-bit picture MONAI made float: kept as is
    return np.ascontiguousarray(array)


def _preprocess_class() -> type:
    transforms = require("monai.transforms", "RadiologyNetPreprocessd")

    class RadiologyNetPreprocessd(transforms.MapTransform):
        """Apply a weight's preprocessing to ``keys`` of a MONAI data dictionary: each
        value (a path, read with :func:`radiologynet.io.read_image`, DICOM windowing
        included, or an image from MONAI's ``LoadImage(d)``, turned from ``(x, y)`` to
        ``(H, W)`` by :func:`monai_xy_order`) becomes the float tensor ``(C, S, S)`` the
        weight expects (:class:`~radiologynet.transforms.ImageTransform`).

        Args:
            keys: the dictionary keys (``["image"]``).
            weights: a weight name, :class:`~radiologynet.WeightRecord`,
                :class:`~radiologynet.Preprocessing`, weights folder or model
                (:func:`~radiologynet.transforms.read_preprocessing`).
            in_chans: the model's input channels.
            window: a DICOM window ``(center, width)`` or preset name.
            layout: ``"auto"``, ``"xy"`` or ``"yx"`` (:func:`monai_xy_order`).
            train / augment: the paper's augmentation, as in :func:`for_weights`.
        """

        def __init__(
            self,
            keys: Hashable | Sequence[Hashable],
            weights: Any,
            in_chans: int = 3,
            window: Any = None,
            layout: str = "auto",
            train: bool = False,
            augment: Any = "default",
            allow_missing_keys: bool = False,
        ) -> None:
            super().__init__(keys, allow_missing_keys)
            if layout not in LAYOUTS:
                raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")
            self.layout = layout
            self.transform = ImageTransform(
                read_preprocessing(weights),
                train=train,
                in_chans=in_chans,
                augment=augment,
                window=window,
            )

        def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
            out = dict(data)
            for key in self.key_iterator(out):
                value = out[key]
                if isinstance(value, (str, PathLike)):
                    out[key] = self.transform(value)
                    continue
                meta = getattr(value, "meta", None) or out.get(f"{key}_meta_dict")
                out[key] = self.transform(_as_picture(value, meta, self.layout))
            return out

    RadiologyNetPreprocessd.__module__ = __name__
    return RadiologyNetPreprocessd


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "RadiologyNetPreprocessd":  # built on first use: monai is an extra
        if name not in _CLASSES:
            _CLASSES[name] = _preprocess_class()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
