"""Segmentation: encoder U-Nets over the zoo's backbones, the paper's vanilla U-Net and its
reconstruction pretraining, the LUNA16 nodule benchmark, losses and metrics.

Building U-Nets (:func:`create_unet`, :func:`load_unet`) is core and needs no extra; the
metrics (torchmetrics, the ``training`` extra) load when first used.
"""

from typing import Any

from radiologynet.segmentation.losses import BCEDiceLoss, DiceLoss, PaperDiceLoss, get_loss
from radiologynet.segmentation.paper_decoder import PaperUNet
from radiologynet.segmentation.unet import (
    UNet,
    create_unet,
    load_unet,
    predict_mask,
    unet_from_model_name,
)
from radiologynet.segmentation.vanilla import (
    RECON_RECORDS,
    UNetWeightRecord,
    VanillaUNet,
    load_vanilla_unet,
    save_vanilla_unet,
)

__all__ = [
    "RECON_RECORDS",
    "BCEDiceLoss",
    "DiceLoss",
    "PaperDiceLoss",
    "PaperUNet",
    "SegmentationMeter",
    "UNet",
    "UNetWeightRecord",
    "VanillaUNet",
    "create_unet",
    "dice_per_image",
    "get_loss",
    "iou_per_image",
    "load_unet",
    "load_vanilla_unet",
    "predict_mask",
    "save_vanilla_unet",
    "unet_from_model_name",
]

_METRICS = {"SegmentationMeter", "dice_per_image", "iou_per_image"}


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        from radiologynet.segmentation import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
