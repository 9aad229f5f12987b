"""Per-image transforms built from a weight record or a model: file or array in, the exact
tensor the weights expect out."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import nn

from radiologynet.io import Image, read_image, to_radiologynet_uint8
from radiologynet.io.windowing import Window
from radiologynet.transforms.augment import Augmentation
from radiologynet.transforms.batch import BatchTransform
from radiologynet.transforms.geometry import letterbox, resize_center_crop
from radiologynet.weights import Preprocessing, WeightRecord, get_weights

ImageLike = Image | np.ndarray | torch.Tensor | str | PathLike[str]


def as_uint8_gray(image: ImageLike, window: Window = None) -> np.ndarray:
    """Any supported input as one 8-bit grayscale ``(H, W)`` picture (a stack gives its
    middle frame; a PIL image, path or tensor is accepted too)."""
    if isinstance(image, (str, PathLike)):
        image = read_image(Path(image), window=window)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = np.moveaxis(image, 0, -1)
            if image.shape[-1] == 1:
                image = image[..., 0]
    if not isinstance(image, (Image, np.ndarray)):  # a PIL image
        image = np.asarray(image)
    if isinstance(image, Image) and image.frames > 1:
        image = image.frame(image.frames // 2)
    gray = to_radiologynet_uint8(image, window=window)
    if gray.ndim == 3:
        gray = gray[gray.shape[0] // 2]
    return gray


class ImageTransform:
    """One image (path, :class:`~radiologynet.io.Image`, array, tensor or PIL image) to
    the float tensor ``(C, S, S)`` a weight expects: 8-bit grayscale conversion, letterbox,
    [0, 1], augmentation when training, channels, mean/std.

    Attributes:
        preprocessing, size, in_chans, train, window: as given.
        batch: the :class:`BatchTransform` that does everything after the letterbox (use it
            directly on cached uint8 batches).
    """

    def __init__(self, preprocessing: Preprocessing, train: bool = False, in_chans: int = 3,
                 augment: str | Augmentation | None = "default", window: Window = None,
                 crop_pct: float = 0.875) -> None:
        self.preprocessing = preprocessing
        self.size = int(preprocessing.input_size)
        self.in_chans = in_chans
        self.train = train
        self.window = window
        self.crop_pct = crop_pct
        self.batch = BatchTransform(preprocessing, train=train, in_chans=in_chans,
                                    augment=augment, crop_pct=crop_pct)

    def __repr__(self) -> str:
        return f"ImageTransform({self.batch.extra_repr()}, window={self.window})"

    def to_uint8(self, image: ImageLike) -> torch.Tensor:
        """The deterministic part: the image as a letterboxed uint8 tensor ``(1, S, S)``
        (what the decoded-image cache stores)."""
        gray = torch.from_numpy(as_uint8_gray(image, self.window))
        if self.preprocessing.letterbox:
            out = letterbox(gray, self.size, self.preprocessing.interpolation)
        else:
            out = resize_center_crop(gray, self.size, self.crop_pct,
                                     self.preprocessing.interpolation)
        return out.unsqueeze(0)

    def from_uint8(self, image: torch.Tensor) -> torch.Tensor:
        """The rest of the pipeline on an already letterboxed uint8 ``(1, S, S)`` image."""
        return self.batch(image.unsqueeze(0))[0]

    def __call__(self, image: ImageLike) -> torch.Tensor:
        """Return the float tensor ``(in_chans, S, S)``."""
        return self.from_uint8(self.to_uint8(image))


def _preprocessing_of(weights: str | WeightRecord | Preprocessing) -> Preprocessing:
    if isinstance(weights, Preprocessing):
        return weights
    if isinstance(weights, WeightRecord):
        return weights.preprocessing
    return get_weights(weights).preprocessing


def for_weights(weights: str | WeightRecord | Preprocessing, train: bool = False,
                in_chans: int = 3, augment: str | Augmentation | None = "default",
                window: Window = None) -> ImageTransform:
    """The transform a weight expects, from its name (``"resnet50.radiologynet"``), its
    :class:`~radiologynet.WeightRecord` or a :class:`~radiologynet.Preprocessing`.

    Args:
        train: add the paper's augmentation (``augment``: ``"default"``, ``"boneage"``, an
            :class:`Augmentation` or ``None``), drawn per image.
        in_chans: 3 (grayscale repeated) or 1 for a model created with ``in_chans=1``.
        window: ``(center, width)`` or a preset name for DICOM/CT inputs.

    Returns:
        An :class:`ImageTransform`.
    """
    return ImageTransform(_preprocessing_of(weights), train=train, in_chans=in_chans,
                          augment=augment, window=window)


def _model_in_chans(model: nn.Module, cfg: dict) -> int:
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


def preprocessing_from_cfg(cfg: dict) -> tuple[Preprocessing, float]:
    """A timm ``pretrained_cfg`` as a :class:`~radiologynet.Preprocessing` and its crop_pct
    (mean 0 / std 1 is read as "no normalisation")."""
    input_size = cfg.get("input_size", (3, 224, 224))
    height, width = int(input_size[-2]), int(input_size[-1])
    if height != width:
        raise ValueError(f"only square inputs are supported; pretrained_cfg input_size is "
                         f"{tuple(input_size)}")
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is not None and all(float(v) == 0.0 for v in mean) and std is not None and all(
            float(v) == 1.0 for v in std):
        mean = std = None
    crop_pct = float(cfg.get("crop_pct", 0.875) or 0.875)
    letterboxed = cfg.get("crop_mode") == "border"
    preprocessing = Preprocessing(
        input_size=height, interpolation=str(cfg.get("interpolation", "bilinear")),
        letterbox=letterboxed, grayscale_to_rgb=True,
        mean=tuple(mean) if mean is not None else None,  # type: ignore[arg-type]
        std=tuple(std) if std is not None else None,  # type: ignore[arg-type]
    )
    return preprocessing, crop_pct


def for_model(model: nn.Module, train: bool = False,
              augment: str | Augmentation | None = "default",
              window: Window = None) -> ImageTransform:
    """The transform for any timm model, read from its ``pretrained_cfg`` (input size,
    interpolation, crop mode, mean/std) and its first convolution's ``in_channels``.

    Returns:
        An :class:`ImageTransform`.
    """
    cfg = dict(getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
               or {})
    preprocessing, crop_pct = preprocessing_from_cfg(cfg)
    return ImageTransform(preprocessing, train=train, in_chans=_model_in_chans(model, cfg),
                          augment=augment, window=window, crop_pct=crop_pct)
