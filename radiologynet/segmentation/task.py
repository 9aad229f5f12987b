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

import warnings
from dataclasses import dataclass, replace
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
from radiologynet.transforms import (
    AUGMENTATIONS,
    Augmentation,
    BatchTransform,
    CustomAugmentation,
    random_crop,
)
from radiologynet.weights import RANDOM_TAGS, Preprocessing

#: Training input side: the random sub-crop of each 96 x 96 nodule crop.
TRAIN_CROP = 64
#: Gaussian noise of the paper's augmentation, 25 HU in [0, 1] units.
NOISE_STD = AUGMENTATIONS["luna16"].noise_std


@dataclass(frozen=True)
class CropThenAugment:
    """A random ``crop`` x ``crop`` cut of image and mask, then ``augmentation`` (a
    :data:`radiologynet.transforms.augment.CustomAugmentation`, e.g. the paper's LUNA16
    affine augmentation; ``None``: the crop only)."""

    crop: int
    augmentation: CustomAugmentation | None = None

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None,
                 generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        image, mask = random_crop(image, self.crop, generator, mask)
        if self.augmentation is None:
            return image, mask
        return self.augmentation(image, mask, generator)


def luna_augmentation(crop: int = TRAIN_CROP, augment: bool = True,
                      augmentation: CustomAugmentation | None = None
                      ) -> Augmentation | CropThenAugment:
    """LUNA16's training augmentation: a random ``crop`` x ``crop`` sub-crop, then (with
    ``augment``) ``augmentation`` when given, else both flips and Gaussian noise of 25 HU
    (``AUGMENTATIONS["luna16"]``)."""
    if augmentation is not None:
        return CropThenAugment(crop, augmentation if augment else None)
    if not augment:
        return Augmentation(flip_p=0.0, degrees=0.0, brightness=None, contrast=None,
                            crop=crop)
    return replace(AUGMENTATIONS["luna16"], crop=crop)


def luna_batch_transform(preprocessing: Preprocessing | None = None, in_chans: int = 3,
                         crop: int = TRAIN_CROP, augment: bool = True,
                         augmentation: CustomAugmentation | None = None) -> BatchTransform:
    """The device transform of ``luna16``: :class:`radiologynet.transforms.BatchTransform`
    on HU-scaled [0, 1] slices at their own size, with the masks following the image
    through :func:`luna_augmentation`; the encoder weight's mean/std when it has one."""
    pre = preprocessing or Preprocessing(input_size=crop)
    return BatchTransform(pre, in_chans=in_chans,
                          augment=luna_augmentation(crop, augment, augmentation),
                          resize=False, masks=True)


def LunaBatchTransform(in_chans: int = 3, mean: Any = None, std: Any = None,  # noqa: N802
                       crop: int = TRAIN_CROP, augment: bool = True,
                       augmentation: CustomAugmentation | None = None) -> BatchTransform:
    """Deprecated: use :func:`luna_batch_transform` (a
    :class:`radiologynet.transforms.BatchTransform`)."""
    warnings.warn("LunaBatchTransform is deprecated and will be removed in radiologynet 0.3; "
                  "use radiologynet.segmentation.task.luna_batch_transform instead.",
                  DeprecationWarning, stacklevel=2)
    pre = Preprocessing(input_size=crop, mean=tuple(mean) if mean is not None else None,
                        std=tuple(std) if std is not None else None)
    return luna_batch_transform(pre, in_chans=in_chans, crop=crop, augment=augment,
                                augmentation=augmentation)


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
    transform = luna_batch_transform(request.preprocessing, request.in_chans,
                                     crop=train_crop, augment=request.augment)
    return TaskData(train=train, val=dataset.slices("val"), test=test, num_classes=1,
                    class_names=("nodule",), batch_transform=transform,
                    extra={"splits": dataset.splits, "mask_method": mask_method})


#: The model name of the paper's vanilla U-Net (``unet-vanilla`` is accepted too).
VANILLA_NAME = "unet"


def _vanilla_skip_init(weights: str | None) -> str | None:
    """Why the vanilla U-Net cannot start from ``weights`` (``None`` when it can)."""
    if weights is None or str(weights).lower() in RANDOM_TAGS:
        return None
    from radiologynet.protocol.runner import is_weight_tag

    if str(weights) in {r.tag for r in RECON_RECORDS}:  # the paper's, never released
        raise not_released_error(get_unet_weights(str(weights)))
    if not is_weight_tag(str(weights)) and Path(str(weights)).expanduser().exists():
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
