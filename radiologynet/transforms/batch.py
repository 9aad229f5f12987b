"""The batched path: uint8 batches to normalised, augmented float batches on any device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from radiologynet.transforms.augment import Augmentation, augment_batch, resolve_augmentation
from radiologynet.transforms.geometry import letterbox, resize_center_crop
from radiologynet.weights import Preprocessing


def _per_channel(values: Sequence[float] | None, in_chans: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((in_chans,), default)
    values = [float(v) for v in values]
    if len(values) == in_chans:
        return torch.tensor(values)
    if in_chans == 1:  # one grey channel: the average of the RGB statistics
        return torch.tensor([sum(values) / len(values)])
    if len(values) == 1:
        return torch.tensor(values * in_chans)
    raise ValueError(f"mean/std has {len(values)} values but the model takes {in_chans} channels")


class BatchTransform(nn.Module):
    """uint8 ``(B, 1, S, S)`` (or ``(B, S, S)``) on any device -> float ``(B, C, S, S)``:
    scaled to [0, 1], augmented per image when training, repeated to ``in_chans`` channels,
    normalised with the weight's mean/std. No per-image Python work.

    ``train=True`` (or ``.train()``) turns the augmentation on, ``.eval()`` off.

    Batches of another size are letterboxed (or resized and cropped) to ``S`` first. Move
    the module with ``.to(device)`` or not at all: its buffers follow the input's device.
    """

    def __init__(self, preprocessing: Preprocessing, train: bool = False, in_chans: int = 3,
                 augment: str | Augmentation | None = "default", crop_pct: float = 0.875,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        self.preprocessing = preprocessing
        self.size = int(preprocessing.input_size)
        self.in_chans = int(in_chans)
        self.augmentation = resolve_augmentation(augment)
        self.train(train)
        self.crop_pct = crop_pct
        self.generator = generator
        self.register_buffer("mean", _per_channel(preprocessing.mean, in_chans, 0.0)
                             .view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", _per_channel(preprocessing.std, in_chans, 1.0)
                             .view(1, -1, 1, 1), persistent=False)
        self.normalise = preprocessing.mean is not None or preprocessing.std is not None

    def extra_repr(self) -> str:
        aug = self.augmentation
        return (f"size={self.size}, in_chans={self.in_chans}, train={self.training}, "
                f"augment={aug if self.training else None}, normalise={self.normalise}")

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Return the model-ready float batch ``(B, in_chans, S, S)``."""
        if batch.dim() == 3:
            batch = batch.unsqueeze(1)
        if batch.dim() != 4 or batch.shape[1] != 1:
            raise ValueError(f"expected a grayscale batch (B, 1, H, W) or (B, H, W); "
                             f"got shape {tuple(batch.shape)}")
        x = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
        if tuple(x.shape[-2:]) != (self.size, self.size):
            if self.preprocessing.letterbox:
                x = letterbox(x, self.size, self.preprocessing.interpolation)
            else:
                x = resize_center_crop(x, self.size, self.crop_pct,
                                       self.preprocessing.interpolation)
        if self.training and self.augmentation is not None:
            x = augment_batch(x, self.augmentation, self.generator)
        x = x.expand(-1, self.in_chans, -1, -1)
        if self.normalise:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x.contiguous()
