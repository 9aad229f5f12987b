"""The ``luna16`` task of the protocol runner (:mod:`radiologynet.benchmarks`).

Importing this module registers it, with two variants: ``luna16-heldout`` (a held-out
test fold) and ``luna16-sphere`` (spherical masks). Models: a registry architecture (``resnet50``,
``vgg16``, ``efficientnet_b4``, ...) becomes a U-Net with that encoder and the smp decoder
(``--head paper`` selects the paper's decoder); ``unet``, ``unet-<arch>`` and
``unet-<arch>-paper`` are understood too where the runner passes them through. Loss: the
paper's Dice + 8 x false-negative Dice, Adam. The checkpoint is selected by validation
Dice (the original selected by a recall whose false-positive count also counted false
negatives).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import torch

from radiologynet.benchmarks.tasks import (
    DataRequest,
    ModelRequest,
    TaskData,
    TaskSpec,
    register_task,
)
from radiologynet.segmentation.losses import PaperDiceLoss
from radiologynet.segmentation.luna16 import LUNA16
from radiologynet.segmentation.metrics import DiceIoU
from radiologynet.segmentation.unet import create_unet, unet_from_model_name

#: Training input side: the random sub-crop of each 96 x 96 nodule crop.
TRAIN_CROP = 64
#: Gaussian noise of the paper's augmentation, 25 HU in [0, 1] units.
NOISE_STD = 25.0 / 2000.0


class LunaBatchTransform:
    """On the device: random 64 x 64 sub-crop and flips + noise (training only), channel
    repeat to ``in_chans``, and the weight's mean/std when it has one."""

    def __init__(self, in_chans: int = 3, mean: Any = None, std: Any = None,
                 crop: int = TRAIN_CROP, augment: bool = True) -> None:
        self.in_chans = in_chans
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)
        self.crop = crop
        self.augment = augment

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, *, train: bool,
                 generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = image.float(), mask.float()
        if train:
            image, mask = self._train(image, mask, generator)
        image = image.expand(-1, self.in_chans, -1, -1)
        if self.mean is not None and self.std is not None:
            view = (1, -1, 1, 1)
            image = (image - self.mean[: self.in_chans].to(image.device).view(view)) \
                / self.std[: self.in_chans].to(image.device).view(view)
        return image.contiguous(), mask

    def _train(self, image: torch.Tensor, mask: torch.Tensor,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, height, width = image.shape
        size = min(self.crop, height, width)
        ys = torch.randint(0, height - size + 1, (n,), generator=generator).tolist()
        xs = torch.randint(0, width - size + 1, (n,), generator=generator).tolist()
        image = torch.stack([image[i, :, y:y + size, x:x + size]
                             for i, (y, x) in enumerate(zip(ys, xs, strict=True))])
        mask = torch.stack([mask[i, :, y:y + size, x:x + size]
                            for i, (y, x) in enumerate(zip(ys, xs, strict=True))])
        if self.augment:
            for dim in (2, 3):
                flip = (torch.rand(n, generator=generator) < 0.5).to(image.device)
                flip = flip.view(-1, 1, 1, 1)
                image = torch.where(flip, image.flip(dim), image)
                mask = torch.where(flip, mask.flip(dim), mask)
            noise = torch.randn(image.shape, generator=generator).to(image.device)
            image = (image + NOISE_STD * noise).clamp(0.0, 1.0)
        return image, mask


def build_data(request: DataRequest, *, test_every: int | None = None,
               mask_method: str = "paper") -> TaskData:
    """The paper's LUNA16 data: training nodule crops, full validation slices."""
    dataset = LUNA16(request.root, mask_method=mask_method, test_every=test_every,
                     cache_dir=request.cache_dir)
    train = dataset.crops("train")
    if request.fraction is not None:
        count = max(1, round(len(train) * request.fraction))
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(request.seed))
        train = torch.utils.data.Subset(train, order[:count].tolist())
    test = dataset.slices("test") if test_every else None
    pre = request.preprocessing
    transform = LunaBatchTransform(request.in_chans, getattr(pre, "mean", None),
                                   getattr(pre, "std", None), augment=request.augment)
    return TaskData(train=train, val=dataset.slices("val"), test=test, num_classes=1,
                    class_names=("nodule",), batch_transform=transform,
                    extra={"splits": dataset.splits, "mask_method": mask_method})


def build_model(request: ModelRequest) -> torch.nn.Module:
    """A U-Net for ``request.arch`` (see the module docstring for the names)."""
    if request.arch == "unet" or request.arch.startswith("unet-"):
        return unet_from_model_name(request.arch, request.weights, in_chans=request.in_chans)
    decoder = "paper" if request.head == "paper" else "smp"
    return create_unet(request.arch, request.weights, in_chans=request.in_chans,
                       decoder=decoder)


LUNA16_TASK = register_task(TaskSpec(
    name="luna16", kind="segmentation", build_data=build_data, build_model=build_model,
    loss=lambda data: PaperDiceLoss(), metrics=lambda data: DiceIoU(),
    monitor="dice", mode="max", optimizer="adam", lrs=("1e-3", "1e-4", "1e-5"),
    models=("resnet50", "vgg16", "efficientnet_b4"), batch_size=32,
    description="LUNA16 2-D lung nodule segmentation (U-Nets; Dice, IoU)",
))

#: The same protocol with a held-out test fold (every 10th non-validation series; the
#: paper had none) ...
LUNA16_HELDOUT_TASK = register_task(replace(
    LUNA16_TASK, name="luna16-heldout", build_data=partial(build_data, test_every=10),
    description="LUNA16 with a held-out test fold (every 10th non-validation series)"))
#: ... and with spherical masks of the annotated diameter instead of the paper's.
LUNA16_SPHERE_TASK = register_task(replace(
    LUNA16_TASK, name="luna16-sphere", build_data=partial(build_data, mask_method="sphere"),
    description="LUNA16 with spherical nodule masks of the annotated diameter"))
