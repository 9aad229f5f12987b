"""The batched transform: image batches to normalised, augmented float batches on any
device. Training, evaluation, the protocol runner, pretraining, LUNA16 segmentation and
the per-image :class:`~radiologynet.transforms.ImageTransform` all end here.

Intensity rule (the same everywhere): ``uint8`` is divided by 255; a floating-point batch
is taken as already in [0, 1] and kept as it is; any other dtype is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from radiologynet.errors import InvalidArgumentError
from radiologynet.models._preprocessing import Preprocessing, channel_mean_std
from radiologynet.transforms.augment import (
    Augmentation,
    CustomAugmentation,
    augment_batch,
    resolve_augmentation,
)
from radiologynet.transforms.geometry import letterbox, resize_center_crop


def as_unit_float(batch: torch.Tensor) -> torch.Tensor:
    """A batch as float32 in [0, 1]: ``uint8`` / 255; floating point kept as it is.

    Raises:
        InvalidArgumentError: any other dtype (scale it to uint8 or [0, 1] floats first).
    """
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    if batch.dtype.is_floating_point:
        return batch.float()
    raise InvalidArgumentError(
        f"a batch of dtype {batch.dtype} has no defined intensity scale: pass uint8 "
        "(0..255) or floats in [0, 1] (radiologynet.transforms.for_weights converts any "
        "image, windowing DICOM/CT values)"
    )


def as_gray_batch(batch: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)``, ``(B, H, W)`` or ``(H, W)`` as ``(B, 1, H, W)``.

    Raises:
        InvalidArgumentError: any other shape (RGB batches: convert to grayscale first).
    """
    if batch.dim() == 2:
        return batch[None, None]
    if batch.dim() == 3:
        return batch.unsqueeze(1)
    if batch.dim() == 4 and batch.shape[1] == 1:
        return batch
    raise InvalidArgumentError(
        f"expected a grayscale batch (B, 1, H, W), (B, H, W) or one image (H, W); got "
        f"shape {tuple(batch.shape)}. Colour images: convert to grayscale first "
        "(radiologynet.transforms.for_weights does it per image)."
    )


class BatchTransform(nn.Module):
    """A grayscale batch on any device -> the float batch ``(B, in_chans, S, S)`` a weight
    expects: scaled to [0, 1] (:func:`as_unit_float`), letterboxed (or resized and
    cropped) to ``S`` when its size differs, augmented when training (per image or once per
    batch, as the :class:`Augmentation` says), repeated to
    ``in_chans`` channels, normalised with the weight's mean/std
    (:func:`channel_mean_std`). No per-image Python work.

    ``transform(batch)`` returns the float batch; augmentation follows the module's mode
    (``train=True`` or ``.train()`` on, ``.eval()`` off). :class:`BatchHook` makes it the
    trainer's batch hook.

    Args:
        preprocessing: the weight's :class:`~radiologynet.Preprocessing`.
        train: start in training mode.
        in_chans: the model's input channels.
        augment: ``"default"``, ``"boneage"``, ``"luna16"``, an :class:`Augmentation`, a
            task's own policy ``fn(image, mask, generator) -> (image, mask)``, or ``None``.
        generator: random source of the augmentation.
        resize: ``False`` keeps every batch at its own size (segmentation slices).
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        train: bool = False,
        in_chans: int = 3,
        augment: str | Augmentation | CustomAugmentation | None = "default",
        generator: torch.Generator | None = None,
        *,
        resize: bool = True,
    ) -> None:
        super().__init__()
        if in_chans < 1:
            raise InvalidArgumentError(f"in_chans must be >= 1, got {in_chans}")
        self.preprocessing = preprocessing
        self.size = int(preprocessing.input_size)
        self.in_chans = int(in_chans)
        self.augmentation = resolve_augmentation(augment)
        self.generator = generator
        self.resize = resize
        self.train(train)
        stats = channel_mean_std(preprocessing.mean, preprocessing.std, self.in_chans)
        self.normalise = stats is not None
        mean, std = stats if stats is not None else ((0.0,) * in_chans, (1.0,) * in_chans)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        aug = self.augmentation
        return (
            f"size={self.size}, in_chans={self.in_chans}, train={self.training}, "
            f"augment={aug if self.training else None}, normalise={self.normalise}"
        )

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The float batch ``(B, in_chans, S, S)``, augmented in training mode."""
        return self.images(batch, train=self.training, generator=self.generator)[0]

    def images(
        self,
        batch: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float batch (and ``mask`` through the same geometry, when given)."""
        x = as_gray_batch(batch)
        if x.dtype != torch.uint8:
            x = as_unit_float(x)  # floats kept, other dtypes refused before any work
        if self.resize and tuple(x.shape[-2:]) != (self.size, self.size):
            x = self._fit(x)  # uint8 stays uint8, rounded as OpenCV and the cache round
            mask = self._fit(mask, nearest=True) if mask is not None else None
        x = as_unit_float(x)
        if train and self.augmentation is not None:
            if not isinstance(self.augmentation, Augmentation):  # a task's own policy
                x, mask = self.augmentation(x, mask, generator)
            elif mask is not None:
                x, mask = augment_batch(x, self.augmentation, generator, mask=mask)
            else:
                x = augment_batch(x, self.augmentation, generator)
        x = x.expand(-1, self.in_chans, -1, -1)
        if self.normalise:
            if self.mean.device != x.device:  # follow the data once, not every batch
                self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
            x = (x - self.mean).div_(self.std)  # one new batch, not two
        x = x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x.contiguous()
        return x, mask

    def _fit(self, x: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        pre = self.preprocessing
        mode = "nearest" if nearest else pre.interpolation
        if pre.letterbox:
            return letterbox(x, self.size, mode)
        return resize_center_crop(x, self.size, pre.crop_pct, mode)


@dataclass(frozen=True)
class BatchHook:
    """A :class:`BatchTransform` as the batch hook of :func:`radiologynet.train.fit` and
    ``TaskData.batch_transform``: ``hook(inputs, target, train=, generator=)`` returns
    ``(inputs, target)``, with the trainer choosing the mode and the random source.

    ``inputs`` may be a tuple ``(image, *extras)`` (extras pass through). With
    ``masks=True`` the target is a segmentation mask that takes the image's crop, flips
    and geometry.
    """

    transform: BatchTransform
    masks: bool = False

    def __call__(
        self, inputs: Any, target: Any, *, train: bool, generator: torch.Generator | None = None
    ) -> tuple[Any, Any]:
        image, extras = (
            (inputs[0], tuple(inputs[1:])) if isinstance(inputs, (tuple, list)) else (inputs, None)
        )
        mask = target.float() if self.masks and target is not None else None
        image, mask = self.transform.images(image, mask, train=train, generator=generator)
        return ((image, *extras) if extras is not None else image), (mask if self.masks else target)
