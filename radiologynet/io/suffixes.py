"""The file suffixes the readers recognise: the definition every folder scan, dataset
and command uses (compare lower-cased suffixes against them)."""

from __future__ import annotations

#: Suffixes :func:`radiologynet.io.read_image` treats as DICOM without looking inside
#: (files with no suffix are recognised by their ``DICM`` magic instead).
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".ima")
#: Suffixes read by :func:`radiologynet.io.read_picture` (Pillow).
PICTURE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Every 2-D image suffix :func:`radiologynet.io.read_image` reads.
IMAGE_SUFFIXES: tuple[str, ...] = PICTURE_SUFFIXES + DICOM_SUFFIXES
#: Single-file volume suffixes :func:`radiologynet.io.read_volume` reads (a folder holding
#: one DICOM series is a volume too).
VOLUME_SUFFIXES: tuple[str, ...] = (".mhd", ".mha", ".nii", ".nii.gz", ".nrrd", ".nhdr")
