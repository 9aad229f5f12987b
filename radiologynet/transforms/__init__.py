"""Preprocessing built from a weight record or a model: letterbox, scaling, channels,
mean/std, the paper's augmentation, and the batched on-device path."""

from radiologynet.transforms.augment import (
    AUGMENTATIONS,
    Augmentation,
    augment_batch,
    random_affine_theta,
)
from radiologynet.transforms.batch import BatchTransform
from radiologynet.transforms.geometry import letterbox, letterbox_geometry, resize_center_crop
from radiologynet.transforms.pipeline import (
    ImageTransform,
    as_uint8_gray,
    for_model,
    for_weights,
    preprocessing_from_cfg,
)

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "BatchTransform",
    "ImageTransform",
    "as_uint8_gray",
    "augment_batch",
    "for_model",
    "for_weights",
    "letterbox",
    "letterbox_geometry",
    "preprocessing_from_cfg",
    "random_affine_theta",
    "resize_center_crop",
]
