"""Per-image transforms built from a weight record or a model: file, array or batch in,
the exact tensor the weights expect out, and the reader of a weight's preprocessing
(:func:`read_preprocessing`)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radiologynet.errors import InvalidArgumentError
from radiologynet.io import Image, read_image, to_radiologynet_uint8
from radiologynet.io.windowing import Window
from radiologynet.models._folder import read_weights_folder
from radiologynet.models._preprocessing import Preprocessing
from radiologynet.models._weights import WeightRecord, get_weights
from radiologynet.transforms.augment import Augmentation
from radiologynet.transforms.batch import BatchTransform
from radiologynet.transforms.geometry import letterbox, resize_center_crop

ImageLike = Image | np.ndarray | torch.Tensor | str | PathLike[str]


def _as_array(image: Any) -> Any:
    """Tensors as numpy (channels-first ``(1|3, H, W)`` moved last), PIL images as arrays;
    anything else unchanged."""
    if isinstance(image, torch.Tensor):
        if image.dim() == 4:
            raise InvalidArgumentError(
                f"got a batch of shape {tuple(image.shape)} where one image was expected; "
                "call the transform itself (it takes (B, 1, H, W)) or a BatchTransform"
            )
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = np.moveaxis(image, 0, -1)
            if image.shape[-1] == 1:
                image = image[..., 0]
    if not isinstance(image, (Image, np.ndarray, str, PathLike)):  # a PIL image
        image = np.asarray(image)
    return image


def unit_float(image: Any, window: Window = None) -> np.ndarray | None:
    """The float rule: a floating-point image (array, tensor, or in-memory
    :class:`~radiologynet.io.Image` without a window) whose values all lie in [0, 1] is
    already an intensity and is kept as it is; returns it as float32 ``(H, W)``, or
    ``None`` when the rule does not apply (integer images, values outside [0, 1], an
    explicit ``window``, colour images, stacks)."""
    if window is not None:
        return None
    image = _as_array(image)
    if isinstance(image, Image):
        if image.voi is not None or image.window is not None or image.is_color:
            return None
        image = image.pixels
    if not isinstance(image, np.ndarray) or image.dtype.kind != "f" or image.ndim != 2:
        return None
    if image.size == 0 or not np.isfinite(image).all():
        return None  # the reader's error says what is wrong
    if float(image.min()) < 0.0 or float(image.max()) > 1.0:
        return None
    return image.astype(np.float32, copy=False)


def as_uint8_gray(image: ImageLike, window: Window = None) -> np.ndarray:
    """Any supported input as one 8-bit grayscale ``(H, W)`` picture (a stack gives its
    middle frame; a PIL image, path or tensor is accepted too).

    Intensities: an explicit ``window`` (or the file's VOI LUT / window) is applied;
    ``uint8`` is kept; a float image in [0, 1] is rounded to ``v * 255`` (:func:`unit_float`);
    anything else (wider integers, floats outside [0, 1]) is min-max scaled over its full
    range (:func:`radiologynet.io.to_radiologynet_uint8`).
    """
    if isinstance(image, (str, PathLike)):
        image = read_image(Path(image), window=window)
    unit = unit_float(image, window)
    if unit is not None:
        return np.rint(unit * 255.0).astype(np.uint8)
    image = _as_array(image)
    if isinstance(image, Image) and image.frames > 1:
        image = image.frame(image.frames // 2)
    gray = to_radiologynet_uint8(image, window=window)
    if gray.ndim == 3:
        gray = gray[gray.shape[0] // 2]
    return gray


def fit_to_size(image: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """The deterministic geometry of ``preprocessing``: letterbox (or resize and centre
    crop) to ``input_size``, any layout and dtype :func:`letterbox` takes."""
    size = int(preprocessing.input_size)
    if preprocessing.letterbox:
        return letterbox(image, size, preprocessing.interpolation)
    return resize_center_crop(image, size, preprocessing.crop_pct, preprocessing.interpolation)


def decode_uint8(
    image: ImageLike, preprocessing: Preprocessing, window: Window = None
) -> torch.Tensor:
    """An image (file, array, tensor) as the ``uint8`` tensor ``(1, S, S)`` that the
    training data, the decoded-image cache and :class:`ImageTransform` all start from."""
    gray = torch.from_numpy(as_uint8_gray(image, window))
    return fit_to_size(gray, preprocessing).unsqueeze(0)


class ImageTransform:
    """One image (path, :class:`~radiologynet.io.Image`, array, tensor or PIL image), or a
    grayscale batch ``(B, 1, H, W)``, to the float tensor ``(C, S, S)`` (``(B, C, S, S)``)
    a weight expects: 8-bit grayscale conversion, letterbox, [0, 1], augmentation when
    training, channels, mean/std.

    Shapes: ``(H, W)``, ``(1, H, W)`` and ``(3, H, W)`` (RGB, made grey) tensors are one
    image, ``(B, 1, H, W)`` a batch; other shapes are refused. Intensities: see
    :func:`as_uint8_gray`; a float image in [0, 1] skips the 8-bit rounding and is used as
    it is.

    Attributes:
        preprocessing, size, in_chans, train, window: as given.
        batch: the :class:`BatchTransform` that does everything after the letterbox (use it
            directly on cached uint8 batches).
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        train: bool = False,
        in_chans: int = 3,
        augment: str | Augmentation | None = "default",
        window: Window = None,
    ) -> None:
        self.preprocessing = preprocessing
        self.size = int(preprocessing.input_size)
        self.in_chans = in_chans
        self.train = train
        self.window = window
        self.batch = BatchTransform(preprocessing, train=train, in_chans=in_chans, augment=augment)

    def __repr__(self) -> str:
        return f"ImageTransform({self.batch.extra_repr()}, window={self.window})"

    def to_uint8(self, image: ImageLike) -> torch.Tensor:
        """The deterministic part: the image as a letterboxed uint8 tensor ``(1, S, S)``
        (what the decoded-image cache stores)."""
        return decode_uint8(image, self.preprocessing, self.window)

    def from_uint8(self, image: torch.Tensor) -> torch.Tensor:
        """The rest of the pipeline on an already letterboxed ``(1, S, S)`` image (uint8,
        or float in [0, 1])."""
        return self.batch(image.unsqueeze(0))[0]

    def _one(self, image: ImageLike) -> torch.Tensor:
        unit = unit_float(image, self.window)
        if unit is not None:
            return fit_to_size(torch.from_numpy(unit), self.preprocessing).unsqueeze(0)
        return self.to_uint8(image)

    def __call__(self, image: ImageLike) -> torch.Tensor:
        """Return the float tensor ``(in_chans, S, S)``, or ``(B, in_chans, S, S)`` for a
        batch ``(B, 1, H, W)``."""
        if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4:
            if image.shape[1] != 1:
                raise InvalidArgumentError(
                    f"expected a grayscale batch (B, 1, H, W); got shape {tuple(image.shape)}"
                    ". Convert colour images to grayscale, or pass them one by one."
                )
            if not isinstance(image, torch.Tensor):
                image = torch.from_numpy(np.ascontiguousarray(image))
            floats = image.dtype.is_floating_point and bool(((image >= 0) & (image <= 1)).all())
            if floats and self.window is None:
                return self.batch(fit_to_size(image.float(), self.preprocessing))
            return self.batch(torch.stack([self.to_uint8(im[0]) for im in image]))
        if isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] not in (1, 3):
            raise InvalidArgumentError(
                f"a tensor of shape {tuple(image.shape)} is ambiguous: pass one image as "
                "(H, W) or (1, H, W), or a batch as (B, 1, H, W)"
            )
        return self.batch(self._one(image).unsqueeze(0))[0]


PreprocessingSource = (
    str | WeightRecord | Preprocessing | Mapping[str, Any] | nn.Module | PathLike[str]
)


def read_preprocessing(source: PreprocessingSource, input_size: int | None = None) -> Preprocessing:
    """The preprocessing a weight or model expects: the reader behind
    :func:`for_weights`, :func:`for_model`, the protocol runner and the model card.

    Args:
        source: a weight name (``"resnet50.radiologynet"``), a
            :class:`~radiologynet.WeightRecord`, a :class:`~radiologynet.Preprocessing`, a
            timm ``pretrained_cfg`` or ``config.json`` mapping, a timm model (its
            ``pretrained_cfg``), or a :class:`~pathlib.Path` to a weights folder (or to a
            file inside one).
        input_size: for a path without ``config.json`` beside it: the side of the
            RadiologyNET default (letterbox, no normalisation) it gets.

    Raises:
        InvalidArgumentError: a path without ``config.json`` and no ``input_size``.
    """
    if isinstance(source, Preprocessing):
        return source
    if isinstance(source, WeightRecord):
        return source.preprocessing
    if isinstance(source, str):
        return get_weights(source).preprocessing
    if isinstance(source, nn.Module):
        cfg = getattr(source, "pretrained_cfg", None) or getattr(source, "default_cfg", None)
        return Preprocessing.from_timm_cfg(dict(cfg or {}))
    if isinstance(source, Mapping):
        return Preprocessing.from_timm_cfg(source)
    path = Path(source).expanduser()
    folder = path if path.is_dir() else path.parent
    if (folder / "config.json").is_file():
        config, _ = read_weights_folder(folder)
        return Preprocessing.from_timm_cfg(config.get("pretrained_cfg", {}))
    if input_size is None:
        raise InvalidArgumentError(
            f"{path} has no config.json beside it; pass input_size= "
            "for the RadiologyNET default preprocessing"
        )
    return Preprocessing(input_size=int(input_size))


def for_weights(
    weights: str | WeightRecord | Preprocessing | PathLike[str],
    train: bool = False,
    in_chans: int = 3,
    augment: str | Augmentation | None = "default",
    window: Window = None,
) -> ImageTransform:
    """The transform a weight expects, from its name (``"resnet50.radiologynet"``), its
    :class:`~radiologynet.WeightRecord`, a
    :class:`~radiologynet.Preprocessing` or a weights folder (:func:`read_preprocessing`).

    Args:
        train: add the paper's augmentation (``augment``: ``"default"``, ``"boneage"``, an
            :class:`Augmentation` or ``None``), drawn per image.
        in_chans: 3 (grayscale repeated) or 1 for a model created with ``in_chans=1``
            (mean/std follow :func:`~radiologynet.transforms.channel_mean_std`).
        window: ``(center, width)`` or a preset name for DICOM/CT inputs.

    Returns:
        An :class:`ImageTransform`.
    """
    return ImageTransform(
        read_preprocessing(weights), train=train, in_chans=in_chans, augment=augment, window=window
    )


def model_in_chans(model: nn.Module) -> int:
    """The input channels of a timm model: its first convolution's (``pretrained_cfg``
    ``first_conv``), else the channels of its ``pretrained_cfg`` input size, else 3."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {})
    first_conv = cfg.get("first_conv")
    if isinstance(first_conv, (list, tuple)):
        first_conv = first_conv[0]
    if first_conv:
        try:
            return int(model.get_submodule(first_conv).in_channels)
        except (AttributeError, TypeError):
            pass
    input_size = cfg.get("input_size")
    return int(input_size[0]) if input_size else 3


def for_model(
    model: nn.Module,
    train: bool = False,
    augment: str | Augmentation | None = "default",
    window: Window = None,
) -> ImageTransform:
    """The transform for any timm model, read from its ``pretrained_cfg`` (input size,
    interpolation, crop mode, crop_pct, mean/std) and its first convolution's
    ``in_channels``.

    Returns:
        An :class:`ImageTransform`.
    """
    return ImageTransform(
        read_preprocessing(model),
        train=train,
        in_chans=model_in_chans(model),
        augment=augment,
        window=window,
    )
