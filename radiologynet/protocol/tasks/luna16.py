"""The ``luna16`` task of the protocol runner (:mod:`radiologynet.protocol`).

Importing this module registers it, with two variants: ``luna16-heldout`` (a held-out
test fold) and ``luna16-sphere`` (spherical masks). Models (:func:`resolve_model_name`):
``unet-<arch>`` (or a bare registry architecture: ``resnet50``, ``vgg16``,
``efficientnet_b4``, ...) is a U-Net with that encoder and the smp decoder (``--head
paper`` or ``unet-<arch>-paper``: the paper's decoder), its input preprocessing the
encoder weight's (mean/std after the task's HU scaling to [0, 1]); ``unet`` is the paper's
vanilla U-Net, which takes random init or a reconstruction weights folder only (grid
cells with ``imagenet``/``radiologynet`` are skipped with a warning). Loss: the
paper's Dice + 8 x false-negative Dice, Adam. Training draws ``samples_per_epoch`` (the
paper: 300,000) augmented nodule samples per epoch; set it small for tests and CPU runs
(``radiologynet.protocol.run(..., task_settings={"samples_per_epoch": 512})``).

Metrics, named by what they are: ``crop_dice`` / ``crop_iou``, the mean over the validation
nodules' central 64 x 64 crops of each crop's Dice and IoU at a 0.5 threshold (the
library's measure of the paper's Table 2), and ``pooled_dice`` / ``pooled_iou`` /
``pooled_recall`` (all pixels pooled). Two more validation sets are scored every epoch:
``slices_*``, the full slices that contain nodule (``slices_pooled_recall``: the authors'
early-stopping value), and ``authors_crop_dice`` / ``authors_crop_iou``, the authors' own
crop measure (random-offset crops, each thresholded at the middle of its own range,
:class:`radiologynet.train.segmentation_metrics.MidRangeDiceIoU`). As in the authors'
runs, training stops 10 epochs after the best full-slice recall and the checkpoint is the
epoch with the highest ``crop_iou`` (``TrainConfig(stop_monitor="crop_iou")`` stops on
the crop IoU instead). ``luna16-slices`` validates on full slices only and selects and
stops by ``pooled_dice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from radiologynet.data.benchmarks.luna16 import LUNA16
from radiologynet.data.tasks import LUNA16_PAPER_SETTINGS
from radiologynet.data.tasks import get_task as get_task_info
from radiologynet.errors import InvalidArgumentError
from radiologynet.models._registry import get_architecture
from radiologynet.models._vanilla_unet import RECON_RECORDS, get_unet_weights, not_released_error
from radiologynet.models._weights import Preprocessing, is_random_init, looks_like_path
from radiologynet.models.unet import (
    UNSUPPORTED_ENCODERS,
    create_unet,
    unet_from_model_name,
)
from radiologynet.protocol.spec import (
    DataRequest,
    ModelName,
    ModelRequest,
    TaskData,
    TaskSpec,
    register_task,
)
from radiologynet.train.losses import PaperDiceLoss
from radiologynet.train.segmentation_metrics import DiceIoU, MidRangeDiceIoU
from radiologynet.transforms import (
    AUGMENTATIONS,
    BatchHook,
    BatchTransform,
    CustomAugmentation,
    random_crop,
)
from radiologynet.transforms.augment import LunaAugmentation

#: Training input side: the random sub-crop of each 96 x 96 nodule crop.
TRAIN_CROP = 64


@dataclass(frozen=True)
class CropThenAugment:
    """A random ``crop`` x ``crop`` cut of image and mask, then ``augmentation`` (a
    :data:`radiologynet.transforms.augment.CustomAugmentation`, e.g. the paper's LUNA16
    affine augmentation; ``None``: the crop only)."""

    crop: int
    augmentation: CustomAugmentation | None = None

    def __call__(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        image, mask = random_crop(image, self.crop, generator, mask)
        if self.augmentation is None:
            return image, mask
        return self.augmentation(image, mask, generator)


def luna_augmentation(
    crop: int = TRAIN_CROP, augment: bool = True, augmentation: CustomAugmentation | None = None
) -> CropThenAugment:
    """LUNA16's training augmentation: a random ``crop`` x ``crop`` sub-crop, then (with
    ``augment``) ``augmentation``, by default the paper's (``AUGMENTATIONS["luna16"]``,
    :class:`radiologynet.transforms.augment.LunaAugmentation`)."""
    if not augment:
        return CropThenAugment(crop)
    return CropThenAugment(
        crop, augmentation if augmentation is not None else AUGMENTATIONS["luna16"]
    )


def luna_batch_transform(
    preprocessing: Preprocessing | None = None,
    in_chans: int = 3,
    crop: int = TRAIN_CROP,
    augment: bool = True,
    augmentation: CustomAugmentation | None = None,
) -> BatchHook:
    """The batch hook of ``luna16``: :class:`radiologynet.transforms.BatchTransform` on
    HU-scaled [0, 1] slices at their own size, with the masks following the image through
    :func:`luna_augmentation` (:class:`~radiologynet.transforms.BatchHook` ``masks=True``);
    the encoder weight's mean/std when it has one."""
    pre = preprocessing or Preprocessing(input_size=crop)
    transform = BatchTransform(
        pre, in_chans=in_chans, augment=luna_augmentation(crop, augment, augmentation), resize=False
    )
    return BatchHook(transform, masks=True)


#: The settings of the ``luna16`` task and their defaults: the paper's
#: (:data:`radiologynet.data.tasks.LUNA16_PAPER_SETTINGS`). ``validation``:
#: ``"crops"`` (the central 64 x 64 of each validation nodule's crop, the library's Table 2
#: measure, plus the full slices and the authors' offset crops as further validation sets)
#: or ``"slices"`` (the full slices that contain nodule, only). ``nodules``: which nodule
#: list (:data:`radiologynet.data.benchmarks.luna16.NODULE_LISTS`).
LUNA16_SETTINGS = MappingProxyType(dict(LUNA16_PAPER_SETTINGS))
VALIDATION_SETS = ("crops", "slices")


def luna_settings(given: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The task's settings: the defaults, then ``given`` (a request's), then
    ``overrides``.

    Raises:
        InvalidArgumentError: a setting ``luna16`` does not have, or a bad value.
    """
    settings = {**LUNA16_SETTINGS, **given, **overrides}
    unknown = sorted(set(settings) - set(LUNA16_SETTINGS))
    if unknown:
        raise InvalidArgumentError(
            f"luna16 has no setting {', '.join(unknown)} (its "
            f"settings: {', '.join(LUNA16_SETTINGS)})."
        )
    if settings["validation"] not in VALIDATION_SETS:
        raise InvalidArgumentError(
            f"luna16 validation={settings['validation']!r}: use one "
            f"of {', '.join(VALIDATION_SETS)}."
        )
    return settings


def build_data(
    request: DataRequest, *, test_every: int | None = None, **overrides: Any
) -> TaskData:
    """The paper's LUNA16 data: ``samples_per_epoch`` training samples drawn from the
    nodule crops (``crop_size`` around each nodule, randomly cut to ``train_crop`` and
    augmented on the device), validated on the central ``val_crop`` of each validation
    nodule's crop (or on full slices: ``validation="slices"``). ``overrides``: any of
    :data:`LUNA16_SETTINGS`, over ``request.settings``."""
    settings = luna_settings(request.settings, overrides)
    dataset = LUNA16(
        request.root,
        mask_method=settings["mask_method"],
        test_every=test_every,
        cache_dir=request.cache_dir,
        crop_size=settings["crop_size"],
        seed=request.seed,
        fraction=request.fraction,
        nodules=settings["nodules"],
    )
    train = dataset.crops("train", settings["samples_per_epoch"])
    crops = settings["validation"] == "crops"

    def evaluation_set(split: str) -> torch.utils.data.Dataset:
        if not crops:
            return dataset.slices(split)
        return dataset.center_crops(split, settings["val_crop"])

    extra_val = (
        {
            "slices": (dataset.slices("val"), DiceIoU(unit="mean")),
            "authors": (
                dataset.offset_crops("val", settings["val_crop"], seed=request.seed),
                MidRangeDiceIoU(unit="crop"),
            ),
        }
        if crops
        else {}
    )

    pre = request.preprocessing
    augmentation = LunaAugmentation.from_settings(settings, draw=request.augment_draw)
    transform = luna_batch_transform(
        pre,
        request.in_chans,
        crop=settings["train_crop"],
        augment=request.augment,
        augmentation=augmentation,
    )
    unit = "crop" if settings["validation"] == "crops" else "slice"
    return TaskData(
        train=train,
        val=evaluation_set("val"),
        test=evaluation_set("test") if test_every else None,
        num_classes=1,
        class_names=("nodule",),
        batch_transform=transform,
        extra={
            "splits": dataset.splits,
            "mask_method": settings["mask_method"],
            "nodule_sheet": dataset.nodule_sheet,
            "unit": unit,
            "settings": settings,
        },
        extra_val=extra_val,
    )


#: The model name of the paper's vanilla U-Net (``unet-vanilla`` is accepted too).
VANILLA_NAME = "unet"


def _vanilla_skip_init(weights: str | None) -> str | None:
    """Why the vanilla U-Net cannot start from ``weights`` (``None`` when it can)."""
    if is_random_init(weights):
        return None
    if str(weights) in {r.tag for r in RECON_RECORDS}:  # the paper's, never released
        raise not_released_error(get_unet_weights(str(weights)))
    if looks_like_path(str(weights)) and Path(str(weights)).expanduser().exists():
        return None  # a folder written by `radiologynet pretrain-reconstruction`
    return (
        f"the vanilla U-Net has no {weights!r} weights (it has no zoo encoder; its "
        "only pretraining is reconstruction: pass a folder written by `radiologynet "
        "pretrain-reconstruction` as an init, or use unet-<arch> for a pretrained "
        "encoder)"
    )


def resolve_model_name(name: str) -> ModelName:
    """How ``luna16`` reads a ``--models`` name: ``unet`` (vanilla U-Net, random or
    reconstruction-pretrained init only), ``unet-<arch>`` / ``unet-<arch>-paper`` (a
    registry encoder with the smp / the paper's decoder), or a bare registry architecture
    (the encoder of an smp U-Net). The architecture part is normalised
    (``unet-ResNet50`` -> ``unet-resnet50``).

    Raises:
        UnknownModelError: an architecture the registry does not know.
        InvalidArgumentError: an architecture that cannot be a U-Net encoder.
    """
    if name in (VANILLA_NAME, "unet-vanilla"):
        return ModelName(VANILLA_NAME, None, input_size=TRAIN_CROP, skip_init=_vanilla_skip_init)
    prefix = suffix = ""
    body = name
    if name.startswith("unet-"):
        prefix, body = "unet-", name[len("unet-") :]
        if body.endswith("-paper"):
            body, suffix = body[: -len("-paper")], "-paper"
    arch = get_architecture(body)
    if arch.name in UNSUPPORTED_ENCODERS:
        raise InvalidArgumentError(
            f"model {name!r}: {arch.name} cannot be a U-Net encoder "
            f"({UNSUPPORTED_ENCODERS[arch.name]}). Use another backbone."
        )
    return ModelName(f"{prefix}{arch.name}{suffix}", arch.name, input_size=arch.input_size)


def build_model(request: ModelRequest) -> torch.nn.Module:
    """A U-Net for ``request.arch`` (see the module docstring for the names)."""
    if request.arch in (VANILLA_NAME, "unet-vanilla"):
        return unet_from_model_name(request.arch, request.weights, in_chans=request.in_chans)
    if request.arch.startswith("unet-"):
        paper = request.head == "paper" and not request.arch.endswith("-paper")
        return unet_from_model_name(
            request.arch + ("-paper" if paper else ""), request.weights, in_chans=request.in_chans
        )
    decoder = "paper" if request.head == "paper" else "smp"
    return create_unet(request.arch, request.weights, in_chans=request.in_chans, decoder=decoder)


LUNA16_TASK = register_task(
    TaskSpec(
        get_task_info("luna16"),
        build_data,
        build_model=build_model,
        loss=lambda data: PaperDiceLoss(),
        metrics=lambda data: DiceIoU(unit=data.extra.get("unit", "crop")),
        resolve_model=resolve_model_name,
    )
)


def _variant(name: str, title: str, **protocol: Any) -> TaskSpec:
    """``luna16`` under another name (a record of its own, no aliases), trained with the
    paper's LUNA16 protocol changed in ``protocol``."""
    info = replace(LUNA16_TASK.info, name=name, title=title, aliases=(), paper=None)
    return replace(LUNA16_TASK, info=info, protocol=replace(LUNA16_TASK.training, **protocol))


#: The same protocol with a held-out test fold (every 10th non-validation series; the
#: paper had none) ...
LUNA16_HELDOUT_TASK = register_task(
    replace(
        _variant(
            "luna16-heldout", "LUNA16 with a held-out test fold (every 10th non-validation series)"
        ),
        build_data=partial(build_data, test_every=10),
    )
)
#: ... with spherical masks of the annotated diameter instead of the paper's ...
LUNA16_SPHERE_TASK = register_task(
    _variant(
        "luna16-sphere",
        "LUNA16 with spherical nodule masks of the annotated diameter",
        settings={**LUNA16_SETTINGS, "mask_method": "sphere"},
    )
)
#: ... and validated on full slices by pooled-pixel Dice (not the paper's metric), which
#: also drives early stopping.
LUNA16_SLICES_TASK = register_task(
    _variant(
        "luna16-slices",
        "LUNA16 validated on full slices, checkpoint by pooled-pixel Dice",
        settings={**LUNA16_SETTINGS, "validation": "slices"},
        monitor="pooled_dice",
        mode="max",
        stop_monitor=None,
        stop_mode=None,
    )
)
