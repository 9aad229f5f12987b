"""The shipped sample images are the synthetic archive they claim to be, and decode."""

from __future__ import annotations

import numpy as np
import pydicom

from radiologynet.data.sample_images import SAMPLE_NAMES, sample_image_paths
from radiologynet.demo.synthetic_archive import write_synthetic_archive
from radiologynet.io import read_image


def test_samples_are_the_seeded_synthetic_archive(tmp_path):
    truth = write_synthetic_archive(tmp_path, len(SAMPLE_NAMES), seed=21)
    assert [t.group for t in truth] == list(SAMPLE_NAMES)
    for item, shipped in zip(truth, sample_image_paths(), strict=True):
        made = pydicom.dcmread(tmp_path / item.path)
        ours = pydicom.dcmread(shipped)
        assert np.array_equal(made.pixel_array, ours.pixel_array), shipped.name
        assert ours.Modality == made.Modality
        assert str(ours.PatientName) == "ANONYMOUS"


def test_samples_decode_with_their_windows():
    images = [read_image(path) for path in sample_image_paths()]
    assert {image.modality for image in images} == {"CT", "MR", "CR", "DX"}
    assert images[0].window == (40.0, 80.0)  # the head CT's brain window
    assert len({image.shape for image in images}) == len(images)
