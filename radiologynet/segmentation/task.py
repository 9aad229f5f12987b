"""The ``luna16`` task of the protocol runner (:mod:`radiologynet.protocol`).

Importing this module registers it, with two variants: ``luna16-heldout`` (a held-out
test fold) and ``luna16-sphere`` (spherical masks). Models (:func:`resolve_model_name`):
``unet-<arch>`` (or a bare registry architecture: ``resnet50``, ``vgg16``,
``efficientnet_b4``, ...) is a U-Net with that encoder and the smp decoder (``--head
paper`` or ``unet-<arch>-paper``: the paper's decoder), its input preprocessing the
encoder weight's (mean/std after the task's HU scaling to [0, 1]); ``unet`` is the paper's
vanilla U-Net, which takes random init or a reconstruction weights folder only (grid
cells with ``imagenet``/``radiologynet`` are skipped with a warning). Loss: the
paper's Dice + 8 x false-negative Dice, Adam. The checkpoint is selected by validation
Dice (the original selected by a recall whose false-positive count also counted false
negatives).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from radiologynet.protocol.tasks import (
    DataRequest,
    ModelName,
    ModelRequest,
    TaskData,
    TaskSpec,
    register_task,
)
from radiologynet.errors import InvalidArgumentError
from radiologynet.registry import get_architecture
from radiologynet.segmentation.losses import PaperDiceLoss
from radiologynet.segmentation.luna16 import CROP_SIZE, LUNA16
from radiologynet.segmentation.metrics import DiceIoU
from radiologynet.segmentation.unet import (
    UNSUPPORTED_ENCODERS,
    create_unet,
    unet_from_model_name,
)
from radiologynet.segmentation.vanilla import RECON_RECORDS, get_unet_weights, not_released_error
from radiologynet.weights import RANDOM_TAGS, looks_like_path

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
               mask_method: str = "paper", crop_size: int = CROP_SIZE,
               train_crop: int = TRAIN_CROP) -> TaskData:
    """The paper's LUNA16 data: training nodule crops (``crop_size`` around each nodule,
    randomly cut to ``train_crop`` on the device), full validation slices."""
    dataset = LUNA16(request.root, mask_method=mask_method, test_every=test_every,
                     cache_dir=request.cache_dir, crop_size=crop_size)
    train = dataset.crops("train")
    if request.fraction is not None:
        count = max(1, round(len(train) * request.fraction))
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(request.seed))
        train = torch.utils.data.Subset(train, order[:count].tolist())
    test = dataset.slices("test") if test_every else None
    pre = request.preprocessing
    transform = LunaBatchTransform(request.in_chans, getattr(pre, "mean", None),
                                   getattr(pre, "std", None), crop=train_crop,
                                   augment=request.augment)
    return TaskData(train=train, val=dataset.slices("val"), test=test, num_classes=1,
                    class_names=("nodule",), batch_transform=transform,
                    extra={"splits": dataset.splits, "mask_method": mask_method})


#: The model name of the paper's vanilla U-Net (``unet-vanilla`` is accepted too).
VANILLA_NAME = "unet"


def _vanilla_skip_init(weights: str | None) -> str | None:
    """Why the vanilla U-Net cannot start from ``weights`` (``None`` when it can)."""
    if weights is None or str(weights).lower() in RANDOM_TAGS:
        return None
    if str(weights) in {r.tag for r in RECON_RECORDS}:  # the paper's, never released
        raise not_released_error(get_unet_weights(str(weights)))
    if looks_like_path(str(weights)) and Path(str(weights)).expanduser().exists():
        return None  # a folder written by `radiologynet pretrain-reconstruction`
    return (f"the vanilla U-Net has no {weights!r} weights (it has no zoo encoder; its "
            "only pretraining is reconstruction: pass a folder written by `radiologynet "
            "pretrain-reconstruction` as an init, or use unet-<arch> for a pretrained "
            "encoder)")


def resolve_model_name(name: str) -> ModelName:
    """How ``luna16`` reads a ``--models`` name: ``unet`` (vanilla U-Net, random or
    reconstruction-pretrained init only), ``unet-<arch>`` / ``unet-<arch>-paper`` (a
    registry encoder with the smp / the paper's decoder), or a bare registry architecture
    (kept as before: the encoder of an smp U-Net). The architecture part is normalised
    (``unet-ResNet50`` -> ``unet-resnet50``).

    Raises:
        UnknownModelError: an architecture the registry does not know.
        InvalidArgumentError: an architecture that cannot be a U-Net encoder.
    """
    if name in (VANILLA_NAME, "unet-vanilla"):
        return ModelName(VANILLA_NAME, None, input_size=TRAIN_CROP,
                         skip_init=_vanilla_skip_init)
    prefix = suffix = ""
    body = name
    if name.startswith("unet-"):
        prefix, body = "unet-", name[len("unet-"):]
        if body.endswith("-paper"):
            body, suffix = body[: -len("-paper")], "-paper"
    arch = get_architecture(body)
    if arch.name in UNSUPPORTED_ENCODERS:
        raise InvalidArgumentError(
            f"model {name!r}: {arch.name} cannot be a U-Net encoder "
            f"({UNSUPPORTED_ENCODERS[arch.name]}). Use another backbone.")
    return ModelName(f"{prefix}{arch.name}{suffix}", arch.name, input_size=arch.input_size)


def build_model(request: ModelRequest) -> torch.nn.Module:
    """A U-Net for ``request.arch`` (see the module docstring for the names)."""
    if request.arch in (VANILLA_NAME, "unet-vanilla"):
        return unet_from_model_name(request.arch, request.weights, in_chans=request.in_chans)
    if request.arch.startswith("unet-"):
        paper = request.head == "paper" and not request.arch.endswith("-paper")
        return unet_from_model_name(request.arch + ("-paper" if paper else ""),
                                    request.weights, in_chans=request.in_chans)
    decoder = "paper" if request.head == "paper" else "smp"
    return create_unet(request.arch, request.weights, in_chans=request.in_chans,
                       decoder=decoder)


LUNA16_TASK = register_task(TaskSpec(
    name="luna16", kind="segmentation", build_data=build_data, build_model=build_model,
    loss=lambda data: PaperDiceLoss(), metrics=lambda data: DiceIoU(),
    monitor="dice", mode="max", optimizer="adam", lrs=("1e-3", "1e-4", "1e-5"),
    models=("unet-resnet50", "unet-vgg16", "unet-efficientnet_b4", VANILLA_NAME),
    batch_size=32, resolve_model=resolve_model_name,
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
