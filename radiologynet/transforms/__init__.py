"""Preprocessing built from a weight record or a model: letterbox, scaling, channels,
mean/std, the paper's augmentation, and the batched on-device transform."""

from radiologynet.models._preprocessing import channel_mean_std
from radiologynet.transforms.augment import (
    AUGMENTATIONS,
    Augmentation,
    CustomAugmentation,
    affine_grid,
    augment_batch,
    random_affine_theta,
    random_crop,
)
from radiologynet.transforms.batch import (
    BatchHook,
    BatchTransform,
    as_gray_batch,
    as_unit_float,
)
from radiologynet.transforms.geometry import letterbox, letterbox_geometry, resize_center_crop
from radiologynet.transforms.pipeline import (
    ImageTransform,
    as_uint8_gray,
    decode_uint8,
    fit_to_size,
    for_model,
    for_weights,
    model_in_chans,
    read_preprocessing,
    unit_float,
)

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "BatchHook",
    "BatchTransform",
    "affine_grid",
    "CustomAugmentation",
    "ImageTransform",
    "as_gray_batch",
    "as_uint8_gray",
    "as_unit_float",
    "augment_batch",
    "channel_mean_std",
    "decode_uint8",
    "fit_to_size",
    "for_model",
    "for_weights",
    "letterbox",
    "letterbox_geometry",
    "model_in_chans",
    "random_affine_theta",
    "random_crop",
    "read_preprocessing",
    "resize_center_crop",
    "unit_float",
]
