"""Generic datasets and the decoded-image cache (the package also ships the paper's
results table, ``paper-results.csv``)."""

from radiologynet.torchdata.cache import DecodedImageCache, build_cache
from radiologynet.torchdata.folders import DicomFolderDataset, ImageFolderDataset, ImageListDataset

__all__ = [
    "DecodedImageCache",
    "DicomFolderDataset",
    "ImageFolderDataset",
    "ImageListDataset",
    "build_cache",
]
