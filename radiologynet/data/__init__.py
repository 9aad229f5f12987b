"""Generic datasets and the decoded-image cache (the package also ships the paper's
results table, ``paper-results.csv``)."""

from radiologynet.data.cache import DecodedImageCache, build_cache
from radiologynet.data.datasets import DicomFolderDataset, ImageFolderDataset, ImageListDataset

__all__ = [
    "DecodedImageCache",
    "DicomFolderDataset",
    "ImageFolderDataset",
    "ImageListDataset",
    "build_cache",
]
