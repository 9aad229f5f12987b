"""The paper's LUNA16 training augmentation, on a batch on the device.

The authors followed "Deep Learning with PyTorch" (ch. 13): a random affine transform per
sample (a flip of each axis with probability 0.5, an offset of up to ``offset`` of the
half-width, a scale of ``1 +- scale`` per axis, a rotation by any angle), applied to image
and mask with bilinear sampling and border padding (the mask thresholded at 0.5), then
Gaussian noise of ``noise_hu`` Hounsfield units on the image. Images here are HU scaled
``(HU + 1000) / 2000``, so the noise's standard deviation is ``noise_hu / 2000``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from radiologynet.transforms.augment import affine_grid

#: Width of the HU window the images are scaled by (-1000..1000 HU -> 0..1).
HU_RANGE = 2000.0


@dataclass(frozen=True)
class LunaAugmentation:
    """The paper's augmentation parameters (defaults: the paper's).

    Attributes:
        flip: mirror each axis with probability 0.5.
        offset: the largest shift, as a fraction of the half-width (0.03).
        scale: the largest relative zoom per axis (0.2: 0.8-1.2).
        rotate: rotate by a uniform angle in [0, 360) degrees.
        noise_hu: the standard deviation of the Gaussian noise in HU (25).
    """

    flip: bool = True
    offset: float = 0.03
    scale: float = 0.2
    rotate: bool = True
    noise_hu: float = 25.0

    @classmethod
    def from_settings(cls, settings: dict) -> LunaAugmentation:
        """The augmentation described by a task's ``augment_*`` settings."""
        return cls(
            flip=bool(settings["augment_flip"]),
            offset=float(settings["augment_offset"]),
            scale=float(settings["augment_scale"]),
            rotate=bool(settings["augment_rotate"]),
            noise_hu=float(settings["augment_noise_hu"]),
        )

    def matrices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 2, 3)`` random affine matrices (``affine_grid``'s convention)."""
        uniform = torch.rand(n, 7, generator=generator, dtype=torch.float64)
        diagonal = torch.ones(n, 2, dtype=torch.float64)
        if self.flip:
            diagonal = torch.where(uniform[:, 0:2] < 0.5, -diagonal, diagonal)
        diagonal = diagonal * (1.0 + self.scale * (uniform[:, 2:4] * 2 - 1))
        shift = self.offset * (uniform[:, 4:6] * 2 - 1)
        angle = uniform[:, 6] * 2 * math.pi if self.rotate else torch.zeros(n, dtype=torch.float64)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        linear = rotation @ torch.diag_embed(diagonal)
        return torch.cat([linear, shift[:, :, None]], dim=2).float()

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch: ``image`` ``(N, C, H, W)`` float, ``mask`` ``(N, 1, H, W)`` 0/1;
        returns both, the mask still 0/1. Random numbers come from ``generator`` (CPU)."""
        n = image.shape[0]
        theta = self.matrices(n, generator)
        grid = affine_grid(theta, tuple(image.shape), device=image.device, dtype=image.dtype)
        image = F.grid_sample(
            image, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        mask_grid = (
            grid
            if mask.shape[-2:] == image.shape[-2:]
            else affine_grid(theta, tuple(mask.shape), device=image.device, dtype=image.dtype)
        )
        mask = (
            F.grid_sample(
                mask.float(), mask_grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            > 0.5
        ).float()
        if self.noise_hu:
            noise = torch.randn(image.shape, generator=generator).to(image.device)
            image = image + noise * (self.noise_hu / HU_RANGE)
        return image, mask
