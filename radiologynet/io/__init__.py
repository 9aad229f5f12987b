"""Reading medical images: DICOM, PNG/JPEG and 3-D volumes, and converting them to the
8-bit grayscale images the RadiologyNET weights were pretrained on."""

from radiologynet.io.bitdepth import paper_uint8
from radiologynet.io.budget import BUDGET_ENVIRONMENT, DecodeBudget
from radiologynet.io.dicom import (
    SUPPORTED_PHOTOMETRIC,
    has_pixel_data,
    header_text,
    is_dicom,
    read_dicom,
)
from radiologynet.io.listing import list_image_files
from radiologynet.io.pictures import read_picture
from radiologynet.io.read import read_image
from radiologynet.io.suffixes import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    PICTURE_SUFFIXES,
    VOLUME_SUFFIXES,
)
from radiologynet.io.volumes import Volume, read_volume
from radiologynet.io.windowing import WINDOW_PRESETS, Image, resolve_window, to_radiologynet_uint8

__all__ = [
    "BUDGET_ENVIRONMENT",
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "PICTURE_SUFFIXES",
    "SUPPORTED_PHOTOMETRIC",
    "VOLUME_SUFFIXES",
    "WINDOW_PRESETS",
    "DecodeBudget",
    "Image",
    "Volume",
    "has_pixel_data",
    "header_text",
    "is_dicom",
    "list_image_files",
    "paper_uint8",
    "read_dicom",
    "read_image",
    "read_picture",
    "read_volume",
    "resolve_window",
    "to_radiologynet_uint8",
]
